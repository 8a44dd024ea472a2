//! The gateway's configuration: defaults → `/etc/labedge-gateway/edge-gateway.toml` (or `--config`)
//! → `LABEDGE_GATEWAY_*` environment variables.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use labedge_service::config::{
    self, ConfigError, ConfigIssue, DatabaseConfig, ListenConfig, LogConfig, Profile, RedisConfig, SecretString,
    ServiceConfig,
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
    /// The lab's time zone (IANA name, as PostgreSQL knows it): what "today" means for rounds.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The tablet listener (VPN side).
    pub http: ListenConfig,
    /// The admin console's own listener (the lab's management network).
    #[serde(default)]
    pub admin: SideListener,
    /// The supervision listener for `/metrics`.
    #[serde(default)]
    pub monitoring: SideListener,
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
    /// Which networks may reach which routes.
    #[serde(default)]
    pub access: AccessConfig,
    /// Tokens, sessions, lockouts and rate limits.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The lab's own CA, which signs its tablets' client certificates.
    #[serde(default)]
    pub pki: PkiConfig,
    /// Following the cloud's change feed.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Sending the outbox upstream.
    #[serde(default)]
    pub relay: RelayConfig,
    /// The audit log of patient data.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The admin console.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Stopping on SIGTERM (a restart, an upgrade).
    #[serde(default)]
    pub shutdown: ShutdownConfig,
}

/// A listener beside the tablet one, sharing its TLS material and limits. With `addr` set, its routes
/// (the console, or `/metrics`) leave the tablet listener altogether, so that no path trick on the
/// tablets' VPN can reach them; without it (local tests and demos only: refused in the production
/// profile) they stay on the tablet listener behind the address gate.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SideListener {
    /// Address and port to bind (port 0 picks a free one).
    #[serde(default)]
    pub addr: Option<std::net::SocketAddr>,
}

/// How the gateway stops on SIGTERM or SIGINT: it first reports itself not ready (and closes
/// keep-alive connections after their next answer) for `drain_delay_ms`, while still serving, so that
/// whatever watches `/readyz` stops sending it traffic; only then does it stop accepting connections
/// and give in-flight requests `http.shutdown_timeout_s` to finish.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long the gateway keeps serving, not ready, before it stops accepting, in milliseconds.
    #[serde(default = "default_drain_delay_ms")]
    pub drain_delay_ms: u64,
}

fn default_drain_delay_ms() -> u64 {
    2_000
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_delay_ms: default_drain_delay_ms(),
        }
    }
}

/// The audit log's retention and checkpoints.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Months an audit record is kept; older records are purged, the chain stays verifiable.
    #[serde(default = "default_retention_months")]
    pub retention_months: u32,
    /// Minutes between two signed checkpoints of the chain uploaded to the cloud (1 to 60; one is also
    /// taken as soon as an upstream is back after an outage). What is chained after the last one is
    /// what a rewrite of the database could still hide, hence the short default.
    #[serde(default = "default_checkpoint_minutes")]
    pub checkpoint_interval_minutes: u64,
}

fn default_retention_months() -> u32 {
    12
}
fn default_checkpoint_minutes() -> u64 {
    5
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_months: default_retention_months(),
            checkpoint_interval_minutes: default_checkpoint_minutes(),
        }
    }
}

/// The admin console.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Seconds between two points of the console's charts (six hours of them are kept).
    #[serde(default = "default_chart_interval")]
    pub chart_interval_s: u64,
    /// A path on the disk that holds the lab's database: the status shows its free space and the
    /// days of autonomy it leaves at the database's growth.
    #[serde(default = "default_database_disk")]
    pub database_disk: PathBuf,
}

fn default_database_disk() -> PathBuf {
    PathBuf::from("/var/lib/postgresql")
}

fn default_chart_interval() -> u64 {
    30
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            chart_interval_s: default_chart_interval(),
            database_disk: default_database_disk(),
        }
    }
}

/// How the relay sends the outbox.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Whether the relay runs (tests drive it themselves).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Mutations per batch.
    #[serde(default = "default_relay_batch")]
    pub batch_size: u32,
    /// How long the relay sleeps when the outbox is empty (a write wakes it at once), in milliseconds.
    #[serde(default = "default_relay_idle")]
    pub idle_interval_ms: u64,
}

fn default_relay_batch() -> u32 {
    500
}
fn default_relay_idle() -> u64 {
    1_000
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: default_relay_batch(),
            idle_interval_ms: default_relay_idle(),
        }
    }
}

fn default_timezone() -> String {
    "Europe/Paris".into()
}

