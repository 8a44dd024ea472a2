//! The gateway's HTTPS client to its upstream APIs: mutual TLS with the lab's gateway credential,
//! trusting only the cloud CA, the endpoint chosen by [`UpstreamHealth`] (the first healthy one that
//! is the primary), shared by the sync and the relay.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use labedge_service::tls::{self, TlsError};
use mobile_contracts::ops::{DatabaseRole, Readiness};
use mobile_contracts::problem::Problem;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::health::UpstreamHealth;
use crate::config::{Endpoint, UpstreamConfig};

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No endpoint answered (connection refused, timeout, 5xx, not primary).
    #[error("no upstream answered: {reasons}")]
    Unreachable {
        /// What each endpoint did.
        reasons: String,
        /// The longest `Retry-After` an endpoint asked for.
        retry_after: Option<Duration>,
    },
    /// The upstream is alive but asks the gateway to slow down (429).
    #[error("{endpoint} asks to retry in {} s", retry_after.as_secs())]
    Throttled {
        /// The endpoint's name.
        endpoint: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// An endpoint answered with a 4xx: the request itself is refused, trying another will not help.
    #[error("{endpoint} refused the request: {status} {code}")]
    Refused {
        /// The endpoint's name.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The problem's code.
        code: String,
    },
    /// The answer was not the expected JSON.
    #[error("{endpoint} answered something unreadable: {reason}")]
    Malformed {
        /// The endpoint's name.
        endpoint: String,
        /// serde's reason.
        reason: String,
    },
}

impl UpstreamError {
    /// How long the upstream asked the gateway to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Unreachable { retry_after, .. } => *retry_after,
            UpstreamError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// How often [`Upstreams::wait_until_ready`] asks the endpoints whether they are back.
pub const READINESS_PROBE_EVERY: Duration = Duration::from_millis(500);

/// How long a readiness probe waits for its answer (an upstream blackholed by the network does not
/// hold a probe for the client's whole timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The upstream APIs.
#[derive(Clone)]
pub struct Upstreams {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    health: Arc<UpstreamHealth>,
    last_probe: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Per endpoint: no connection could be made to it (refused, timed out) since it was last seen
    /// ready. Its return, not a mere answer, is what ends [`Upstreams::wait_until_ready`] early.
    unreachable: Arc<[AtomicBool]>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3600)))
}

