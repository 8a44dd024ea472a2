//! The gateway follows the cloud (issue 4): bootstrap of an empty gateway, changes within one sync
//! interval, staff deactivations, reconciliation of tampered rows, login with the cloud stopped —
//! against the real API served over TLS with the gateway's client certificate.

use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;
use labedge_edge_gateway::sync::upstream::Upstreams;
use labedge_edge_gateway::sync::{self, SyncStatus};
use labedge_schema::sync::{Checksums, Entity, digest};
use labedge_tests::cloud::TestCloud;
use labedge_tests::gateway::{Device, TestGateway};
use mobile_contracts::problem::ErrorCode;

const LAB: &str = "VILLEURBANNE";

async fn cloud_and_gateway() -> (TestCloud, TestGateway, Upstreams, labedge_api::demo::SeedSummary) {
    let (cloud, summary) = TestCloud::seeded(400, 2).await;
    let (gateway, upstreams) = cloud
        .gateway(LAB, |c| {
            c.upstream.request_timeout_ms = 10_000;
            c.sync.interval_ms = 200;
        })
        .await;
    (cloud, gateway, upstreams, summary)
}

async fn count(gw: &TestGateway, sql: &str) -> i64 {
    labedge_tests::db::count(&mut gw.db.conn().await, sql).await
}

/// The cloud's digests of the lab's scope equal the gateway's digests of its tables.
async fn assert_in_sync(gw: &TestGateway, upstreams: &Upstreams) {
    let (cloud, _) = upstreams
        .get::<Checksums>(&format!("/v1/labs/{LAB}/checksums"))
        .await
        .unwrap();
    for table in cloud.tables {
        let (local, _) = digest(
            &mut gw.db.conn().await,
            table.entity,
            &format!("FROM {} t", table.entity.table()),
            false,
        )
        .await
        .unwrap();
        assert_eq!(local, table.digest, "{} in sync", table.entity.as_str());
    }
}

async fn tablet(gw: &TestGateway, login: &str) -> (Device, mobile_contracts::TokenResponse) {
    let device = enroll_with_synced_admin(gw).await;
    let tokens = gw.login(&device, login, "1234").await;
    (device, tokens)
}

/// The synced lab admin logs in to the console and enrolls a tablet.
async fn enroll_with_synced_admin(gw: &TestGateway) -> Device {
    let admin_login: String = diesel_async::RunQueryDsl::get_result::<Login>(
        diesel::sql_query("SELECT login FROM staff WHERE role = 'lab_admin' LIMIT 1"),
        &mut gw.db.conn().await,
    )
    .await
    .unwrap()
    .login;
    let admin = gw.admin_login_as(&admin_login, "labedge-admin").await;
    gw.enroll_with(&admin, None).await
}

