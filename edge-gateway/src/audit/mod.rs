//! The audit log of patient data: who read or wrote what, when, from which device.
//!
//! ## Appending: one journal owns the chain (issue 16)
//!
//! One task, the journal, holds the head of the chain (position and hash of the last record) and is
//! the only writer of chained records. It gives each record its `chain_seq` and `hash` when it
//! appends it; no record is ever updated afterwards, and the table's trigger refuses every UPDATE.
//!
//! - Reads go through [`AuditLog::record`]: their entries queue to the journal, which takes
//!   everything queued at that moment and appends it chained with one statement (the columns as
//!   arrays through `unnest`, whatever their number) on its own connection, with
//!   `synchronous_commit` on. `record` resolves once that commit returns, and a read handler answers
//!   only after it: a read that was answered has its audit on disk, even if the process crashes the
//!   next instant. When the audit cannot be written (database down, journal gone), `record` fails and
//!   the read answers 503: never an answer without its audit. Many concurrent reads share one
//!   commit.
//! - Writes use [`AuditLog::insert_in`] inside their own transaction: the record goes to
//!   `audit_pending` and commits or rolls back with the write. The journal moves pending records into
//!   the chain with the database function `audit_adopt` (content copied by the database, deleted from
//!   `audit_pending` in the same statement) when a write nudges it, at most every 100 ms, and at least
//!   every second. `audit verify` counts the records still pending.
//! - The head is read from the database at start and after any error. A second process appending to
//!   the same chain cannot fork it: `chain_seq` is unique, the loser's statement fails, and it reads
//!   the head again and retries.
//!
//! Each read's record is its own row, a round's too (one per patient it shows): "who saw this
//! patient" stays one indexed lookup (`audit_log_patient`), and chaining 30 rows costs the journal
//! 30 SHA-256 in memory and 30 index entries, where the old chainer rewrote each row.
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
//! [`start_maintenance`] registers the checkpoint and purge workers of a serving gateway.

pub mod checkpoint;
pub mod command;
pub mod retention;
pub mod roles;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_schema::db::{PgPool, PooledConnection};
use labedge_schema::edge::schema::audit_log;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
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

/// Most entries written by one flush of the journal; more wait for the next one.
const MAX_ENTRIES_PER_COMMIT: usize = 5_000;

/// Most pending write records moved into the chain by one statement.
const MAX_ROWS_PER_ADOPTION: i64 = 10_000;

/// How often the journal looks for pending write records when no write nudged it.
const ADOPT_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest time between two adoptions: under a stream of writes, each adoption takes what the
/// writes of the last 100 ms appended, instead of one commit per write.
const MIN_ADOPT_GAP: Duration = Duration::from_millis(100);

/// Times a flush is tried again after another process appended to the same chain (the unique
/// `chain_seq` refused its positions: the head is read again).
const HEAD_RACES: usize = 3;

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

/// The audit log: the journal task, sole owner of the chain's head, and the queue of reads waiting
/// for it.
#[derive(Debug)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    nudge: Arc<Notify>,
}

impl AuditLog {
    /// Spawns the journal on the current Tokio runtime.
    pub fn start(pool: PgPool) -> Arc<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let nudge = Arc::new(Notify::new());
        tokio::spawn(journal_loop(pool, receiver, nudge.clone()));
        Arc::new(Self { queue, nudge })
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

    /// Appends `entries` within the caller's transaction (writes: the audit commits with the write),
    /// to `audit_pending`; the journal chains them within [`MIN_ADOPT_GAP`] of a [`Self::nudge`].
    pub async fn insert_in(conn: &mut AsyncPgConnection, entries: &[AuditEntry]) -> QueryResult<usize> {
        crate::store::audit::insert(conn, entries).await
    }

    /// A write committed pending records: the journal chains them soon.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }
}

/// The head of the chain as the journal knows it: position and hash of the last record.
type Head = (i64, [u8; 32]);

/// The chain's single writer: holds the head between flushes, gives each record its position and
/// hash as it appends it. The head is read from the database when unknown (at start, after an
/// error, after another process appended).
#[derive(Debug, Default)]
pub struct Journal {
    head: Option<Head>,
}

/// The hash columns of chained records, as arrays bound to one statement whatever their number
/// (each record's position is in its `chain_seq`).
#[derive(Default)]
pub(crate) struct Hashes {
    pub(crate) prev: Vec<Vec<u8>>,
    pub(crate) own: Vec<Vec<u8>>,
}

