//! The relay: sends the outbox to the first healthy upstream, in batches, and records each
//! mutation's fate.
//!
//! - Pending entries are read by state (`sent_at IS NULL`), lane first (clinical writes before audit
//!   checkpoints), then commit-sequence order — never "seq > last seen", so an entry whose
//!   transaction committed late is still sent.
//! - One pass at a time per database, under a transaction-scoped advisory lock ([`RELAY_LOCK`])
//!   rather than row locks: a row lock gives the transaction an id, which it would hold through the
//!   HTTP call, and the tablets' change log reads only below the oldest id in progress (see
//!   `store::changes`), so a slow or unreachable upstream would hold back every tablet's pull. The
//!   pass's transaction takes an id only when it records the upstream's answer.
//! - An entry is marked sent only on its own acknowledgement: `applied` and `duplicate` (already
//!   applied) are success; `conflict` goes to `conflicts`, `rejected` to `dead_letters`, both kept
//!   for the lab admin. An entry without an acknowledgement stays pending.
//! - Entries of a record with an open dead letter wait behind it; other records go on.
//! - When the upstream refuses a whole batch (4xx), the relay isolates the culprit by sending one
//!   entry at a time; an entry refused alone five times is quarantined.
//! - Failed batches back off exponentially (0.5 s to 30 s) with jitter, and honour `Retry-After`.
//! - After an outage, the backlog drains first; the sync catches up the feed after it (see
//!   [`DrainState`]), and both durations are logged and exported.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_protocol::relay::{AckOutcome, CHUNK_BYTES, MutationAck, MutationAcks, MutationBatch, RelayedMutation};
use labedge_schema::edge::schema::{conflicts, dead_letters, outbox};
use labedge_service::workers::Stop;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;
use crate::sync::upstream::{UpstreamError, Upstreams};

/// The advisory lock a relay pass holds for its transaction.
const RELAY_LOCK: i64 = 7_305_710_007;

/// Entries refused alone this many times are quarantined.
const POISON_ATTEMPTS: i32 = 5;

/// Whether a backlog is draining after an outage, and how long the last drain and catch-up took.
#[derive(Debug, Default)]
pub struct DrainState {
    draining: AtomicBool,
    times: Mutex<DrainTimes>,
}

/// The figures of the last recovery from an outage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DrainTimes {
    /// When the current or last drain started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub drain_started_at: Option<OffsetDateTime>,
    /// Entries pending when it started.
    pub backlog_at_start: i64,
    /// How long the last drain took.
    pub last_drain_seconds: Option<f64>,
    /// How long the feed took to catch up after it.
    pub last_catch_up_seconds: Option<f64>,
    #[serde(skip)]
    drain_started: Option<Instant>,
    #[serde(skip)]
    catch_up_started: Option<Instant>,
}

impl DrainState {
    /// Whether the relay is draining a backlog (the sync waits until it is done).
    pub fn is_draining(&self) -> bool {
        AtomicBool::load(&self.draining, Ordering::Acquire)
    }

    fn start(&self, backlog: i64) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(mut t) = self.times.lock() {
            t.drain_started_at = Some(OffsetDateTime::now_utc());
            t.drain_started = Some(Instant::now());
            t.backlog_at_start = backlog;
        }
        tracing::info!(
            backlog,
            "upstream back: draining the outbox before catching up the feed"
        );
    }

    fn finish(&self) {
        if !self.draining.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Ok(mut t) = self.times.lock() {
            let seconds = t
                .drain_started
                .take()
                .map(|s| s.elapsed().as_secs_f64())
                .unwrap_or_default();
            t.last_drain_seconds = Some(seconds);
            t.catch_up_started = Some(Instant::now());
            metrics::gauge!("labedge_relay_last_drain_seconds").set(seconds);
            tracing::info!(backlog = t.backlog_at_start, duration_s = seconds, "outbox drained");
        }
    }

    /// Called by the sync when the feed has nothing more: ends a catch-up in progress.
    pub fn caught_up(&self) {
        if let Ok(mut t) = self.times.lock()
            && let Some(started) = t.catch_up_started.take()
        {
            let seconds = started.elapsed().as_secs_f64();
            t.last_catch_up_seconds = Some(seconds);
            metrics::gauge!("labedge_sync_last_catch_up_seconds").set(seconds);
            tracing::info!(duration_s = seconds, "change feed caught up after the outage");
        }
    }

    /// The figures.
    pub fn times(&self) -> DrainTimes {
        self.times.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

#[derive(Queryable)]
struct Pending {
    seq: i64,
    mutation_id: Uuid,
    lane: i16,
    kind: String,
    entity_key: String,
    payload: serde_json::Value,
    attempts: i32,
}

/// What one pass did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Nothing was pending.
    Idle,
    /// Another pass (another process on the same database) holds the outbox.
    Busy,
    /// This many entries got their acknowledgement.
    Sent(usize),
}

