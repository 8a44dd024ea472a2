//! Which upstream to talk to: the first healthy one of the ordered list (the cloud, then the central
//! lab's standby API over the backup VPN) that says it is the primary.
//!
//! - Each endpoint has a circuit breaker: after 3 consecutive failures it opens for 5 s, doubling up
//!   to 60 s; while open it is skipped, then one call probes it (half-open).
//! - An endpoint is used only once its `GET /readyz` said `role: primary` (checked again every 30 s):
//!   a standby database must not take writes.
//! - The gateway fails over to the next endpoint when the current one fails, and returns to a
//!   preferred one only after it has answered 3 probes in a row (hysteresis, no flapping).
//! - The state — online (first endpoint), failover (another one), degraded (none) — is logged at each
//!   change with its moment, exported as metrics and shown in the status.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

/// The gateway's link to its upstreams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamMode {
    /// Talking to the first upstream (the cloud).
    Online,
    /// Talking to a fallback (the central lab).
    Failover,
    /// No upstream answers: the lab works on its own data, writes wait in the outbox.
    Degraded,
}

impl UpstreamMode {
    /// Its name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamMode::Online => "online",
            UpstreamMode::Failover => "failover",
            UpstreamMode::Degraded => "degraded",
        }
    }
}

const FAILURES_TO_OPEN: u32 = 3;
const SUCCESSES_TO_RETURN: u32 = 3;
const FIRST_OPEN: Duration = Duration::from_secs(5);
const LONGEST_OPEN: Duration = Duration::from_secs(60);
/// How long a "primary" answer of `/readyz` is trusted.
const ROLE_TTL: Duration = Duration::from_secs(30);
/// How long a "standby" answer is: a promotion must be noticed within seconds.
const STANDBY_ROLE_TTL: Duration = Duration::from_secs(3);

#[derive(Debug, Default, Clone)]
struct Endpoint {
    consecutive_failures: u32,
    consecutive_successes: u32,
    open_until: Option<Instant>,
    open_for: Duration,
    primary_checked: Option<(bool, Instant)>,
}

#[derive(Debug)]
struct Inner {
    endpoints: Vec<Endpoint>,
    active: Option<usize>,
    mode: UpstreamMode,
    since: OffsetDateTime,
    changes: Vec<(OffsetDateTime, UpstreamMode, Option<usize>)>,
}

/// Health of the upstream endpoints, shared by the sync and the relay.
#[derive(Debug)]
pub struct UpstreamHealth {
    names: Vec<String>,
    inner: Mutex<Inner>,
    /// Signalled when an upstream answers again after an outage (degraded → online or failover).
    recovered: tokio::sync::Notify,
}

/// A snapshot for the status route.
#[derive(Clone, Debug, Serialize)]
pub struct HealthView {
    /// The mode.
    pub mode: UpstreamMode,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The endpoint in use.
    pub active: Option<String>,
    /// The last changes of mode (newest last).
    pub changes: Vec<ModeChange>,
}

/// One change of mode.
#[derive(Clone, Debug, Serialize)]
pub struct ModeChange {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// To what.
    pub mode: UpstreamMode,
    /// Using which endpoint.
    pub endpoint: Option<String>,
}

impl UpstreamHealth {
    /// Health of endpoints named `names`, in order of preference. Starts degraded until one answers.
    pub fn new(names: Vec<String>) -> Self {
        let endpoints = vec![
            Endpoint {
                open_for: FIRST_OPEN,
                ..Endpoint::default()
            };
            names.len()
        ];
        let inner = Inner {
            endpoints,
            active: None,
            mode: UpstreamMode::Degraded,
            since: OffsetDateTime::now_utc(),
            changes: Vec::new(),
        };
        Self {
            names,
            inner: Mutex::new(inner),
            recovered: tokio::sync::Notify::new(),
        }
    }

