//! Retention: the chained records older than `audit.retention_months` are purged once a day, from
//! the start of the chain, and the chain stays verifiable.
//!
//! A purge removes a prefix of the chain, in chain order: the records after the latest anchor up to
//! the last one before the first record that is still young enough (a record chained late, with an
//! older `at`, waits for the records before it). Unchained records are never purged. Before deleting,
//! the purge verifies the records it is about to delete: a broken stretch is kept, as evidence, and
//! the purge refuses (logged as a security event). The deletion and the new anchor — the last purged
//! record's position and hash, in `audit_anchors` — commit together, in batches of at most
//! [`PURGE_BATCH`] records, each in one transaction. The serving role may not delete audit records:
//! the deletion and the anchor are made by the database function `audit_purge`, which runs as the
//! schema's owner and refuses any record younger than the retention recorded by `edge-gateway
//! migrate` in `audit_retention` (the longer of that and `audit.retention_months` applies here).
//! Verification then starts from the anchor, and the journal continues from it when every record
//! has been purged.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_schema::db::PgPool;
use labedge_schema::edge::schema::audit_checkpoints;

use super::GENESIS_HASH;
use super::verify::{BadRecord, latest_anchor, to_hash, verify_segment};

/// Most records one purge transaction removes.
pub const PURGE_BATCH: i64 = 50_000;

/// Advisory lock key of the purge (transaction scoped): two purges never interleave.
const PURGE_LOCK: i64 = 7_305_710_004;

/// How long after start the first purge runs, then how often.
const FIRST_PURGE_AFTER: Duration = Duration::from_secs(120);
const PURGE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// What a purge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Records removed.
    pub records: u64,
    /// The anchor now: position and hash of the last record removed (none if nothing was).
    pub anchor: Option<(i64, [u8; 32])>,
}

/// Why a purge stopped.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The database failed.
    #[error("audit purge: {0}")]
    Database(#[from] diesel::result::Error),
    /// The records due for purging do not verify: they are kept.
    #[error("the audit records due for purging do not verify, so they are kept: {0}")]
    Broken(BadRecord),
}

/// Purges every chained record older than `retention_months`, batch after batch.
pub async fn purge_expired(conn: &mut AsyncPgConnection, retention_months: u32) -> Result<Purged, PurgeError> {
    let mut purged = Purged::default();
    while let Some((records, anchor)) = purge_batch(conn, retention_months).await? {
        purged.records += records;
        purged.anchor = Some(anchor);
        if records < PURGE_BATCH as u64 {
            break;
        }
    }
    Ok(purged)
}

#[derive(QueryableByName)]
struct Bounds {
    #[diesel(sql_type = Nullable<BigInt>)]
    young: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
}

#[derive(QueryableByName)]
struct Deleted {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One transaction: removes up to [`PURGE_BATCH`] records after the anchor, all older than the
/// cutoff and verified, and records the new anchor. `None` when nothing is due.
async fn purge_batch(
    conn: &mut AsyncPgConnection,
    retention_months: u32,
) -> Result<Option<(u64, (i64, [u8; 32]))>, PurgeError> {
    conn.transaction::<_, PurgeError, _>(async move |conn| {
        conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({PURGE_LOCK})"))
            .await?;
        let start = latest_anchor(conn)
            .await?
            .map_or((0, GENESIS_HASH), |a| (a.chain_seq, a.hash));
        // Within the batch's window: the first record still young enough, and the last record. The
        // database's retention wins when it is longer: `audit_purge` would refuse otherwise.
        let bounds: Bounds = diesel::sql_query(
            "WITH r AS (SELECT now() - make_interval(months => greatest($1, \
                                 (SELECT months FROM audit_retention))) AS cutoff) \
             SELECT (SELECT min(chain_seq) FROM audit_log WHERE chain_seq > $2 AND chain_seq <= $3 \
                       AND at >= r.cutoff) AS young, \
                    (SELECT max(chain_seq) FROM audit_log WHERE chain_seq > $2 AND chain_seq <= $3) AS last \
             FROM r",
        )
        .bind::<Integer, _>(i32::try_from(retention_months).unwrap_or(i32::MAX))
        .bind::<BigInt, _>(start.0)
        .bind::<BigInt, _>(start.0 + PURGE_BATCH)
        .get_result(conn)
        .await?;
        let upto = match (bounds.young, bounds.last) {
            (Some(young), _) => young - 1,
            (None, Some(last)) => last,
            (None, None) => return Ok(None),
        };
        if upto <= start.0 {
            return Ok(None);
        }
        let checkpoints: Vec<(i64, Vec<u8>)> = audit_checkpoints::table
            .filter(audit_checkpoints::chain_seq.gt(start.0))
            .filter(audit_checkpoints::chain_seq.le(upto))
            .order(audit_checkpoints::chain_seq.asc())
            .select((audit_checkpoints::chain_seq, audit_checkpoints::chain_hash))
            .load(conn)
            .await?;
        let checkpoints = checkpoints.into_iter().map(|(p, h)| (p, to_hash(Some(&h)))).collect();
        let segment = verify_segment(conn, start, Some(upto), checkpoints)
            .await?
            .map_err(PurgeError::Broken)?;
        // A record missing just before `upto` ends the segment early: purge what verified, and the
        // gap stays right after the anchor, where verification reports it.
        let Some(head) = segment.head else {
            return Ok(None);
        };
        let deleted: Deleted = diesel::sql_query("SELECT audit_purge($1) AS n")
            .bind::<BigInt, _>(head.0)
            .get_result(conn)
            .await?;
        let deleted = deleted.n;
        Ok(Some((deleted as u64, head)))
    })
    .await
}

/// The daily purge of a serving gateway, until the service stops.
pub(crate) async fn run(pool: PgPool, retention_months: u32, stop: labedge_service::workers::Stop) {
    if !stop.sleep(FIRST_PURGE_AFTER).await {
        return;
    }
    loop {
        let outcome = match pool.get().await {
            Ok(mut conn) => purge_expired(&mut conn, retention_months).await,
            Err(e) => {
                tracing::warn!(error = %e, "audit purge postponed to tomorrow: no database connection");
                if !stop.sleep(PURGE_EVERY).await {
                    return;
                }
                continue;
            }
        };
        match outcome {
            Ok(Purged { records: 0, .. }) => {
                tracing::debug!(
                    audit.retention_months = retention_months,
                    "no audit record due for purging"
                )
            }
            Ok(Purged {
                records,
                anchor: Some((chain_seq, hash)),
            }) => tracing::info!(
                audit.purged = records,
                audit.retention_months = retention_months,
                audit.anchor_seq = chain_seq,
                audit.anchor_hash = %hex::encode(hash),
                "audit records past their retention purged; the chain now starts after the anchor"
            ),
            Ok(_) => {}
            Err(PurgeError::Broken(bad)) => tracing::event!(
                target: "security",
                tracing::Level::ERROR,
                event.kind = "security",
                event.category = "integrity",
                event.action = "audit_purge_refused",
                event.outcome = "failure",
                audit.chain_seq = bad.chain_seq,
                "audit purge refused: the records due for purging do not verify and are kept ({bad})"
            ),
            Err(e) => tracing::warn!(error = %e, "audit purge failed; retried tomorrow"),
        }
        if !stop.sleep(PURGE_EVERY).await {
            return;
        }
    }
}
