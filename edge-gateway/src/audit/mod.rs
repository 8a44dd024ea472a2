//! The audit log of patient data: who read or wrote what, when, from which device.
//!
//! ## Appending
//!
//! - Reads go through [`AuditLog::record`]: the entries are queued to one writer task, which takes
//!   everything queued at that moment and writes it with one multi-row `INSERT` and one commit (group
//!   commit; up to 1,000 rows the `INSERT` is its own transaction, one round trip). `record` resolves once that commit is done, and a read handler answers only after it:
//!   a read that was answered has its audit on disk, even if the process crashes the next instant.
//!   When the audit cannot be written (database down, writer gone), `record` fails and the read
//!   answers 503: never an answer without its audit. Many concurrent reads share one commit, so
//!   auditing does not cost each read a commit of its own.
//! - Writes use [`AuditLog::insert_in`], inside their own transaction: the audit row commits or
//!   rolls back with the write.
//!
//! Rows are appended unchained (`chain_seq`, `prev_hash`, `hash` NULL).
//!
//! ## The chain
//!
//! A chainer task links committed, unchained rows about once a second, in one transaction per
//! pass, under a transaction-scoped advisory lock (so two chainers never interleave): it takes the
//! unchained rows visible to it by `seq`, and gives each `chain_seq` = previous `chain_seq` + 1 (1 for
//! the first row ever), `prev_hash` = the previous row's `hash` (32 zero bytes for the first) and
//! `hash` = [`record_hash`]`(prev_hash, row)`. A row whose `seq` is lower but that committed after a
//! pass is chained by the next pass: the chain order is `chain_seq`, not `seq`. The table's trigger
//! allows exactly this update (chain columns of an unchained row) and nothing else.
//!
//! ### Canonical encoding hashed by [`record_hash`]
//!
//! `hash = SHA-256(prev_hash ‖ encoding)`, where `prev_hash` is the 32 bytes as stored and the
//! encoding is, in this order (integers big-endian):
//!
//! | field | bytes |
//! |---|---|
//! | domain tag | the 16 ASCII bytes `labedge.audit.v1` |
//! | `chain_seq` | i64 |
//! | `at` | i64: microseconds since 1970-01-01T00:00:00Z (PostgreSQL's precision) |
//! | `lab_id` | 16 bytes (UUID, RFC 9562 byte order) |
//! | `staff_id`, `device_id` | each: `0x00` when NULL, else `0x01` and 16 bytes |
//! | `action` | u32 length in bytes, then UTF-8 bytes |
//! | `patient_id` | `0x00` when NULL, else `0x01` and 16 bytes |
//! | `resource`, `request_id` | each: `0x00` when NULL, else `0x01`, u32 length, UTF-8 bytes |
//!
//! The local surrogate `seq` is not hashed (a copy of the log elsewhere keeps its own ids); the
//! position in the chain, `chain_seq`, is. [`verify_chain`] recomputes the whole chain.
//!
//! ## Verification, checkpoints, retention
//!
//! - [`verify`]: `edge-gateway audit verify` streams the chain from the latest retention anchor and
//!   names the first bad record (hash mismatch, broken link, gap, rows deleted, chain reordered).
//! - [`checkpoint`]: every `audit.checkpoint_interval_minutes` and as soon as an upstream is back
//!   after an outage, the chain's head is signed with the gateway's credential key and queued in the
//!   outbox (lane 1); the cloud verifies the signature and that each checkpoint continues the
//!   previous one.
//! - [`roles`]: `serve` runs as a role that cannot change or delete records (nor disable the
//!   trigger), and checks it at start; `migrate` runs as the owner.
//! - [`retention`]: once a day, the chained records older than `audit.retention_months` are
//!   purged from the start of the chain, and the last one's position and hash kept as the anchor the
//!   verification starts from.
//!
//! [`spawn_maintenance`] starts the checkpoint and purge tasks of a serving gateway.

pub mod checkpoint;
pub mod command;
pub mod retention;
pub mod roles;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_schema::db::{PgPool, PooledConnection};
use labedge_schema::edge::schema::audit_log;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// One audit record to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The lab.
    pub lab_id: Uuid,
    /// The staff member.
    pub staff_id: Option<Uuid>,
    /// The device.
    pub device_id: Option<Uuid>,
    /// What was done: `patient.read`, `patient.search`, `prescription.read`, `round.read`, …
    pub action: &'static str,
    /// The patient whose data it was.
    pub patient_id: Option<Uuid>,
    /// The resource (`prescription:<id>`, …).
    pub resource: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

