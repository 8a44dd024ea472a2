//! Gauges read from the gateway's database and files rather than counted at events: the tablets
//! enrolled and active, and when the certificates the gateway depends on expire. One task, started
//! with the state, refreshes them every [`REFRESH_EVERY`]; a refresh that fails keeps the last
//! values (the tablet counts) or exports 0 (a certificate file that cannot be read, so that the
//! expiry alert fires rather than stays silent).
//!
//! | gauge | labels | value |
//! |---|---|---|
//! | `labedge_tablets_enrolled` | | devices enrolled and not revoked |
//! | `labedge_tablets_active` | | of those, seen (a login or a refresh) within [`ACTIVE_WITHIN_H`] hours |
//! | `labedge_certificate_expiry_timestamp_seconds` | `certificate` | the certificate's `notAfter`, Unix seconds |
//! | `labedge_upstream_state` | `state` | 1 for the current upstream mode (also set at each change) |
//!
//! `certificate` is `upstream_client` (the gateway's credential towards the cloud, `upstream.cert`),
//! `server` (the tablet listener's, `http.tls.cert`, when TLS is on), `cloud_ca` (`upstream.ca`) or
//! `tablet_ca` (the lab's CA in `pki.dir`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use labedge_schema::db::PgPool;

use crate::config::Config;
use crate::state::AppState;
pub use crate::store::devices::TabletCounts;
use crate::sync::health::{UpstreamHealth, UpstreamMode};

/// How often the gauges are read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// A tablet counts as active when it was seen within this many hours.
pub const ACTIVE_WITHIN_H: i32 = 24;

/// Counts the tablets and sets their gauges.
pub async fn refresh_tablets(pool: &PgPool) -> anyhow::Result<TabletCounts> {
    let mut conn = pool.get().await?;
    let counts = crate::store::devices::counts(&mut conn, ACTIVE_WITHIN_H).await?;
    metrics::gauge!("labedge_tablets_enrolled").set(counts.enrolled as f64);
    metrics::gauge!("labedge_tablets_active").set(counts.active as f64);
    Ok(counts)
}

/// The certificate files of `config`, each with its `certificate` label.
pub fn certificate_files(config: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut files = vec![
        ("upstream_client", config.upstream.cert.clone()),
        ("cloud_ca", config.upstream.ca.clone()),
        ("tablet_ca", config.pki.dir.join("ca.pem")),
    ];
    if let Some(tls) = &config.http.tls {
        files.push(("server", tls.cert.clone()));
    }
    files
}

/// The `notAfter` of the first certificate of a PEM file, in Unix seconds.
pub fn not_after(path: &Path) -> Result<i64, String> {
    let certs = labedge_service::tls::load_certs(path).map_err(|e| e.to_string())?;
    let first = <[_]>::first(&certs).ok_or_else(|| "no certificate in the file".to_owned())?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(first.as_ref()).map_err(|e| format!("unreadable certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

/// Sets the expiry gauge of each file (0 for a file that cannot be read); returns the labels of the
/// files that could not be.
pub fn refresh_certificates(files: &[(&'static str, PathBuf)]) -> Vec<(&'static str, String)> {
    let mut unreadable = Vec::new();
    for (label, path) in files {
        let value = match not_after(path) {
            Ok(seconds) => seconds as f64,
            Err(reason) => {
                unreadable.push((*label, reason));
                0.0
            }
        };
        metrics::gauge!("labedge_certificate_expiry_timestamp_seconds", "certificate" => *label).set(value);
    }
    unreadable
}

/// Exports the upstream mode as `labedge_upstream_state{state}` (1 for the current mode, 0 for the
/// others) and since when. The health module sets them at each change of mode; exported here too
/// so that a gateway that has been degraded since it started (no change yet) shows it.
pub fn refresh_upstream_state(health: &UpstreamHealth) {
    let (mode, since) = health.mode();
    for state in [UpstreamMode::Online, UpstreamMode::Failover, UpstreamMode::Degraded] {
        metrics::gauge!("labedge_upstream_state", "state" => state.as_str()).set(if state == mode { 1.0 } else { 0.0 });
    }
    metrics::gauge!("labedge_upstream_state_since_timestamp_seconds").set(since.unix_timestamp() as f64);
}

/// Starts the task that refreshes the gauges now and every [`REFRESH_EVERY`].
pub fn spawn(state: &AppState) {
    let files = certificate_files(&state.config);
    let pool = state.pool.clone();
    let health = Arc::clone(&state.upstream_health);
    tokio::spawn(async move {
        // A certificate that cannot be read is logged when it becomes so, not every minute.
        let mut warned: HashSet<&'static str> = HashSet::new();
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        loop {
            tick.tick().await;
            refresh_upstream_state(&health);
            if let Err(e) = refresh_tablets(&pool).await {
                tracing::debug!(error = format!("{e:#}"), "tablet gauges not refreshed");
            }
            let unreadable = refresh_certificates(&files);
            for (label, reason) in &unreadable {
                if warned.insert(*label) {
                    tracing::warn!(certificate = *label, error = %reason, "certificate expiry unknown: its file cannot be read");
                }
            }
            warned.retain(|label| unreadable.iter().any(|(l, _)| l == label));
        }
    });
}
