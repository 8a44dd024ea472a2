//! Appointments, as the write path reads and changes them.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::appointments;
use labedge_schema::sync::AppointmentRow;
use uuid::Uuid;

/// Appointment `id`'s patient and lab.
pub async fn patient_and_lab(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<(Uuid, Uuid)>> {
    appointments::table
        .find(id)
        .select((appointments::patient_id, appointments::lab_id))
        .first(conn)
        .await
        .optional()
}

/// Appointment `id`'s lab and assigned staff member.
pub async fn lab_and_assignee(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<(Uuid, Option<Uuid>)>> {
    appointments::table
        .find(id)
        .select((appointments::lab_id, appointments::assigned_staff_id))
        .first(conn)
        .await
        .optional()
}

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

/// Sets appointment `id`'s status and reason at `version`; returns the row as changed.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
    version: i64,
) -> QueryResult<AppointmentRow> {
    diesel::update(appointments::table.find(id))
        .set((
            appointments::status.eq(status),
            appointments::status_reason.eq(reason),
            appointments::version.eq(version),
        ))
        .returning(AppointmentRow::EDGE_COLUMNS)
        .get_result(conn)
        .await
}
