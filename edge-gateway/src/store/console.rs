//! The console's own reads: pending pushes per tablet, a patient's access history, the last
//! reconciliations.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::reconciliation_runs;
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
#[derive(Debug, Serialize, Deserialize, QueryableByName)]
pub struct AccessRecord {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[diesel(sql_type = Timestamptz)]
    pub at: OffsetDateTime,
    /// What was done (`patient.read`, `collection.create`, …).
    #[diesel(sql_type = Text)]
    pub action: String,
    /// Who.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub staff_id: Option<Uuid>,
    /// Their name (staff of this lab: the admin's colleagues).
    #[diesel(sql_type = Nullable<Text>)]
    pub staff_name: Option<String>,
    /// Their role.
    #[diesel(sql_type = Nullable<Text>)]
    pub staff_role: Option<String>,
    /// From which tablet.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub device_id: Option<Uuid>,
    /// The tablet's label.
    #[diesel(sql_type = Nullable<Text>)]
    pub device_label: Option<String>,
    /// The resource (`prescription:<id>`, …).
    #[diesel(sql_type = Nullable<Text>)]
    pub resource: Option<String>,
    /// The request.
    #[diesel(sql_type = Nullable<Text>)]
    pub request_id: Option<String>,
}

/// The audit records of `patient` in `lab`, newest first, at most `limit`: the chain's, and the
/// writes' records the journal has not moved into it yet (at most a second old), so that a write is
/// in the history as soon as it is acknowledged. One statement, one snapshot: a record the journal
/// moves meanwhile is read once.
pub async fn patient_access(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    patient: Uuid,
    limit: i64,
) -> QueryResult<Vec<AccessRecord>> {
    diesel::sql_query(
        "SELECT r.at, r.action, r.staff_id, s.display_name AS staff_name, s.role AS staff_role, \
                r.device_id, d.label AS device_label, r.resource, r.request_id \
         FROM ((SELECT at, 1 AS chained, seq AS n, action, staff_id, device_id, resource, request_id \
                FROM audit_log WHERE patient_id = $1 AND lab_id = $2 ORDER BY at DESC, seq DESC LIMIT $3) \
               UNION ALL \
               (SELECT at, 0, id, action, staff_id, device_id, resource, request_id \
                FROM audit_pending WHERE patient_id = $1 AND lab_id = $2 ORDER BY at DESC, id DESC LIMIT $3)) r \
         LEFT JOIN staff s ON s.id = r.staff_id \
         LEFT JOIN devices d ON d.id = r.device_id \
         ORDER BY r.at DESC, r.chained, r.n DESC \
         LIMIT $3",
    )
    .bind::<SqlUuid, _>(patient)
    .bind::<SqlUuid, _>(lab)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
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
