//! The Redis connection. Redis is optional at run time: the gateway starts without it, connects in
//! the background, and every caller treats "no connection" as a cache miss.
//!
//! Once connected, a probe PINGs Redis every second. While the probe fails the connection is
//! withheld from callers: the connection manager would otherwise make every request wait for its
//! own reconnection attempts (about a second each, measured in `faults.rs`), where a miss served
//! from PostgreSQL takes milliseconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use labedge_service::config::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A handle on Redis that may not be connected (yet).
#[derive(Clone)]
pub struct Redis {
    connection: Arc<RwLock<Option<ConnectionManager>>>,
    /// The probe's last verdict.
    answering: Arc<AtomicBool>,
    prefix: Arc<str>,
}

/// Time between two probes, and the most a probe waits for its answer.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field("connected", &self.connection().is_some())
            .finish()
    }
}

impl Redis {
    /// Starts connecting in the background; retries every two seconds until Redis answers. Once
    /// connected, the connection manager reconnects by itself.
    pub fn connect_in_background(config: &RedisConfig) -> Self {
        let redis = Self {
            connection: Arc::new(RwLock::new(None)),
            answering: Arc::new(AtomicBool::new(false)),
            prefix: config.key_prefix.as_str().into(),
        };
        let client = match redis::Client::open(config.url.expose_secret()) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "redis: unusable URL; running without a cache");
                return redis;
            }
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let slot = redis.connection.clone();
        let answering = redis.answering.clone();
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                match ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await {
                    Ok(manager) => {
                        if let Ok(mut guard) = slot.write() {
                            *guard = Some(manager.clone());
                        }
                        answering.store(true, Ordering::Relaxed);
                        tracing::info!("redis connected");
                        probe(manager, &answering).await;
                        return;
                    }
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "redis unreachable; serving from PostgreSQL until it answers");
                            warned = true;
                        }
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
        redis
    }

    /// The connection, when there is one and Redis answered the last probe.
    pub fn connection(&self) -> Option<ConnectionManager> {
        if !self.answering.load(Ordering::Relaxed) {
            return None;
        }
        self.connection.read().ok().and_then(|guard| guard.clone())
    }

    /// A key under this service's prefix.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes keys (relative to the prefix); a Redis that does not answer is not an error: entries
    /// expire by themselves, and the sync evicts them again on its next change.
    pub async fn evict(&self, keys: &[String]) {
        let Some(mut conn) = self.connection() else { return };
        if keys.is_empty() {
            return;
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        for chunk in full.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    }

    /// Deletes every key starting with `prefix` (relative to the service prefix).
    pub async fn evict_prefix(&self, prefix: &str) {
        let Some(mut conn) = self.connection() else { return };
        let pattern = format!("{}*", self.key(prefix));
        let keys: Vec<String> = match redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await {
            Ok(keys) => keys,
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        match self.connection() {
            Some(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok(),
            None => false,
        }
    }
}

/// Cache keys of the tablet reads, relative to the service prefix. The sync evicts them when the
/// rows behind them change.
pub mod keys {
    use uuid::Uuid;

    /// A patient's stored row.
    pub fn patient(id: Uuid) -> String {
        format!("patient:{id}")
    }
    /// A prescription with its exams and tube plan.
    pub fn prescription(id: Uuid) -> String {
        format!("prescription:{id}")
    }
    /// The list of a patient's prescriptions.
    pub fn patient_prescriptions(patient: Uuid) -> String {
        format!("patient-prescriptions:{patient}")
    }
    /// Prefix of every prescription entry (a catalog change evicts them all: tube plans change).
    pub const PRESCRIPTION_PREFIX: &str = "prescription:";
    /// Prefix of every prescription list entry.
    pub const PATIENT_PRESCRIPTIONS_PREFIX: &str = "patient-prescriptions:";
}

/// PINGs Redis every [`PROBE_EVERY`] for as long as the process runs, recording whether it answers.
async fn probe(mut manager: ConnectionManager, answering: &AtomicBool) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ok = tokio::time::timeout(PROBE_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut manager))
            .await
            .is_ok_and(|answer| answer.is_ok());
        let before = answering.swap(ok, Ordering::Relaxed);
        match (before, ok) {
            (true, false) => tracing::warn!("redis stopped answering; serving from PostgreSQL until it does"),
            (false, true) => tracing::info!("redis answers again"),
            _ => {}
        }
    }
}
