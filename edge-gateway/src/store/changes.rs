//! The gateway's change log (`change_log`): every synced entity changed, at a position taken at
//! commit time, which the tablets' delta pull follows.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::change_log;
use uuid::Uuid;

/// One change: its position, entity kind (`appointment`, `patient`, `prescription`, …) and id.
pub type Change = (i64, String, Uuid);

/// The newest position (0 when the log is empty). Takes the connection shared, so that it can be
/// pipelined with other queries.
pub async fn head(mut conn: &AsyncPgConnection) -> QueryResult<i64> {
    change_log::table
        .select(diesel::dsl::max(change_log::position))
        .first::<Option<i64>>(&mut conn)
        .await
        .map(Option::unwrap_or_default)
}

/// The changes after `position`, in order, at most `limit`.
pub async fn since(conn: &mut AsyncPgConnection, position: i64, limit: i64) -> QueryResult<Vec<Change>> {
    change_log::table
        .filter(change_log::position.gt(position))
        .order(change_log::position)
        .limit(limit)
        .select((change_log::position, change_log::entity, change_log::entity_id))
        .load(conn)
        .await
}
