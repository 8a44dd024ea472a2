//! The gateway's state, built once at start-up and given to actix with one `app_data`.

use std::sync::Arc;

use labedge_schema::db::PgPool;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::cache::Redis;
use crate::config::Config;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The lab's database.
    pub pool: PgPool,
    /// The hot cache (may be disconnected).
    pub redis: Redis,
    /// The metrics recorder, rendered by `GET /metrics`.
    pub metrics: PrometheusHandle,
    /// The OpenAPI document, rendered once.
    pub openapi: Arc<str>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}