/// The relay of a gateway.
#[derive(Debug)]
pub struct Relay {
    state: AppState,
    upstreams: Upstreams,
    /// While a poison entry is being looked for: batches of one.
    isolate: AtomicBool,
    /// The last pass could not reach any upstream: the next successful one starts a drain.
    outage: AtomicBool,
    batch_size: AtomicUsize,
}

impl Relay {
    /// A relay for `state`, sending through `upstreams`.
    pub fn new(state: AppState, upstreams: Upstreams) -> Self {
        let batch_size = state.config.relay.batch_size as usize;
        Self {
            state,
            upstreams,
            isolate: AtomicBool::new(false),
            outage: AtomicBool::new(false),
            batch_size: AtomicUsize::new(batch_size),
        }
    }

    /// Runs until the service stops: a pass, then (when idle) a wait for a new write or
    /// `relay.idle_interval_ms`, or (when it failed) a backoff. The stop is seen between passes,
    /// never during one.
    pub async fn run(self, stop: Stop) {
        let idle = Duration::from_millis(self.state.config.relay.idle_interval_ms);
        let mut backoff = BACKOFF.build();
        loop {
            let wait = match self.pass().await {
                Ok(Pass::Sent(_)) => {
                    backoff = BACKOFF.build();
                    None
                }
                Ok(Pass::Idle | Pass::Busy) => {
                    backoff = BACKOFF.build();
                    Some(
                        stop.until(tokio::time::timeout(idle, self.state.relay_wakeup.notified()))
                            .await
                            .is_some(),
                    )
                }
                Err(e) => {
                    let wait = backoff_delay(&mut backoff, e.retry_after());
                    tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "relay batch failed; backing off");
                    // Nobody answered: wait for an upstream to be ready again rather than for the
                    // end of the backoff (which grows to 15–30 s over an outage). An upstream that
                    // asked for a delay gets it.
                    let outage = matches!(
                        &e,
                        RelayError::Upstream(UpstreamError::Unreachable { retry_after: None, .. })
                    );
                    if outage {
                        Some(stop.until(self.upstreams.wait_until_ready(wait)).await.is_some())
                    } else {
                        Some(stop.sleep(wait).await)
                    }
                }
            };
            if wait == Some(false) || stop.is_stopped() {
                return;
            }
            self.upstreams.probe_preferred().await;
            if let Err(e) = self.export_backlog().await {
                tracing::debug!(error = %e, "backlog metrics not updated");
            }
        }
    }

    /// Sends one batch and records the answers.
    pub async fn pass(&self) -> Result<Pass, RelayError> {
        let mut conn = self.state.pool.get().await?;
        let backlog = pending_count(&mut conn).await?;
        // The batch answers `Ok(Err(..))` for an upstream failure, so that the attempts it counted
        // are committed rather than rolled back with an error.
        let outcome = conn
            .transaction::<_, RelayError, _>(async move |conn| self.send_batch(conn, backlog).await)
            .await?;
        if let Ok(Pass::Idle) = outcome {
            // An empty outbox ends a drain in progress.
            self.state.drain.finish();
        }
        outcome.map_err(RelayError::Upstream)
    }

    /// Within the pass's transaction: reads the batch, posts it, records the upstream's answer.
    async fn send_batch(
        &self,
        conn: &mut AsyncPgConnection,
        backlog: i64,
    ) -> Result<Result<Pass, UpstreamError>, RelayError> {
        if !relay_lock(conn).await? {
            return Ok(Ok(Pass::Busy));
        }
        let rows = pending_batch(conn, self.batch_limit()).await?;
        if rows.is_empty() {
            return Ok(Ok(Pass::Idle));
        }
        let batch = MutationBatch {
            mutations: readable_mutations(conn, &rows).await?,
        };
        let path = format!("/v1/labs/{}/mutations", self.state.config.lab);
        let (acks, endpoint) = match self.upstreams.post::<_, MutationAcks>(&path, &batch).await {
            Ok(answer) => answer,
            Err(error) => {
                self.record_failure(conn, &rows, &error).await?;
                metrics::counter!("labedge_relay_batches_total", "result" => "failed").increment(1);
                return Ok(Err(error));
            }
        };
        // The first batch that goes through after an outage starts the drain of the backlog.
        if self.outage.swap(false, Ordering::AcqRel) && backlog > 0 {
            self.state.drain.start(backlog);
        }
        let sent = record_acks(conn, &rows, acks, &endpoint).await?;
        self.isolate.store(false, Ordering::Release);
        metrics::counter!("labedge_relay_batches_total", "result" => "sent").increment(1);
        Ok(Ok(Pass::Sent(sent)))
    }

    /// One entry at a time while a poison entry is being looked for, else `relay.batch_size`.
    fn batch_limit(&self) -> usize {
        // Called as functions: diesel's `RunQueryDsl::load` would shadow the atomics' `load`.
        if AtomicBool::load(&self.isolate, Ordering::Acquire) {
            1
        } else {
            AtomicUsize::load(&self.batch_size, Ordering::Relaxed)
        }
    }

    /// The upstream did not take the batch: counts the attempt of each entry; a batch refused as a
    /// whole (4xx) is split to find the entry it chokes on, which is quarantined once refused alone
    /// [`POISON_ATTEMPTS`] times; an unreachable upstream marks an outage.
    async fn record_failure(
        &self,
        conn: &mut AsyncPgConnection,
        rows: &[Pending],
        error: &UpstreamError,
    ) -> QueryResult<()> {
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        diesel::update(outbox::table.filter(outbox::seq.eq_any(&seqs)))
            .set((
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(error.to_string()),
            ))
            .execute(conn)
            .await?;
        if let UpstreamError::Refused { status, code, .. } = error {
            match rows {
                [row] if row.attempts + 1 >= POISON_ATTEMPTS => {
                    quarantine(conn, row, &format!("refused by the upstream: HTTP {status} {code}")).await?;
                    self.isolate.store(false, Ordering::Release);
                }
                [_] => {}
                _ => self.isolate.store(true, Ordering::Release),
            }
        }
        if matches!(error, UpstreamError::Unreachable { .. }) {
            self.outage.store(true, Ordering::Release);
        }
        Ok(())
    }

    async fn export_backlog(&self) -> Result<(), RelayError> {
        let mut conn = self.state.pool.get().await?;
        let backlog = backlog(&mut conn).await?;
        metrics::gauge!("labedge_outbox_pending").set(backlog.pending as f64);
        metrics::gauge!("labedge_outbox_oldest_pending_seconds").set(backlog.oldest_pending_seconds.unwrap_or(0.0));
        metrics::gauge!("labedge_dead_letters_open").set(backlog.dead_letters as f64);
        metrics::gauge!("labedge_conflicts_open").set(backlog.conflicts as f64);
        Ok(())
    }
}