/// The `prev_hash` of the first row of the chain.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The domain tag that starts the hashed encoding of a row (version 1 of the encoding).
pub const ENCODING_TAG: &[u8; 16] = b"labedge.audit.v1";

/// Advisory lock key of the chainer (transaction scoped).
const CHAIN_LOCK: i64 = 7_305_710_003;

/// Most entries written by one commit of the writer; more wait for the next commit.
const MAX_ENTRIES_PER_COMMIT: usize = 5_000;

/// Most rows linked by one chainer transaction.
const MAX_ROWS_PER_CHAIN_PASS: i64 = 10_000;

/// How often the chainer looks for unchained rows.
const CHAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Reads whose audit waits to be written; back pressure beyond.
const QUEUE_CAPACITY: usize = 4_096;

/// The audit could not be written: the read it belongs to must not be answered.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuditError {
    /// The writer task is gone (shutting down).
    #[error("the audit writer is not running")]
    WriterGone,
    /// The database refused or did not answer.
    #[error("the audit could not be committed: {0}")]
    Database(String),
}

impl From<AuditError> for ApiError {
    fn from(_: AuditError) -> Self {
        // Logged once by the writer, with its cause.
        ApiError::Problem(
            ProblemError::new(ErrorCode::ServiceUnavailable)
                .detail("the access could not be recorded in the audit log; retry shortly")
                .retry_after(2),
        )
    }
}

struct Pending {
    entries: Vec<AuditEntry>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// The audit log: a writer task that group-commits reads' entries, and a chainer task.
#[derive(Debug)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
}

impl AuditLog {
    /// Spawns the writer and the chainer on the current Tokio runtime.
    pub fn start(pool: PgPool) -> Arc<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_loop(pool.clone(), receiver));
        tokio::spawn(chain_loop(pool));
        Arc::new(Self { queue })
    }

    /// Appends `entries` and resolves once they are committed (sharing the commit with whatever
    /// else was queued meanwhile). An error means they are not written: do not answer the read.
    pub async fn record(&self, entries: Vec<AuditEntry>) -> Result<(), AuditError> {
        if entries.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Pending { entries, done })
            .await
            .map_err(|_| AuditError::WriterGone)?;
        committed.await.map_err(|_| AuditError::WriterGone)?
    }

    /// Appends `entries` within the caller's transaction (writes: the audit commits with the write).
    pub async fn insert_in(conn: &mut AsyncPgConnection, entries: &[AuditEntry]) -> QueryResult<usize> {
        crate::store::audit::insert(conn, entries).await
    }
}

