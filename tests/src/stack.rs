//! A lab's gateway beside the cloud API, both as the real binaries (`api serve`, `edge-gateway
//! serve`) over HTTPS, set up as in production: a seeded cloud database, `api init-pki`,
//! `api provision-gateway` for the lab, `edge-gateway migrate`. Each process has its own metrics
//! recorder, which in-process apps (one recorder per test process) cannot show.
//!
//! [`Stack::builder`] sets what differs between the tests (the size of the seeded network, the
//! gateway's environment, databases of the test's own clusters, a second API for the central lab);
//! [`ApiFile`] and [`provision_args`] are the pieces the benchmark and the cluster tests share with
//! it.

use std::path::{Path, PathBuf};
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

/// The demo's lab admin console password and staff PIN.
pub const ADMIN_PASSWORD: &str = "labedge-admin";

/// An `api` configuration file `<dir>/<name>.toml`: listening on `port` with its own server
/// certificate `<dir>/<name>.pem` (which `api init-pki` issues), the PKI of `<dir>/pki`, and the
/// upstreams that the gateways it provisions get.
#[derive(Clone, Debug)]
pub struct ApiFile<'a> {
    /// The file's stem, and its server certificate's.
    pub name: &'a str,
    /// The port of 127.0.0.1 it listens on.
    pub port: u16,
    /// Its database.
    pub database_url: &'a str,
    /// The provisioned gateways' upstreams, TOML inline tables (see [`upstream`]).
    pub upstreams: &'a str,
    /// Whether it gives up on its database after 1 s (pool acquire and connect timeouts), for
    /// tests that stop that database.
    pub fail_fast: bool,
    /// Tables appended as they are (`[central]`, say).
    pub extra: &'a str,
}

impl ApiFile<'_> {
    /// The configuration's text, for files under `dir`.
    pub fn text(&self, dir: &Path) -> String {
        let d = dir.display();
        let (name, port, database_url, upstreams, extra) =
            (self.name, self.port, self.database_url, self.upstreams, self.extra);
        let timeouts = if self.fail_fast {
            "acquire_timeout_ms = 1000\nconnect_timeout_ms = 1000\n"
        } else {
            ""
        };
        format!(
            "profile = \"sandbox\"\n[http]\naddr = \"127.0.0.1:{port}\"\nshutdown_timeout_s = 1\n\
             tls = {{ cert = \"{d}/{name}.pem\", key = \"{d}/{name}.key\", client_ca = \"{d}/pki/ca.pem\", client_auth = \"optional\" }}\n\
             [database]\nurl = \"{database_url}\"\n{timeouts}\
             [pki]\ndir = \"{d}/pki\"\n[provisioning]\nupstreams = [{upstreams}]\n{extra}"
        )
    }

    /// Writes it under `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> String {
        let path = dir.join(format!("{}.toml", self.name));
        std::fs::write(&path, self.text(dir)).expect("write the api configuration");
        path.to_str().expect("path").to_owned()
    }
}

/// An upstream of the provisioned gateways, as a TOML inline table: the API `name` on `port`.
pub fn upstream(name: &str, port: u16) -> String {
    format!("{{ name = \"{name}\", url = \"https://localhost:{port}\" }}")
}

