//! The history the console's charts draw: every `console.chart_interval_s` the sampler records the tablets'
//! requests (from the Prometheus recorder), the outbox backlog and the change feed's lag, and keeps
//! the last [`RETENTION`] in memory. A restart starts a new history: the charts show the last hours
//! of this process, which is what a lab admin looks at when something goes wrong now; the long-term
//! series are Prometheus's (`GET /metrics`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::state::AppState;
use crate::sync::health::UpstreamMode;

/// How far back the history goes.
pub const RETENTION: Duration = Duration::from_secs(6 * 3600);

/// The request histogram's counter in the Prometheus text (see `labedge_service::http::request_telemetry`).
const REQUEST_COUNT: &str = "labedge_http_request_duration_seconds_count";

/// One point of the charts.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// When it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Seconds since the previous sample (the requests below were counted over it).
    pub interval_s: f64,
    /// Tablet requests (`/v1/…`) answered during the interval.
    pub requests: u64,
    /// Of those, answers with a 5xx status.
    pub server_errors: u64,
    /// Outbox entries not yet acknowledged by the cloud; `None` when the database did not answer.
    pub backlog: Option<i64>,
    /// Age of the oldest of them, in seconds.
    pub oldest_pending_s: Option<f64>,
    /// Changes of the cloud's feed not yet applied here (head − position); `None` before the first
    /// pull.
    pub sync_lag: Option<i64>,
    /// The upstream mode at that moment.
    pub mode: UpstreamMode,
}

/// What `GET /admin/v1/history` answers.
#[derive(Debug, Serialize)]
pub struct HistoryView {
    /// Seconds between samples.
    pub interval_s: u64,
    /// Seconds of history kept.
    pub retention_s: u64,
    /// Oldest first.
    pub samples: Vec<Sample>,
}

/// Request counters read from one rendering of the recorder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Tablet requests answered since the process started.
    pub tablet: u64,
    /// Of those, 5xx answers.
    pub server_errors: u64,
}

#[derive(Debug)]
struct Inner {
    samples: VecDeque<Sample>,
    previous: (Instant, RequestCounts),
}