/// Takes everything queued, writes it with one commit, tells every waiting read. The writer keeps
/// its connection between batches (no checkout, no liveness query per batch); a batch that fails on
/// a kept connection is tried once more on a fresh one.
async fn write_loop(pool: PgPool, mut receiver: mpsc::Receiver<Pending>) {
    let mut conn: Option<PooledConnection> = None;
    while let Some(first) = receiver.recv().await {
        let mut count = first.entries.len();
        let mut batch = vec![first];
        while count < MAX_ENTRIES_PER_COMMIT {
            match receiver.try_recv() {
                Ok(next) => {
                    count += next.entries.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let entries: Vec<AuditEntry> = batch.iter().flat_map(|p| p.entries.iter().cloned()).collect();
        let reused = conn.is_some();
        let mut outcome = write_batch(&pool, &mut conn, &entries).await;
        if outcome.is_err() && reused {
            outcome = write_batch(&pool, &mut conn, &entries).await;
        }
        metrics::counter!("labedge_audit_commits_total", "outcome" => if outcome.is_ok() { "ok" } else { "error" })
            .increment(1);
        metrics::histogram!("labedge_audit_commit_entries").record(count as f64);
        if let Err(e) = &outcome {
            tracing::error!(
                error = %e,
                audit.entries = count,
                audit.requests = batch.len(),
                "audit entries not written; their reads answer 503"
            );
        }
        for pending in batch {
            // A read that gave up (client gone) no longer listens: nothing to tell it.
            let _ = pending.done.send(outcome.clone());
        }
    }
}

/// Writes `entries` with one commit: a single multi-row `INSERT` is its own transaction; more rows
/// than one statement carries go in an explicit transaction. A failed connection is dropped.
async fn write_batch(
    pool: &PgPool,
    held: &mut Option<PooledConnection>,
    entries: &[AuditEntry],
) -> Result<(), AuditError> {
    let conn = match held {
        Some(conn) => conn,
        None => held.insert(pool.get().await.map_err(|e| AuditError::Database(e.to_string()))?),
    };
    let written = if entries.len() <= crate::store::audit::ROWS_PER_INSERT {
        AuditLog::insert_in(conn, entries).await
    } else {
        conn.transaction::<_, diesel::result::Error, _>(async move |conn| AuditLog::insert_in(conn, entries).await)
            .await
    };
    written.map(|_| ()).map_err(|e| {
        *held = None;
        AuditError::Database(e.to_string())
    })
}

/// A chained row: what [`record_hash`] covers, plus `seq`, `prev_hash` and `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct AuditRecord {
    /// Local surrogate key (not hashed).
    pub seq: i64,
    /// Position in the chain, from 1.
    pub chain_seq: i64,
    /// When the entry was appended.
    pub at: OffsetDateTime,
    /// The lab.
    pub lab_id: Uuid,
    /// The staff member.
    pub staff_id: Option<Uuid>,
    /// The device.
    pub device_id: Option<Uuid>,
    /// What was done.
    pub action: String,
    /// The patient.
    pub patient_id: Option<Uuid>,
    /// The resource.
    pub resource: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

/// The `hash` of a row chained after a row whose hash is `prev` (see the module docs for the
/// encoding). A verifier recomputes each row's hash with it.
pub fn record_hash(prev: &[u8], row: &AuditRecord) -> [u8; 32] {
    fn uuid(hasher: &mut Sha256, value: Option<Uuid>) {
        match value {
            None => hasher.update([0u8]),
            Some(id) => {
                hasher.update([1u8]);
                hasher.update(id.as_bytes());
            }
        }
    }
    fn text(hasher: &mut Sha256, value: &str) {
        // Audit texts are short (an action, a resource, a request id); a longer one is cut at the
        // encoding's limit rather than wrapping the length.
        let bytes = value.as_bytes();
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        hasher.update(len.to_be_bytes());
        hasher.update(&bytes[..len as usize]);
    }
    fn optional_text(hasher: &mut Sha256, value: Option<&str>) {
        match value {
            None => hasher.update([0u8]),
            Some(value) => {
                hasher.update([1u8]);
                text(hasher, value);
            }
        }
    }
    let micros = i64::try_from(row.at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX);
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(ENCODING_TAG);
    hasher.update(row.chain_seq.to_be_bytes());
    hasher.update(micros.to_be_bytes());
    hasher.update(row.lab_id.as_bytes());
    uuid(&mut hasher, row.staff_id);
    uuid(&mut hasher, row.device_id);
    text(&mut hasher, &row.action);
    uuid(&mut hasher, row.patient_id);
    optional_text(&mut hasher, row.resource.as_deref());
    optional_text(&mut hasher, row.request_id.as_deref());
    hasher.finalize().into()
}

/// An appended row without its chain columns: what the chainer links and the verifier re-hashes.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub(crate) struct Appended {
    seq: i64,
    at: OffsetDateTime,
    lab_id: Uuid,
    staff_id: Option<Uuid>,
    device_id: Option<Uuid>,
    action: String,
    patient_id: Option<Uuid>,
    resource: Option<String>,
    request_id: Option<String>,
}

impl Appended {
    /// The row at position `chain_seq` of the chain.
    pub(crate) fn at_position(self, chain_seq: i64) -> AuditRecord {
        AuditRecord {
            seq: self.seq,
            chain_seq,
            at: self.at,
            lab_id: self.lab_id,
            staff_id: self.staff_id,
            device_id: self.device_id,
            action: self.action,
            patient_id: self.patient_id,
            resource: self.resource,
            request_id: self.request_id,
        }
    }
}

/// Links the committed, unchained rows (at most [`MAX_ROWS_PER_CHAIN_PASS`]) in one transaction.
/// Returns how many rows it chained. The chainer task calls it every second; it is safe to call
/// concurrently (an advisory lock serialises passes).
pub async fn chain_pending(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK})"))
            .await?;
        let (mut chain_seq, prev) = chain_head(conn).await?.unwrap_or((0, GENESIS_HASH));
        let mut prev = prev.to_vec();
        let rows: Vec<Appended> = audit_log::table
            .filter(audit_log::chain_seq.is_null())
            .order(audit_log::seq.asc())
            .limit(MAX_ROWS_PER_CHAIN_PASS)
            .select(Appended::as_select())
            .load(conn)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (mut seqs, mut chain_seqs, mut prev_hashes, mut hashes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            chain_seq += 1;
            let record = row.at_position(chain_seq);
            let hash = record_hash(&prev, &record).to_vec();
            seqs.push(record.seq);
            chain_seqs.push(chain_seq);
            prev_hashes.push(std::mem::replace(&mut prev, hash.clone()));
            hashes.push(hash);
        }
        let chained = seqs.len();
        diesel::sql_query(
            "UPDATE audit_log a SET chain_seq = v.chain_seq, prev_hash = v.prev_hash, hash = v.hash \
             FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS v(seq, chain_seq, prev_hash, hash) \
             WHERE a.seq = v.seq",
        )
        .bind::<Array<BigInt>, _>(seqs)
        .bind::<Array<BigInt>, _>(chain_seqs)
        .bind::<Array<Bytea>, _>(prev_hashes)
        .bind::<Array<Bytea>, _>(hashes)
        .execute(conn)
        .await?;
        Ok(chained)
    })
    .await
}

