//! The sync worker and the operations it runs.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use labedge_schema::edge::schema::reconciliation_runs;
use labedge_schema::sync::{Checksums, Entity, FeedHead, FeedPage, Record, SnapshotPage, digest};
use serde::Serialize;
use time::OffsetDateTime;

use super::apply::{self, Touched};
use super::upstream::{UpstreamError, Upstreams};
use crate::auth::revocation::RevokedKind;
use crate::cache::keys;
use crate::state::AppState;

/// A sync step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The cloud (and its fallbacks) did not answer, or refused.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The gateway's own database failed.
    #[error("gateway database: {0}")]
    Database(String),
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for SyncError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Database(e.to_string())
    }
}

/// What the sync has done lately: read by the status route, the console and the metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncStatus {
    /// The gateway's position in the feed.
    pub position: Option<i64>,
    /// The newest position the cloud reported.
    pub head: Option<i64>,
    /// Last successful pull.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_pull_at: Option<OffsetDateTime>,
    /// The upstream that answered it.
    pub upstream: Option<String>,
    /// The last error, until a pull succeeds.
    pub last_error: Option<String>,
    /// When the bootstrap finished, and how long it took.
    #[serde(with = "time::serde::rfc3339::option")]
    pub bootstrapped_at: Option<OffsetDateTime>,
    /// Bootstrap duration in seconds.
    pub bootstrap_seconds: Option<f64>,
    /// The last reconciliation.
    pub last_reconciliation: Option<ReconcileReport>,
}

/// Where a bootstrap stands (for the progress bar of `edge-gateway sync --full`).
pub trait BootstrapProgress: Send + Sync {
    /// A table starts.
    fn table(&self, entity: Entity);
    /// `rows` more rows of it were applied.
    fn rows(&self, entity: Entity, rows: usize);
}

impl BootstrapProgress for () {
    fn table(&self, _: Entity) {}
    fn rows(&self, _: Entity, _: usize) {}
}

fn lab_path(state: &AppState) -> String {
    format!("/v1/labs/{}", state.config.lab)
}

/// Evicts the cache entries of what a page touched (the desk's slot lists with any change: a booking,
/// a rule or a sampler may have moved) and passes staff changes to the revocation list.
async fn follow_up(state: &AppState, touched: &Touched) {
    if touched.rows > 0 {
        state.slot_lists.invalidate();
    }
    let mut evict: Vec<String> = Vec::new();
    for patient in &touched.patients {
        evict.push(keys::patient(*patient));
        evict.push(keys::patient_prescriptions(*patient));
    }
    for (prescription, patient) in &touched.prescriptions {
        evict.push(keys::prescription(*prescription));
        if let Some(patient) = patient {
            evict.push(keys::patient_prescriptions(*patient));
        }
    }
    state.redis.evict(&evict).await;
    if touched.catalog {
        state.redis.evict_prefix(keys::PRESCRIPTION_PREFIX).await;
        state.redis.evict_prefix(keys::PATIENT_PRESCRIPTIONS_PREFIX).await;
    }
    if touched.staff.is_empty() {
        return;
    }
    // A staff member the lab admin revoked here stays revoked whatever the cloud says.
    let revoked_here: HashSet<uuid::Uuid> = match state.pool.get().await {
        Ok(mut conn) => {
            use labedge_schema::edge::schema::staff_revocations;
            let ids: Vec<uuid::Uuid> = touched.staff.iter().map(|(id, _)| *id).collect();
            staff_revocations::table
                .filter(staff_revocations::staff_id.eq_any(&ids))
                .select(staff_revocations::staff_id)
                .load(&mut conn)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect()
        }
        Err(_) => touched.staff.iter().map(|(id, _)| *id).collect(),
    };
    for (staff, active) in &touched.staff {
        if *active && !revoked_here.contains(staff) {
            state.revocations.restored(RevokedKind::Staff, *staff).await;
        } else {
            state.revocations.revoked(RevokedKind::Staff, *staff).await;
        }
    }
}