/// The samples of the last hours, shared by the sampler and the route.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Default for History {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl History {
    /// A history sampled every `interval` (at least a second), keeping [`RETENTION`] of samples.
    pub fn new(interval: Duration) -> Self {
        let interval = interval.max(Duration::from_secs(1));
        let capacity = (RETENTION.as_secs() / interval.as_secs()).max(1) as usize;
        Self {
            interval,
            capacity,
            inner: Mutex::new(Inner {
                samples: VecDeque::with_capacity(capacity),
                previous: (Instant::now(), RequestCounts::default()),
            }),
        }
    }

    /// Time between two samples.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The samples, oldest first.
    pub fn view(&self) -> HistoryView {
        HistoryView {
            interval_s: self.interval.as_secs(),
            retention_s: RETENTION.as_secs(),
            samples: self
                .inner
                .lock()
                .map(|inner| inner.samples.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// Records a sample taken with these cumulative request counts; the oldest goes beyond
    /// [`RETENTION`]. Returns the sample.
    fn record(
        &self,
        counts: RequestCounts,
        backlog: Option<(i64, Option<f64>)>,
        sync_lag: Option<i64>,
        mode: UpstreamMode,
    ) -> Sample {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else {
            return empty_sample(mode);
        };
        let (then, before) = inner.previous;
        inner.previous = (now, counts);
        let sample = Sample {
            at: OffsetDateTime::now_utc(),
            interval_s: now.duration_since(then).as_secs_f64(),
            // A counter never goes down within a process; saturate rather than wrap if it did.
            requests: counts.tablet.saturating_sub(before.tablet),
            server_errors: counts.server_errors.saturating_sub(before.server_errors),
            backlog: backlog.map(|b| b.0),
            oldest_pending_s: backlog.and_then(|b| b.1),
            sync_lag,
            mode,
        };
        if inner.samples.len() == self.capacity {
            inner.samples.pop_front();
        }
        inner.samples.push_back(sample.clone());
        sample
    }
}

fn empty_sample(mode: UpstreamMode) -> Sample {
    Sample {
        at: OffsetDateTime::now_utc(),
        interval_s: 0.0,
        requests: 0,
        server_errors: 0,
        backlog: None,
        oldest_pending_s: None,
        sync_lag: None,
        mode,
    }
}

/// Sums the request counter of the Prometheus text: tablet routes (`/v1/…`) only, so that the
/// console's own polling and the monitoring's scrapes do not fill the chart.
pub fn request_counts(prometheus_text: &str) -> RequestCounts {
    let mut counts = RequestCounts::default();
    for line in prometheus_text.lines() {
        let Some(rest) = line.strip_prefix(REQUEST_COUNT) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if !label(labels, "route").is_some_and(|route| route.starts_with("/v1/")) {
            continue;
        }
        // Counts are whole numbers written as floats; anything else is not a count.
        let value = if value.is_finite() && value >= 0.0 {
            value as u64
        } else {
            0
        };
        counts.tablet += value;
        if label(labels, "status").is_some_and(|status| status.starts_with('5')) {
            counts.server_errors += value;
        }
    }
    counts
}

/// The value of `name="…"` in a Prometheus label set `{a="x",b="y"}` (values with escaped quotes
/// are not expected in route patterns, methods and statuses).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let labels = labels.trim().strip_prefix('{')?.strip_suffix('}')?;
    labels.split("\",").find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

/// Takes a sample now and records it. Never fails: what cannot be read is left out of the sample.
pub async fn sample_now(state: &AppState) -> Sample {
    let counts = request_counts(&state.metrics.render());
    let backlog = match state.pool.get().await {
        Ok(mut conn) => match crate::relay::backlog(&mut conn).await {
            Ok(b) => Some((b.pending, b.oldest_pending_seconds)),
            Err(e) => {
                tracing::debug!(error = %e, "console history: backlog not read");
                None
            }
        },
        Err(e) => {
            tracing::debug!(error = %e, "console history: no database connection for the backlog");
            None
        }
    };
    let sync_lag = state
        .sync_status
        .read()
        .ok()
        .and_then(|s| Some((s.head? - s.position?).max(0)));
    let mode = state.upstream_health.view().mode;
    state.history.record(counts, backlog, sync_lag, mode)
}

/// Starts the sampler: a sample at once, then one every interval of the history, until the process
/// stops.
pub fn spawn_sampler(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.history.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sample_now(&state).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE labedge_http_request_duration_seconds histogram
labedge_http_request_duration_seconds_bucket{route=\"/v1/patients\",method=\"GET\",status=\"200\",le=\"0.001\"} 3
labedge_http_request_duration_seconds_sum{route=\"/v1/patients\",method=\"GET\",status=\"200\"} 0.02
labedge_http_request_duration_seconds_count{route=\"/v1/patients\",method=\"GET\",status=\"200\"} 12
labedge_http_request_duration_seconds_count{route=\"/v1/collections\",method=\"POST\",status=\"503\"} 2
labedge_http_request_duration_seconds_count{route=\"/v1/patients/{id}\",method=\"GET\",status=\"200\"} 1
labedge_http_request_duration_seconds_count{route=\"/admin/v1/status\",method=\"GET\",status=\"200\"} 40
labedge_http_request_duration_seconds_count{route=\"unmatched\",method=\"GET\",status=\"404\"} 5
labedge_outbox_pending 7
";

    #[test]
    fn only_tablet_requests_are_counted() {
        assert_eq!(
            request_counts(TEXT),
            RequestCounts {
                tablet: 15,
                server_errors: 2
            }
        );
        assert_eq!(request_counts(""), RequestCounts::default());
    }

    #[test]
    fn a_sample_counts_the_requests_of_its_interval_and_the_oldest_go() {
        let history = History::default();
        let counts = |tablet| RequestCounts {
            tablet,
            server_errors: 0,
        };
        history.record(counts(10), Some((3, Some(12.5))), Some(4), UpstreamMode::Online);
        let second = history.record(counts(25), None, None, UpstreamMode::Degraded);
        assert_eq!(second.requests, 15);
        assert_eq!(second.backlog, None);
        for i in 0..history.capacity {
            history.record(counts(25 + i as u64), Some((0, None)), Some(0), UpstreamMode::Online);
        }
        let view = history.view();
        assert_eq!(view.samples.len(), history.capacity);
        assert!(view.samples.iter().all(|s| s.mode == UpstreamMode::Online));
        assert_eq!(view.interval_s, 30);
        assert_eq!(view.retention_s, 21_600);
    }
}
