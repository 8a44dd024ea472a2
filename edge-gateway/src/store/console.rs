//! The console's own reads: pending pushes per tablet, a patient's access history, the last
//! reconciliations.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{audit_log, audit_pending, devices, reconciliation_runs, staff};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Writes of one tablet still waiting in the outbox.
#[derive(Debug, Serialize, Deserialize, QueryableByName)]
pub struct PendingPushes {
    /// The tablet.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub device_id: Uuid,
    /// Entries not yet acknowledged by the cloud.
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    /// When the oldest of them was committed here.
    #[diesel(sql_type = Timestamptz)]
    #[serde(with = "time::serde::rfc3339")]
    pub oldest_at: OffsetDateTime,
}

/// Pending outbox entries per tablet (the `device_id` of each entry's payload), most first. Reads
/// only pending entries, which the outbox's partial index keeps few.
pub async fn pending_pushes(conn: &mut AsyncPgConnection) -> QueryResult<Vec<PendingPushes>> {
    diesel::sql_query(
        "SELECT (payload->>'device_id')::uuid AS device_id, count(*) AS pending, min(created_at) AS oldest_at \
         FROM outbox \
         WHERE sent_at IS NULL AND jsonb_typeof(payload->'device_id') = 'string' \
         GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .load(conn)
    .await
}

/// One access to a patient's data, as the console lists it.
#[derive(Debug, Serialize, Deserialize, Queryable)]
pub struct AccessRecord {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What was done (`patient.read`, `collection.create`, …).
    pub action: String,
    /// Who.
    pub staff_id: Option<Uuid>,
    /// Their name (staff of this lab: the admin's colleagues).
    pub staff_name: Option<String>,
    /// Their role.
    pub staff_role: Option<String>,
    /// From which tablet.
    pub device_id: Option<Uuid>,
    /// The tablet's label.
    pub device_label: Option<String>,
    /// The resource (`prescription:<id>`, …).
    pub resource: Option<String>,
    /// The request.
    pub request_id: Option<String>,
}

/// The audit records of `patient` in `lab`, newest first, at most `limit`: the chain's, and the
/// writes' records the journal has not moved into it yet (at most a second old), so that a write is
/// in the history as soon as it is acknowledged.
pub async fn patient_access(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    patient: Uuid,
    limit: i64,
) -> QueryResult<Vec<AccessRecord>> {
    let mut records: Vec<AccessRecord> = audit_pending::table
        .left_join(staff::table.on(staff::id.nullable().eq(audit_pending::staff_id)))
        .left_join(devices::table.on(devices::id.nullable().eq(audit_pending::device_id)))
        .filter(audit_pending::patient_id.eq(patient))
        .filter(audit_pending::lab_id.eq(lab))
        .order((audit_pending::at.desc(), audit_pending::id.desc()))
        .limit(limit)
        .select((
            audit_pending::at,
            audit_pending::action,
            audit_pending::staff_id,
            staff::display_name.nullable(),
            staff::role.nullable(),
            audit_pending::device_id,
            devices::label.nullable(),
            audit_pending::resource,
            audit_pending::request_id,
        ))
        .load(conn)
        .await?;
    let chained: Vec<AccessRecord> = audit_log::table
        .left_join(staff::table.on(staff::id.nullable().eq(audit_log::staff_id)))
        .left_join(devices::table.on(devices::id.nullable().eq(audit_log::device_id)))
        .filter(audit_log::patient_id.eq(patient))
        .filter(audit_log::lab_id.eq(lab))
        .order((audit_log::at.desc(), audit_log::seq.desc()))
        .limit(limit)
        .select((
            audit_log::at,
            audit_log::action,
            audit_log::staff_id,
            staff::display_name.nullable(),
            staff::role.nullable(),
            audit_log::device_id,
            devices::label.nullable(),
            audit_log::resource,
            audit_log::request_id,
        ))
        .load(conn)
        .await?;
    records.extend(chained);
    // Stable: among records of the same instant, pending ones (newer in the chain's order) first.
    records.sort_by_key(|r| std::cmp::Reverse(r.at));
    // Pending first, then the chain: a record the journal moved in between is read twice (never
    // missed); its two copies are equal and adjacent.
    records.dedup_by(|a, b| {
        (a.at, &a.action, &a.request_id, &a.resource, a.device_id, a.staff_id)
            == (b.at, &b.action, &b.request_id, &b.resource, b.device_id, b.staff_id)
    });
    records.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(records)
}

/// A reconciliation with the cloud, as the console lists it.
#[derive(Debug, Serialize, Deserialize, Queryable)]
pub struct ReconciliationRun {
    /// Its id.
    pub id: i64,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it finished (`None` while it runs, or if the gateway stopped during it).
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Whether every table matched once repaired.
    pub ok: Option<bool>,
    /// Per table: counts and what was repaired. Kept as the stored document (the reports of
    /// older versions, and of a failed run, have other shapes): the console shows it as it is.
    pub tables: serde_json::Value,
    /// Rows pulled again.
    pub repaired_rows: i64,
    /// Why it failed.
    pub error: Option<String>,
}

/// The last `limit` reconciliations, newest first. Kept in the database, so they survive a restart
/// (the status only knows the ones this process ran).
pub async fn recent_reconciliations(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<ReconciliationRun>> {
    reconciliation_runs::table
        .order(reconciliation_runs::started_at.desc())
        .limit(limit)
        .select((
            reconciliation_runs::id,
            reconciliation_runs::started_at,
            reconciliation_runs::finished_at,
            reconciliation_runs::ok,
            reconciliation_runs::tables,
            reconciliation_runs::repaired_rows,
            reconciliation_runs::error,
        ))
        .load(conn)
        .await
}
