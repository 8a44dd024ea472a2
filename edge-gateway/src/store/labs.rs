//! The labs (synced from the cloud): this gateway's own.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::labs;
use mobile_contracts::LabRef;
use uuid::Uuid;

/// The lab of this code, if the sync has brought it.
pub async fn by_code(conn: &mut AsyncPgConnection, code: &str) -> QueryResult<Option<LabRef>> {
    let row: Option<(Uuid, String, String)> = labs::table
        .filter(labs::code.eq(code))
        .select((labs::id, labs::code, labs::name))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(id, code, name)| LabRef { id, code, name }))
}
