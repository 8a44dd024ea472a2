//! The continuity plan, run for real (requirements S-9, S-10): a PostgreSQL primary (the cloud)
//! with a streaming standby (the central lab), an API instance on each, one gateway writing
//! continuously. The primary is lost; the standby is promoted with `deploy/postgres/promote.sh`;
//! the gateway fails over to the central lab's API; the old primary is rebuilt as a standby of the
//! new one with `deploy/postgres/rejoin.sh`. Every acknowledged write is present exactly once at the
//! end, and the measured failover time is printed.

use std::time::{Duration, Instant};

use labedge_schema::db::{self, Database};
use labedge_tests::cluster::{PgCluster, PgDir, deploy_script, replicated_pair, shell};
use labedge_tests::db::{collections_among, count_at as count};
use labedge_tests::stack::Stack;
use labedge_tests::tablet;
use labedge_tests::tablet::ReadJson;

/// The last `n` lines of a process's output.
fn tail(output: &str, n: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_lab_takes_over_when_the_cloud_is_lost_and_no_acknowledged_write_is_lost() {
    // The cloud's primary and the central lab's synchronous standby, set up by deploy/postgres.
    let root = PgDir::new();
    let (primary, standby) = replicated_pair(root.path(), "labedge_cloud");
    let cloud_url = primary.url("labedge_cloud");
    db::run_migrations(&cloud_url, Database::Cloud).await.unwrap();
    let central_url = standby.url("labedge_cloud");

    // An API on each side; the gateway knows both, the cloud first.
    let stack = Stack::builder()
        .cloud_database(&cloud_url)
        .central_api(&central_url)
        .start()
        .await;
    let client = stack.client.clone();
    let gw = stack.gateway_url.clone();
    let (cloud_api, central_api) = (stack.api_url.as_str(), stack.central_url.as_deref().unwrap());
    let (gateway, central_process) = (&stack.gateway, stack.central.as_ref().unwrap());
    let roles: Vec<String> = futures_roles(&client, &[cloud_api, central_api]).await;
    assert_eq!(
        roles,
        vec!["primary", "standby"],
        "the load balancer and the gateways tell them apart by /readyz"
    );

    let admin = stack.admin_session().await;
    let token = tablet::enroll_and_login(&client, &gw, &admin, stack.lab.logins.nurse.as_deref().unwrap()).await;
    let writer = tablet::Writer::start(
        client.clone(),
        gw.clone(),
        token,
        tablet::visits_at(&stack.edge_url).await,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = count(&cloud_url, "SELECT count(*) AS n FROM collections").await;
    assert!(before > 0, "the cloud receives the lab's writes");

    // The cloud's primary is lost. The central lab's standby is promoted.
    let lost_at = Instant::now();
    let lost_wall = time::OffsetDateTime::now_utc();
    primary.stop("immediate");
    shell(&[&deploy_script("postgres/promote.sh"), standby.data.to_str().unwrap()]);
    let started = Instant::now();
    let failover = loop {
        let after = count(
            &central_url,
            &format!(
                "SELECT count(*) AS n FROM applied_mutations WHERE applied_at > '{}'",
                lost_wall
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
            ),
        )
        .await;
        if after > 0 {
            break lost_at.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the gateway never failed over to the central lab\n--- gateway ---\n{}\n--- central API ---\n{}",
            tail(&gateway.output(), 40),
            tail(&central_process.output(), 20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "failover: first write applied at the central lab {:.1} s after the cloud's primary was lost",
        failover.as_secs_f64()
    );
    assert_eq!(futures_roles(&client, &[central_api]).await, vec!["primary"]);

    // Failback starts: the old primary becomes a standby of the new one.
    let old_port = primary.port;
    let old_dir = primary.data.clone();
    std::mem::forget(primary);
    shell(&[
        &deploy_script("postgres/rejoin.sh"),
        old_dir.to_str().unwrap(),
        "127.0.0.1",
        &standby.port.to_string(),
        "cloud",
        &old_port.to_string(),
    ]);
    let rejoined = PgCluster::adopt(old_dir, old_port);
    assert_eq!(
        rejoined.psql("postgres", "SELECT pg_is_in_recovery()"),
        "t",
        "the old primary is a standby now"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let acknowledged = writer.stop().await;
    let started = Instant::now();
    while count(
        &stack.edge_url,
        "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL",
    )
    .await
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the outbox did not drain to the central lab"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let among = collections_among(&acknowledged);
    let expected = acknowledged.len() as i64;
    assert!(expected > before, "writes went on through the failover");
    assert_eq!(count(&central_url, &among).await, expected, "none lost");
    assert_eq!(
        count(&central_url, "SELECT count(*) AS n FROM collections").await,
        expected,
        "none doubled"
    );
    // And the rejoined standby replays them.
    let started = Instant::now();
    while count(&rejoined.url("labedge_cloud"), "SELECT count(*) AS n FROM collections").await != expected {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the rejoined standby did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{expected} writes acknowledged; all present once on the new primary and its new standby; failover {:.1} s",
        failover.as_secs_f64()
    );
}

async fn futures_roles(client: &reqwest::Client, urls: &[&str]) -> Vec<String> {
    let mut roles = Vec::new();
    for url in urls {
        let ready: serde_json::Value = client.get(format!("{url}/readyz")).read_json().await;
        roles.push(ready["role"].as_str().unwrap_or("none").to_owned());
    }
    roles
}
