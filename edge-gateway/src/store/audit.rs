//! The audit log's rows. A write's record is appended to `audit_pending` in the write's own
//! transaction (it commits or rolls back with the write); the journal appends reads' records already
//! chained, and moves the pending ones into the chain with `audit_adopt`.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::audit_pending;
use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditRecord, Hashes};
use labedge_schema::prepared::KeepPrepared;

/// Rows one `INSERT` statement carries (7 columns, under PostgreSQL's 65,535 parameters).
pub const ROWS_PER_INSERT: usize = 1_000;

/// Appends a write's `entries` to `audit_pending`; returns how many rows were written.
pub async fn insert(conn: &mut AsyncPgConnection, entries: &[AuditEntry]) -> QueryResult<usize> {
    let mut written = 0;
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|e| {
                (
                    audit_pending::lab_id.eq(e.lab_id),
                    audit_pending::staff_id.eq(e.staff_id),
                    audit_pending::device_id.eq(e.device_id),
                    audit_pending::action.eq(e.action),
                    audit_pending::patient_id.eq(e.patient_id),
                    audit_pending::resource.eq(e.resource.as_deref()),
                    audit_pending::request_id.eq(e.request_id.as_deref()),
                )
            })
            .collect();
        written += diesel::insert_into(audit_pending::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(written)
}

/// Appends chained `records` (their `chain_seq` set) with one statement whatever their number (the
/// columns as arrays).
pub(crate) async fn append_chained(
    conn: &mut AsyncPgConnection,
    records: &[AuditRecord],
    hashes: Hashes,
) -> QueryResult<usize> {
    let uuids = |f: fn(&AuditRecord) -> Option<uuid::Uuid>| records.iter().map(f).collect::<Vec<_>>();
    let texts = |f: fn(&AuditRecord) -> Option<&str>| records.iter().map(f).collect::<Vec<_>>();
    diesel::sql_query(
        "INSERT INTO audit_log (at, lab_id, staff_id, device_id, action, patient_id, resource, request_id, \
                                chain_seq, prev_hash, hash) \
         SELECT * FROM unnest($1::timestamptz[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], \
                              $7::text[], $8::text[], $9::bigint[], $10::bytea[], $11::bytea[])",
    )
    .bind::<Array<Timestamptz>, _>(records.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(records.iter().map(|r| r.lab_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(uuids(|r| r.staff_id))
    .bind::<Array<Nullable<SqlUuid>>, _>(uuids(|r| r.device_id))
    .bind::<Array<Text>, _>(records.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(uuids(|r| r.patient_id))
    .bind::<Array<Nullable<Text>>, _>(texts(|r| r.resource.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(texts(|r| r.request_id.as_deref()))
    .bind::<Array<BigInt>, _>(records.iter().map(|r| r.chain_seq).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(hashes.prev)
    .bind::<Array<Bytea>, _>(hashes.own)
    .prepared()
    .execute(conn)
    .await
}

/// A pending write record.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_pending)]
struct PendingRow {
    id: i64,
    at: OffsetDateTime,
    lab_id: uuid::Uuid,
    staff_id: Option<uuid::Uuid>,
    device_id: Option<uuid::Uuid>,
    action: String,
    patient_id: Option<uuid::Uuid>,
    resource: Option<String>,
    request_id: Option<String>,
}

/// The oldest pending records (at most `limit`), in the order they were appended; each record's
/// `seq` holds its pending id until it is chained.
pub async fn pending(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<AuditRecord>> {
    let rows: Vec<PendingRow> = audit_pending::table
        .order(audit_pending::id.asc())
        .limit(limit)
        .select(PendingRow::as_select())
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditRecord {
            seq: r.id,
            chain_seq: 0,
            at: r.at,
            lab_id: r.lab_id,
            staff_id: r.staff_id,
            device_id: r.device_id,
            action: r.action,
            patient_id: r.patient_id,
            resource: r.resource,
            request_id: r.request_id,
        })
        .collect())
}

/// How many write records wait to be chained.
pub async fn pending_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    audit_pending::table.count().get_result(conn).await
}

#[derive(QueryableByName)]
struct Moved {
    #[diesel(sql_type = Integer)]
    moved: i32,
}

/// Moves the pending `records` (their `seq` is their pending id, their `chain_seq` set) into the
/// chain with their hashes; the database copies their content itself (see the migration
/// `audit_journal`), in one statement.
pub(crate) async fn adopt(conn: &mut AsyncPgConnection, records: &[AuditRecord], hashes: Hashes) -> QueryResult<usize> {
    let moved: Moved = diesel::sql_query("SELECT audit_adopt($1, $2, $3, $4) AS moved")
        .bind::<Array<BigInt>, _>(records.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(records.iter().map(|r| r.chain_seq).collect::<Vec<_>>())
        .bind::<Array<Bytea>, _>(hashes.prev)
        .bind::<Array<Bytea>, _>(hashes.own)
        .prepared()
        .get_result(conn)
        .await?;
    Ok(usize::try_from(moved.moved).unwrap_or(0))
}
