//! The API's configuration: defaults → `/etc/labedge-api/api.toml` (or `--config`) → `LABEDGE_API_*`.

use std::path::{Path, PathBuf};

use labedge_schema::runtime::config::{
    self, ConfigError, ConfigIssue, DatabaseConfig, ListenConfig, LogConfig, Profile, Sources,
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

impl Config {
    /// Loads and validates the configuration; with `check_files`, also checks that the files it names
    /// exist (`serve`, `check-config`), reporting every problem at once.
    pub fn load(file: Option<&Path>, check_files: bool) -> Result<Self, ConfigError> {
        let config: Config = config::load(&Sources {
            file,
            default_file: Path::new(DEFAULT_CONFIG_FILE),
            env_prefix: ENV_PREFIX,
        })?;
        let mut issues = config.validate().err().map(|e| e.issues).unwrap_or_default();
        if check_files {
            issues.extend(config.check_files().err().map(|e| e.issues).unwrap_or_default());
        }
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(issues.into())
        }
    }

    /// Checks that the files the listener needs exist (`serve`, `check-config`).
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        self.http.check_files("http", &mut issues);
        if issues.is_empty() { Ok(()) } else { Err(issues.into()) }
    }

    /// Cross-field rules; every problem is reported, each with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        self.http.validate("http", self.profile, &mut issues);
        self.database.validate("database", &mut issues);
        if !(1..=825).contains(&self.pki.cert_days) {
            issues.push(ConfigIssue::new("pki.cert_days", "must be between 1 and 825"));
        }
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
        if issues.is_empty() { Ok(()) } else { Err(issues.into()) }
    }
}
