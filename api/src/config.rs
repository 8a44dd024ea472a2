//! The API's configuration: defaults → `/etc/labedge-api/api.toml` (or `--config`) → `LABEDGE_API_*`.

use std::path::{Path, PathBuf};

use labedge_service::config::{
    ConfigError, ConfigIssue, DatabaseConfig, ListenConfig, LogConfig, Profile, ServiceConfig,
};
use serde::{Deserialize, Serialize};

/// Where the API looks for its config file when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/labedge-api/api.toml";
/// Prefix of the environment variables (`LABEDGE_API_DATABASE__URL` sets `database.url`).
pub const ENV_PREFIX: &str = "LABEDGE_API_";

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// production, preproduction or sandbox.
    #[serde(default)]
    pub profile: Profile,
    /// The HTTPS listener (gateways connect with their client certificate).
    pub http: ListenConfig,
    /// The cloud database.
    pub database: DatabaseConfig,
    /// Log output.
    #[serde(default)]
    pub log: LogConfig,
    /// Where the cloud CA lives.
    pub pki: PkiConfig,
    /// What `provision-gateway` writes into a new gateway's configuration.
    #[serde(default)]
    pub provisioning: ProvisioningConfig,
    /// The central IT team's view of every gateway.
    #[serde(default)]
    pub central: CentralConfig,
    /// Who may scrape `/metrics`.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// The gateway-facing change feed: each lab's scope and the page sizes.
    #[serde(default)]
    pub feed: FeedConfig,
}

/// Access to the central view (`/central`): bearer tokens of the central IT team, kept as SHA-256
/// (hex). Empty: the central view answers 404.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// SHA-256 (hex) of each accepted token.
    #[serde(default)]
    pub tokens_sha256: Vec<String>,
}

/// Who may scrape `/metrics`: the supervision's networks only (the series name gateways, labs' backlogs
/// and error rates, which a lab's gateway or anyone on the VPN has no business reading). By the
/// socket's peer address: HAProxy passes TCP through.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Networks allowed to scrape (default: this machine only).
    #[serde(default = "default_monitoring_ranges")]
    pub ranges: Vec<ipnet::IpNet>,
}

fn default_monitoring_ranges() -> Vec<ipnet::IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            ranges: default_monitoring_ranges(),
        }
    }
}

/// The cloud CA.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    /// Directory of `ca.pem` and `ca.key` (created on first use, key readable by its owner only).
    pub dir: PathBuf,
    /// Validity of issued gateway certificates, in days.
    #[serde(default = "default_cert_days")]
    pub cert_days: i64,
}

fn default_cert_days() -> i64 {
    397
}

/// Upstreams a new gateway is given, in order of preference.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// The cloud API first, then the central lab's standby API over the backup VPN.
    #[serde(default)]
    pub upstreams: Vec<Upstream>,
}

/// One upstream API.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Short name shown in status and metrics (`cloud`, `central`).
    pub name: String,
    /// Base URL, `https://…`.
    pub url: String,
}

/// The change feed a gateway follows. The window decides which appointments (and through them which
/// prescriptions and patients) are in a lab's scope: see `labedge_api::feed`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Days of past appointments a lab keeps (also how long an open prescription stays in scope).
    #[serde(default = "default_window_back_days")]
    pub window_back_days: u16,
    /// Days after today whose appointments a lab keeps (the whole of the last day).
    #[serde(default = "default_window_ahead_days")]
    pub window_ahead_days: u16,
    /// The time zone (IANA name, as PostgreSQL knows it) in which "today" and "the end of a day" are
    /// taken for the window.
    #[serde(default = "default_feed_timezone")]
    pub timezone: String,
    /// Largest `limit` of a change-feed page.
    #[serde(default = "default_max_changes_page")]
    pub max_changes_page: u32,
    /// Largest `limit` of a snapshot page.
    #[serde(default = "default_max_snapshot_page")]
    pub max_snapshot_page: u32,
    /// Seconds between two runs of the horizon job (appointments entering the window as days pass).
    #[serde(default = "default_horizon_interval_s")]
    pub horizon_interval_s: u64,
}

