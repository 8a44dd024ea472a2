//! Snapshot pages: the rows of one table currently in a lab's scope, by key.

use diesel_async::AsyncPgConnection;
use labedge_schema::sync::{Entity, SnapshotPage};

use super::records::{self, Selection};
use super::scope::Scope;

/// Which part of a table a snapshot page reads.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotRequest<'a> {
    /// The last key already read (exclusive); `None` from the start.
    pub after: Option<&'a str>,
    /// Only this reconciliation bucket (two lower-case hex digits).
    pub bucket: Option<&'a str>,
    /// Rows at most (at least 1).
    pub limit: i64,
}

/// Up to `request.limit` in-scope rows of `entity` after `request.after`, by key; `next_after` is the
/// last key when more rows wait. Run it in one `REPEATABLE READ` transaction (a prescription and its
/// exams come from the same snapshot), as [`crate::feed::read_snapshot`] does.
pub async fn page(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    entity: Entity,
    request: SnapshotRequest<'_>,
) -> diesel::QueryResult<SnapshotPage> {
    let limit = request.limit.max(1);
    let mut records = records::load(
        conn,
        scope,
        entity,
        Selection::Page {
            after: request.after,
            bucket: request.bucket,
            limit: limit + 1,
        },
    )
    .await?;
    let more = records.len() as i64 > limit;
    records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_after = if more { records.last().map(|r| r.key()) } else { None };
    Ok(SnapshotPage {
        entity,
        records,
        next_after,
    })
}
