//! Operations endpoints: `/healthz` (alive) and `/readyz` (able to serve).

use serde::{Deserialize, Serialize};

/// `GET /healthz`: the process is up; says nothing about its dependencies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    /// Service name, e.g. `edge-gateway`.
    pub service: String,
    /// Service version.
    pub version: String,
}

/// Role of the database behind the service, so a load balancer can pick the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DatabaseRole {
    /// Accepts writes.
    Primary,
    /// Read-only replica (hot standby).
    Standby,
}

/// One dependency check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadinessCheck {
    /// What was checked: `database`, `migrations`, `redis`, `upstream`…
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Short reason when it failed (no connection strings, no secrets).
    pub detail: Option<String>,
}

/// `GET /readyz`: 200 when ready, 503 with the same body when not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// Whether every required check passed.
    pub ready: bool,
    /// Database role, when known.
    pub role: Option<DatabaseRole>,
    /// The checks, required and optional (an optional one such as Redis may fail while ready).
    pub checks: Vec<ReadinessCheck>,
}
