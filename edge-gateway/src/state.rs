//! The gateway's state, built once at start-up and given to actix with one `app_data`.

use std::sync::{Arc, RwLock};

use labedge_schema::db::PgPool;
use labedge_service::error::ApiError;
use labedge_service::pki::CertAuthority;
use metrics_exporter_prometheus::PrometheusHandle;
use mobile_contracts::LabRef;
use mobile_contracts::problem::ErrorCode;
use tokio::sync::{Notify, OnceCell};

use crate::audit::AuditLog;
use crate::auth::keys::KeyRing;
use crate::auth::revocation::Revocations;
use crate::auth::tokens::Tokens;
use crate::cache::Redis;
use crate::config::Config;
use crate::console::history::History;
use crate::ratelimit::RateLimiter;
use crate::relay::DrainState;
use crate::security_events::SecurityLog;
use crate::sync::SyncStatus;
use crate::sync::health::UpstreamHealth;
use crate::writes::booking::{AppointmentWindow, SlotLists};

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The lab's time zone (`timezone` in the config), from the system's tz database.
    pub zone: jiff::tz::TimeZone,
    /// The lab's database.
    pub pool: PgPool,
    /// The hot cache (may be disconnected).
    pub redis: Redis,
    /// The metrics recorder, rendered by `GET /metrics`.
    pub metrics: PrometheusHandle,
    /// The OpenAPI document, rendered once.
    pub openapi: Arc<str>,
    /// The access token signing keys.
    pub keys: Arc<KeyRing>,
    /// Access tokens.
    pub tokens: Arc<Tokens>,
    /// Revocation checks.
    pub revocations: Arc<Revocations>,
    /// Attempt limits.
    pub limiter: Arc<RateLimiter>,
    /// Security events.
    pub security: Arc<SecurityLog>,
    /// The lab's CA for tablet certificates.
    pub lab_ca: Arc<CertAuthority>,
    /// This gateway's lab, read once from the synced data.
    pub lab: Arc<OnceCell<LabRef>>,
    /// The group writer of collections.
    pub collections: Arc<crate::writes::CollectionWriter>,
    /// The group writer of lab-visit bookings.
    pub bookings: Arc<crate::writes::BookingWriter>,
    /// The group writer of appointment status changes.
    pub appointment_changes: Arc<crate::writes::ChangeWriter>,
    /// The audit log of patient data (group-committed reads, hash chain).
    pub audit: Arc<AuditLog>,
    /// Which upstream is in use, and the gateway's mode (online, failover, degraded).
    pub upstream_health: Arc<UpstreamHealth>,
    /// Wakes the relay when a write is committed.
    pub relay_wakeup: Arc<Notify>,
    /// The desk's slot lists of the last second, dropped by every write made here.
    pub slot_lists: Arc<SlotLists>,
    /// The end of the lab's appointment window: the desk books before it only.
    pub window: Arc<AppointmentWindow>,
    /// The backlog drain after an outage.
    pub drain: Arc<DrainState>,
    /// What the sync has done lately.
    pub sync_status: Arc<RwLock<SyncStatus>>,
    /// The admin console's charts: samples of the last hours.
    pub history: Arc<History>,
    /// Set on SIGTERM: `/readyz` answers 503 and connections are closed after their answer while
    /// the gateway drains (see [`crate::config::ShutdownConfig`]).
    pub shutting_down: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// After a commit that queued something for the cloud: wakes the relay, drops the slot lists
    /// computed before it (a booking, a cancellation, a sampler deactivated change the free places),
    /// and has the audit journal chain the write's record soon.
    pub fn wrote(&self) {
        self.slot_lists.invalidate();
        self.audit.nudge();
        self.relay_wakeup.notify_one();
    }

    /// This gateway's lab. Until the first sync has brought it, answers 503: nothing can be served.
    pub async fn lab(&self) -> Result<LabRef, ApiError> {
        self.lab
            .get_or_try_init(|| async {
                let mut conn = self.pool.get().await?;
                crate::store::labs::by_code(&mut conn, &self.config.lab)
                    .await?
                    .ok_or_else(|| {
                        ApiError::detail(
                            ErrorCode::ServiceUnavailable,
                            "this gateway has not received its lab's data from the cloud yet",
                        )
                    })
            })
            .await
            .cloned()
    }
}
