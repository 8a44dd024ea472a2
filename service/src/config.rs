//! Typed, layered configuration: serde defaults, then a TOML file, then environment variables.
//!
//! Each service declares its own `Config` struct (with `deny_unknown_fields`, so a typo is an error,
//! not a silently ignored key) made of the shared sections below, loads it with [`load`], and checks
//! cross-field rules in one `validate()` that reports every problem with the key it concerns.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

/// The environment a service runs in (requirement S-1).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Real patients. Strictest rules: no plain HTTP, no demo shortcuts.
    #[default]
    Production,
    /// Production-like, with anonymised or synthetic data.
    Preproduction,
    /// Integration tests and demos on synthetic data.
    Sandbox,
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "production" => Ok(Profile::Production),
            "preproduction" => Ok(Profile::Preproduction),
            "sandbox" => Ok(Profile::Sandbox),
            other => Err(format!("unknown profile {other}: production, preproduction or sandbox")),
        }
    }
}

impl Profile {
    /// The profile's name as written in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Production => "production",
            Profile::Preproduction => "preproduction",
            Profile::Sandbox => "sandbox",
        }
    }
}

/// A string that is a secret (a password, a URL with a password in it): never printed whole.
///
/// The value lives in a [`secrecy::SecretString`] (wiped from memory when dropped, read only through
/// [`ExposeSecret`]); this wrapper adds what the configuration needs on top: a redacted form that
/// keeps a URL readable but for its password, for `check-config` and `Debug`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct SecretString(secrecy::SecretString);

pub use secrecy::ExposeSecret;

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into())
    }
    /// The secret itself, for the one place that needs it (as [`ExposeSecret`], without the import).
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
    /// A printable form: URLs keep everything but their password, other secrets show nothing.
    pub fn redacted(&self) -> String {
        let value = self.expose_secret();
        redact_url(value).unwrap_or_else(|| {
            if value.is_empty() {
                String::new()
            } else {
                "<redacted>".into()
            }
        })
    }
}

impl ExposeSecret<str> for SecretString {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Two configurations are equal when their secrets are (configuration tests compare whole sections).
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({})", self.redacted())
    }
}

/// Serialising a config (for `check-config`) never writes a secret out.
impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// `scheme://user:password@host/...` → `scheme://user:***@host/...`; `None` when not such a URL.
fn redact_url(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            Some(format!("{scheme}://{masked}@{host}{tail}"))
        }
        None => Some(value.to_owned()),
    }
}

/// How a listener asks for client certificates.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate asked.
    #[default]
    None,
    /// Asked, verified when sent, not required.
    Optional,
    /// Required: a handshake without a valid client certificate fails.
    Required,
}

/// TLS material of a listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// PEM CA certificates that sign the accepted client certificates.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Whether client certificates are asked for.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// An HTTP listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Address and port to bind.
    pub addr: SocketAddr,
    /// Serve plain HTTP. Only for local demos and tests; refused in the production profile.
    #[serde(default)]
    pub plain_http: bool,
    /// TLS material; required unless `plain_http`.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// Worker threads (default: one per core).
    #[serde(default)]
    pub workers: Option<usize>,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(default = "default_shutdown_timeout_s")]
    pub shutdown_timeout_s: u64,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Time a client has to send its request head, in milliseconds (slow clients are cut off).
    #[serde(default = "default_client_request_timeout_ms")]
    pub client_request_timeout_ms: u64,
}

fn default_shutdown_timeout_s() -> u64 {
    10
}
fn default_max_body_bytes() -> usize {
    256 * 1024
}
fn default_client_request_timeout_ms() -> u64 {
    5_000
}

