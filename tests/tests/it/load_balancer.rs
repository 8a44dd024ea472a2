//! The cloud's load balancer (requirement S-10), run for real: HAProxy with `deploy/haproxy/haproxy.cfg`
//! in front of two `api` instances, one on the cloud's primary and one on the central lab's standby.
//! Only the instance whose database is the primary gets traffic (the health check reads `/readyz`);
//! when the primary is lost and the standby promoted, traffic moves to the other instance by itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use labedge_schema::db::{self, Database};
use labedge_tests::cluster::{PgDir, deploy_script, free_port, replicated_pair, shell};
use labedge_tests::fixtures::TestPki;
use labedge_tests::spawn::{Spawned, output_text, run};
use labedge_tests::stack::ApiFile;

/// HAProxy in the foreground, killed when the test ends.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The role the answering instance reports through the balancer, or why there was none.
async fn role_through(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["role"].as_str().unwrap_or("none").to_owned())
}

/// `server STATE` for each server whose state gauge is 1, from HAProxy's Prometheus exporter.
async fn server_states(url: &str) -> Vec<String> {
    let Ok(response) = reqwest::get(url).await else {
        return Vec::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("haproxy_server_status{") && l.ends_with(" 1"))
        .filter_map(|l| {
            let label = |name: &str| {
                let start = l.find(&format!("{name}=\""))? + name.len() + 2;
                let end = start + l[start..].find('"')?;
                Some(l[start..end].to_owned())
            };
            Some(format!("{} {}", label("server")?, label("state")?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_instance_on_the_primary_gets_traffic_and_traffic_follows_a_promotion() {
    let haproxy_bin = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("haproxy is missing: apt-get install haproxy (deploy/test.sh installs it)");

    let root = PgDir::new();
    let (primary, standby) = replicated_pair(root.path(), "labedge_cloud");
    db::run_migrations(&primary.url("labedge_cloud"), Database::Cloud)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (port_1, port_2, lb_port, stats_port) = (free_port(), free_port(), free_port(), free_port());
    let cfg_1 = ApiFile {
        name: "api1",
        port: port_1,
        database_url: &primary.url("labedge_cloud"),
        upstreams: "",
        fail_fast: true,
        extra: "",
    }
    .write(dir.path());
    let cfg_2 = ApiFile {
        name: "api2",
        port: port_2,
        database_url: &standby.url("labedge_cloud"),
        upstreams: "",
        fail_fast: true,
        extra: "",
    }
    .write(dir.path());
    for cfg in [&cfg_1, &cfg_2] {
        let out = run("api", &["--config", cfg, "init-pki"], &[]);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    // The systemd unit runs `migrate` before `serve` on every instance, the standby's included.
    let out = run("api", &["--config", &cfg_2, "migrate"], &[]);
    assert!(
        out.status.success() && output_text(&out).contains("standby database"),
        "{}",
        output_text(&out)
    );
    let api_1 = Spawned::start("api", &["--config", &cfg_1, "serve"], &[], dir.path());
    let _api_2 = Spawned::start("api", &["--config", &cfg_2, "serve"], &[], dir.path());

    let config = deploy_script("haproxy/haproxy.cfg");
    let ca = dir.path().join("pki/ca.pem");
    let env = [
        ("LABEDGE_LB_BIND", format!("127.0.0.1:{lb_port}")),
        ("LABEDGE_API_1", format!("127.0.0.1:{port_1}")),
        ("LABEDGE_API_2", format!("127.0.0.1:{port_2}")),
        ("LABEDGE_API_CA", ca.display().to_string()),
        ("LABEDGE_LB_STATS", format!("127.0.0.1:{stats_port}")),
    ];
    let check = Command::new(haproxy_bin)
        .args(["-c", "-f", &config])
        .envs(env.clone())
        .output()
        .unwrap();
    assert!(check.status.success(), "haproxy -c: {}", output_text(&check));
    let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
    let _haproxy = Haproxy(
        Command::new(haproxy_bin)
            .args(["-db", "-f", &config])
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // HAProxy counts a server as up until its checks say otherwise: wait for the first verdicts
    // (after a start only; a reload keeps the states, see docs/operations.md).
    let stats_url = format!("http://127.0.0.1:{stats_port}/metrics");
    labedge_service::tls::install_crypto_provider();
    let started = Instant::now();
    loop {
        let states = server_states(&stats_url).await;
        if states.iter().any(|s| s == "api1 UP") && states.iter().any(|s| s == "api2 DOWN") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the health checks never told the instances apart: {states:?}\n{}",
            std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Both instances are up and ready, but the standby's never answers through the balancer.
    // Gateways reach the cloud through it by name, with the lab CA.
    let client = TestPki::new(&dir.path().join("pki")).client_for(None);
    let through = format!("https://localhost:{lb_port}/readyz");
    // HAProxy marks the standby DOWN also while it is still starting (connection refused), so wait
    // for it to listen before asking it directly.
    let direct_2: serde_json::Value = loop {
        match client.get(format!("https://localhost:{port_2}/readyz")).send().await {
            Ok(answer) => break answer.json().await.expect("the standby's readiness is JSON"),
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(60),
                "the standby never listened: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(direct_2["role"], "standby", "{direct_2}");
    for _ in 0..30 {
        assert_eq!(role_through(&client, &through).await.as_deref(), Ok("primary"));
    }

    // The cloud's primary and its instance are lost; the central lab's standby is promoted.
    let lost = Instant::now();
    api_1.signal("KILL");
    primary.stop("immediate");
    shell(&[&deploy_script("postgres/promote.sh"), standby.data.to_str().unwrap()]);
    while role_through(&client, &through).await.as_deref() != Ok("primary") {
        assert!(
            lost.elapsed() < Duration::from_secs(30),
            "traffic never moved to the promoted side"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let switched = lost.elapsed();
    for _ in 0..10 {
        assert_eq!(role_through(&client, &through).await.as_deref(), Ok("primary"));
    }
    let states = server_states(&stats_url).await;
    assert!(states.iter().any(|s| s == "api2 UP"), "{states:?}");
    eprintln!(
        "load balancer: traffic on the promoted side {:.1} s after the primary was lost",
        switched.as_secs_f64()
    );
}
