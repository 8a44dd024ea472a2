//! The audit log's rows, appended in the caller's transaction (a write's audit commits with the
//! write; the batched writer of reads commits many at once).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::audit_log;

use crate::audit::AuditEntry;

/// Rows one `INSERT` statement carries (7 columns, under PostgreSQL's 65,535 parameters).
pub const ROWS_PER_INSERT: usize = 1_000;

/// Appends `entries`; returns how many rows were written.
pub async fn insert(conn: &mut AsyncPgConnection, entries: &[AuditEntry]) -> QueryResult<usize> {
    let mut written = 0;
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|e| {
                (
                    audit_log::lab_id.eq(e.lab_id),
                    audit_log::staff_id.eq(e.staff_id),
                    audit_log::device_id.eq(e.device_id),
                    audit_log::action.eq(e.action),
                    audit_log::patient_id.eq(e.patient_id),
                    audit_log::resource.eq(e.resource.as_deref()),
                    audit_log::request_id.eq(e.request_id.as_deref()),
                )
            })
            .collect();
        written += diesel::insert_into(audit_log::table).values(rows).execute(conn).await?;
    }
    Ok(written)
}