impl ListenConfig {
    /// A plain-HTTP listener on `addr` with defaults (tests, demos).
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            plain_http: true,
            tls: None,
            workers: None,
            shutdown_timeout_s: default_shutdown_timeout_s(),
            max_body_bytes: default_max_body_bytes(),
            client_request_timeout_ms: default_client_request_timeout_ms(),
        }
    }

    /// Checks that the TLS files exist (for `serve` and `check-config`; `init-pki` creates them).
    pub fn check_files(&self, key: &str, issues: &mut Vec<ConfigIssue>) {
        if let Some(tls) = self.tls.as_ref().filter(|_| !self.plain_http) {
            let files = [
                ("cert", Some(&tls.cert)),
                ("key", Some(&tls.key)),
                ("client_ca", tls.client_ca.as_ref()),
            ];
            for (name, path) in files {
                check_file(&format!("{key}.tls.{name}"), path, issues);
            }
        }
    }

    /// Checks the listener rules; `key` is where it sits in the config (e.g. `http`).
    pub fn validate(&self, key: &str, profile: Profile, issues: &mut Vec<ConfigIssue>) {
        match (&self.tls, self.plain_http) {
            (None, false) => issues.push(ConfigIssue::new(
                format!("{key}.tls"),
                "is required unless plain_http = true (plain HTTP is for local demos only)",
            )),
            (Some(_), true) => issues.push(ConfigIssue::new(
                format!("{key}.plain_http"),
                "cannot be true when tls is set: choose one",
            )),
            _ => {}
        }
        if self.plain_http && profile == Profile::Production {
            issues.push(ConfigIssue::new(
                format!("{key}.plain_http"),
                "is not allowed in the production profile",
            ));
        }
        if let Some(tls) = &self.tls
            && tls.client_auth != ClientAuth::None
            && tls.client_ca.is_none()
        {
            issues.push(ConfigIssue::new(
                format!("{key}.tls.client_ca"),
                "is required when client_auth is optional or required",
            ));
        }
        if self.workers == Some(0) {
            issues.push(ConfigIssue::new(format!("{key}.workers"), "must be at least 1"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            issues.push(ConfigIssue::new(
                format!("{key}.max_body_bytes"),
                "must be between 1024 and 67108864",
            ));
        }
    }
}

/// Records an issue when `path` is given and is not a file.
pub fn check_file(key: &str, path: Option<&PathBuf>, issues: &mut Vec<ConfigIssue>) {
    if let Some(path) = path
        && !path.is_file()
    {
        issues.push(ConfigIssue::new(key, format!("file {} does not exist", path.display())));
    }
}

/// The PostgreSQL database of a service.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/dbname`.
    pub url: SecretString,
    /// The URL `migrate` connects with, as the schema's owner, when the serving role of `url` must
    /// not own it (the gateway: see docs/operations.md, "Database roles"). Default: `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_url: Option<SecretString>,
    /// Pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connecting to PostgreSQL gives up after this long.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Waiting for a free pooled connection gives up after this long (the request gets a 503).
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// PostgreSQL cancels any statement running longer than this.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

fn default_max_connections() -> usize {
    16
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_acquire_timeout_ms() -> u64 {
    2_000
}
fn default_statement_timeout_ms() -> u64 {
    15_000
}

impl DatabaseConfig {
    /// The URL `migrate` connects with: `migration_url`, else `url`.
    pub fn migration_url(&self) -> &str {
        self.migration_url.as_ref().unwrap_or(&self.url).expose_secret()
    }

    /// What [`labedge_schema::db::build_pool`] needs of this section.
    pub fn pool_settings(&self) -> labedge_schema::db::PoolSettings {
        labedge_schema::db::PoolSettings {
            url: self.url.expose_secret().to_owned(),
            max_connections: self.max_connections,
            connect_timeout_ms: self.connect_timeout_ms,
            acquire_timeout_ms: self.acquire_timeout_ms,
            statement_timeout_ms: self.statement_timeout_ms,
        }
    }

    /// A config for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::new(url),
            migration_url: None,
            max_connections: default_max_connections(),
            connect_timeout_ms: default_connect_timeout_ms(),
            acquire_timeout_ms: default_acquire_timeout_ms(),
            statement_timeout_ms: default_statement_timeout_ms(),
        }
    }

    /// Checks the database rules; `key` is where it sits in the config.
    pub fn validate(&self, key: &str, issues: &mut Vec<ConfigIssue>) {
        let is_postgres = |url: &str| url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !is_postgres(self.url.expose_secret()) {
            issues.push(ConfigIssue::new(format!("{key}.url"), "must be a postgres:// URL"));
        }
        if self
            .migration_url
            .as_ref()
            .is_some_and(|url| !is_postgres(url.expose_secret()))
        {
            issues.push(ConfigIssue::new(
                format!("{key}.migration_url"),
                "must be a postgres:// URL",
            ));
        }
        if !(1..=512).contains(&self.max_connections) {
            issues.push(ConfigIssue::new(
                format!("{key}.max_connections"),
                "must be between 1 and 512",
            ));
        }
        for (name, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("acquire_timeout_ms", self.acquire_timeout_ms),
            ("statement_timeout_ms", self.statement_timeout_ms),
        ] {
            if value == 0 {
                issues.push(ConfigIssue::new(format!("{key}.{name}"), "must be greater than 0"));
            }
        }
    }
}