/// Fills the gateway from the cloud's snapshot of its lab, then sets the checkpoint to the head read
/// first. Rows the snapshot no longer has are removed, so this also replaces stale data.
pub async fn bootstrap(
    state: &AppState,
    upstreams: &Upstreams,
    progress: &dyn BootstrapProgress,
) -> Result<i64, SyncError> {
    let started = Instant::now();
    let base = lab_path(state);
    let (head, _) = upstreams.get::<FeedHead>(&format!("{base}/changes/head")).await?;
    let page_size = state.config.sync.snapshot_page_size;
    for entity in Entity::ALL {
        progress.table(entity);
        let mut seen: HashSet<String> = HashSet::new();
        let mut page = snapshot_page(upstreams, &base, entity, page_size, None).await?;
        loop {
            seen.extend(page.records.iter().map(Record::key));
            let count = page.records.len();
            let following = page.next_after;
            let records = page.records;
            // The next page is fetched while this one is applied (issue 16, item 5): the cloud's
            // query and the transfer overlap the gateway's inserts, instead of one side idling.
            let apply = async {
                let mut conn = state.pool.get().await?;
                let touched = apply::apply_records(&mut conn, records).await?;
                drop(conn);
                follow_up(state, &touched).await;
                Ok::<_, SyncError>(())
            };
            let prefetch = async {
                match &following {
                    Some(after) => snapshot_page(upstreams, &base, entity, page_size, Some(after))
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            };
            let (applied, fetched) = tokio::join!(apply, prefetch);
            applied?;
            progress.rows(entity, count);
            match fetched? {
                Some(next) => page = next,
                None => break,
            }
        }
        let mut conn = state.pool.get().await?;
        let removed = apply::sweep(&mut conn, entity, &seen, None).await?;
        if removed > 0 {
            tracing::info!(
                entity = entity.as_str(),
                removed,
                "bootstrap removed rows the cloud no longer has"
            );
        }
    }
    let mut conn = state.pool.get().await?;
    apply::commit_checkpoint(&mut conn, head.position).await?;
    // The window the snapshot was read in, until the first feed page says where it is now.
    if let Some(ends) = head.window_ends {
        crate::store::booking::set_window_ends(&mut conn, ends).await?;
        state.window.set(ends);
    }
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(position = head.position, duration_s = seconds, "bootstrap done");
    metrics::gauge!("labedge_sync_bootstrap_seconds").set(seconds);
    Ok(head.position)
}

/// Pulls and applies feed pages until the feed has nothing more; returns the pages applied.
pub async fn pull(state: &AppState, upstreams: &Upstreams, status: &RwLock<SyncStatus>) -> Result<usize, SyncError> {
    let base = lab_path(state);
    let mut pages = 0;
    loop {
        let mut conn = state.pool.get().await?;
        let Some(position) = apply::checkpoint(&mut conn).await? else {
            return Err(SyncError::Database("no checkpoint: bootstrap first".into()));
        };
        drop(conn);
        let limit = state.config.sync.page_size;
        let (page, endpoint) = upstreams
            .get::<FeedPage>(&format!("{base}/changes?after={position}&limit={limit}"))
            .await?;
        if let Some(timeline) = page.timeline
            && new_timeline(state, upstreams, status, timeline, position, page.head).await?
        {
            // The checkpoint may have moved back: read again from it.
            continue;
        }
        let applied_at = Instant::now();
        let mut conn = state.pool.get().await?;
        let touched = apply::apply_feed_page(&mut conn, &page.changes, page.next, page.window_ends).await?;
        drop(conn);
        if let Some(ends) = page.window_ends {
            state.window.set(ends);
        }
        follow_up(state, &touched).await;
        pages += 1;
        metrics::counter!("labedge_sync_changes_total").increment(page.changes.len() as u64);
        metrics::histogram!("labedge_sync_page_apply_seconds").record(applied_at.elapsed().as_secs_f64());
        metrics::gauge!("labedge_sync_lag_positions").set((page.head - page.next).max(0) as f64);
        metrics::gauge!("labedge_sync_last_success_timestamp_seconds")
            .set(OffsetDateTime::now_utc().unix_timestamp() as f64);
        if let Ok(mut s) = status.write() {
            s.position = Some(page.next);
            s.head = Some(page.head);
            s.last_pull_at = Some(OffsetDateTime::now_utc());
            s.upstream = Some(endpoint);
            s.last_error = None;
        }
        if !page.has_more {
            return Ok(pages);
        }
    }
}

/// Whether the cloud's database is on another timeline than the one last seen, and if so, after
/// what it may have lost is sent again, the checkpoint brought back to `head` and the tables
/// reconciled ([`super::lost`]). The timeline is kept only once all three are done, so a failure
/// midway starts them again at the next pull.
async fn new_timeline(
    state: &AppState,
    upstreams: &Upstreams,
    status: &RwLock<SyncStatus>,
    timeline: i64,
    position: i64,
    head: i64,
) -> Result<bool, SyncError> {
    let mut conn = state.pool.get().await?;
    let seen = apply::stream_value(&mut conn, apply::TIMELINE_STREAM).await?;
    if seen == Some(timeline) {
        return Ok(false);
    }
    if seen.is_none() {
        // The first page since the gateway (or this version of it) started following the cloud.
        apply::set_stream(&mut conn, apply::TIMELINE_STREAM, timeline).await?;
        return Ok(false);
    }
    drop(conn);
    tracing::warn!(
        timeline,
        previous = seen,
        "the cloud's database is on a new timeline: checking what it lost"
    );
    let resent = super::lost::resend_lost(state, upstreams, super::lost::CHECK_DAYS).await?;
    let mut conn = state.pool.get().await?;
    if position > head {
        apply::commit_checkpoint(&mut conn, head).await?;
    }
    drop(conn);
    let report = reconcile(state, upstreams).await?;
    tracing::warn!(
        resent,
        feed_back_to = head.min(position),
        reconciled = report.ok,
        "caught up with the cloud's new timeline"
    );
    if let Ok(mut s) = status.write() {
        s.last_reconciliation = Some(report);
    }
    let mut conn = state.pool.get().await?;
    apply::set_stream(&mut conn, apply::TIMELINE_STREAM, timeline).await?;
    Ok(true)
}

/// One table's reconciliation.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TableReport {
    /// Kind of rows.
    pub entity: Entity,
    /// Rows here.
    pub local_count: i64,
    /// Rows in the cloud's scope.
    pub cloud_count: i64,
    /// Whether the checksums matched before any repair.
    pub matched: bool,
    /// Buckets pulled again.
    pub buckets_repaired: usize,
    /// Rows written or removed by the repair.
    pub rows_repaired: usize,
}

