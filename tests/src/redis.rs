//! A Redis key prefix per test.

/// The Redis server the tests use.
pub fn server_url() -> String {
    std::env::var("LABEDGE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix of its own; every key under it is deleted when the value is dropped.
#[derive(Debug)]
pub struct TestRedis {
    prefix: String,
}

impl TestRedis {
    /// A fresh prefix.
    pub fn new() -> Self {
        Self {
            prefix: format!("labedge:test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The prefix, to put in the service's `redis.key_prefix`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys currently under the prefix.
    pub fn keys(&self) -> Vec<String> {
        let Ok(client) = redis::Client::open(server_url()) else {
            return Vec::new();
        };
        let Ok(mut conn) = client.get_connection() else {
            return Vec::new();
        };
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query::<Vec<String>>(&mut conn)
            .unwrap_or_default()
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        if let Ok(client) = redis::Client::open(server_url())
            && let Ok(mut conn) = client.get_connection()
        {
            let _ = redis::cmd("DEL").arg(keys).query::<i64>(&mut conn);
        }
    }
}
