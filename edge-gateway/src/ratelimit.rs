//! Attempt limits for login, refresh and enrollment: fixed one-minute windows counted in Redis (so
//! several workers share them), or in this process when Redis does not answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cache::Redis;

/// Counts attempts per key.
#[derive(Debug)]
pub struct RateLimiter {
    redis: Redis,
    local: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Refused: retry after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

const WINDOW: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// A limiter using `redis` when it answers.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key`; refuses once more than `limit` happened in the current window.
    pub async fn hit(&self, key: &str, limit: u32) -> Result<(), RetryAfter> {
        if let Some(mut conn) = self.redis.connection() {
            let full_key = self.redis.key(&format!("rl:{key}"));
            let counted: redis::RedisResult<(u32, i64)> = redis::pipe()
                .atomic()
                .incr(&full_key, 1u32)
                .cmd("EXPIRE")
                .arg(&full_key)
                .arg(WINDOW.as_secs())
                .arg("NX")
                .ignore()
                .ttl(&full_key)
                .query_async(&mut conn)
                .await;
            if let Ok((count, ttl)) = counted {
                return if count > limit {
                    Err(RetryAfter(ttl.max(1).unsigned_abs()))
                } else {
                    Ok(())
                };
            }
        }
        self.hit_locally(key, limit)
    }

    fn hit_locally(&self, key: &str, limit: u32) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let Ok(mut windows) = self.local.lock() else {
            return Ok(());
        };
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0)).as_secs();
            Err(RetryAfter(left.max(1)))
        } else {
            Ok(())
        }
    }
}