/// About the most a batch's entries may weigh on the wire: a paper prescription's document travels
/// as chunks of 256 KiB (about 350 KB in base64), and a batch of them must stay well under the
/// cloud's 16 MiB body limit whatever `relay.batch_size` says. A batch always takes its first entry.
pub const BATCH_BYTES: i64 = 4 * 1024 * 1024;

/// What an entry weighs, in SQL: its stored size, or for a chunk its size in base64 (stored, a
/// chunk may compress to much less than it weighs on the wire).
fn weight_sql() -> String {
    let chunk_wire = CHUNK_BYTES.div_ceil(3) * 4 + 1024;
    format!(
        "GREATEST(pg_column_size(outbox.payload), \
         CASE WHEN outbox.kind = 'document.chunk' THEN {chunk_wire} ELSE 0 END)"
    )
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Takes [`RELAY_LOCK`] for the pass's transaction; false when another pass holds it.
async fn relay_lock(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    let row: Locked = diesel::sql_query(format!("SELECT pg_try_advisory_xact_lock({RELAY_LOCK}) AS locked"))
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

/// Pending entries in commit-safe order (lane, then commit sequence), those of a record with an
/// open dead letter left behind it; cut after [`BATCH_BYTES`]. The sizes are read first, so that a long backlog of chunks is not loaded whole.
async fn pending_batch(conn: &mut AsyncPgConnection, size: usize) -> QueryResult<Vec<Pending>> {
    let heads: Vec<(i64, i32)> = outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(diesel::dsl::not(diesel::dsl::exists(
            dead_letters::table
                .filter(dead_letters::entity_key.eq(outbox::entity_key))
                .filter(dead_letters::replayed_at.is_null())
                .filter(dead_letters::discarded_at.is_null()),
        )))
        .order((outbox::lane, outbox::seq))
        .limit(i64::try_from(size).unwrap_or(500))
        .select((
            outbox::seq,
            diesel::dsl::sql::<diesel::sql_types::Integer>(&weight_sql()),
        ))
        .load(conn)
        .await?;
    let mut total = 0_i64;
    let kept: Vec<i64> = heads
        .iter()
        .take_while(|(_, bytes)| {
            let first = total == 0;
            total += i64::from(*bytes);
            first || total <= BATCH_BYTES
        })
        .map(|(seq, _)| *seq)
        .collect();
    if kept.is_empty() {
        return Ok(Vec::new());
    }
    outbox::table
        .filter(outbox::seq.eq_any(&kept))
        .order((outbox::lane, outbox::seq))
        .select((
            outbox::seq,
            outbox::mutation_id,
            outbox::lane,
            outbox::kind,
            outbox::entity_key,
            outbox::payload,
            outbox::attempts,
        ))
        .load(conn)
        .await
}

/// The batch's mutations; an entry whose payload cannot be read is quarantined instead.
async fn readable_mutations(conn: &mut AsyncPgConnection, rows: &[Pending]) -> QueryResult<Vec<RelayedMutation>> {
    let mut mutations = Vec::with_capacity(rows.len());
    for row in rows {
        match serde_json::from_value::<RelayedMutation>(row.payload.clone()) {
            Ok(m) => mutations.push(m),
            Err(e) => quarantine(conn, row, &format!("unreadable outbox entry: {e}")).await?,
        }
    }
    Ok(mutations)
}

/// Records each acknowledgement: applied and duplicate entries are marked sent, a conflict is kept
/// for the lab admin, a rejection quarantined. An entry without an acknowledgement stays pending.
/// Answers how many entries got one.
async fn record_acks(
    conn: &mut AsyncPgConnection,
    rows: &[Pending],
    acks: MutationAcks,
    endpoint: &str,
) -> QueryResult<usize> {
    let now = OffsetDateTime::now_utc();
    let mut sent = 0;
    let mut success: Vec<(i64, &'static str)> = Vec::new();
    for ack in acks.results {
        let Some(row) = rows.iter().find(|r| r.mutation_id == ack.mutation_id) else {
            continue;
        };
        let outcome = match ack.outcome {
            AckOutcome::Applied => "applied",
            AckOutcome::Duplicate => "duplicate",
            AckOutcome::Conflict => "conflict",
            AckOutcome::Rejected => "rejected",
        };
        metrics::counter!("labedge_relay_mutations_total", "outcome" => outcome).increment(1);
        match ack.outcome {
            AckOutcome::Applied | AckOutcome::Duplicate => success.push((row.seq, outcome)),
            AckOutcome::Conflict => {
                record_conflict(conn, row, &ack).await?;
                mark(conn, &[row.seq], "conflict", endpoint, now).await?;
            }
            AckOutcome::Rejected => {
                quarantine(conn, row, ack.reason.as_deref().unwrap_or("rejected by the upstream")).await?;
            }
        }
        sent += 1;
    }
    for outcome in ["applied", "duplicate"] {
        let seqs: Vec<i64> = success.iter().filter(|(_, o)| *o == outcome).map(|(s, _)| *s).collect();
        if !seqs.is_empty() {
            mark(conn, &seqs, outcome, endpoint, now).await?;
        }
    }
    Ok(sent)
}

/// The cloud's record changed meanwhile: both versions are kept for the lab admin.
async fn record_conflict(conn: &mut AsyncPgConnection, row: &Pending, ack: &MutationAck) -> QueryResult<()> {
    diesel::insert_into(conflicts::table)
        .values((
            conflicts::id.eq(Uuid::now_v7()),
            conflicts::outbox_seq.eq(row.seq),
            conflicts::mutation_id.eq(row.mutation_id),
            conflicts::entity_key.eq(&row.entity_key),
            conflicts::local_payload.eq(&row.payload),
            conflicts::server_version.eq(ack.current_version),
            conflicts::server_state.eq(&ack.current),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    tracing::warn!(entity = %row.entity_key, "write conflicts with the cloud: kept for the lab admin");
    Ok(())
}

/// Marks entries sent, with their outcome and the upstream that acknowledged them.
async fn mark(
    conn: &mut AsyncPgConnection,
    seqs: &[i64],
    outcome: &str,
    endpoint: &str,
    now: OffsetDateTime,
) -> QueryResult<()> {
    diesel::update(outbox::table.filter(outbox::seq.eq_any(seqs)))
        .set((
            outbox::sent_at.eq(now),
            outbox::outcome.eq(outcome),
            outbox::upstream.eq(endpoint),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

async fn quarantine(conn: &mut AsyncPgConnection, row: &Pending, reason: &str) -> QueryResult<()> {
    diesel::insert_into(dead_letters::table)
        .values((
            dead_letters::id.eq(Uuid::now_v7()),
            dead_letters::outbox_seq.eq(row.seq),
            dead_letters::mutation_id.eq(row.mutation_id),
            dead_letters::lane.eq(row.lane),
            dead_letters::kind.eq(&row.kind),
            dead_letters::entity_key.eq(&row.entity_key),
            dead_letters::payload.eq(&row.payload),
            dead_letters::reason.eq(reason),
            dead_letters::attempts.eq(row.attempts + 1),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    diesel::update(outbox::table.find(row.seq))
        .set((
            outbox::sent_at.eq(OffsetDateTime::now_utc()),
            outbox::outcome.eq("rejected"),
            outbox::last_error.eq(reason),
        ))
        .execute(conn)
        .await?;
    tracing::warn!(entity = %row.entity_key, kind = %row.kind, "write quarantined in the dead letters: {reason}");
    Ok(())
}

async fn pending_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::sent_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// The outbox as the status and the metrics show it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Backlog {
    /// Entries not yet acknowledged.
    pub pending: i64,
    /// Age of the oldest of them, in seconds.
    pub oldest_pending_seconds: Option<f64>,
    /// Dead letters neither replayed nor discarded.
    pub dead_letters: i64,
    /// Conflicts not yet resolved.
    pub conflicts: i64,
}

#[derive(QueryableByName)]
struct BacklogRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pending: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    oldest: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    dead: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    conflicts: i64,
}

/// Counts the backlog (the pending-entry index keeps this cheap).
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<Backlog> {
    let row: BacklogRow = diesel::sql_query(
        "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS pending, \
                (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM outbox WHERE sent_at IS NULL) AS oldest, \
                (SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL) AS dead, \
                (SELECT count(*) FROM conflicts WHERE resolved_at IS NULL) AS conflicts",
    )
    .get_result(conn)
    .await?;
    Ok(Backlog {
        pending: row.pending,
        oldest_pending_seconds: row.oldest,
        dead_letters: row.dead,
        conflicts: row.conflicts,
    })
}

/// A relay pass that failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The upstream did not take the batch.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The gateway's database failed.
    #[error("gateway database: {0}")]
    Database(String),
}

impl From<diesel::result::Error> for RelayError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for RelayError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Database(e.to_string())
    }
}

impl RelayError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            RelayError::Upstream(e) => e.retry_after(),
            RelayError::Database(_) => None,
        }
    }
}

/// The wait after a failed batch: exponential from 0.5 s, doubling up to 15 s, plus a random jitter
/// of up to as much again (so 0.5–1 s, 1–2 s, … up to 15–30 s), for as long as batches fail.
const BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(500))
    .with_factor(2.0)
    .with_max_delay(Duration::from_secs(15))
    .with_jitter()
    .without_max_times();

/// The next wait of `backoff`, never shorter than the upstream's `Retry-After`.
fn backoff_delay(backoff: &mut ExponentialBackoff, retry_after: Option<Duration>) -> Duration {
    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
    delay.max(retry_after.unwrap_or_default())
}

/// What `GET /admin/v1/status` shows.
#[derive(Debug, Serialize)]
pub struct GatewayStatus {
    /// The lab.
    pub lab: String,
    /// The lab's IANA time zone (`timezone` in the config): the console shows its times there,
    /// whatever the zone of the computer it runs on.
    pub timezone: String,
    /// Upstream mode and its history.
    pub upstream: crate::sync::health::HealthView,
    /// The outbox.
    pub backlog: Backlog,
    /// The last drain and catch-up after an outage.
    pub recovery: DrainTimes,
    /// Whether a drain is running now.
    pub draining: bool,
    /// The change feed.
    pub sync: crate::sync::SyncStatus,
    /// The database's disk and the days of autonomy it leaves.
    pub storage: crate::storage::Storage,
}

/// The gateway's status now.
pub async fn gateway_status(state: &AppState) -> Result<GatewayStatus, labedge_service::error::ApiError> {
    let mut conn = state.pool.get().await?;
    let backlog = backlog(&mut conn).await?;
    let storage = crate::storage::storage(&mut conn, &state.config.console.database_disk).await?;
    Ok(GatewayStatus {
        lab: state.config.lab.clone(),
        timezone: state.config.timezone.clone(),
        upstream: state.upstream_health.view(),
        backlog,
        recovery: state.drain.times(),
        draining: state.drain.is_draining(),
        sync: state.sync_status.read().map(|s| s.clone()).unwrap_or_default(),
        storage,
    })
}
