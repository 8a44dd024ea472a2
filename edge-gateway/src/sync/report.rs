//! The gateway's report of itself to the cloud (`POST /v1/labs/{lab}/status`, see
//! [`labedge_protocol::status`]): its upstream mode, outbox backlog, age of the oldest unsent write and
//! feed lag, for the central IT team's view of every lab. Sent by the sync worker between its steps,
//! at most once a minute; best effort: a report that fails is tried again after a few seconds rather
//! than a minute (a cloud busy at the gateway's start would otherwise leave the central view without
//! this gateway for a minute), and the cloud shows a gateway it has not heard from for a while as
//! degraded anyway.

use std::time::{Duration, Instant};

use labedge_protocol::status::{GatewayReport, GatewayState, ReportReceipt};
use time::OffsetDateTime;

use super::health::UpstreamMode;
use super::upstream::Upstreams;
use crate::relay;
use crate::state::AppState;

/// Least time between two reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Least time between a failed report and the next attempt.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Why a report was not made or not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The gateway's database did not answer the backlog query.
    #[error("gateway database: {0}")]
    Database(String),
    /// No upstream took it.
    #[error(transparent)]
    Upstream(#[from] super::upstream::UpstreamError),
}

/// Sends a report when the last one is [`REPORT_EVERY`] old (or none was sent yet).
#[derive(Debug, Default)]
pub struct Reporter {
    last: Option<Instant>,
    failed: bool,
}

impl Reporter {
    /// A reporter that sends at its first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports now if the last report is a minute old, or the last attempt failed a few seconds
    /// ago; a failure is logged at debug level.
    pub async fn maybe_send(&mut self, state: &AppState, upstreams: &Upstreams) {
        let wait = if self.failed { RETRY_AFTER_FAILURE } else { REPORT_EVERY };
        if self.last.is_some_and(|at| at.elapsed() < wait) {
            return;
        }
        self.last = Some(Instant::now());
        match send(state, upstreams).await {
            Ok(_) => {
                self.failed = false;
                metrics::counter!("labedge_status_reports_total", "result" => "sent").increment(1);
            }
            Err(e) => {
                self.failed = true;
                metrics::counter!("labedge_status_reports_total", "result" => "failed").increment(1);
                tracing::debug!(error = %e, "status report not taken; next attempt in a few seconds");
            }
        }
    }
}

/// The report as of now.
pub async fn current(state: &AppState) -> Result<GatewayReport, ReportError> {
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| ReportError::Database(e.to_string()))?;
    let backlog = relay::backlog(&mut conn)
        .await
        .map_err(|e| ReportError::Database(e.to_string()))?;
    drop(conn);
    let last_pull = state.sync_status.read().ok().and_then(|s| s.last_pull_at);
    let state_now = match state.upstream_health.mode().0 {
        UpstreamMode::Online => GatewayState::Online,
        UpstreamMode::Failover => GatewayState::Failover,
        UpstreamMode::Degraded => GatewayState::Degraded,
    };
    Ok(GatewayReport {
        state: state_now,
        backlog: backlog.pending,
        oldest_unsent_s: backlog.oldest_pending_seconds.map(|s| s.max(0.0).round() as i64),
        feed_lag_s: last_pull.map(|at| (OffsetDateTime::now_utc() - at).whole_seconds().max(0)),
    })
}

/// Sends the report now; returns the cloud's receipt.
pub async fn send(state: &AppState, upstreams: &Upstreams) -> Result<ReportReceipt, ReportError> {
    let report = current(state).await?;
    let path = format!("/v1/labs/{}/status", state.config.lab);
    let (receipt, _) = upstreams.post::<_, ReportReceipt>(&path, &report).await?;
    Ok(receipt)
}
