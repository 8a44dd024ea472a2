//! Crash safety of the real binaries (issues 5 and 9): the gateway is killed with SIGKILL at random
//! moments — at a random time, while a write is inside its transaction, while the relay waits for
//! the cloud's answer to a batch — across at least 50 cycles (and the cloud API itself a few times,
//! mid-batch), while two tablets write with retries (the same idempotency key for each retry) and
//! the relay sends to the real cloud. At the end every acknowledged write is in the cloud exactly
//! once, and nothing else is. The long run (`deploy/test.sh --long`) goes on until at least 10,000
//! writes were acknowledged.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use labedge_api::demo::SeedArgs;
use labedge_schema::db::Database;
use labedge_tests::cluster::free_port;
use labedge_tests::db::TestDb;
use labedge_tests::fixtures::TestPki;
use labedge_tests::long_run;
use labedge_tests::redis::TestRedis;
use labedge_tests::spawn::{Spawned, output_text, run};
use labedge_tests::tablet;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_or_doubled_across_50_sigkills_of_the_gateway_and_the_cloud() {
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

    let mut api = Spawned::start("api", &["--config", api_cfg, "serve"], &[], dir.path());
    let mut gateway = Spawned::start("edge-gateway", &["--config", &gw_cfg, "serve"], &env, dir.path());
    let pki = TestPki::new(&dir.path().join("pki"));
    let client = pki.client_for(None);
    let gw = format!("https://localhost:{gw_port}");
    tablet::wait_healthy(&client, &format!("https://localhost:{api_port}")).await;
    tablet::wait_healthy(&client, &gw).await;

    // The lab's data arrives; the admin enrolls a tablet and a nurse logs in; the tablet writes.
    let admin = tablet::admin_session(&client, &gw, &lab.logins.lab_admin, "labedge-admin").await;
    let token = tablet::enroll_and_login(&client, &gw, &admin, lab.logins.nurse.as_deref().unwrap()).await;
    let visits = tablet::visits(&edge_db).await;
    assert!(visits.len() >= 20);
    // Two tablets, the second one through the visits the other way round.
    let mut reversed = visits.clone();
    reversed.reverse();
    let writers = [
        tablet::Writer::start(client.clone(), gw.clone(), token.clone(), visits),
        tablet::Writer::start(client.clone(), gw.clone(), token, reversed),
    ];

    let seed = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007).unwrap();
    eprintln!("crash test seed {seed}");
    let mut random = Lcg(seed);
    // What the gateway's backends are doing, seen from PostgreSQL: the relay holds its batch's rows
    // (`FOR UPDATE SKIP LOCKED`) in an open transaction while it waits for the cloud's answer; a
    // write inserts inside its transaction before the commit.
    let mut watch = edge_db.conn().await;
    let relay_waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state = 'idle in transaction' AND query ILIKE '%outbox%SKIP LOCKED%'";
    let write_in_transaction = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state <> 'idle' AND query ILIKE 'INSERT INTO%'";
    let wait_for = async |watch: &mut diesel_async::AsyncPgConnection, sql: &str| -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if diesel::sql_query(sql).get_result::<N>(watch).await.unwrap().n > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    };
    let min_cycles = 50;
    let target_writes = if long_run() { 10_000 } else { 0 };
    let (mut cycle, mut mid_relay, mut mid_commit, mut at_random, mut cloud_kills) = (0, 0, 0, 0, 0);
    let started = Instant::now();
    while cycle < min_cycles || count(&edge_db, "SELECT count(*) AS n FROM collections").await < target_writes {
        // Every tenth cycle the cloud API is killed too, while the relay waits for its answer when
        // that can be caught, and started again a moment later.
        if cycle % 10 == 5 {
            wait_for(&mut watch, relay_waiting).await;
            api.signal("KILL");
            assert!(
                api.wait_exit(Duration::from_secs(10)).await.is_some(),
                "the API did not die"
            );
            cloud_kills += 1;
            tokio::time::sleep(Duration::from_millis(200 + random.next() % 800)).await;
            api = Spawned::start("api", &["--config", api_cfg, "serve"], &[], dir.path());
            tablet::wait_healthy(&client, &format!("https://localhost:{api_port}")).await;
        }
        match random.next() % 3 {
            0 => {
                if wait_for(&mut watch, relay_waiting).await {
                    mid_relay += 1;
                }
            }
            1 => {
                if wait_for(&mut watch, write_in_transaction).await {
                    mid_commit += 1;
                }
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(100 + random.next() % 600)).await;
                at_random += 1;
            }
        }
        gateway.signal("KILL");
        assert!(
            gateway.wait_exit(Duration::from_secs(10)).await.is_some(),
            "cycle {cycle}: the gateway did not die"
        );
        gateway = Spawned::start("edge-gateway", &["--config", &gw_cfg, "serve"], &env, dir.path());
        tablet::wait_healthy(&client, &gw).await;
        cycle += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.stop().await);
    }
    assert!(
        acknowledged.len() >= 100.max(target_writes as usize),
        "the tablets kept writing: {} writes",
        acknowledged.len()
    );
    eprintln!(
        "{cycle} SIGKILLs of the gateway in {:?}: {mid_relay} while the relay waited for the cloud, \
         {mid_commit} while a write was in its transaction, {at_random} at a random moment; \
         {cloud_kills} SIGKILLs of the cloud API",
        started.elapsed()
    );
    // The targeted moments were reached, not just hoped for.
    assert!(
        mid_relay > 0 && mid_commit > 0,
        "kills mid-relay and mid-commit happened"
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
        "{} writes acknowledged across {cycle} SIGKILLs of the gateway and {cloud_kills} of the cloud; all in the cloud exactly once",
        acknowledged.len()
    );
}