impl Hashes {
    /// Chains `records` after `head` (their `chain_seq` is set); returns their hashes and the new head.
    fn link(head: Head, records: &mut [AuditRecord]) -> (Self, Head) {
        let (mut position, mut prev) = head;
        let mut hashes = Self::default();
        for record in records {
            position += 1;
            record.chain_seq = position;
            let hash = record_hash(&prev, record);
            hashes.prev.push(prev.to_vec());
            hashes.own.push(hash.to_vec());
            prev = hash;
        }
        (hashes, (position, prev))
    }
}

impl Journal {
    async fn head(&mut self, conn: &mut AsyncPgConnection) -> QueryResult<Head> {
        if let Some(head) = self.head {
            return Ok(head);
        }
        let head = chain_head(conn).await?.unwrap_or((0, GENESIS_HASH));
        self.head = Some(head);
        Ok(head)
    }

    /// Runs `flush` after the head; on success keeps the new head. When another process took the
    /// positions first (unique violation on `chain_seq`) or the pending records (`audit_adopt`
    /// answers with a serialization failure), reads the head again and retries; on any other error
    /// forgets the head, since the outcome of a failed commit is not known.
    async fn with_head(&mut self, conn: &mut AsyncPgConnection, mut flush: Flush<'_>) -> QueryResult<usize> {
        let mut races = 0;
        loop {
            let head = self.head(conn).await?;
            match flush.run(conn, head).await {
                Ok((written, head)) => {
                    self.head = Some(head);
                    return Ok(written);
                }
                Err(e) => {
                    self.head = None;
                    let raced = matches!(
                        e,
                        Error::DatabaseError(
                            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                            _
                        )
                    );
                    if !raced || races == HEAD_RACES {
                        return Err(e);
                    }
                    races += 1;
                }
            }
        }
    }

    /// Appends `entries` at the end of the chain with one statement, committed on return.
    pub async fn append(&mut self, conn: &mut AsyncPgConnection, entries: &[AuditEntry]) -> QueryResult<()> {
        // The hash covers `at` at PostgreSQL's precision: the microseconds it will store.
        let now = OffsetDateTime::now_utc();
        let at = now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now);
        let mut records: Vec<AuditRecord> = entries
            .iter()
            .map(|e| AuditRecord {
                seq: 0,
                chain_seq: 0,
                at,
                lab_id: e.lab_id,
                staff_id: e.staff_id,
                device_id: e.device_id,
                action: e.action.to_owned(),
                patient_id: e.patient_id,
                resource: e.resource.clone(),
                request_id: e.request_id.clone(),
            })
            .collect();
        self.with_head(conn, Flush::Reads(&mut records)).await.map(|_| ())
    }

    /// Moves the oldest pending write records (at most [`MAX_ROWS_PER_ADOPTION`]) into the chain,
    /// with one statement. Returns how many.
    pub async fn adopt(&mut self, conn: &mut AsyncPgConnection) -> QueryResult<usize> {
        self.with_head(conn, Flush::Adopt).await
    }
}

/// What one statement of the journal writes.
enum Flush<'a> {
    /// Reads' records.
    Reads(&'a mut [AuditRecord]),
    /// The oldest pending write records.
    Adopt,
}

impl Flush<'_> {
    /// Chains after `head` and writes; returns how many records and the new head.
    async fn run(&mut self, conn: &mut AsyncPgConnection, head: Head) -> QueryResult<(usize, Head)> {
        match self {
            Flush::Reads(records) => {
                let (hashes, head) = Hashes::link(head, records);
                let written = crate::store::audit::append_chained(conn, records, hashes).await?;
                Ok((written, head))
            }
            Flush::Adopt => {
                // Read again at each attempt: after a race, another adopter may have taken some.
                let mut records = crate::store::audit::pending(conn, MAX_ROWS_PER_ADOPTION).await?;
                if records.is_empty() {
                    return Ok((0, head));
                }
                let (hashes, head) = Hashes::link(head, &mut records);
                let moved = crate::store::audit::adopt(conn, &records, hashes).await?;
                Ok((moved, head))
            }
        }
    }
}