/// Redis: the gateway's hot cache, revocation list and rate limits. Optional at run time: the
/// gateway keeps serving from PostgreSQL when Redis is down.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db`.
    #[serde(default = "default_redis_url")]
    pub url: SecretString,
    /// Prefix of every key this service writes (several gateways, or tests, can share a server).
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
    /// Connecting gives up after this long.
    #[serde(default = "default_redis_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// A command gives up after this long, and the request falls back to PostgreSQL.
    #[serde(default = "default_redis_response_timeout_ms")]
    pub response_timeout_ms: u64,
}

fn default_redis_url() -> SecretString {
    SecretString::new("redis://127.0.0.1:6379")
}
fn default_redis_prefix() -> String {
    "labedge:".into()
}
fn default_redis_connect_timeout_ms() -> u64 {
    500
}
fn default_redis_response_timeout_ms() -> u64 {
    250
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: default_redis_url(),
            key_prefix: default_redis_prefix(),
            connect_timeout_ms: default_redis_connect_timeout_ms(),
            response_timeout_ms: default_redis_response_timeout_ms(),
        }
    }
}

impl RedisConfig {
    /// Checks the Redis rules; `key` is where it sits in the config.
    pub fn validate(&self, key: &str, issues: &mut Vec<ConfigIssue>) {
        let url = self.url.expose_secret();
        if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
            issues.push(ConfigIssue::new(
                format!("{key}.url"),
                "must be a redis://, rediss:// or unix:// URL",
            ));
        }
        if self.key_prefix.is_empty() || self.key_prefix.len() > 64 {
            issues.push(ConfigIssue::new(
                format!("{key}.key_prefix"),
                "must be 1 to 64 characters",
            ));
        }
        if self.connect_timeout_ms == 0 || self.response_timeout_ms == 0 {
            issues.push(ConfigIssue::new(
                format!("{key}.response_timeout_ms"),
                "timeouts must be greater than 0",
            ));
        }
    }
}