/// A reconciliation's result.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Its row in `reconciliation_runs`.
    pub run_id: i64,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Whether every table matched once repaired.
    pub ok: bool,
    /// Per table.
    pub tables: Vec<TableReport>,
}

/// Compares every table with the cloud and repairs what differs.
pub async fn reconcile(state: &AppState, upstreams: &Upstreams) -> Result<ReconcileReport, SyncError> {
    let base = lab_path(state);
    let started_at = OffsetDateTime::now_utc();
    let mut conn = state.pool.get().await?;
    let run_id: i64 = diesel::insert_into(reconciliation_runs::table)
        .values(reconciliation_runs::started_at.eq(started_at))
        .returning(reconciliation_runs::id)
        .get_result(&mut conn)
        .await?;
    drop(conn);
    let result = reconcile_tables(state, upstreams, &base).await;
    let mut conn = state.pool.get().await?;
    let (ok, tables, error) = match &result {
        Ok(tables) => (
            tables
                .iter()
                .all(|t| t.local_count == t.cloud_count || t.rows_repaired > 0),
            tables.clone(),
            None,
        ),
        Err(e) => (false, Vec::new(), Some(e.to_string())),
    };
    let repaired: usize = tables.iter().map(|t| t.rows_repaired).sum();
    diesel::update(reconciliation_runs::table.find(run_id))
        .set((
            reconciliation_runs::finished_at.eq(OffsetDateTime::now_utc()),
            reconciliation_runs::ok.eq(ok),
            reconciliation_runs::tables.eq(serde_json::to_value(&tables).unwrap_or_default()),
            reconciliation_runs::repaired_rows.eq(i64::try_from(repaired).unwrap_or(i64::MAX)),
            reconciliation_runs::error.eq(&error),
        ))
        .execute(&mut conn)
        .await?;
    metrics::gauge!("labedge_reconciliation_ok").set(if ok { 1.0 } else { 0.0 });
    metrics::gauge!("labedge_reconciliation_repaired_rows").set(repaired as f64);
    metrics::gauge!("labedge_reconciliation_last_timestamp_seconds")
        .set(OffsetDateTime::now_utc().unix_timestamp() as f64);
    let tables = result?;
    tracing::info!(run_id, ok, repaired, "reconciliation done");
    Ok(ReconcileReport {
        run_id,
        started_at,
        ok,
        tables,
    })
}