/// How the gateway follows the cloud.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Whether the sync worker runs (tests and the command-line bootstrap turn it off).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pause between two pulls of the change feed when it had nothing more, in milliseconds.
    #[serde(default = "default_sync_interval")]
    pub interval_ms: u64,
    /// Changes asked per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Rows asked per snapshot page during a bootstrap.
    #[serde(default = "default_snapshot_page_size")]
    pub snapshot_page_size: u32,
    /// Local time (HH:MM, in `timezone`) of the nightly reconciliation.
    #[serde(default = "default_reconcile_at")]
    pub reconcile_at: String,
}

fn default_true() -> bool {
    true
}
fn default_sync_interval() -> u64 {
    2_000
}
fn default_page_size() -> u32 {
    500
}
fn default_snapshot_page_size() -> u32 {
    2_000
}
fn default_reconcile_at() -> String {
    "03:30".into()
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: default_sync_interval(),
            page_size: default_page_size(),
            snapshot_page_size: default_snapshot_page_size(),
            reconcile_at: default_reconcile_at(),
        }
    }
}

impl SyncConfig {
    /// The reconciliation time as (hour, minute).
    pub fn reconcile_time(&self) -> Option<(u8, u8)> {
        let (h, m) = self.reconcile_at.split_once(':')?;
        let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        (h < 24 && m < 60).then_some((h, m))
    }
}

/// Network ranges allowed per kind of route. The peer is the socket's address; `X-Forwarded-For`
/// is read only when the peer is a trusted proxy.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// The tablets' VPN: the `/v1` routes.
    #[serde(default = "default_tablet_ranges")]
    pub tablet_ranges: Vec<IpNet>,
    /// The lab's own network: the admin console (`/admin`).
    #[serde(default = "default_local_ranges")]
    pub admin_ranges: Vec<IpNet>,
    /// Supervision: `/metrics` (and the health routes, which tablets and admins may call too).
    #[serde(default = "default_local_ranges")]
    pub monitoring_ranges: Vec<IpNet>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
}

fn default_tablet_ranges() -> Vec<IpNet> {
    vec![net("10.8.0.0/16")]
}
fn default_local_ranges() -> Vec<IpNet> {
    vec![net("127.0.0.0/8"), net("::1/128")]
}
fn net(text: &str) -> IpNet {
    text.parse().unwrap_or(IpNet::V4(ipnet::Ipv4Net::default()))
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            tablet_ranges: default_tablet_ranges(),
            admin_ranges: default_local_ranges(),
            monitoring_ranges: default_local_ranges(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Authentication settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of an access token, in seconds.
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl_s: u64,
    /// Lifetime of a refresh token, in seconds (never beyond the offline grace bound).
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl_s: u64,
    /// Hours after a PIN login when the staff member must log in with the PIN again.
    #[serde(default = "default_offline_grace")]
    pub offline_grace_h: u64,
    /// Clock tolerance when checking `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// Failed logins of one login on one device (PIN) or from one address (console) before that
    /// pair is locked out. A login is never locked lab-wide (see `auth::lockout`).
    #[serde(default = "default_max_failures_device")]
    pub max_failures_per_device: u32,
    /// How long the first lockout lasts, in minutes (and how long failures are remembered); each
    /// further lockout in a row lasts twice as long, up to `max_lockout_minutes`.
    #[serde(default = "default_lockout")]
    pub lockout_minutes: u64,
    /// The longest lockout, in minutes.
    #[serde(default = "default_max_lockout")]
    pub max_lockout_minutes: u64,
    /// Login, refresh and enrollment attempts allowed per device per minute.
    #[serde(default = "default_rate_device")]
    pub attempts_per_minute_per_device: u32,
    /// Login, refresh and enrollment attempts allowed per source address per minute.
    #[serde(default = "default_rate_address")]
    pub attempts_per_minute_per_address: u32,
    /// Lifetime of an enrollment code, in minutes.
    #[serde(default = "default_enrollment_ttl")]
    pub enrollment_code_ttl_minutes: u64,
    /// Lifetime of a PIN reset code a lab admin makes for a staff member, in minutes.
    #[serde(default = "default_pin_reset_ttl")]
    pub pin_reset_code_ttl_minutes: u64,
    /// Lifetime of an admin console session, in minutes.
    #[serde(default = "default_admin_session")]
    pub admin_session_minutes: u64,
    /// Validity of a tablet's client certificate, in days.
    #[serde(default = "default_device_cert_days")]
    pub device_cert_days: i64,
    /// The key-encryption key that seals the token signing keys in the database: 32 random bytes in
    /// base64 (`openssl rand -base64 32`). A secret, set in the environment file
    /// (`LABEDGE_GATEWAY_AUTH__KEY_ENCRYPTION_KEY`); `serve` refuses to start without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_encryption_key: Option<SecretString>,
}

fn default_access_ttl() -> u64 {
    900
}
fn default_refresh_ttl() -> u64 {
    12 * 3600
}
fn default_offline_grace() -> u64 {
    48
}
fn default_leeway() -> u64 {
    30
}
fn default_max_failures_device() -> u32 {
    5
}
fn default_max_lockout() -> u64 {
    240
}
fn default_lockout() -> u64 {
    15
}
fn default_rate_device() -> u32 {
    20
}
fn default_rate_address() -> u32 {
    60
}
fn default_enrollment_ttl() -> u64 {
    10
}
fn default_pin_reset_ttl() -> u64 {
    30
}
fn default_admin_session() -> u64 {
    8 * 60
}
fn default_device_cert_days() -> i64 {
    365
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_s: default_access_ttl(),
            refresh_token_ttl_s: default_refresh_ttl(),
            offline_grace_h: default_offline_grace(),
            leeway_s: default_leeway(),
            max_failures_per_device: default_max_failures_device(),
            max_lockout_minutes: default_max_lockout(),
            lockout_minutes: default_lockout(),
            attempts_per_minute_per_device: default_rate_device(),
            attempts_per_minute_per_address: default_rate_address(),
            enrollment_code_ttl_minutes: default_enrollment_ttl(),
            pin_reset_code_ttl_minutes: default_pin_reset_ttl(),
            admin_session_minutes: default_admin_session(),
            device_cert_days: default_device_cert_days(),
            key_encryption_key: None,
        }
    }
}

