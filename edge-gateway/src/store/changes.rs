//! The gateway's change log (`change_log`): every synced entity changed, which the tablets' delta
//! pull follows in the order of (writing transaction, position).
//!
//! Writers take no lock for it (migration `2026-12-06-000800_change_log_order_by_transaction`):
//! a reader takes only the entries of transactions that have all ended, those below the
//! [`horizon`], so nothing is ever committed below what a tablet has read.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::change_log;
use uuid::Uuid;

/// A point in the change log: a tablet that holds it has every entry at or before it, in the
/// order of (transaction, position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    /// The writing transaction's id (64-bit, never reused).
    pub xid: i64,
    /// The entry's position within the log.
    pub position: i64,
}

impl Mark {
    /// Every entry of the transactions below `horizon`, none of the others (positions start at 1).
    pub fn below(horizon: i64) -> Self {
        Self {
            xid: horizon,
            position: 0,
        }
    }
}

/// One change: where it stands, its entity kind (`appointment`, `patient`, `prescription`, …) and id.
pub type Change = (Mark, String, Uuid);

/// How long a pull waits for the transactions that were in progress when it started to end.
pub const PATIENCE: Duration = Duration::from_millis(500);

/// The horizon, in SQL: the oldest transaction id still in progress in the statement's snapshot,
/// or the next id when none is. Transactions known to run in *another* database of the cluster
/// are left out (they never write this log, and a long one elsewhere would hold the tablets back);
/// one not known yet (its id is assigned a moment before it holds the lock on it that `pg_locks`
/// shows, granted and exclusive: a waiter asks for it shared) counts, so the horizon errs only on
/// the low side. It never moves back: an id below it that is in progress
/// was already in progress, and left out, when it was read.
const HORIZON: &str = "coalesce(\
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x \
     WHERE x::text::bigint % 4294967296 NOT IN (\
         SELECT l.transactionid::text::bigint FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted \
           AND a.datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database()))), \
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint)";

#[derive(QueryableByName)]
struct Horizon {
    #[diesel(sql_type = BigInt)]
    horizon: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    newest: Option<i64>,
}

/// The horizon once every entry committed when it is called lies below it: waits, up to
/// [`PATIENCE`], for the transactions still in progress that started before those entries. A pull
/// then answers everything committed before it began, as when the log was ordered by a lock; past
/// the patience (a transaction that lasts), what is not below the horizon comes at a later pull.
pub async fn settled_horizon(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    let first: Horizon = diesel::sql_query(format!(
        "SELECT {HORIZON} AS horizon, (SELECT max(xid) FROM change_log) AS newest"
    ))
    .get_result(conn)
    .await?;
    let Some(newest) = first.newest.filter(|newest| *newest >= first.horizon) else {
        return Ok(first.horizon);
    };
    let deadline = Instant::now() + PATIENCE;
    let mut horizon = first.horizon;
    while horizon <= newest && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
        horizon = diesel::select(diesel::dsl::sql::<BigInt>(HORIZON))
            .get_result(conn)
            .await?;
    }
    Ok(horizon)
}

/// The changes after `after` and below `horizon`, in order, at most `limit`.
pub async fn since(conn: &mut AsyncPgConnection, after: Mark, horizon: i64, limit: i64) -> QueryResult<Vec<Change>> {
    let rows: Vec<(i64, i64, String, Uuid)> = change_log::table
        .filter(
            diesel::dsl::sql::<Bool>("(change_log.xid, change_log.position) > (")
                .bind::<BigInt, _>(after.xid)
                .sql(", ")
                .bind::<BigInt, _>(after.position)
                .sql(")"),
        )
        .filter(change_log::xid.lt(horizon))
        .order((change_log::xid, change_log::position))
        .limit(limit)
        .select((
            change_log::xid,
            change_log::position,
            change_log::entity,
            change_log::entity_id,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(xid, position, entity, id)| (Mark { xid, position }, entity, id))
        .collect())
}

/// Removes the entries written before `before`, [`super::outbox::PURGE_BATCH`] a statement; answers
/// how many. A tablet's cursor is good only for the local day it was issued (`tablet_pull`), so no
/// pull reads an entry older than the day before.
pub async fn purge(conn: &mut AsyncPgConnection, before: time::OffsetDateTime) -> QueryResult<usize> {
    let mut purged = 0;
    loop {
        let n = diesel::sql_query(
            "DELETE FROM change_log WHERE position IN (SELECT position FROM change_log \
             WHERE changed_at < $1 LIMIT $2)",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .bind::<BigInt, _>(super::outbox::PURGE_BATCH)
        .execute(conn)
        .await?;
        purged += n;
        if (n as i64) < super::outbox::PURGE_BATCH {
            return Ok(purged);
        }
    }
}