#[derive(diesel::QueryableByName)]
struct Login {
    #[diesel(sql_type = diesel::sql_types::Text)]
    login: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_gateway_bootstraps_its_lab_then_serves_a_cloud_change_within_one_interval() {
    let (cloud, gw, upstreams, summary) = cloud_and_gateway().await;
    assert_eq!(count(&gw, "SELECT count(*) AS n FROM patients").await, 0);

    let head = sync::bootstrap(&gw.state, &upstreams, &()).await.unwrap();
    assert!(head > 0);
    assert_eq!(sync::checkpoint(&mut gw.db.conn().await).await.unwrap(), Some(head));
    assert!(count(&gw, "SELECT count(*) AS n FROM patients").await > 50);
    assert_eq!(
        count(&gw, &format!("SELECT count(*) AS n FROM labs WHERE code = '{LAB}'")).await,
        1
    );
    assert_eq!(
        count(&gw, "SELECT count(DISTINCT lab_id) AS n FROM appointments").await,
        1,
        "only this lab's appointments"
    );
    assert_eq!(
        count(&gw, "SELECT count(DISTINCT lab_id) AS n FROM staff").await,
        1,
        "only this lab's staff"
    );
    assert_in_sync(&gw, &upstreams).await;

    // Staff credentials came with the data: a nurse of the lab logs in, offline from the cloud's view.
    let nurse = summary
        .labs
        .iter()
        .find(|l| l.code == LAB)
        .unwrap()
        .logins
        .nurse
        .clone()
        .unwrap();
    tablet(&gw, &nurse).await;

    // A change in the cloud reaches the gateway within one sync interval of the running worker.
    let worker = sync::Worker::new(gw.state.clone(), upstreams.clone());
    let status = worker.status();
    let task = tokio::spawn(worker.run());
    let patient: String = diesel_async::RunQueryDsl::get_result::<Login>(
        diesel::sql_query("SELECT id::text AS login FROM patients ORDER BY id LIMIT 1"),
        &mut gw.db.conn().await,
    )
    .await
    .unwrap()
    .login;
    cloud
        .db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE patients SET phone = '+33 6 00 00 00 42', version = version + 1 WHERE id = '{patient}'"
        ))
        .await
        .unwrap();
    let changed_at = Instant::now();
    let sql = format!("SELECT count(*) AS n FROM patients WHERE id = '{patient}' AND phone = '+33 6 00 00 00 42'");
    while count(&gw, &sql).await == 0 {
        assert!(
            changed_at.elapsed() < Duration::from_secs(10),
            "the change did not arrive: {:?}",
            status.read().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delay = changed_at.elapsed();
    assert!(
        delay < Duration::from_millis(200 + 1_000),
        "served within one interval (plus a pull): {delay:?}"
    );
    let snapshot: SyncStatus = status.read().unwrap().clone();
    assert!(snapshot.last_pull_at.is_some() && snapshot.last_error.is_none());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_member_deactivated_in_the_cloud_is_refused_after_the_next_pull() {
    let (cloud, gw, upstreams, summary) = cloud_and_gateway().await;
    sync::bootstrap(&gw.state, &upstreams, &()).await.unwrap();
    let nurse = summary
        .labs
        .iter()
        .find(|l| l.code == LAB)
        .unwrap()
        .logins
        .nurse
        .clone()
        .unwrap();
    let (_, tokens) = tablet(&gw, &nurse).await;
    gw.app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(200);
    cloud
        .db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE staff SET active = false, version = version + 1 WHERE login = '{nurse}'"
        ))
        .await
        .unwrap();
    let status = std::sync::RwLock::new(SyncStatus::default());
    sync::pull(&gw.state, &upstreams, &status).await.unwrap();
    let refused = gw
        .app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(401);
    assert_eq!(refused.problem().code, ErrorCode::InvalidToken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_repairs_rows_tampered_with_at_the_gateway() {
    let (_cloud, gw, upstreams, _) = cloud_and_gateway().await;
    sync::bootstrap(&gw.state, &upstreams, &()).await.unwrap();
    let first = sync::reconcile(&gw.state, &upstreams).await.unwrap();
    assert!(first.ok && first.tables.iter().all(|t| t.matched), "{first:?}");

    // Someone edits the gateway's database behind its back: a name, a deleted visit, an extra patient.
    gw.db
        .conn()
        .await
        .batch_execute(
            "UPDATE patients SET birth_family_name = 'TAMPERED' WHERE id = (SELECT id FROM patients ORDER BY id LIMIT 1);
             DELETE FROM appointments WHERE id = (SELECT id FROM appointments ORDER BY id LIMIT 1);
             INSERT INTO patients (id, identity_status, birth_family_name, birth_given_names, first_given_name, birth_date, sex, version)
             VALUES (gen_random_uuid(), 'provisional', 'INTRUS', 'Jean', 'Jean', '1970-01-01', 'M', 1);",
        )
        .await
        .unwrap();
    let report = sync::reconcile(&gw.state, &upstreams).await.unwrap();
    let by = |e: Entity| report.tables.iter().find(|t| t.entity == e).unwrap().clone();
    assert!(
        !by(Entity::Patient).matched && by(Entity::Patient).rows_repaired >= 2,
        "{report:?}"
    );
    assert!(!by(Entity::Appointment).matched && by(Entity::Appointment).rows_repaired >= 1);
    assert!(by(Entity::Staff).matched);
    assert!(report.ok);
    assert_eq!(
        count(
            &gw,
            "SELECT count(*) AS n FROM patients WHERE birth_family_name IN ('TAMPERED', 'INTRUS')"
        )
        .await,
        0
    );
    assert_in_sync(&gw, &upstreams).await;
    assert_eq!(
        count(
            &gw,
            "SELECT count(*) AS n FROM reconciliation_runs WHERE finished_at IS NOT NULL AND ok"
        )
        .await,
        2
    );
    let metrics = labedge_service::metrics::install().render();
    assert!(metrics.contains("labedge_reconciliation_repaired_rows"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_log_in_with_the_cloud_stopped() {
    let (cloud, gw, upstreams, summary) = cloud_and_gateway().await;
    sync::bootstrap(&gw.state, &upstreams, &()).await.unwrap();
    cloud.stop().await;
    let status = std::sync::RwLock::new(SyncStatus::default());
    assert!(
        sync::pull(&gw.state, &upstreams, &status).await.is_err(),
        "the cloud is down"
    );
    let lab = summary.labs.iter().find(|l| l.code == LAB).unwrap();
    let (_, tokens) = tablet(&gw, lab.logins.home_sampler.as_deref().unwrap()).await;
    let me: mobile_contracts::Me = gw
        .app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(200)
        .json();
    assert_eq!(me.lab.code, LAB);
}