/// The lab's CA for tablet certificates.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    /// Directory of `ca.pem` and `ca.key`, created at the first start. When the listener has TLS,
    /// tablets may present a certificate from this CA (mutual TLS, optional).
    #[serde(default = "default_pki_dir")]
    pub dir: PathBuf,
}

fn default_pki_dir() -> PathBuf {
    PathBuf::from("/var/lib/labedge-gateway/pki")
}

impl Default for PkiConfig {
    fn default() -> Self {
        Self { dir: default_pki_dir() }
    }
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
    /// exist and that the key-encryption key is set (`serve`, `check-config`), reporting every problem
    /// at once.
    pub fn load(file: Option<&Path>, check_files: bool) -> Result<Self, ConfigError> {
        Self::load_checked(file, check_files)
    }
}

impl ServiceConfig for Config {
    const SERVICE: &'static str = "edge-gateway";
    const DEFAULT_FILE: &'static str = DEFAULT_CONFIG_FILE;
    const ENV_PREFIX: &'static str = ENV_PREFIX;

    /// Checks that the files the listener and the upstream client need exist, and the key-encryption
    /// key (`serve`, `check-config`).
    fn check_files(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        self.http.check_files("http", &mut issues);
        for (name, path) in [
            ("ca", &self.upstream.ca),
            ("cert", &self.upstream.cert),
            ("key", &self.upstream.key),
        ] {
            config::check_file(&format!("upstream.{name}"), Some(path), &mut issues);
        }
        // Like the files, a secret that comes from the server's environment file.
        issues.extend(crate::auth::keys::missing_kek(&self.auth));
        ConfigError::check(issues)
    }

    /// Cross-field rules; every problem is reported, each with its key.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        self.validate_identity(&mut issues);
        self.validate_listeners(&mut issues);
        self.database.validate("database", &mut issues);
        self.redis.validate("redis", &mut issues);
        self.upstream.validate(self.profile, &mut issues);
        self.auth.validate(&mut issues);
        self.validate_periods(&mut issues);
        self.validate_site(&mut issues);
        ConfigError::check(issues)
    }
}

/// The steps of [`ServiceConfig::validate`], one group of keys each.
impl Config {
    /// The lab's code.
    fn validate_identity(&self, issues: &mut Vec<ConfigIssue>) {
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
    }

    /// The lab's time zone and the tablets' networks.
    fn validate_site(&self, issues: &mut Vec<ConfigIssue>) {
        // The zone is looked up where the gateway will use it (the slots' grid), in the system's tz
        // database, so that a name PostgreSQL and jiff would not both know stops the start.
        if self.timezone.is_empty() || self.timezone.len() > 64 || jiff::tz::TimeZone::get(&self.timezone).is_err() {
            issues.push(ConfigIssue::new(
                "timezone",
                "must be an IANA time zone name of the system's tz database (tzdata), such as Europe/Paris",
            ));
        }
        if self.access.tablet_ranges.is_empty() {
            issues.push(ConfigIssue::new(
                "access.tablet_ranges",
                "must list at least one network (the tablets' VPN)",
            ));
        }
    }

