//! A lab's gateway beside the cloud API, both as the real binaries (`api serve`, `edge-gateway
//! serve`) over HTTPS, set up as in production: a seeded cloud database, `api init-pki`,
//! `api provision-gateway` for the lab, `edge-gateway migrate`. Each process has its own metrics
//! recorder, which in-process apps (one recorder per test process) cannot show.

use std::path::PathBuf;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_api::demo::{SeedArgs, SeededLab};
use labedge_schema::db::Database;

use crate::cluster::free_port;
use crate::db::TestDb;
use crate::fixtures::TestPki;
use crate::redis::TestRedis;
use crate::spawn::{Spawned, output_text, run};
use crate::tablet;

/// How the stack is set up.
#[derive(Clone, Debug, Default)]
pub struct StackOptions {
    /// A central IT token accepted by `/central` (its SHA-256 goes into `central.tokens_sha256`).
    pub central_token: Option<String>,
    /// Extra environment of the gateway (`LABEDGE_GATEWAY_…` overrides).
    pub gateway_env: Vec<(String, String)>,
}

/// The running stack.
#[derive(Debug)]
pub struct Stack {
    /// The folder of the configurations, certificates and process logs.
    pub dir: tempfile::TempDir,
    /// The cloud's database.
    pub cloud_db: TestDb,
    /// The lab's database.
    pub edge_db: TestDb,
    /// The gateway's Redis prefix.
    pub redis: TestRedis,
    /// The seeded proximity lab the gateway serves.
    pub lab: SeededLab,
    /// The API process.
    pub api: Spawned,
    /// The gateway process.
    pub gateway: Spawned,
    /// `https://localhost:<port>` of the API.
    pub api_url: String,
    /// `https://localhost:<port>` of the gateway.
    pub gateway_url: String,
    /// A client trusting the cloud CA (which signs both servers' certificates).
    pub client: reqwest::Client,
    gateway_config: String,
    gateway_env: Vec<(String, String)>,
}

/// The demo's lab admin console password and staff PIN.
pub const ADMIN_PASSWORD: &str = "labedge-admin";