impl Upstreams {
    /// The client of `config` (its CA, certificate and key must be readable), reporting to `health`.
    pub fn from_config(config: &UpstreamConfig, health: Arc<UpstreamHealth>) -> Result<Self, TlsError> {
        let tls = tls::client_config(&config.ca, Some((&config.cert, &config.key)))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        Ok(Self {
            client,
            endpoints: config.endpoints.clone(),
            health,
            last_probe: Arc::default(),
            unreachable: config.endpoints.iter().map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// The endpoints, in order of preference.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The shared health.
    pub fn health(&self) -> &Arc<UpstreamHealth> {
        &self.health
    }

    /// Checks (at most every 30 s) that endpoint `index` is the primary.
    async fn is_primary(&self, index: usize, reasons: &mut Vec<String>) -> bool {
        if !self.health.needs_role_check(index) {
            if !self.health.is_primary(index) {
                reasons.push(format!("{}: standby", self.endpoints[index].name));
            }
            return self.health.is_primary(index);
        }
        let url = format!("{}/readyz", self.endpoints[index].url.trim_end_matches('/'));
        let readiness = match self.client.get(&url).send().await {
            Ok(response) => response.json::<Readiness>().await.ok(),
            Err(e) => {
                reasons.push(format!("{}: {}", self.endpoints[index].name, describe(&e)));
                self.health.failure(index);
                self.unreachable[index].store(true, Ordering::Release);
                return false;
            }
        };
        let primary = readiness.is_some_and(|r| r.ready && r.role == Some(DatabaseRole::Primary));
        self.health.role_checked(index, primary);
        if !primary {
            reasons.push(format!("{}: not a ready primary", self.endpoints[index].name));
            self.health.not_primary(index);
        }
        primary
    }

    /// While the gateway uses a fallback (or none), asks the preferred endpoints' `GET /readyz`: each
    /// ready primary answer counts towards returning to it (after a few in a row, see
    /// [`UpstreamHealth`]). Called by the relay and the sync between their passes; at most every five
    /// seconds.
    pub async fn probe_preferred(&self) {
        {
            let Ok(mut last) = self.last_probe.lock() else { return };
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(5)) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let active = self.health.active();
        for index in 0..self.endpoints.len() {
            if active.is_some_and(|a| index >= a) {
                break;
            }
            let primary = self.ready_primary(index).await;
            self.health.role_checked(index, primary);
            if primary {
                self.health.success(index);
            } else {
                self.health.failure(index);
            }
        }
    }

    /// Whether endpoint `index` answers `GET /readyz` as a ready primary, within [`PROBE_TIMEOUT`].
    async fn ready_primary(&self, index: usize) -> bool {
        let url = format!("{}/readyz", self.endpoints[index].url.trim_end_matches('/'));
        match self.client.get(&url).timeout(PROBE_TIMEOUT).send().await {
            Ok(response) => response
                .json::<Readiness>()
                .await
                .ok()
                .is_some_and(|r| r.ready && r.role == Some(DatabaseRole::Primary)),
            Err(_) => false,
        }
    }

    /// After a failed call, waits up to `longest`, asking every endpoint's `GET /readyz` each
    /// [`READINESS_PROBE_EVERY`] whatever its circuit, and ends as soon as an endpoint that could not
    /// be reached (no connection, since it was last seen ready) is a ready primary again: that
    /// endpoint's circuit closes and the caller tries at once, instead of at the end of its backoff
    /// (issue 16: the first batch leaves within 2 s of the cloud's return). An endpoint that could be
    /// reached all along, and answered a 5xx or something unreadable, does not end the wait: a
    /// failing cloud gets the whole backoff, not a retry loop. True when it ended early.
    pub async fn wait_until_ready(&self, longest: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + longest;
        loop {
            for index in 0..self.endpoints.len() {
                if !self.ready_primary(index).await {
                    self.unreachable[index].store(true, Ordering::Release);
                } else if self.unreachable[index].swap(false, Ordering::AcqRel) {
                    self.health.role_checked(index, true);
                    self.health.success(index);
                    return true;
                }
            }
            let next = tokio::time::Instant::now() + READINESS_PROBE_EVERY;
            if next >= deadline {
                tokio::time::sleep_until(deadline).await;
                return false;
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// `GET path` (with its query); returns the body and the endpoint's name.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, String), UpstreamError> {
        self.call::<(), T>(path, None).await
    }

    /// `POST path` with a JSON body; returns the answer and the endpoint's name.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(T, String), UpstreamError> {
        self.call(path, Some(body)).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<(T, String), UpstreamError> {
        let mut reasons = Vec::new();
        let mut longest_wait: Option<Duration> = None;
        for index in self.health.candidates() {
            if !self.is_primary(index, &mut reasons).await {
                continue;
            }
            let endpoint = &self.endpoints[index];
            let url = format!("{}{path}", endpoint.url.trim_end_matches('/'));
            let request = match body {
                Some(body) => self.client.post(&url).json(body),
                None => self.client.get(&url),
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    reasons.push(format!("{}: {}", endpoint.name, describe(&e)));
                    self.health.failure(index);
                    self.unreachable[index].store(true, Ordering::Release);
                    continue;
                }
            };
            let status = response.status();
            if status.as_u16() == 429 {
                self.health.success(index);
                return Err(UpstreamError::Throttled {
                    endpoint: endpoint.name.clone(),
                    retry_after: retry_after(&response).unwrap_or(Duration::from_secs(1)),
                });
            }
            if status.is_server_error() {
                longest_wait = longest_wait.max(retry_after(&response));
                reasons.push(format!("{}: HTTP {status}", endpoint.name));
                self.health.failure(index);
                continue;
            }
            if !status.is_success() {
                self.health.success(index);
                let code = response
                    .json::<Problem>()
                    .await
                    .map(|p| p.code.as_str().to_owned())
                    .unwrap_or_default();
                return Err(UpstreamError::Refused {
                    endpoint: endpoint.name.clone(),
                    status: status.as_u16(),
                    code,
                });
            }
            return match response.json::<T>().await {
                Ok(body) => {
                    self.health.success(index);
                    Ok((body, endpoint.name.clone()))
                }
                Err(e) => {
                    // A body cut short counts as a failed call: the request may have been applied,
                    // which is why every mutation is idempotent.
                    self.health.failure(index);
                    Err(UpstreamError::Malformed {
                        endpoint: endpoint.name.clone(),
                        reason: e.to_string(),
                    })
                }
            };
        }
        if reasons.is_empty() {
            reasons.push("every endpoint is resting after repeated failures".into());
        }
        Err(UpstreamError::Unreachable {
            reasons: reasons.join("; "),
            retry_after: longest_wait,
        })
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        error.to_string()
    }
}
