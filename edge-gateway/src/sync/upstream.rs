//! The gateway's HTTPS client to its upstream APIs: mutual TLS with the lab's gateway credential,
//! trusting only the cloud CA, the endpoints tried in the configured order.

use std::time::Duration;

use labedge_schema::runtime::tls::{self, TlsError};
use mobile_contracts::problem::Problem;
use serde::de::DeserializeOwned;

use crate::config::{Endpoint, UpstreamConfig};

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No endpoint answered (connection refused, timeout, 5xx from every one).
    #[error("no upstream answered: {0}")]
    Unreachable(String),
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

/// The upstream APIs.
#[derive(Clone)]
pub struct Upstreams {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

impl Upstreams {
    /// The client of `config`: its CA, certificate and key must be readable.
    pub fn from_config(config: &UpstreamConfig) -> Result<Self, TlsError> {
        let tls = tls::client_config(&config.ca, Some((&config.cert, &config.key)))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        Ok(Self { client, endpoints: config.endpoints.clone() })
    }

    /// The endpoints, in order of preference.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The HTTP client (mutual TLS).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET path` (with its query) from the first endpoint that answers; returns the body and the
    /// endpoint's name.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, String), UpstreamError> {
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            let url = format!("{}{path}", endpoint.url.trim_end_matches('/'));
            let response = match self.client.get(&url).send().await {
                Ok(response) => response,
                Err(e) => {
                    failures.push(format!("{}: {}", endpoint.name, describe(&e)));
                    continue;
                }
            };
            let status = response.status();
            if status.is_server_error() {
                failures.push(format!("{}: HTTP {status}", endpoint.name));
                continue;
            }
            if !status.is_success() {
                let code = response.json::<Problem>().await.map(|p| p.code.as_str().to_owned()).unwrap_or_default();
                return Err(UpstreamError::Refused { endpoint: endpoint.name.clone(), status: status.as_u16(), code });
            }
            return response
                .json::<T>()
                .await
                .map(|body| (body, endpoint.name.clone()))
                .map_err(|e| UpstreamError::Malformed { endpoint: endpoint.name.clone(), reason: e.to_string() });
        }
        Err(UpstreamError::Unreachable(failures.join("; ")))
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
