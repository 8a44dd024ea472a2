//! What the gateway asks of its PostgreSQL server itself rather than of its tables.

use diesel::QueryableByName;
use diesel::result::QueryResult;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// The server's settings that decide whether a committed write survives a power cut.
#[derive(Debug, QueryableByName)]
pub struct Durability {
    /// `fsync`.
    #[diesel(sql_type = Text)]
    pub fsync: String,
    /// `synchronous_commit`.
    #[diesel(sql_type = Text)]
    pub synchronous_commit: String,
}

/// The server's durability settings.
pub async fn durability(conn: &mut AsyncPgConnection) -> QueryResult<Durability> {
    diesel::sql_query(
        "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit",
    )
    .get_result(conn)
    .await
}