    /// The tablet, console and supervision listeners.
    fn validate_listeners(&self, issues: &mut Vec<ConfigIssue>) {
        self.http.validate("http", self.profile, issues);
        if self.profile == Profile::Production {
            for (key, side) in [("admin.addr", &self.admin), ("monitoring.addr", &self.monitoring)] {
                if side.addr.is_none() {
                    issues.push(ConfigIssue::new(
                        key,
                        "is required in production: the console and /metrics get listeners of their own",
                    ));
                }
            }
        }
        let addrs = [Some(self.http.addr), self.admin.addr, self.monitoring.addr];
        let fixed: Vec<_> = addrs.iter().flatten().filter(|a| a.port() != 0).collect();
        if (1..fixed.len()).any(|i| fixed[..i].contains(&fixed[i])) {
            issues.push(ConfigIssue::new(
                "admin.addr",
                "http.addr, admin.addr and monitoring.addr must differ",
            ));
        }
    }

    /// The sync, console, audit and relay periods and sizes.
    fn validate_periods(&self, issues: &mut Vec<ConfigIssue>) {
        if self.sync.reconcile_time().is_none() {
            issues.push(ConfigIssue::new("sync.reconcile_at", "must be a time HH:MM"));
        }
        if !(100..=3_600_000).contains(&self.sync.interval_ms) {
            issues.push(ConfigIssue::new("sync.interval_ms", "must be between 100 and 3600000"));
        }
        if !(1..=5_000).contains(&self.sync.page_size) || !(1..=10_000).contains(&self.sync.snapshot_page_size) {
            issues.push(ConfigIssue::new(
                "sync.page_size",
                "page sizes must be 1 to 5000 (snapshot: 10000)",
            ));
        }
        if !(1..=300).contains(&self.console.chart_interval_s) {
            issues.push(ConfigIssue::new(
                "console.chart_interval_s",
                "must be between 1 and 300",
            ));
        }
        if !(1..=120).contains(&self.audit.retention_months) {
            issues.push(ConfigIssue::new("audit.retention_months", "must be between 1 and 120"));
        }
        if !(1..=60).contains(&self.audit.checkpoint_interval_minutes) {
            issues.push(ConfigIssue::new(
                "audit.checkpoint_interval_minutes",
                "must be between 1 and 60 (at least hourly)",
            ));
        }
        if !(1..=5_000).contains(&self.relay.batch_size) {
            issues.push(ConfigIssue::new(
                "relay.batch_size",
                "must be between 1 and 5000 (the cloud's limit)",
            ));
        }
        if !(10..=60_000).contains(&self.relay.idle_interval_ms) {
            issues.push(ConfigIssue::new(
                "relay.idle_interval_ms",
                "must be between 10 and 60000",
            ));
        }
    }
}

impl AuthConfig {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let mut check = |key: &str, ok: bool, message: &str| {
            if !ok {
                issues.push(ConfigIssue::new(format!("auth.{key}"), message));
            }
        };
        check(
            "access_token_ttl_s",
            (60..=3600).contains(&self.access_token_ttl_s),
            "must be between 60 and 3600",
        );
        check(
            "offline_grace_h",
            (1..=168).contains(&self.offline_grace_h),
            "must be between 1 and 168",
        );
        check(
            "refresh_token_ttl_s",
            self.refresh_token_ttl_s >= self.access_token_ttl_s
                && self.refresh_token_ttl_s <= self.offline_grace_h * 3600,
            "must be between access_token_ttl_s and the offline grace bound",
        );
        check("leeway_s", self.leeway_s <= 120, "must be at most 120");
        check(
            "max_failures_per_device",
            self.max_failures_per_device >= 1,
            "must be at least 1",
        );
        check("lockout_minutes", self.lockout_minutes >= 1, "must be at least 1");
        check(
            "max_lockout_minutes",
            self.max_lockout_minutes >= self.lockout_minutes && self.max_lockout_minutes <= 7 * 24 * 60,
            "must be between lockout_minutes and a week (10080)",
        );
        check(
            "attempts_per_minute_per_device",
            self.attempts_per_minute_per_device >= 1,
            "must be at least 1",
        );
        check(
            "attempts_per_minute_per_address",
            self.attempts_per_minute_per_address >= 1,
            "must be at least 1",
        );
        check(
            "enrollment_code_ttl_minutes",
            (1..=1440).contains(&self.enrollment_code_ttl_minutes),
            "must be between 1 and 1440",
        );
        check(
            "pin_reset_code_ttl_minutes",
            (1..=1440).contains(&self.pin_reset_code_ttl_minutes),
            "must be between 1 and 1440",
        );
        check(
            "admin_session_minutes",
            (5..=1440).contains(&self.admin_session_minutes),
            "must be between 5 and 1440",
        );
        check(
            "device_cert_days",
            (1..=825).contains(&self.device_cert_days),
            "must be between 1 and 825",
        );
        if let Some(kek) = &self.key_encryption_key
            && let Err(message) = crate::auth::keys::Kek::from_base64(kek.expose_secret())
        {
            issues.push(ConfigIssue::new(crate::auth::keys::KEK_CONFIG_KEY, message));
        }
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