/// The arguments of `api provision-gateway` for lab `lab` into folder `out`: the gateway listens
/// on 127.0.0.1:`port`, on the database at `database_url`, and accepts tablets from 127.0.0.0/8.
pub fn provision_args(api_config: &str, lab: &str, out: &Path, port: u16, database_url: &str) -> Vec<String> {
    [
        "--config",
        api_config,
        "provision-gateway",
        "--lab",
        lab,
        "--out",
        out.to_str().expect("path"),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        database_url,
        "--tablet-range",
        "127.0.0.0/8",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// How a [`Stack`] is set up (see [`Stack::builder`]).
#[derive(Clone, Debug)]
pub struct StackBuilder {
    patients: u32,
    central_token: Option<String>,
    gateway_env: Vec<(String, String)>,
    cloud_database: Option<String>,
    central_database: Option<String>,
    edge_database: Option<String>,
}

impl Default for StackBuilder {
    fn default() -> Self {
        Self {
            patients: 150,
            central_token: None,
            gateway_env: Vec::new(),
            cloud_database: None,
            central_database: None,
            edge_database: None,
        }
    }
}

impl StackBuilder {
    /// The number of patients of the seeded network (150 unless told).
    pub fn patients(mut self, patients: u32) -> Self {
        self.patients = patients;
        self
    }

    /// A central IT token accepted by `/central` (its SHA-256 goes into `central.tokens_sha256`).
    pub fn central_token(mut self, token: &str) -> Self {
        self.central_token = Some(token.to_owned());
        self
    }

    /// An environment variable of the gateway (`LABEDGE_GATEWAY_…` overrides), after the stack's own.
    pub fn gateway_env(mut self, key: &str, value: &str) -> Self {
        self.gateway_env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A point of the console's charts every `seconds`, so that a few seconds of traffic draw lines.
    pub fn chart_interval_s(self, seconds: u32) -> Self {
        self.gateway_env("LABEDGE_GATEWAY_CONSOLE__CHART_INTERVAL_S", &seconds.to_string())
    }

    /// The cloud's database at `url` (migrated, empty: one of the test's own clusters) instead of a
    /// fresh one of the shared server. The test may stop it: the APIs give up on their database
    /// after 1 s instead of the defaults.
    pub fn cloud_database(mut self, url: &str) -> Self {
        self.cloud_database = Some(url.to_owned());
        self
    }

    /// A second API, the central lab's, on the database at `url` (the cloud's standby): the gateway
    /// gets both as upstreams, the cloud first.
    pub fn central_api(mut self, url: &str) -> Self {
        self.central_database = Some(url.to_owned());
        self
    }

    /// The gateway's database at `url` (empty: one of the test's own clusters) instead of a fresh
    /// one of the shared server. The gateway then serves as the owner of the database: the
    /// serving login role is made in the shared server only.
    pub fn edge_database(mut self, url: &str) -> Self {
        self.edge_database = Some(url.to_owned());
        self
    }

    /// Seeds the cloud with one proximity lab, provisions its gateway, starts the APIs and the
    /// gateway and waits until the gateway has bootstrapped its lab (its admin can sign in).
    pub async fn start(self) -> Stack {
        labedge_service::tls::install_crypto_provider();
        let (cloud_db, cloud_url) = match self.cloud_database.clone() {
            Some(url) => (None, url),
            None => {
                let db = TestDb::migrated(Database::Cloud).await;
                let url = db.url().to_owned();
                (Some(db), url)
            }
        };
        let summary = labedge_api::demo::seed_into(
            &mut AsyncPgConnection::establish(&cloud_url).await.expect("cloud database"),
            &SeedArgs {
                patients: self.patients,
                proximity_labs: 1,
                ..SeedArgs::default()
            },
        )
        .await
        .expect("seed");
        let lab = summary.proximity_labs().next().expect("a proximity lab").clone();

        let dir = tempfile::tempdir().expect("tempdir");
        let (api_port, gateway_port) = (free_port(), free_port());
        let central_port = self.central_database.as_ref().map(|_| free_port());
        let upstreams = std::iter::once(upstream("cloud", api_port))
            .chain(central_port.map(|port| upstream("central", port)))
            .collect::<Vec<_>>()
            .join(", ");
        let central_section = self
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
        let fail_fast = self.cloud_database.is_some();
        let api_config = ApiFile {
            name: "api",
            port: api_port,
            database_url: &cloud_url,
            upstreams: &upstreams,
            fail_fast,
            extra: &central_section,
        }
        .write(dir.path());
        let central_config = self.central_database.as_deref().zip(central_port).map(|(url, port)| {
            ApiFile {
                name: "central",
                port,
                database_url: url,
                upstreams: &upstreams,
                fail_fast,
                extra: "",
            }
            .write(dir.path())
        });
        for config in std::iter::once(&api_config).chain(&central_config) {
            let out = run("api", &["--config", config, "init-pki"], &[]);
            assert!(out.status.success(), "{}", output_text(&out));
        }

        let (edge_db, edge_url) = match self.edge_database.clone() {
            Some(url) => (None, url),
            None => {
                let db = TestDb::empty().await;
                let url = db.url().to_owned();
                (Some(db), url)
            }
        };
        let redis = TestRedis::new();
        let gateway_dir = dir.path().join("gateway");
        let args = provision_args(&api_config, &lab.code, &gateway_dir, gateway_port, &edge_url);
        let out = run("api", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        assert!(out.status.success(), "{}", output_text(&out));
        let gateway_config = gateway_dir.join("edge-gateway.toml").to_str().expect("path").to_owned();
        let mut gateway_env = Vec::new();
        if let Some(edge_db) = &edge_db {
            // As in production: `migrate` as the owner (`database.migration_url`), `serve` as a
            // login role member of `labedge_gateway_runtime`, which the migrations create.
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
            gateway_env.push(("LABEDGE_GATEWAY_DATABASE__URL".to_owned(), edge_db.runtime_url().await));
        } else {
            let out = run("edge-gateway", &["--config", &gateway_config, "migrate"], &[]);
            assert!(out.status.success(), "{}", output_text(&out));
        }
        gateway_env.push((
            "LABEDGE_GATEWAY_REDIS__KEY_PREFIX".to_owned(),
            redis.prefix().to_owned(),
        ));
        gateway_env.push(("LABEDGE_GATEWAY_SYNC__INTERVAL_MS".to_owned(), "500".to_owned()));
        gateway_env.extend(self.gateway_env);

        let api = Spawned::start("api", &["--config", &api_config, "serve"], &[], dir.path());
        let central = central_config
            .as_ref()
            .map(|config| Spawned::start("api", &["--config", config, "serve"], &[], dir.path()));
        let gateway = spawn_gateway(&gateway_config, &gateway_env, dir.path());
        let client = TestPki::new(&dir.path().join("pki")).client_for(None);
        let api_url = format!("https://localhost:{api_port}");
        let central_url = central_port.map(|port| format!("https://localhost:{port}"));
        let gateway_url = format!("https://localhost:{gateway_port}");
        for url in std::iter::once(&api_url).chain(&central_url).chain([&gateway_url]) {
            tablet::wait_healthy(&client, url).await;
        }
        let stack = Stack {
            dir,
            cloud_db,
            cloud_url,
            edge_db,
            edge_url,
            redis,
            lab,
            api,
            api_config,
            api_url,
            central,
            central_url,
            gateway,
            gateway_url,
            client,
            gateway_config,
            gateway_env,
        };
        // The admin exists on the gateway once the bootstrap brought the lab's staff.
        stack.admin_session().await;
        stack
    }
}

/// The running stack.
#[derive(Debug)]
pub struct Stack {
    /// The folder of the configurations, certificates and process logs.
    pub dir: tempfile::TempDir,
    /// The cloud's database, when the stack made it.
    pub cloud_db: Option<TestDb>,
    /// The cloud's database URL (as its owner).
    pub cloud_url: String,
    /// The lab's database, when the stack made it.
    pub edge_db: Option<TestDb>,
    /// The lab's database URL (as its owner).
    pub edge_url: String,
    /// The gateway's Redis prefix.
    pub redis: TestRedis,
    /// The seeded proximity lab the gateway serves.
    pub lab: SeededLab,
    /// The API process.
    pub api: Spawned,
    /// The API's configuration file.
    pub api_config: String,
    /// `https://localhost:<port>` of the API.
    pub api_url: String,
    /// The central lab's API process, when asked for ([`StackBuilder::central_api`]).
    pub central: Option<Spawned>,
    /// `https://localhost:<port>` of the central lab's API.
    pub central_url: Option<String>,
    /// The gateway process.
    pub gateway: Spawned,
    /// `https://localhost:<port>` of the gateway.
    pub gateway_url: String,
    /// A client trusting the cloud CA (which signs every server's certificate).
    pub client: reqwest::Client,
    /// The gateway's configuration file.
    pub gateway_config: String,
    /// The gateway's environment.
    pub gateway_env: Vec<(String, String)>,
}

impl Stack {
    /// How the stack is set up; [`StackBuilder::start`] starts it.
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
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

    /// A connection to the lab's database, as its owner.
    pub async fn edge_conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.edge_url)
            .await
            .expect("the lab's database")
    }

    /// A new API process on the API's configuration (after the test stopped the previous one).
    pub fn spawn_api(&self) -> Spawned {
        Spawned::start("api", &["--config", &self.api_config, "serve"], &[], self.dir.path())
    }

    /// A new gateway process on configuration `config`, with the stack's environment and `extra`
    /// after it (after the test stopped the previous one).
    pub fn spawn_gateway(&self, config: &str, extra: &[(&str, &str)]) -> Spawned {
        let mut env = self.gateway_env.clone();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        spawn_gateway(config, &env, self.dir.path())
    }

    /// Stops the gateway with SIGTERM (waiting for it to exit) and starts it again on the same port.
    pub async fn restart_gateway(&mut self) {
        self.gateway.signal("TERM");
        self.gateway
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("the gateway stops on SIGTERM");
        self.gateway = self.spawn_gateway(&self.gateway_config, &[]);
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

fn spawn_gateway(config: &str, env: &[(String, String)], dir: &Path) -> Spawned {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Spawned::start("edge-gateway", &["--config", config, "serve"], &env, dir)
}