/// Log output.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (one object per line, for the SIEM) or `text` (for a terminal).
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,labedge_api=debug`.
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

fn default_log_filter() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            filter: default_log_filter(),
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON lines.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// One problem found in a configuration, with the key it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key, e.g. `database.url`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigIssue {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config key `{}`: {}", self.key, self.message)
    }
}

/// A configuration that cannot be used: every problem found, each naming its key.
#[derive(Debug)]
pub struct ConfigError {
    /// The problems.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for issue in &self.issues {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<Vec<ConfigIssue>> for ConfigError {
    fn from(issues: Vec<ConfigIssue>) -> Self {
        Self { issues }
    }
}

/// Where a service reads its configuration from.
#[derive(Clone, Debug)]
pub struct Sources<'a> {
    /// The file named on the command line; it must exist.
    pub file: Option<&'a Path>,
    /// The file read when none is named, if it exists (e.g. `/etc/labedge-api/api.toml`).
    pub default_file: &'a Path,
    /// Prefix of the environment variables, e.g. `LABEDGE_API_`: `LABEDGE_API_DATABASE__URL`
    /// sets `database.url` (a double underscore separates the levels).
    pub env_prefix: &'a str,
}

/// Loads defaults → file → environment into `T`. Every error names its key.
pub fn load<T: DeserializeOwned>(sources: &Sources<'_>) -> Result<T, ConfigError> {
    let mut figment = Figment::new();
    match sources.file {
        Some(path) => {
            if !path.is_file() {
                return Err(vec![ConfigIssue::new(
                    "--config",
                    format!("file {} does not exist", path.display()),
                )]
                .into());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        None => {
            if sources.default_file.is_file() {
                figment = figment.merge(Toml::file_exact(sources.default_file));
            }
        }
    }
    figment = figment.merge(Env::prefixed(sources.env_prefix).split("__").ignore(&["config"]));
    figment.extract::<T>().map_err(|error| {
        error
            .into_iter()
            .map(|e| {
                let key = if e.path.is_empty() {
                    "(root)".to_owned()
                } else {
                    e.path.join(".")
                };
                let origin = e
                    .metadata
                    .as_ref()
                    .and_then(|m| m.source.as_ref().map(|s| format!(" (from {s})")))
                    .unwrap_or_default();
                ConfigIssue::new(key, format!("{}{origin}", e.kind))
            })
            .collect::<Vec<_>>()
            .into()
    })
}

/// A service's whole configuration: where it is read from, and every rule it must pass.
pub trait ServiceConfig: DeserializeOwned + Serialize {
    /// The binary's name, as it prefixes its error messages (`api`, `edge-gateway`).
    const SERVICE: &'static str;
    /// The file read when `--config` is not given, if it exists.
    const DEFAULT_FILE: &'static str;
    /// Prefix of the environment variables (see [`Sources::env_prefix`]).
    const ENV_PREFIX: &'static str;

    /// Cross-field rules; every problem is reported, each with its key.
    fn validate(&self) -> Result<(), ConfigError>;

    /// What `serve` and `check-config` need from the machine: files, secrets from its environment.
    fn check_files(&self) -> Result<(), ConfigError>;

    /// Loads defaults → file (`file`, else [`Self::DEFAULT_FILE`]) → environment, then checks it
    /// (with `check_files`, [`Self::check_files`] too), reporting every problem at once.
    fn load_checked(file: Option<&Path>, check_files: bool) -> Result<Self, ConfigError> {
        let config: Self = load(&Sources {
            file,
            default_file: Path::new(Self::DEFAULT_FILE),
            env_prefix: Self::ENV_PREFIX,
        })?;
        let mut issues = ConfigError::issues_of(config.validate());
        if check_files {
            issues.extend(ConfigError::issues_of(config.check_files()));
        }
        ConfigError::check(issues).map(|()| config)
    }
}

impl ConfigError {
    /// The problems of a check's result (none when it passed), to gather several checks into one report.
    pub fn issues_of(result: Result<(), ConfigError>) -> Vec<ConfigIssue> {
        result.err().map(|e| e.issues).unwrap_or_default()
    }

    /// `Ok` when nothing was found, else every problem found.
    pub fn check(issues: Vec<ConfigIssue>) -> Result<(), ConfigError> {
        if issues.is_empty() { Ok(()) } else { Err(issues.into()) }
    }
}

/// Renders a config for `check-config`: TOML, with every secret redacted by its type.
pub fn render<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        let secret = SecretString::new("postgres://labedge:s3cret@db.lab:5432/edge");
        assert_eq!(secret.redacted(), "postgres://labedge:***@db.lab:5432/edge");
        assert!(!format!("{secret:?}").contains("s3cret"));
        assert_eq!(
            SecretString::new("postgres://root@127.0.0.1/x").redacted(),
            "postgres://root@127.0.0.1/x"
        );
        assert_eq!(SecretString::new("hunter2").redacted(), "<redacted>");
    }

    #[test]
    fn production_refuses_plain_http() {
        let listen = ListenConfig::plain("127.0.0.1:8080".parse().expect("addr"));
        let mut issues = Vec::new();
        listen.validate("http", Profile::Production, &mut issues);
        assert_eq!(
            issues,
            vec![ConfigIssue::new(
                "http.plain_http",
                "is not allowed in the production profile"
            )]
        );
        let mut issues = Vec::new();
        listen.validate("http", Profile::Sandbox, &mut issues);
        assert!(issues.is_empty());
    }
}
