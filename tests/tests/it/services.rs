//! The real binaries: configuration errors, migrations, provisioning, HTTPS, graceful stop.

use std::path::Path;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use labedge_schema::db::Database;
use labedge_tests::db::TestDb;
use labedge_tests::fixtures::TestPki;
use labedge_tests::spawn::{Spawned, output_text, run};
use labedge_tests::tablet::ReadJson;
use mobile_contracts::ops::{DatabaseRole, Health, Readiness};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn api_toml(dir: &Path, database_url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("api.toml");
    let d = dir.display();
    write(
        &path,
        &format!(
            r#"profile = "sandbox"
[http]
addr = "127.0.0.1:0"
tls = {{ cert = "{d}/api-server.pem", key = "{d}/api-server.key", client_ca = "{d}/pki/ca.pem", client_auth = "optional" }}
[database]
url = "{database_url}"
[pki]
dir = "{d}/pki"
[provisioning]
upstreams = [{{ name = "cloud", url = "https://127.0.0.1:8443" }}, {{ name = "central", url = "https://127.0.0.1:8444" }}]
{extra}"#
        ),
    );
    path
}

#[test]
fn bad_configuration_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = |extra: &str| {
        format!(
            "profile = \"sandbox\"\n[http]\naddr = \"127.0.0.1:0\"\nplain_http = true\n[database]\nurl = \"postgres://x@127.0.0.1/x\"\n[pki]\ndir = \"{}\"\n{extra}",
            dir.path().display()
        )
    };
    // (config file, environment, the key the error must name)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (base("[databse]\nurl = \"x\"\n"), vec![], "databse"),
        (
            base("").replace("url = \"postgres", "max_connections = \"many\"\nurl = \"postgres"),
            vec![],
            "database.max_connections",
        ),
        (base("").replace("sandbox", "production"), vec![], "http.plain_http"),
        (
            base(""),
            vec![("LABEDGE_API_DATABASE__URL", "mysql://root@db/x")],
            "database.url",
        ),
        (
            base("").replace("[pki]", "[pki]\ncert_days = 0"),
            vec![],
            "pki.cert_days",
        ),
    ];
    for (i, (toml, envs, key)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        write(&path, &toml);
        let out = run("api", &["--config", path.to_str().unwrap(), "check-config"], &envs);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "case {i}: {text}");
        assert!(text.contains(key), "case {i}: the error names `{key}`: {text}");
    }
    let out = run("api", &["--config", "/nonexistent/api.toml", "serve"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(output_text(&out).contains("--config"));

    // The gateway names its own keys the same way.
    let gw = dir.path().join("gw.toml");
    write(
        &gw,
        "lab = \"lower-case\"\ntimezone = \"Europe/Atlantis\"\n[http]\naddr = \"127.0.0.1:0\"\nplain_http = true\n[database]\nurl = \"postgres://x@h/x\"\n[upstream]\nendpoints = []\nca = \"/x\"\ncert = \"/x\"\nkey = \"/x\"\n",
    );
    let out = run("edge-gateway", &["--config", gw.to_str().unwrap(), "check-config"], &[]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for key in [
        "`lab`",
        "`timezone`",
        "upstream.endpoints",
        "http.plain_http",
        "upstream.ca",
    ] {
        assert!(text.contains(key), "names {key}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_while_migrations_are_pending() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let config = api_toml(dir.path(), db.url(), "");
    let out = run("api", &["--config", config.to_str().unwrap(), "init-pki"], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let out = run("api", &["--config", config.to_str().unwrap(), "serve"], &[]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("migration(s) pending") && text.contains("api migrate"),
        "{text}"
    );

    let out = run("api", &["--config", config.to_str().unwrap(), "migrate"], &[]);
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/migrations/cloud"))
        .unwrap()
        .count();
    assert!(
        out.status.success() && output_text(&out).contains(&format!("{migrations} migration(s) applied")),
        "{}",
        output_text(&out)
    );
    let out = run("api", &["--config", config.to_str().unwrap(), "migrate"], &[]);
    assert!(output_text(&out).contains("0 migration(s) applied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_lab_runs_its_gateway_beside_the_api_over_https_and_both_stop_on_sigterm() {
    let cloud = TestDb::migrated(Database::Cloud).await;
    let edge = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let config = api_toml(dir.path(), cloud.url(), "");
    let config = config.to_str().unwrap();

    let out = run(
        "api",
        &[
            "--config",
            config,
            "init-pki",
            "--hostname",
            "localhost",
            "--hostname",
            "127.0.0.1",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    cloud
        .conn()
        .await
        .batch_execute(
            "INSERT INTO labs (id, code, name, kind) VALUES (gen_random_uuid(), 'TEST-LAB', 'Test lab', 'proximity')",
        )
        .await
        .unwrap();

    // A new lab is one command.
    let gw_dir = dir.path().join("gateway");
    let out = run(
        "api",
        &[
            "--config",
            config,
            "provision-gateway",
            "--lab",
            "TEST-LAB",
            "--out",
            gw_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            edge.url(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let gw_config = gw_dir.join("edge-gateway.toml");
    let gw_config = gw_config.to_str().unwrap();
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(gw_dir.join("upstream-client.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "private keys are readable by their owner only");

    // The credential is recorded by its fingerprint.
    let pem = std::fs::read_to_string(gw_dir.join("upstream-client.pem")).unwrap();
    let der = labedge_service::tls::parse_certs(&pem).unwrap();
    let fingerprint = labedge_service::tls::sha256_hex(&der[0]);
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count: Count = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT count(*) AS n FROM gateways g JOIN labs l ON l.id = g.lab_id WHERE l.code = 'TEST-LAB' AND g.cert_sha256 = $1")
            .bind::<diesel::sql_types::Text, _>(&fingerprint),
        &mut cloud.conn().await,
    )
    .await
    .unwrap();
    assert_eq!(count.n, 1);

    // The written configuration is valid for the gateway, and secrets are redacted when printed.
    let out = run("edge-gateway", &["--config", gw_config, "check-config"], &[]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("lab = \"TEST-LAB\""), "{text}");
    if let Some(password) = edge
        .url()
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .and_then(|(u, _)| u.split_once(':'))
        .map(|(_, p)| p)
    {
        assert!(
            !text.contains(&format!(":{password}@")),
            "the database password is redacted: {text}"
        );
    }
    let out = run("edge-gateway", &["--config", gw_config, "serve"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the gateway refuses to serve an unmigrated database"
    );
    let out = run("edge-gateway", &["--config", gw_config, "migrate"], &[]);
    assert!(out.status.success(), "{}", output_text(&out));

    let mut api = Spawned::start("api", &["--config", config, "serve"], &[], dir.path());
    let mut gateway = Spawned::start("edge-gateway", &["--config", gw_config, "serve"], &[], dir.path());
    let api_addr = api.listening_addr("api listening").await;
    let gw_addr = gateway.listening_addr("edge gateway listening").await;

    let pki = TestPki::new(&dir.path().join("pki"));
    let client = pki.client_for(None);
    let health: Health = client
        .get(format!("https://localhost:{}/healthz", api_addr.port()))
        .read_json()
        .await;
    assert_eq!(health.service, "api");
    let ready: Readiness = client
        .get(format!("https://127.0.0.1:{}/readyz", api_addr.port()))
        .read_json()
        .await;
    assert_eq!(ready.role, Some(DatabaseRole::Primary));
    let health: Health = client
        .get(format!("https://localhost:{}/healthz", gw_addr.port()))
        .read_json()
        .await;
    assert_eq!(health.service, "edge-gateway");

    // Plain HTTP on the TLS port is refused.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", gw_addr.port()))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    // Logs are JSON lines with stable fields.
    let line = api
        .log_lines()
        .into_iter()
        .find(|l| l["message"] == "api listening")
        .unwrap();
    for field in ["timestamp", "level", "service", "target", "message"] {
        assert!(line.get(field).is_some(), "field {field} in {line}");
    }
    assert_eq!(line["service"], "api");
    let gw_line = gateway
        .log_lines()
        .into_iter()
        .find(|l| l["message"] == "edge gateway listening")
        .unwrap();
    assert_eq!(gw_line["lab"], "TEST-LAB");

    for (process, workers) in [(&mut api, &["feed horizon"][..]), (&mut gateway, &["relay", "sync"])] {
        process.signal("TERM");
        let status = process
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("stops after SIGTERM");
        assert!(status.success(), "graceful stop exits 0: {status}");
        // The background workers are stopped by the service itself, after the HTTP drain, and each
        // one saw the signal in time.
        let lines = process.log_lines();
        let stopped = lines
            .iter()
            .position(|l| l["message"] == "background workers stopped")
            .unwrap_or_else(|| panic!("the workers' stop is logged:\n{}", process.output()));
        let line = &lines[stopped];
        for worker in workers {
            assert!(line["workers"].as_str().unwrap().contains(worker), "{worker} in {line}");
        }
        assert_eq!(
            (line["late"].as_u64(), line["panicked"].as_u64()),
            (Some(0), Some(0)),
            "{line}"
        );
    }
    let drained = gateway
        .log_lines()
        .iter()
        .position(|l| l["message"] == "drained: no new connections; in-flight requests finishing");
    let stopped = gateway
        .log_lines()
        .iter()
        .position(|l| l["message"] == "background workers stopped");
    assert!(drained.is_some() && drained < stopped, "the HTTP drain comes first");
}