impl Stack {
    /// Seeds the cloud with one proximity lab, provisions its gateway, starts both and waits until the
    /// gateway has bootstrapped its lab (its admin can sign in).
    pub async fn start(options: StackOptions) -> Self {
        labedge_service::tls::install_crypto_provider();
        let cloud_db = TestDb::migrated(Database::Cloud).await;
        let summary = labedge_api::demo::seed_into(
            &mut AsyncPgConnection::establish(cloud_db.url())
                .await
                .expect("cloud database"),
            &SeedArgs {
                patients: 150,
                proximity_labs: 1,
                ..SeedArgs::default()
            },
        )
        .await
        .expect("seed");
        let lab = summary
            .labs
            .iter()
            .find(|l| l.kind == "proximity")
            .expect("a proximity lab")
            .clone();

        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let (api_port, gateway_port) = (free_port(), free_port());
        let central = options
            .central_token
            .as_deref()
            .map(|token| {
                use sha2::Digest;
                format!(
                    "[central]\ntokens_sha256 = [\"{}\"]\n",
                    hex::encode(sha2::Sha256::digest(token.as_bytes()))
                )
            })
            .unwrap_or_default();
        let api_config = dir.path().join("api.toml");
        std::fs::write(
            &api_config,
            format!(
                "profile = \"sandbox\"\n[http]\naddr = \"127.0.0.1:{api_port}\"\nshutdown_timeout_s = 1\n\
                 tls = {{ cert = \"{d}/api-server.pem\", key = \"{d}/api-server.key\", client_ca = \"{d}/pki/ca.pem\", client_auth = \"optional\" }}\n\
                 [database]\nurl = \"{}\"\n[pki]\ndir = \"{d}/pki\"\n\
                 [provisioning]\nupstreams = [{{ name = \"cloud\", url = \"https://localhost:{api_port}\" }}]\n{central}",
                cloud_db.url()
            ),
        )
        .expect("api.toml");
        let api_config = api_config.to_str().expect("path").to_owned();
        let out = run("api", &["--config", &api_config, "init-pki"], &[]);
        assert!(out.status.success(), "{}", output_text(&out));

        let edge_db = TestDb::empty().await;
        let redis = TestRedis::new();
        let gateway_dir = dir.path().join("gateway");
        let out = run(
            "api",
            &[
                "--config",
                &api_config,
                "provision-gateway",
                "--lab",
                &lab.code,
                "--out",
                gateway_dir.to_str().expect("path"),
                "--listen",
                &format!("127.0.0.1:{gateway_port}"),
                "--database-url",
                edge_db.url(),
                "--tablet-range",
                "127.0.0.0/8",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", output_text(&out));
        let gateway_config = gateway_dir.join("edge-gateway.toml").to_str().expect("path").to_owned();
        // As in production: `migrate` as the owner (`database.migration_url`), `serve` as a login
        // role member of `labedge_gateway_runtime`, which the migrations create.
        let out = run(
            "edge-gateway",
            &["--config", &gateway_config, "migrate"],
            &[
                ("LABEDGE_GATEWAY_DATABASE__MIGRATION_URL", edge_db.url()),
                // Not used by `migrate`: it would fail on this one.
                ("LABEDGE_GATEWAY_DATABASE__URL", "postgres://nobody@127.0.0.1:1/unused"),
            ],
        );
        assert!(out.status.success(), "{}", output_text(&out));
        let runtime_url = edge_db.runtime_url().await;

        let mut gateway_env = vec![
            ("LABEDGE_GATEWAY_DATABASE__URL".to_owned(), runtime_url),
            (
                "LABEDGE_GATEWAY_REDIS__KEY_PREFIX".to_owned(),
                redis.prefix().to_owned(),
            ),
            ("LABEDGE_GATEWAY_SYNC__INTERVAL_MS".to_owned(), "500".to_owned()),
        ];
        gateway_env.extend(options.gateway_env);
        let api = Spawned::start("api", &["--config", &api_config, "serve"], &[], dir.path());
        let gateway = start_gateway(&gateway_config, &gateway_env, dir.path());
        let client = TestPki::new(&dir.path().join("pki")).client_for(None);
        let api_url = format!("https://localhost:{api_port}");
        let gateway_url = format!("https://localhost:{gateway_port}");
        tablet::wait_healthy(&client, &api_url).await;
        tablet::wait_healthy(&client, &gateway_url).await;
        let stack = Self {
            dir,
            cloud_db,
            edge_db,
            redis,
            lab,
            api,
            gateway,
            api_url,
            gateway_url,
            client,
            gateway_config,
            gateway_env,
        };
        // The admin exists on the gateway once the bootstrap brought the lab's staff.
        stack.admin_session().await;
        stack
    }

    /// A console session of the lab's admin: (cookie, CSRF token).
    pub async fn admin_session(&self) -> (String, String) {
        tablet::admin_session(
            &self.client,
            &self.gateway_url,
            &self.lab.logins.lab_admin,
            ADMIN_PASSWORD,
        )
        .await
    }

    /// Stops the gateway with SIGTERM (waiting for it to exit) and starts it again on the same port.
    pub async fn restart_gateway(&mut self) {
        self.gateway.signal("TERM");
        self.gateway
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("the gateway stops on SIGTERM");
        self.gateway = start_gateway(&self.gateway_config, &self.gateway_env, self.dir.path());
        tablet::wait_healthy(&self.client, &self.gateway_url).await;
    }

    /// The Prometheus text of `base_url/metrics`.
    pub async fn metrics_text(&self, base_url: &str) -> String {
        let response = self
            .client
            .get(format!("{base_url}/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status().as_u16(), 200, "GET {base_url}/metrics");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
            "the exposition format's content type: {content_type}"
        );
        response.text().await.expect("metrics body")
    }

    /// The gateway's configuration file.
    pub fn gateway_config_path(&self) -> PathBuf {
        PathBuf::from(&self.gateway_config)
    }
}

fn start_gateway(config: &str, env: &[(String, String)], dir: &std::path::Path) -> Spawned {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Spawned::start("edge-gateway", &["--config", config, "serve"], &env, dir)
}
