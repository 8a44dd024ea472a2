//! The Redis connection. Redis is optional at run time: the gateway starts without it, connects in
//! the background, and every caller treats "no connection" as a cache miss.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use labedge_schema::runtime::config::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A handle on Redis that may not be connected (yet).
#[derive(Clone)]
pub struct Redis {
    connection: Arc<RwLock<Option<ConnectionManager>>>,
    prefix: Arc<str>,
}

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
            prefix: config.key_prefix.as_str().into(),
        };
        let client = match redis::Client::open(config.url.expose()) {
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
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                match ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await {
                    Ok(manager) => {
                        if let Ok(mut guard) = slot.write() {
                            *guard = Some(manager);
                        }
                        tracing::info!("redis connected");
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

    /// The connection, when there is one.
    pub fn connection(&self) -> Option<ConnectionManager> {
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

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        match self.connection() {
            Some(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok(),
            None => false,
        }
    }
}