    /// The endpoints to try now, in order. While the active endpoint's circuit is closed, only it:
    /// the gateway stays with it through a failure or two (failover comes after repeated failures).
    /// Without an active endpoint (degraded, or its circuit open), every endpoint that may be tried
    /// (closed, or due for a probe), by preference.
    pub fn candidates(&self) -> Vec<usize> {
        let now = Instant::now();
        let Ok(inner) = self.inner.lock() else {
            return (0..self.names.len()).collect();
        };
        let usable = |i: usize| inner.endpoints[i].open_until.is_none_or(|until| until <= now);
        match inner.active {
            Some(active) if usable(active) => vec![active],
            _ => (0..self.names.len()).filter(|i| usable(*i)).collect(),
        }
    }

    /// Whether `index` must have its role checked (`GET /readyz`) before use.
    pub fn needs_role_check(&self, index: usize) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|inner| inner.endpoints.get(index).map(|e| e.primary_checked))
            .is_none_or(|checked| {
                checked.is_none_or(|(primary, at)| at.elapsed() > if primary { ROLE_TTL } else { STANDBY_ROLE_TTL })
            })
    }

    /// Records what `GET /readyz` said of `index`'s role.
    pub fn role_checked(&self, index: usize, primary: bool) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(endpoint) = inner.endpoints.get_mut(index)
        {
            endpoint.primary_checked = Some((primary, Instant::now()));
        }
    }

    /// Whether `index` was last seen as the primary.
    pub fn is_primary(&self, index: usize) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|inner| inner.endpoints.get(index).and_then(|e| e.primary_checked))
            .is_some_and(|(primary, _)| primary)
    }

    /// A call to `index` succeeded: it closes its circuit and may become the active endpoint.
    pub fn success(&self, index: usize) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let Some(endpoint) = inner.endpoints.get_mut(index) else {
            return;
        };
        endpoint.consecutive_failures = 0;
        endpoint.consecutive_successes = endpoint.consecutive_successes.saturating_add(1);
        endpoint.open_until = None;
        endpoint.open_for = FIRST_OPEN;
        let successes = endpoint.consecutive_successes;
        let switch = match inner.active {
            None => true,
            Some(active) if active == index => false,
            // Back to a preferred endpoint only after a few successes in a row.
            Some(active) => index < active && successes >= SUCCESSES_TO_RETURN,
        };
        if switch {
            inner.active = Some(index);
            let mode = if index == 0 {
                UpstreamMode::Online
            } else {
                UpstreamMode::Failover
            };
            self.set_mode(&mut inner, mode);
        }
    }

    /// A call to `index` failed: after a few failures its circuit opens, and if it was the active
    /// endpoint the gateway looks elsewhere.
    pub fn failure(&self, index: usize) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let Some(endpoint) = inner.endpoints.get_mut(index) else {
            return;
        };
        endpoint.consecutive_successes = 0;
        endpoint.consecutive_failures = endpoint.consecutive_failures.saturating_add(1);
        if endpoint.consecutive_failures >= FAILURES_TO_OPEN {
            endpoint.open_until = Some(Instant::now() + endpoint.open_for);
            endpoint.open_for = (endpoint.open_for * 2).min(LONGEST_OPEN);
            if inner.active == Some(index) {
                inner.active = None;
                self.set_mode(&mut inner, UpstreamMode::Degraded);
            }
        }
    }

    /// An endpoint answered that it is not the primary: never use it for now.
    pub fn not_primary(&self, index: usize) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.active == Some(index) {
            inner.active = None;
            self.set_mode(&mut inner, UpstreamMode::Degraded);
        }
    }

    fn set_mode(&self, inner: &mut Inner, mode: UpstreamMode) {
        if inner.mode == mode && inner.changes.last().map(|c| c.2) == Some(inner.active) {
            return;
        }
        let now = OffsetDateTime::now_utc();
        let previous = inner.mode;
        inner.mode = mode;
        inner.since = now;
        // Back after an outage (not the first contact after start): what was held back can go now.
        if previous == UpstreamMode::Degraded && mode != UpstreamMode::Degraded && !inner.changes.is_empty() {
            self.recovered.notify_one();
        }
        inner.changes.push((now, mode, inner.active));
        if inner.changes.len() > 50 {
            inner.changes.remove(0);
        }
        let endpoint = inner
            .active
            .and_then(|i| self.names.get(i))
            .cloned()
            .unwrap_or_default();
        if mode == UpstreamMode::Online {
            tracing::info!(upstream.mode = mode.as_str(), upstream.previous = previous.as_str(), upstream.endpoint = %endpoint, "upstream state changed");
        } else {
            tracing::warn!(upstream.mode = mode.as_str(), upstream.previous = previous.as_str(), upstream.endpoint = %endpoint, "upstream state changed");
        }
        for state in [UpstreamMode::Online, UpstreamMode::Failover, UpstreamMode::Degraded] {
            metrics::gauge!("labedge_upstream_state", "state" => state.as_str()).set(if state == mode {
                1.0
            } else {
                0.0
            });
        }
        metrics::gauge!("labedge_upstream_state_since_timestamp_seconds").set(now.unix_timestamp() as f64);
    }

    /// Resolves when an upstream is back after an outage (a recovery that happened while nobody
    /// waited is kept for the next waiter).
    pub async fn recovered(&self) {
        self.recovered.notified().await
    }

    /// The endpoint in use, if any.
    pub fn active(&self) -> Option<usize> {
        self.inner.lock().ok().and_then(|i| i.active)
    }

    /// The current mode and since when.
    pub fn mode(&self) -> (UpstreamMode, OffsetDateTime) {
        self.inner
            .lock()
            .map(|i| (i.mode, i.since))
            .unwrap_or((UpstreamMode::Degraded, OffsetDateTime::now_utc()))
    }

    /// A snapshot for the status route.
    pub fn view(&self) -> HealthView {
        let Ok(inner) = self.inner.lock() else {
            return HealthView {
                mode: UpstreamMode::Degraded,
                since: OffsetDateTime::now_utc(),
                active: None,
                changes: Vec::new(),
            };
        };
        let name = |i: Option<usize>| i.and_then(|i| self.names.get(i)).cloned();
        HealthView {
            mode: inner.mode,
            since: inner.since,
            active: name(inner.active),
            changes: inner
                .changes
                .iter()
                .map(|(at, mode, i)| ModeChange {
                    at: *at,
                    mode: *mode,
                    endpoint: name(*i),
                })
                .collect(),
        }
    }

    /// The endpoint names.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_over_and_returns_with_hysteresis() {
        let health = UpstreamHealth::new(vec!["cloud".into(), "central".into()]);
        assert_eq!(health.mode().0, UpstreamMode::Degraded);
        health.success(0);
        assert_eq!(health.mode().0, UpstreamMode::Online);
        for _ in 0..FAILURES_TO_OPEN {
            health.failure(0);
        }
        assert_eq!(health.mode().0, UpstreamMode::Degraded);
        assert_eq!(health.candidates(), vec![1], "the open circuit is skipped");
        health.success(1);
        assert_eq!(
            health.candidates(),
            vec![1],
            "the active endpoint only, while it answers"
        );
        assert_eq!(health.mode().0, UpstreamMode::Failover);
        // The cloud answers again: not enough to switch back at once.
        health.success(0);
        health.success(0);
        assert_eq!(health.mode().0, UpstreamMode::Failover);
        health.success(0);
        assert_eq!(health.mode().0, UpstreamMode::Online);
        let view = health.view();
        assert_eq!(
            view.changes.iter().map(|c| c.mode).collect::<Vec<_>>(),
            vec![
                UpstreamMode::Online,
                UpstreamMode::Degraded,
                UpstreamMode::Failover,
                UpstreamMode::Online
            ]
        );
    }
}
