//! Crash safety of the real binaries (issue 5): the gateway is killed with SIGKILL at random moments
//! across 20 cycles while a tablet writes with retries (the same idempotency key for each retry) and
//! the relay sends to the real cloud. At the end every acknowledged write is in the cloud exactly
//! once, and nothing else is.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use labedge_api::demo::SeedArgs;
use labedge_schema::db::Database;
use labedge_tests::db::TestDb;
use labedge_tests::fixtures::TestPki;
use labedge_tests::redis::TestRedis;
use labedge_tests::spawn::{Spawned, output_text, run};
use uuid::Uuid;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<N>(&mut db.conn().await)
        .await
        .unwrap()
        .n
}

#[derive(diesel::QueryableByName)]
struct Visit {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    appointment: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    patient: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    prescription: Uuid,
}

/// A small deterministic generator, seeded from the clock (the seed is printed to replay a run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

async fn wait_healthy(client: &reqwest::Client, url: &str) {
    let started = Instant::now();
    while !client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(started.elapsed() < Duration::from_secs(30), "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_or_doubled_across_20_sigkills_of_the_gateway() {
    let cloud_db = TestDb::migrated(Database::Cloud).await;
    let summary = labedge_api::demo::seed_into(
        &mut cloud_db.conn().await,
        &SeedArgs {
            patients: 200,
            proximity_labs: 1,
            ..SeedArgs::default()
        },
    )
    .await
    .unwrap();
    let lab = summary.labs.iter().find(|l| l.kind == "proximity").unwrap().clone();
    let edge_db = TestDb::empty().await;
    let redis = TestRedis::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let api_port = free_port();
    let gw_port = free_port();
    let api_toml = dir.path().join("api.toml");
    std::fs::write(
        &api_toml,
        format!(
            "profile = \"sandbox\"\n[http]\naddr = \"127.0.0.1:{api_port}\"\nshutdown_timeout_s = 1\n\
             tls = {{ cert = \"{d}/api.pem\", key = \"{d}/api.key\", client_ca = \"{d}/pki/ca.pem\", client_auth = \"optional\" }}\n\
             [database]\nurl = \"{}\"\n[pki]\ndir = \"{d}/pki\"\n[provisioning]\nupstreams = [{{ name = \"cloud\", url = \"https://localhost:{api_port}\" }}]\n",
            cloud_db.url()
        ),
    )
    .unwrap();
    let api_cfg = api_toml.to_str().unwrap();
    let out = run("api", &["--config", api_cfg, "init-pki"], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let gw_dir = dir.path().join("gw");
    let out = run(
        "api",
        &[
            "--config",
            api_cfg,
            "provision-gateway",
            "--lab",
            &lab.code,
            "--out",
            gw_dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{gw_port}"),
            "--database-url",
            edge_db.url(),
            "--tablet-range",
            "127.0.0.0/8",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let gw_cfg = gw_dir.join("edge-gateway.toml");
    let gw_cfg = gw_cfg.to_str().unwrap().to_owned();
    let out = run("edge-gateway", &["--config", &gw_cfg, "migrate"], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let env: Vec<(&str, &str)> = vec![
        ("LABEDGE_GATEWAY_REDIS__KEY_PREFIX", redis.prefix()),
        ("LABEDGE_GATEWAY_SYNC__INTERVAL_MS", "500"),
    ];

    let _api = Spawned::start("api", &["--config", api_cfg, "serve"], &[], dir.path());
    let mut gateway = Spawned::start("edge-gateway", &["--config", &gw_cfg, "serve"], &env, dir.path());
    let pki = TestPki::new(&dir.path().join("pki"));
    let client = pki.client_for(None);
    let gw = format!("https://localhost:{gw_port}");
    wait_healthy(&client, &format!("https://localhost:{api_port}")).await;
    wait_healthy(&client, &gw).await;

    // The lab's data arrives; the admin enrolls a tablet and a nurse logs in.
    let started = Instant::now();
    let admin = loop {
        let response = client
            .post(format!("{gw}/admin/v1/login"))
            .json(&serde_json::json!({"login": lab.logins.lab_admin, "password": "labedge-admin"}))
            .send()
            .await
            .unwrap();
        if response.status().is_success() {
            break response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway never got its lab's data"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let cookie = admin.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = admin.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let code: serde_json::Value = client
        .post(format!("{gw}/admin/v1/enrollment-codes"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let enrolled: serde_json::Value = client
        .post(format!("{gw}/v1/devices/enroll"))
        .json(&serde_json::json!({"code": code["code"], "label": "Tablette"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens: serde_json::Value = client
        .post(format!("{gw}/v1/auth/login"))
        .json(&serde_json::json!({
            "device_id": enrolled["device_id"], "device_secret": enrolled["device_secret"],
            "login": lab.logins.nurse, "pin": "1234"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    // The bootstrap is complete once the checkpoint is set.
    let started = Instant::now();
    while count(&edge_db, "SELECT count(*) AS n FROM sync_checkpoints").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bootstrap did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let visits: Vec<Visit> = diesel::sql_query(
        "SELECT id AS appointment, patient_id AS patient, prescription_id AS prescription FROM appointments \
         WHERE prescription_id IS NOT NULL ORDER BY scheduled_at",
    )
    .load(&mut edge_db.conn().await)
    .await
    .unwrap();
    assert!(visits.len() >= 20);

    // The tablet writes continuously; each write is retried with its key until acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, gw, token, stop) = (client.clone(), gw.clone(), token.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0usize;
            while !AtomicBool::load(&stop, Ordering::Acquire) {
                let visit = &visits[i % visits.len()];
                i += 1;
                let id = Uuid::now_v7();
                let key = Uuid::new_v4().to_string();
                let body = serde_json::json!({
                    "id": id, "patient_id": visit.patient, "appointment_id": visit.appointment,
                    "prescription_id": visit.prescription,
                    "collected_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
                    "identity_checked": true, "identity_check_method": "health_card",
                    "tubes": [{"barcode": format!("K{}", &Uuid::new_v4().simple().to_string()[..14].to_uppercase()), "tube_type": "EDTA"}]
                });
                let sent = Instant::now();
                loop {
                    let answer = client
                        .post(format!("{gw}/v1/collections"))
                        .bearer_auth(&token)
                        .header("idempotency-key", &key)
                        .json(&body)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().as_u16() == 201 => {
                            acknowledged.push(id);
                            break;
                        }
                        Ok(r) => assert!(
                            r.status().is_server_error() || r.status().as_u16() == 409,
                            "a retry gets the stored answer, a conflict in flight, or a server still starting: {}",
                            r.status()
                        ),
                        Err(_) => {}
                    }
                    assert!(
                        sent.elapsed() < Duration::from_secs(60),
                        "a write was never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acknowledged
        })
    };

    let seed = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007).unwrap();
    eprintln!("crash test seed {seed}");
    let mut random = Lcg(seed);
    for cycle in 0..20 {
        tokio::time::sleep(Duration::from_millis(150 + random.next() % 600)).await;
        gateway.signal("KILL");
        assert!(
            gateway.wait_exit(Duration::from_secs(10)).await.is_some(),
            "cycle {cycle}: the gateway did not die"
        );
        gateway = Spawned::start("edge-gateway", &["--config", &gw_cfg, "serve"], &env, dir.path());
        wait_healthy(&client, &gw).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() >= 40,
        "the tablet kept writing: {} writes",
        acknowledged.len()
    );

    // Let the relay finish, then compare.
    let started = Instant::now();
    while count(&edge_db, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(90), "the outbox did not drain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids = acknowledged
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let expected = acknowledged.len() as i64;
    assert_eq!(
        count(
            &edge_db,
            &format!("SELECT count(*) AS n FROM collections WHERE id IN ({ids})")
        )
        .await,
        expected
    );
    assert_eq!(
        count(&edge_db, "SELECT count(*) AS n FROM collections").await,
        expected,
        "no write the tablet was not told about"
    );
    assert_eq!(
        count(&edge_db, "SELECT count(*) AS n FROM outbox").await,
        expected,
        "one outbox entry per write"
    );
    assert_eq!(
        count(
            &cloud_db,
            &format!("SELECT count(*) AS n FROM collections WHERE id IN ({ids})")
        )
        .await,
        expected,
        "none lost"
    );
    assert_eq!(
        count(&cloud_db, "SELECT count(*) AS n FROM collections").await,
        expected,
        "none doubled"
    );
    assert_eq!(
        count(&cloud_db, "SELECT count(*) AS n FROM applied_mutations").await,
        expected,
        "each mutation applied once"
    );
    assert_eq!(
        count(&cloud_db, "SELECT count(*) AS n FROM collection_tubes").await,
        expected
    );
    eprintln!(
        "{} writes acknowledged across 20 SIGKILLs; all in the cloud exactly once",
        acknowledged.len()
    );
}
