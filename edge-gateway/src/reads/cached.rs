//! Redis for the reads: stored data as JSON under [`crate::cache::keys`], for [`CACHE_TTL_S`].
//! Every failure (no connection, timeout, unreadable value) is a miss: the read goes to PostgreSQL.
//!
//! Lookups are counted in `labedge_cache_hits_total` and `labedge_cache_misses_total`, by kind of
//! entry (`entry`: `patient`, `prescription`, `patient_prescriptions`; never the key, which holds an
//! id). A value found but no longer readable counts as a hit here and reads PostgreSQL.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::Redis;

/// How long a cached entry lives, in seconds (the sync evicts it sooner when its rows change).
pub const CACHE_TTL_S: u64 = 3_600;

/// The raw values of `keys` (relative to the service prefix), in one round trip (`GET`, or `MGET`
/// for several keys); `None` for a miss.
pub async fn get_raw(redis: &Redis, keys: &[String]) -> Vec<Option<Vec<u8>>> {
    let values = lookup(redis, keys).await;
    for (key, value) in keys.iter().zip(&values) {
        let entry = entry_of(key);
        if value.is_some() {
            metrics::counter!("labedge_cache_hits_total", "entry" => entry).increment(1);
        } else {
            metrics::counter!("labedge_cache_misses_total", "entry" => entry).increment(1);
        }
    }
    values
}

/// The kind of entry a key is, as a metric label (a fixed word: keys hold ids).
fn entry_of(key: &str) -> &'static str {
    use crate::cache::keys::{PATIENT_PRESCRIPTIONS_PREFIX, PRESCRIPTION_PREFIX};
    if key.starts_with(PATIENT_PRESCRIPTIONS_PREFIX) {
        "patient_prescriptions"
    } else if key.starts_with(PRESCRIPTION_PREFIX) {
        "prescription"
    } else if key.starts_with("patient:") {
        "patient"
    } else {
        "other"
    }
}

async fn lookup(redis: &Redis, keys: &[String]) -> Vec<Option<Vec<u8>>> {
    let misses = || keys.iter().map(|_| None).collect();
    let Some(mut conn) = redis.connection() else {
        return misses();
    };
    let answer = match keys {
        [] => return Vec::new(),
        [key] => redis::cmd("GET")
            .arg(redis.key(key))
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
            .map(|value| vec![value]),
        _ => {
            let mut cmd = redis::cmd("MGET");
            for key in keys {
                cmd.arg(redis.key(key));
            }
            cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await
        }
    };
    match answer {
        Ok(values) if values.len() == keys.len() => values,
        Ok(_) => misses(),
        Err(e) => {
            tracing::debug!(error = %e, "redis read failed; reading PostgreSQL");
            misses()
        }
    }
}

/// A cached value, `None` for a miss or a value that no longer reads as `T`.
pub fn decode<T: DeserializeOwned>(raw: Option<Vec<u8>>) -> Option<T> {
    raw.and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// One cached value.
pub async fn get<T: DeserializeOwned>(redis: &Redis, key: String) -> Option<T> {
    decode(get_raw(redis, &[key]).await.pop().flatten())
}

/// Stores a value for [`CACHE_TTL_S`]; a failure is ignored (the next read goes to PostgreSQL).
///
/// A fill can race with an eviction (read PostgreSQL, the sync commits and evicts, then this
/// stores the older value): the entry is then stale until the sync's next change of the row or
/// the TTL.
pub async fn put<T: Serialize>(redis: &Redis, key: &str, value: &T) {
    let Some(mut conn) = redis.connection() else { return };
    let Ok(bytes) = serde_json::to_vec(value) else { return };
    let stored: redis::RedisResult<()> = redis::cmd("SET")
        .arg(redis.key(key))
        .arg(bytes)
        .arg("EX")
        .arg(CACHE_TTL_S)
        .query_async(&mut conn)
        .await;
    if let Err(e) = stored {
        tracing::debug!(error = %e, "redis write failed; entry not cached");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::keys;

    #[test]
    fn entries_are_labelled_by_kind_never_by_id() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(entry_of(&keys::patient(id)), "patient");
        assert_eq!(entry_of(&keys::prescription(id)), "prescription");
        assert_eq!(entry_of(&keys::patient_prescriptions(id)), "patient_prescriptions");
        assert_eq!(entry_of("something-else"), "other");
    }
}
