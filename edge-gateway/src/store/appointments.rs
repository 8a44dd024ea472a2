//! Appointments, as the write path reads and changes them.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::appointments;
use labedge_schema::sync::AppointmentRow;
use uuid::Uuid;

/// Appointment `id`, locked until the transaction ends (`FOR UPDATE`): its version is checked and
/// raised by the same transaction.
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<AppointmentRow>> {
    appointments::table
        .find(id)
        .select(AppointmentRow::EDGE_COLUMNS)
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Appointments `ids` (those that exist), locked until the transaction ends, taken in the order of
/// their ids: two groups of changes lock their rows in the same order and cannot deadlock.
pub async fn lock_many(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<HashMap<Uuid, AppointmentRow>> {
    let rows: Vec<AppointmentRow> = appointments::table
        .filter(appointments::id.eq_any(ids))
        .order(appointments::id)
        .select(AppointmentRow::EDGE_COLUMNS)
        .for_update()
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

/// Sets the status, reason and version of each of `rows` with one statement.
pub async fn set_statuses(conn: &mut AsyncPgConnection, rows: &[&AppointmentRow]) -> QueryResult<()> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Uuid as SqlUuid};
    diesel::sql_query(
        "UPDATE appointments a SET status = t.status, status_reason = t.reason, version = t.version \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS t(id, status, reason, version) \
         WHERE a.id = t.id",
    )
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.status_reason.as_deref()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(|_| ())
}
