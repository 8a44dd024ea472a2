//! What both services check before they serve, and why one did not start.

use labedge_schema::db::{self, Database};

use crate::config::ConfigError;
use crate::pki::PkiError;
use crate::server::ListenError;
use crate::tls::TlsError;

/// Why a service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Migrations are pending: `serve` never runs on a schema older than its code.
    #[error("{} migration(s) pending ({}): run `{service} migrate` first", .versions.len(), .versions.join(", "))]
    PendingMigrations {
        /// The binary that must run `migrate` (`api`, `edge-gateway`).
        service: &'static str,
        /// The versions not yet applied.
        versions: Vec<String>,
    },
    /// The database could not be checked or the pool built.
    #[error(transparent)]
    Database(#[from] db::DbError),
    /// A listener could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The service's CA could not be loaded or created.
    #[error("config key `pki.dir`: {0}")]
    Pki(#[from] PkiError),
    /// The configuration lacks something only found at start (e.g. a key from the environment).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS material of a client (the gateway's upstream credential) is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Refuses to serve while migrations of `database` are pending at `url` (read only: it works on a
/// hot standby too).
pub async fn ensure_migrated(url: &str, database: Database, service: &'static str) -> Result<(), StartError> {
    let versions = db::pending_migrations(url, database).await?;
    if versions.is_empty() {
        Ok(())
    } else {
        Err(StartError::PendingMigrations { service, versions })
    }
}
