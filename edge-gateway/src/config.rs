//! The gateway's configuration: defaults → `/etc/labedge-gateway/edge-gateway.toml` (or `--config`)
//! → `LABEDGE_GATEWAY_*` environment variables.

use std::path::{Path, PathBuf};

use labedge_schema::runtime::config::{
    self, ConfigError, ConfigIssue, DatabaseConfig, ListenConfig, LogConfig, Profile, RedisConfig, Sources,
};
use serde::{Deserialize, Serialize};

/// Where the gateway looks for its config file when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/labedge-gateway/edge-gateway.toml";
/// Prefix of the environment variables (`LABEDGE_GATEWAY_DATABASE__URL` sets `database.url`).
pub const ENV_PREFIX: &str = "LABEDGE_GATEWAY_";

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// production, preproduction or sandbox.
    #[serde(default)]
    pub profile: Profile,
    /// Code of the lab this gateway serves (e.g. `LYON-2`).
    pub lab: String,
    /// The tablet listener (VPN side).
    pub http: ListenConfig,
    /// The lab's own database.
    pub database: DatabaseConfig,
    /// The hot cache.
    #[serde(default)]
    pub redis: RedisConfig,
    /// Log output.
    #[serde(default)]
    pub log: LogConfig,
    /// The cloud API and its fallbacks.
    pub upstream: UpstreamConfig,
}

/// Upstream APIs, tried in order, over mutual TLS with the gateway's credential.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The cloud first, then the central lab's standby API over the backup VPN.
    pub endpoints: Vec<Endpoint>,
    /// PEM of the cloud CA: the only CA an upstream's certificate may chain to.
    pub ca: PathBuf,
    /// The gateway's client certificate (from `api provision-gateway`).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// A request upstream gives up after this long.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_request_timeout_ms() -> u64 {
    10_000
}

/// One upstream API.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Short name for status and metrics (`cloud`, `central`).
    pub name: String,
    /// Base URL.
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

    /// Checks that the files the listener and the upstream client need exist (`serve`, `check-config`).
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        self.http.check_files("http", &mut issues);
        for (name, path) in [
            ("ca", &self.upstream.ca),
            ("cert", &self.upstream.cert),
            ("key", &self.upstream.key),
        ] {
            config::check_file(&format!("upstream.{name}"), Some(path), &mut issues);
        }
        if issues.is_empty() { Ok(()) } else { Err(issues.into()) }
    }

    /// Cross-field rules; every problem is reported, each with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        let lab_ok = (2..=16).contains(&self.lab.len())
            && self
                .lab
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if !lab_ok {
            issues.push(ConfigIssue::new(
                "lab",
                "must be a lab code: 2 to 16 of A-Z, 0-9 and '-'",
            ));
        }
        self.http.validate("http", self.profile, &mut issues);
        self.database.validate("database", &mut issues);
        self.redis.validate("redis", &mut issues);
        self.upstream.validate(self.profile, &mut issues);
        if issues.is_empty() { Ok(()) } else { Err(issues.into()) }
    }
}

impl UpstreamConfig {
    fn validate(&self, profile: Profile, issues: &mut Vec<ConfigIssue>) {
        if self.endpoints.is_empty() {
            issues.push(ConfigIssue::new(
                "upstream.endpoints",
                "must list at least one upstream API",
            ));
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let https = endpoint.url.starts_with("https://");
            let plain_allowed = profile != Profile::Production && endpoint.url.starts_with("http://");
            if !(https || plain_allowed) {
                issues.push(ConfigIssue::new(
                    format!("upstream.endpoints[{i}].url"),
                    "must be an https:// URL",
                ));
            }
            if endpoint.name.is_empty() || self.endpoints[..i].iter().any(|e| e.name == endpoint.name) {
                issues.push(ConfigIssue::new(
                    format!("upstream.endpoints[{i}].name"),
                    "must be present and unique",
                ));
            }
        }
        if self.request_timeout_ms == 0 {
            issues.push(ConfigIssue::new(
                "upstream.request_timeout_ms",
                "must be greater than 0",
            ));
        }
    }
}