fn default_window_back_days() -> u16 {
    30
}
fn default_window_ahead_days() -> u16 {
    3
}
fn default_feed_timezone() -> String {
    "Europe/Paris".into()
}
fn default_max_changes_page() -> u32 {
    5_000
}
fn default_max_snapshot_page() -> u32 {
    10_000
}
fn default_horizon_interval_s() -> u64 {
    600
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            window_back_days: default_window_back_days(),
            window_ahead_days: default_window_ahead_days(),
            timezone: default_feed_timezone(),
            max_changes_page: default_max_changes_page(),
            max_snapshot_page: default_max_snapshot_page(),
            horizon_interval_s: default_horizon_interval_s(),
        }
    }
}

impl FeedConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if !(1..=366).contains(&self.window_back_days) {
            issues.push(ConfigIssue::new("feed.window_back_days", "must be between 1 and 366"));
        }
        if self.window_ahead_days > 90 {
            issues.push(ConfigIssue::new("feed.window_ahead_days", "must be between 0 and 90"));
        }
        // The name reaches SQL as a bound parameter; the shape check only catches typos early
        // (PostgreSQL itself says whether it knows the zone, at the horizon job's first run).
        let zone_ok = !self.timezone.is_empty()
            && self.timezone.len() <= 64
            && self
                .timezone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
        if !zone_ok {
            issues.push(ConfigIssue::new(
                "feed.timezone",
                "must be an IANA time zone name such as Europe/Paris",
            ));
        }
        if !(1..=50_000).contains(&self.max_changes_page) {
            issues.push(ConfigIssue::new("feed.max_changes_page", "must be between 1 and 50000"));
        }
        if !(1..=50_000).contains(&self.max_snapshot_page) {
            issues.push(ConfigIssue::new(
                "feed.max_snapshot_page",
                "must be between 1 and 50000",
            ));
        }
        if !(10..=86_400).contains(&self.horizon_interval_s) {
            issues.push(ConfigIssue::new(
                "feed.horizon_interval_s",
                "must be between 10 and 86400",
            ));
        }
    }
}

impl Config {
    /// Loads and validates the configuration; with `check_files`, also checks that the files it names
    /// exist (`serve`, `check-config`), reporting every problem at once.
    pub fn load(file: Option<&Path>, check_files: bool) -> Result<Self, ConfigError> {
        Self::load_checked(file, check_files)
    }
}

impl ServiceConfig for Config {
    const SERVICE: &'static str = "api";
    const DEFAULT_FILE: &'static str = DEFAULT_CONFIG_FILE;
    const ENV_PREFIX: &'static str = ENV_PREFIX;

    /// Checks that the files the listener needs exist (`serve`, `check-config`).
    fn check_files(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        self.http.check_files("http", &mut issues);
        ConfigError::check(issues)
    }

    /// Cross-field rules; every problem is reported, each with its key.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        self.http.validate("http", self.profile, &mut issues);
        self.database.validate("database", &mut issues);
        if !(1..=825).contains(&self.pki.cert_days) {
            issues.push(ConfigIssue::new("pki.cert_days", "must be between 1 and 825"));
        }
        self.feed.validate(&mut issues);
        for (i, upstream) in self.provisioning.upstreams.iter().enumerate() {
            let https = upstream.url.starts_with("https://");
            let plain_allowed = self.profile != Profile::Production && upstream.url.starts_with("http://");
            if !(https || plain_allowed) {
                issues.push(ConfigIssue::new(
                    format!("provisioning.upstreams[{i}].url"),
                    "must be an https:// URL",
                ));
            }
            if upstream.name.is_empty() {
                issues.push(ConfigIssue::new(
                    format!("provisioning.upstreams[{i}].name"),
                    "must not be empty",
                ));
            }
        }
        ConfigError::check(issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_defaults_are_valid_and_each_bad_key_is_named() {
        let mut issues = Vec::new();
        FeedConfig::default().validate(&mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        let bad = FeedConfig {
            window_back_days: 0,
            window_ahead_days: 91,
            timezone: "Europe/Paris'; --".into(),
            max_changes_page: 0,
            max_snapshot_page: 50_001,
            horizon_interval_s: 1,
        };
        bad.validate(&mut issues);
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "feed.window_back_days",
                "feed.window_ahead_days",
                "feed.timezone",
                "feed.max_changes_page",
                "feed.max_snapshot_page",
                "feed.horizon_interval_s"
            ]
        );
    }
}