async fn reconcile_tables(state: &AppState, upstreams: &Upstreams, base: &str) -> Result<Vec<TableReport>, SyncError> {
    let (cloud, _) = upstreams.get::<Checksums>(&format!("{base}/checksums")).await?;
    let mut reports = Vec::new();
    for entity in Entity::ALL {
        let Some(remote) = cloud.tables.iter().find(|t| t.entity == entity) else {
            continue;
        };
        let from = format!("FROM {} t", entity.table());
        let mut conn = state.pool.get().await?;
        let (local, _) = digest(&mut conn, entity, &from, false).await?;
        drop(conn);
        let mut report = TableReport {
            entity,
            local_count: local.count,
            cloud_count: remote.digest.count,
            matched: local == remote.digest,
            buckets_repaired: 0,
            rows_repaired: 0,
        };
        if !report.matched {
            let (detail, _) = upstreams
                .get::<Checksums>(&format!("{base}/checksums?entity={}&buckets=true", entity.as_str()))
                .await?;
            let remote_buckets = detail
                .tables
                .into_iter()
                .find(|t| t.entity == entity)
                .map(|t| t.buckets)
                .unwrap_or_default();
            let mut conn = state.pool.get().await?;
            let (_, local_buckets) = digest(&mut conn, entity, &from, true).await?;
            drop(conn);
            let mut differing: Vec<String> = Vec::new();
            for (bucket, remote_digest) in &remote_buckets {
                if local_buckets.iter().find(|(b, _)| b == bucket).map(|(_, d)| d) != Some(remote_digest) {
                    differing.push(bucket.clone());
                }
            }
            // Buckets that only exist here hold rows the cloud no longer has in scope.
            differing.extend(
                local_buckets
                    .iter()
                    .filter(|(b, _)| !remote_buckets.iter().any(|(r, _)| r == b))
                    .map(|(b, _)| b.clone()),
            );
            for bucket in differing {
                report.rows_repaired += repair_bucket(state, upstreams, base, entity, &bucket).await?;
                report.buckets_repaired += 1;
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

/// One page of the cloud's snapshot of `entity`, after the key `after` (from the start without).
async fn snapshot_page(
    upstreams: &Upstreams,
    base: &str,
    entity: Entity,
    page_size: u32,
    after: Option<&str>,
) -> Result<SnapshotPage, SyncError> {
    let mut path = format!("{base}/snapshot/{}?limit={page_size}", entity.as_str());
    if let Some(after) = after {
        path.push_str(&format!("&after={after}"));
    }
    Ok(upstreams.get::<SnapshotPage>(&path).await?.0)
}

async fn repair_bucket(
    state: &AppState,
    upstreams: &Upstreams,
    base: &str,
    entity: Entity,
    bucket: &str,
) -> Result<usize, SyncError> {
    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    let mut repaired = 0;
    loop {
        let mut path = format!(
            "{base}/snapshot/{}?bucket={bucket}&limit={}",
            entity.as_str(),
            state.config.sync.snapshot_page_size
        );
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let (page, _) = upstreams.get::<SnapshotPage>(&path).await?;
        seen.extend(page.records.iter().map(Record::key));
        let mut conn = state.pool.get().await?;
        let touched = apply::apply_records(&mut conn, page.records).await?;
        drop(conn);
        repaired += touched.rows;
        follow_up(state, &touched).await;
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut conn = state.pool.get().await?;
    repaired += apply::sweep(&mut conn, entity, &seen, Some(bucket)).await?;
    Ok(repaired)
}

/// The sync loop of a serving gateway.
#[derive(Debug)]
pub struct Worker {
    state: AppState,
    upstreams: Upstreams,
    status: Arc<RwLock<SyncStatus>>,
}

impl Worker {
    /// A worker for `state`, talking to `upstreams`; it reports in `state.sync_status`.
    pub fn new(state: AppState, upstreams: Upstreams) -> Self {
        let status = Arc::clone(&state.sync_status);
        Self {
            state,
            upstreams,
            status,
        }
    }

    /// Its status, shared.
    pub fn status(&self) -> Arc<RwLock<SyncStatus>> {
        Arc::clone(&self.status)
    }

    /// Runs until the service stops: bootstrap if needed, then pull every `sync.interval_ms`, and
    /// reconcile once a day at `sync.reconcile_at`. The stop is seen between steps.
    pub async fn run(self, stop: labedge_service::workers::Stop) {
        let interval = Duration::from_millis(self.state.config.sync.interval_ms);
        let mut failures: u32 = 0;
        let mut reporter = super::report::Reporter::new();
        loop {
            let result = self.step().await;
            reporter.maybe_send(&self.state, &self.upstreams).await;
            let wait = match result {
                Ok(()) => {
                    failures = 0;
                    interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!("labedge_sync_errors_total").increment(1);
                    if let Ok(mut s) = self.status.write() {
                        s.last_error = Some(e.to_string());
                    }
                    // Logged once per streak, not at every retry of a long outage.
                    if failures == 1 {
                        tracing::warn!(error = %e, "sync failed; retrying");
                    }
                    // Back off up to a minute while the cloud is away.
                    interval.saturating_mul(failures.min(30)).min(Duration::from_secs(60))
                }
            };
            if !stop.sleep(wait).await {
                return;
            }
        }
    }

    async fn step(&self) -> Result<(), SyncError> {
        self.upstreams.probe_preferred().await;
        let mut conn = self.state.pool.get().await?;
        let position = apply::checkpoint(&mut conn).await?;
        drop(conn);
        if position.is_none() {
            let started = Instant::now();
            bootstrap(&self.state, &self.upstreams, &()).await?;
            if let Ok(mut s) = self.status.write() {
                s.bootstrapped_at = Some(OffsetDateTime::now_utc());
                s.bootstrap_seconds = Some(started.elapsed().as_secs_f64());
            }
        }
        // After an outage the backlog of local writes goes up first; the feed waits for it.
        if self.state.drain.is_draining() {
            return Ok(());
        }
        pull(&self.state, &self.upstreams, &self.status).await?;
        self.state.drain.caught_up();
        if self.reconciliation_due().await? {
            let report = reconcile(&self.state, &self.upstreams).await?;
            if let Ok(mut s) = self.status.write() {
                s.last_reconciliation = Some(report);
            }
        }
        Ok(())
    }

    /// Due once the lab's local clock has passed `reconcile_at` today and no run started since.
    async fn reconciliation_due(&self) -> Result<bool, SyncError> {
        let Some((hour, minute)) = self.state.config.sync.reconcile_time() else {
            return Ok(false);
        };
        #[derive(diesel::QueryableByName)]
        struct Due {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            due: bool,
        }
        let mut conn = self.state.pool.get().await?;
        // PostgreSQL knows the time zones: "today at HH:MM in the lab's zone", as an instant.
        let due: Due = diesel::sql_query(
            "SELECT now() >= t.at AND NOT EXISTS (SELECT 1 FROM reconciliation_runs r WHERE r.started_at >= t.at) AS due \
             FROM (SELECT ((now() AT TIME ZONE $1)::date + make_time($2, $3, 0)) AT TIME ZONE $1 AS at) t",
        )
        .bind::<diesel::sql_types::Text, _>(&self.state.config.timezone)
        .bind::<diesel::sql_types::Integer, _>(i32::from(hour))
        .bind::<diesel::sql_types::Integer, _>(i32::from(minute))
        .get_result(&mut conn)
        .await?;
        Ok(due.due)
    }
}
