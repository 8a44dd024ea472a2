//! The queries of paper prescriptions: the prescription row, its document's bytes, and the check
//! that the patient is one this gateway holds.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{paper_prescriptions, patients, prescription_documents};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// A paper prescription as stored.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = paper_prescriptions)]
pub struct PaperRow<'a> {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub lab_id: Uuid,
    pub prescriber_name: Option<&'a str>,
    pub prescriber_rpps: Option<&'a str>,
    pub issued_on: Date,
    pub notes: Option<&'a str>,
    pub recorded_by: Uuid,
    pub device_id: Uuid,
    pub recorded_at: OffsetDateTime,
}

/// A document as stored (the bytes whole: the relay's chunks are cut from them when queued).
#[derive(Debug, Insertable)]
#[diesel(table_name = prescription_documents)]
pub struct DocumentRow<'a> {
    pub id: Uuid,
    pub prescription_id: Uuid,
    pub media_type: &'a str,
    pub size_bytes: i32,
    pub sha256: &'a [u8],
    pub content: &'a [u8],
}

/// Whether this gateway holds patient `id` (the lab's, walk-ins registered here included).
pub async fn patient_held(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(patients::table.find(id)))
        .get_result(conn)
        .await
}

/// Stores a paper prescription and its document; `false` (nothing stored) when the id is already
/// another paper prescription's. A registration of the same id committing meanwhile on another
/// tablet is waited for, then seen as taken.
pub async fn insert(conn: &mut AsyncPgConnection, row: &PaperRow<'_>, document: &DocumentRow<'_>) -> QueryResult<bool> {
    let inserted = diesel::insert_into(paper_prescriptions::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    diesel::insert_into(prescription_documents::table)
        .values(document)
        .execute(conn)
        .await?;
    Ok(true)
}
