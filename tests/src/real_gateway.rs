//! The real `edge-gateway serve` binary over plain HTTP on 127.0.0.1, on the database, Redis prefix
//! and lab CA of a seeded [`TestGateway`] (whose in-process app enrolls tablets and logs staff in:
//! the binary verifies the tokens with the same key ring). For tests that need a socket: raw TCP
//! (slow clients, bodies larger than the limit), the process's memory, external fuzzers.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use labedge_edge_gateway::config::Config;
use labedge_service::config::{ListenConfig, LogFormat};

use crate::gateway::TestGateway;
use crate::spawn::Spawned;

/// A running gateway binary beside the in-process [`TestGateway`] it shares its state with.
#[derive(Debug)]
pub struct RealGateway {
    /// The in-process twin: database, Redis prefix, lab CA, enrollment and login helpers.
    pub gw: TestGateway,
    /// The process.
    pub process: Spawned,
    /// Where it listens (plain HTTP).
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The console's own listener, when the config gave it one.
    pub admin_addr: Option<SocketAddr>,
    /// The supervision listener, when the config gave it one.
    pub monitoring_addr: Option<SocketAddr>,
    /// The folder of its configuration and logs.
    pub dir: tempfile::TempDir,
}

impl RealGateway {
    /// Seeds a lab `code`, then starts the binary with the same configuration, except that it
    /// listens on a free port of 127.0.0.1 in plain HTTP, accepts tablets from 127.0.0.0/8 and runs
    /// `workers` workers; `adjust_listen` may change the listener further (timeouts, body limit).
    pub async fn start(code: &str, workers: usize, adjust_listen: impl FnOnce(&mut ListenConfig)) -> Self {
        Self::start_with(code, workers, |config| adjust_listen(&mut config.http)).await
    }

    /// As [`RealGateway::start`], with the whole configuration of the binary adjusted by `adjust`
    /// (after the plain-HTTP listener is set).
    pub async fn start_with(code: &str, workers: usize, adjust: impl FnOnce(&mut Config)) -> Self {
        labedge_service::tls::install_crypto_provider();
        let gw = TestGateway::start_with(code, |config| {
            config.access.tablet_ranges.push("127.0.0.0/8".parse().expect("net"));
        })
        .await;
        let mut config = (*gw.state.config).clone();
        config.http = ListenConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.http.workers = Some(workers);
        config.http.shutdown_timeout_s = 1;
        adjust(&mut config);
        config.log.format = LogFormat::Json;
        config.log.filter = "warn,labedge_edge_gateway=info,labedge_schema=info".into();
        let dir = tempfile::tempdir().expect("tempdir");
        // Sync and relay are off, but `serve` checks that the upstream TLS files exist.
        let upstream = crate::fixtures::TestPki::new(&dir.path().join("upstream"));
        let (cert, key) = upstream.client("upstream-client", code);
        config.upstream.ca = upstream.ca_path();
        config.upstream.cert = cert;
        config.upstream.key = key;
        let path = dir.path().join("edge-gateway.toml");
        let mut file = std::fs::File::create(&path).expect("config file");
        file.write_all(toml::to_string(&config).expect("config as TOML").as_bytes())
            .expect("write config");
        let path = path.to_str().expect("path").to_owned();
        // Secrets are redacted when a configuration is serialised: the URLs come from the environment.
        // The binary serves as the serving role, as in production (the twin stays the owner).
        let redis_url = crate::redis::server_url();
        let kek = gw.key_encryption_key();
        let database_url = gw.db.runtime_url().await;
        let env = [
            ("LABEDGE_GATEWAY_DATABASE__URL", database_url.as_str()),
            ("LABEDGE_GATEWAY_REDIS__URL", redis_url.as_str()),
            // The same KEK as the in-process twin: both open the same sealed keys.
            ("LABEDGE_GATEWAY_AUTH__KEY_ENCRYPTION_KEY", kek.as_str()),
        ];
        let mut process = Spawned::start("edge-gateway", &["--config", &path, "serve"], &env, dir.path());
        let addr = process.listening_addr("edge gateway listening").await;
        let admin_addr = match config.admin.addr {
            Some(_) => Some(process.listening_addr("admin console listening").await),
            None => None,
        };
        let monitoring_addr = match config.monitoring.addr {
            Some(_) => Some(process.listening_addr("metrics listening").await),
            None => None,
        };
        let url = format!("http://{addr}");
        let client = reqwest::Client::new();
        crate::tablet::wait_healthy(&client, &url).await;
        Self {
            gw,
            process,
            addr,
            url,
            admin_addr,
            monitoring_addr,
            dir,
        }
    }

    /// The process's resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Stops the process (SIGTERM, then waits).
    pub async fn stop(&mut self) {
        self.process.signal("TERM");
        let _ = self.process.wait_exit(Duration::from_secs(10)).await;
    }
}