/// The head of the chain: the last chained record's position and hash, or the retention anchor's
/// when every chained record has been purged; none before the first record is chained.
pub async fn chain_head(conn: &mut AsyncPgConnection) -> QueryResult<Option<(i64, [u8; 32])>> {
    let last: Option<(Option<i64>, Option<Vec<u8>>)> = audit_log::table
        .filter(audit_log::chain_seq.is_not_null())
        .order(audit_log::chain_seq.desc())
        .select((audit_log::chain_seq, audit_log::hash))
        .first(conn)
        .await
        .optional()?;
    if let Some((Some(chain_seq), hash)) = last {
        return Ok(Some((chain_seq, verify::to_hash(hash.as_deref()))));
    }
    Ok(verify::latest_anchor(conn).await?.map(|a| (a.chain_seq, a.hash)))
}

/// Starts the tasks a serving gateway runs besides the writer and the chainer: the signed
/// checkpoints (every `audit.checkpoint_interval_minutes`, and when an upstream is back) and the
/// daily retention purge.
pub fn spawn_maintenance(state: &crate::state::AppState) {
    tokio::spawn(checkpoint::run(state.clone()));
    tokio::spawn(retention::run(state.pool.clone(), state.config.audit.retention_months));
}

async fn chain_loop(pool: PgPool) {
    let mut failing = false;
    loop {
        let outcome = match pool.get().await {
            Ok(mut conn) => chain_pending(&mut conn).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            // A full pass: more rows wait, go on at once.
            Ok(chained) if chained as i64 >= MAX_ROWS_PER_CHAIN_PASS => {
                failing = false;
                continue;
            }
            Ok(_) => failing = false,
            Err(e) => {
                // Logged when it starts failing, not every second.
                if !failing {
                    tracing::warn!(error = %e, "audit chainer: rows not chained yet; retrying every second");
                }
                failing = true;
            }
        }
        tokio::time::sleep(CHAIN_INTERVAL).await;
    }
}