/// The journal task: appends the reads' records as they queue (everything queued at that moment in
/// one statement, one commit), and moves the writes' pending records into the chain when a write
/// nudges it (at most every [`MIN_ADOPT_GAP`]) or every [`ADOPT_INTERVAL`]. It keeps its connection
/// between flushes; a flush that fails on a kept connection is tried once more on a fresh one.
async fn journal_loop(pool: PgPool, mut receiver: mpsc::Receiver<Pending>, nudge: Arc<Notify>) {
    let mut journal = Journal::default();
    let mut conn: Option<PooledConnection> = None;
    let mut adopt_at = Instant::now();
    let mut last_adoption = Instant::now();
    let mut adoption_failing = false;
    loop {
        tokio::select! {
            next = receiver.recv() => {
                let Some(first) = next else { break };
                flush_reads(&pool, &mut conn, &mut journal, &mut receiver, first).await;
            }
            () = nudge.notified() => {
                adopt_at = adopt_at.min(last_adoption + MIN_ADOPT_GAP);
            }
            () = tokio::time::sleep_until(adopt_at) => {
                let outcome = match connection(&pool, &mut conn).await {
                    Ok(c) => journal.adopt(c).await.map_err(|e| AuditError::Database(e.to_string())),
                    Err(e) => Err(e),
                };
                last_adoption = Instant::now();
                adopt_at = match outcome {
                    // More wait: go on once the gap has passed.
                    Ok(moved) if moved as i64 >= MAX_ROWS_PER_ADOPTION => last_adoption + MIN_ADOPT_GAP,
                    Ok(_) => {
                        adoption_failing = false;
                        last_adoption + ADOPT_INTERVAL
                    }
                    Err(e) => {
                        conn = None;
                        // Logged when it starts failing, not every second.
                        if !adoption_failing {
                            tracing::warn!(error = %e, "audit journal: writes' records not chained yet; retrying every second");
                        }
                        adoption_failing = true;
                        last_adoption + ADOPT_INTERVAL
                    }
                };
            }
        }
    }
}

/// The journal's connection, taken from the pool once and kept; `synchronous_commit` is set on it
/// explicitly, since a read is answered on the strength of this commit.
async fn connection<'a>(
    pool: &PgPool,
    held: &'a mut Option<PooledConnection>,
) -> Result<&'a mut PooledConnection, AuditError> {
    Ok(match held {
        Some(conn) => conn,
        None => {
            let mut conn = pool.get().await.map_err(|e| AuditError::Database(e.to_string()))?;
            conn.batch_execute("SET synchronous_commit = on")
                .await
                .map_err(|e| AuditError::Database(e.to_string()))?;
            held.insert(conn)
        }
    })
}

/// Takes everything queued after `first`, appends it with one commit, tells every waiting read.
async fn flush_reads(
    pool: &PgPool,
    conn: &mut Option<PooledConnection>,
    journal: &mut Journal,
    receiver: &mut mpsc::Receiver<Pending>,
    first: Pending,
) {
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
    let mut outcome = write_batch(pool, conn, journal, &entries).await;
    if outcome.is_err() && reused {
        outcome = write_batch(pool, conn, journal, &entries).await;
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

/// Appends `entries` with one statement, its own transaction. A failed connection is dropped.
async fn write_batch(
    pool: &PgPool,
    held: &mut Option<PooledConnection>,
    journal: &mut Journal,
    entries: &[AuditEntry],
) -> Result<(), AuditError> {
    let conn = connection(pool, held).await?;
    journal.append(conn, entries).await.map_err(|e| {
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

/// A chained row without its chain columns: what the verifier re-hashes.
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

/// Moves every pending write record into the chain, reading the head from the database (the
/// journal of a running gateway does the same within a second; the unique `chain_seq` keeps the
/// two from forking the chain). Returns how many records it chained.
pub async fn chain_pending(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let mut journal = Journal::default();
    let mut total = 0;
    loop {
        let moved = journal.adopt(conn).await?;
        total += moved;
        if (moved as i64) < MAX_ROWS_PER_ADOPTION {
            return Ok(total);
        }
    }
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

/// Registers the workers a serving gateway runs besides the journal: the signed
/// checkpoints (every `audit.checkpoint_interval_minutes`, and when an upstream is back) and the
/// daily retention purge.
pub fn start_maintenance(state: &crate::state::AppState, workers: &mut labedge_service::workers::Workers) {
    let checkpoint_state = state.clone();
    workers.spawn("audit checkpoint", |stop| checkpoint::run(checkpoint_state, stop));
    let (pool, months) = (state.pool.clone(), state.config.audit.retention_months);
    workers.spawn("audit retention", move |stop| retention::run(pool, months, stop));
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
