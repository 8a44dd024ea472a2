//! Connection pool and migrations.

use std::time::Duration;

use diesel::Connection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

/// The pool every service uses.
pub type PgPool = Pool<AsyncPgConnection>;
/// A connection checked out of [`PgPool`].
pub type PooledConnection = Object<AsyncPgConnection>;

/// Which of the two databases a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    /// The cloud's database (`api`).
    Cloud,
    /// A lab gateway's database (`edge-gateway`).
    Edge,
}

impl Database {
    /// The embedded migrations of this database.
    pub fn migrations(self) -> EmbeddedMigrations {
        match self {
            Database::Cloud => crate::cloud::MIGRATIONS,
            Database::Edge => crate::edge::MIGRATIONS,
        }
    }
}

/// Errors of the pool and the migration runner.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The pool could not be built (bad URL, bad sizes).
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    /// Could not connect to run migrations.
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The blocking migration task panicked or was cancelled.
    #[error("migration task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What the pool is built from: the `[database]` section of a service's configuration
/// (`labedge_service::config::DatabaseConfig::pool_settings`), without the configuration machinery.
#[derive(Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// `postgres://user:password@host:port/dbname`: a secret (never in `Debug`).
    pub url: String,
    /// Pool size.
    pub max_connections: usize,
    /// Connecting to PostgreSQL gives up after this long.
    pub connect_timeout_ms: u64,
    /// Waiting for a free pooled connection gives up after this long (the request gets a 503).
    pub acquire_timeout_ms: u64,
    /// PostgreSQL cancels any statement running longer than this.
    pub statement_timeout_ms: u64,
}

/// The URL carries the database password: it is left out.
impl std::fmt::Debug for PoolSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSettings")
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish_non_exhaustive()
    }
}

/// Builds the pool. Connections are opened lazily, so this succeeds while PostgreSQL is down; a
/// request then waits at most `acquire_timeout_ms` for a connection and the service answers 503.
pub fn build_pool(config: &PoolSettings) -> Result<PgPool, DbError> {
    let statement_timeout_ms = config.statement_timeout_ms;
    let mut manager_config = diesel_async::pooled_connection::ManagerConfig::<AsyncPgConnection>::default();
    // No `SELECT 1` at every checkout: it would cost a round trip on every read. A connection that
    // broke meanwhile fails its first query; the request answers 503 and the pool drops it.
    manager_config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move {
            use diesel_async::{AsyncConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(&url).await?;
            // A statement that runs away must not hold a connection for ever.
            conn.batch_execute(&format!("SET statement_timeout = {statement_timeout_ms}"))
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(&config.url, manager_config);
    Pool::builder(manager)
        .max_size(config.max_connections)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_millis(config.acquire_timeout_ms)))
        .create_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
        .recycle_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Applies every pending migration; returns the versions applied.
pub async fn run_migrations(url: &str, database: Database) -> Result<Vec<String>, DbError> {
    with_sync_connection(url, move |conn| {
        conn.run_pending_migrations(database.migrations())
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
}

/// Whether the server at `url` is a hot standby (`pg_is_in_recovery()`): its schema is the
/// primary's, replicated, and it refuses every write.
pub async fn in_recovery(url: &str) -> Result<bool, DbError> {
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Recovery {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        in_recovery: bool,
    }
    with_sync_connection(url, |conn| {
        diesel::sql_query("SELECT pg_is_in_recovery() AS in_recovery")
            .get_result::<Recovery>(conn)
            .map(|r| r.in_recovery)
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
}

/// The versions of the migrations not yet applied.
///
/// Read only: diesel's harness creates its bookkeeping table first, which a hot standby refuses
/// (`cannot execute CREATE TABLE in a read-only transaction`), and an API serving from the central
/// lab's standby must still be able to check that its schema is the primary's.
pub async fn pending_migrations(url: &str, database: Database) -> Result<Vec<String>, DbError> {
    use diesel::RunQueryDsl;
    use diesel::migration::MigrationSource;

    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    with_sync_connection(url, move |conn| {
        let applied: Vec<String> = diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Applied>(conn)
            .or_else(|e| match e {
                // Never migrated: the table does not exist yet, so every migration is pending.
                diesel::result::Error::DatabaseError(_, ref info) if info.message().contains("does not exist") => {
                    Ok(Vec::new())
                }
                other => Err(other),
            })
            .map_err(|e| DbError::Migration(e.to_string()))?
            .into_iter()
            .map(|a| a.version)
            .collect();
        let known = MigrationSource::<diesel::pg::Pg>::migrations(&database.migrations())
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(known
            .iter()
            .map(|m| m.name().version().to_string())
            .filter(|version| !applied.contains(version))
            .collect())
    })
    .await
}

/// Reverts every applied migration, newest first (tests prove each `down.sql` works).
pub async fn revert_all_migrations(url: &str, database: Database) -> Result<Vec<String>, DbError> {
    with_sync_connection(url, move |conn| {
        conn.revert_all_migrations(database.migrations())
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
}

/// diesel's migration harness is synchronous: it runs on a blocking thread over the async
/// connection, never on the async workers.
async fn with_sync_connection<T, F>(url: &str, work: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> Result<T, DbError> + Send + 'static,
{
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)?;
        work(&mut conn)
    })
    .await?
}