/// Where a chain check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// `chain_seq` jumps from `expected - 1` to `found`, though the record found links to the
    /// previous one (its number was changed).
    #[error("chain position {found} found where {expected} was expected")]
    Gap {
        /// The position expected.
        expected: i64,
        /// The position found.
        found: i64,
    },
    /// A row's `prev_hash` is not the previous row's `hash`.
    #[error("row at chain position {0} does not link to the previous row")]
    Link(i64),
    /// A row's `hash` does not match its content.
    #[error("row at chain position {0} does not match its hash")]
    Hash(i64),
    /// The records at positions `from` to `to` are missing; the next record (if any) links to them.
    #[error("rows at chain positions {from} to {to} are missing")]
    Deleted {
        /// First missing position.
        from: i64,
        /// Last missing position.
        to: i64,
        /// `seq` of the record after them.
        next_seq: Option<i64>,
    },
    /// The record that follows the previous position is elsewhere in the chain.
    #[error("the record that belongs here (seq {record_seq}) is at chain position {found_at}")]
    Reordered {
        /// The record that links to the previous one.
        record_seq: i64,
        /// Where it is.
        found_at: i64,
    },
    /// The record at a position this gateway signed a checkpoint of has another hash.
    #[error("row at chain position {0} differs from the signed checkpoint of that position")]
    Checkpoint(i64),
    /// The chain ends before a position this gateway signed a checkpoint of.
    #[error("the chain ends at position {head}, before the checkpoint at position {checkpoint}")]
    Truncated {
        /// The last position present.
        head: i64,
        /// The checkpoint's position.
        checkpoint: i64,
    },
}

/// Recomputes the whole chain (from the latest retention anchor), in `chain_seq` order. `Ok(Ok(n))`:
/// `n` rows, all linked and intact. [`verify::verify`] says more (the head, the record at fault).
pub async fn verify_chain(conn: &mut AsyncPgConnection) -> QueryResult<Result<u64, ChainBreak>> {
    Ok(verify::verify(conn)
        .await?
        .map(|summary| summary.records)
        .map_err(|bad| bad.problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            seq: 10,
            chain_seq: 1,
            at: time::macros::datetime!(2026-03-14 09:30:00.123456 UTC),
            lab_id: Uuid::from_u128(1),
            staff_id: Some(Uuid::from_u128(2)),
            device_id: None,
            action: "patient.read".into(),
            patient_id: Some(Uuid::from_u128(3)),
            resource: Some("patient:3".into()),
            request_id: None,
        }
    }

    #[test]
    fn the_hash_covers_every_field_but_seq() {
        let base = record_hash(&GENESIS_HASH, &record());
        assert_eq!(base, record_hash(&GENESIS_HASH, &AuditRecord { seq: 99, ..record() }));
        let variants = [
            AuditRecord {
                chain_seq: 2,
                ..record()
            },
            AuditRecord {
                at: time::macros::datetime!(2026-03-14 09:30:00.123457 UTC),
                ..record()
            },
            AuditRecord {
                lab_id: Uuid::from_u128(9),
                ..record()
            },
            AuditRecord {
                staff_id: None,
                ..record()
            },
            AuditRecord {
                device_id: Some(Uuid::from_u128(2)),
                ..record()
            },
            AuditRecord {
                action: "patient.search".into(),
                ..record()
            },
            AuditRecord {
                patient_id: None,
                ..record()
            },
            AuditRecord {
                resource: Some(String::new()),
                ..record()
            },
            AuditRecord {
                request_id: Some(String::new()),
                ..record()
            },
        ];
        for variant in variants {
            assert_ne!(base, record_hash(&GENESIS_HASH, &variant), "{variant:?}");
        }
        assert_ne!(base, record_hash(&[1; 32], &record()));
    }

    #[test]
    fn the_encoding_is_pinned() {
        // A verifier elsewhere recomputes this: the encoding must not change silently.
        let mut expected = Vec::new();
        expected.extend_from_slice(&GENESIS_HASH);
        expected.extend_from_slice(b"labedge.audit.v1");
        expected.extend_from_slice(&1i64.to_be_bytes());
        expected.extend_from_slice(&1_773_480_600_123_456i64.to_be_bytes());
        expected.extend_from_slice(Uuid::from_u128(1).as_bytes());
        expected.push(1);
        expected.extend_from_slice(Uuid::from_u128(2).as_bytes());
        expected.push(0);
        expected.extend_from_slice(&12u32.to_be_bytes());
        expected.extend_from_slice(b"patient.read");
        expected.push(1);
        expected.extend_from_slice(Uuid::from_u128(3).as_bytes());
        expected.push(1);
        expected.extend_from_slice(&9u32.to_be_bytes());
        expected.extend_from_slice(b"patient:3");
        expected.push(0);
        let digest: [u8; 32] = Sha256::digest(&expected).into();
        assert_eq!(record_hash(&GENESIS_HASH, &record()), digest);
    }
}
