//! The relay (issue 5): writes acknowledged while the cloud is down, drained exactly once when it
//! returns; slow, failing and throttling upstreams; a half-rejected batch; failover and return; a
//! standby never written to; late commits not left behind; conflicts recorded, not overwritten.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::config::{Endpoint, UpstreamConfig};
use labedge_edge_gateway::relay::{Pass, Relay};
use labedge_edge_gateway::sync::health::UpstreamMode;
use labedge_edge_gateway::sync::upstream::Upstreams;
use labedge_edge_gateway::sync::{self, SyncStatus};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_service::workers::{Stopped, Workers};
use labedge_tests::cloud::TestCloud;
use labedge_tests::db::{collections_among, count};
use labedge_tests::fake_upstream::{Behaviour, FakeUpstream};
use labedge_tests::fixtures::TestPki;
use labedge_tests::gateway::TestGateway;
use uuid::Uuid;

pub(crate) struct Setup {
    pub(crate) gw: TestGateway,
    pub(crate) upstreams: Upstreams,
    _pki_dir: tempfile::TempDir,
    /// The folder of the fake upstream's PKI, when [`towards_a_fake`] made it.
    _fake_pki_dir: Option<tempfile::TempDir>,
}

/// A fake upstream, and a gateway whose only upstream it is (`timeout_ms` per request).
pub(crate) async fn towards_a_fake(timeout_ms: u64) -> (FakeUpstream, Setup) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let fake = FakeUpstream::start(&pki, "fake").await;
    let mut setup = gateway_towards(&pki, &[fake.url()], timeout_ms).await;
    setup._fake_pki_dir = Some(dir);
    (fake, setup)
}

/// A gateway whose upstreams are `urls`, with a credential of `pki`.
async fn gateway_towards(pki: &TestPki, urls: &[String], timeout_ms: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.client(&format!("gw-{}", Uuid::new_v4().simple()), "TEST-LAB");
    let endpoints: Vec<Endpoint> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| Endpoint {
            name: format!("up{i}"),
            url: url.clone(),
        })
        .collect();
    let ca = pki.ca_path();
    let gw = TestGateway::start_with("TEST-LAB", |c| {
        c.upstream = UpstreamConfig {
            endpoints,
            ca,
            cert,
            key,
            request_timeout_ms: timeout_ms,
        };
        c.relay.batch_size = 50;
    })
    .await;
    let upstreams = Upstreams::from_config(&gw.state.config.upstream, Arc::clone(&gw.state.upstream_health)).unwrap();
    Setup {
        gw,
        upstreams,
        _pki_dir: dir,
        _fake_pki_dir: None,
    }
}

/// Queues a collection (record `collection:<id>`) or an appointment change (record
/// `appointment:<record>`) directly in the outbox, as the write path does.
pub(crate) async fn queue(gw: &TestGateway, record: Option<Uuid>) -> Uuid {
    let mutation_id = Uuid::now_v7();
    let op: RelayedOp = match record {
        None => serde_json::from_value(serde_json::json!({
            "kind": "collection.create",
            "collection": {
                "id": Uuid::now_v7(), "patient_id": Uuid::now_v7(), "prescription_id": Uuid::now_v7(),
                "collected_at": "2026-11-28T08:00:00Z", "identity_checked": true, "identity_check_method": "id_document",
                "tubes": [{"barcode": format!("BC{}", &Uuid::new_v4().simple().to_string()[..10]), "tube_type": "EDTA"}]
            }
        }))
        .unwrap(),
        Some(appointment) => serde_json::from_value(serde_json::json!({
            "kind": "appointment.update", "appointment_id": appointment, "if_version": 1,
            "patch": {"status": "checked_in"}
        }))
        .unwrap(),
    };
    let mutation = RelayedMutation {
        mutation_id,
        recorded_at: time::OffsetDateTime::now_utc(),
        staff_id: Some(Uuid::now_v7()),
        device_id: Some(Uuid::now_v7()),
        op,
    };
    let payload = serde_json::to_string(&mutation).unwrap().replace('\'', "''");
    gw.db
        .conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO outbox (mutation_id, lane, kind, entity_key, payload) VALUES ('{mutation_id}', {}, '{}', '{}', '{payload}')",
            mutation.op.lane(),
            mutation.op.kind(),
            mutation.op.entity_key()
        ))
        .await
        .unwrap();
    mutation_id
}

async fn pending(gw: &TestGateway) -> i64 {
    count(
        &mut gw.db.conn().await,
        "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL",
    )
    .await
}

/// Passes until the outbox is empty (or `max` passes); a failed pass is retried (as the relay's
/// loop does, without its backoff).
async fn drain(relay: &Relay, max: usize) {
    let mut last_error = None;
    for _ in 0..max {
        match relay.pass().await {
            Ok(Pass::Idle) => return,
            Ok(Pass::Sent(_) | Pass::Busy) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    panic!("the outbox did not drain in {max} passes (last error: {last_error:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_slow_upstreams_are_retried_and_nothing_is_sent_twice() {
    let (fake, setup) = towards_a_fake(1_000).await;
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());
    for _ in 0..10 {
        queue(&setup.gw, None).await;
    }

    // 500: nothing is marked sent, attempts are counted, the upstream's circuit opens.
    fake.set(Behaviour::Status(500, None));
    for _ in 0..3 {
        assert!(relay.pass().await.is_err());
    }
    assert_eq!(pending(&setup.gw).await, 10);
    assert_eq!(
        count(
            &mut setup.gw.db.conn().await,
            "SELECT min(attempts)::bigint AS n FROM outbox"
        )
        .await,
        3
    );
    assert_eq!(setup.gw.state.upstream_health.mode().0, UpstreamMode::Degraded);
    let error = relay.pass().await.unwrap_err();
    assert!(
        error.to_string().contains("resting"),
        "the open circuit spares the upstream: {error}"
    );

    // Slow beyond the request timeout: a failure too (after the circuit's rest).
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    fake.set(Behaviour::Slow(Duration::from_secs(3)));
    assert!(relay.pass().await.is_err());
    assert_eq!(pending(&setup.gw).await, 10);

    // Back to normal: everything is sent, once, even what the slow upstream may have applied.
    tokio::time::sleep(Duration::from_millis(10_100)).await;
    fake.set(Behaviour::Accept);
    drain(&relay, 10).await;
    assert_eq!(pending(&setup.gw).await, 0);
    let (applied, twice) = fake.applied();
    assert_eq!(applied, 10);
    assert!(!twice, "no mutation applied twice");
    assert_eq!(setup.gw.state.upstream_health.mode().0, UpstreamMode::Online);
    fake.stop().await;
}

/// Issue 16, item 4: after an outage the relay tries as soon as an upstream is ready again, not at
/// the end of its backoff (15–30 s after a long outage) nor of its circuit's rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_relay_waits_for_the_upstream_to_be_ready_not_for_its_backoff() {
    let (fake, setup) = towards_a_fake(1_000).await;
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());
    queue(&setup.gw, None).await;

    // An upstream that answers 500 to batches but is ready: not an outage, the backoff is kept
    // whole (no retry storm against a failing cloud).
    fake.set(Behaviour::Status(500, None));
    assert!(relay.pass().await.is_err());
    let started = Instant::now();
    assert!(!setup.upstreams.wait_until_ready(Duration::from_millis(800)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );

    // An outage: batches fail and no ready primary answers (a standby's `/readyz`); the failures
    // open the circuit.
    fake.set(Behaviour::Status(503, None));
    fake.set_primary(false);
    for _ in 0..3 {
        assert!(relay.pass().await.is_err());
    }
    assert_eq!(setup.gw.state.upstream_health.mode().0, UpstreamMode::Degraded);
    let upstreams = setup.upstreams.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        (
            upstreams.wait_until_ready(Duration::from_secs(60)).await,
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!waiting.is_finished(), "still waiting while the upstream is not ready");
    fake.set(Behaviour::Accept);
    fake.set_primary(true);
    let (early, waited) = waiting.await.unwrap();
    assert!(early, "the wait ended because the upstream was back");
    assert!(waited < Duration::from_secs(30), "not the whole minute: {waited:?}");
    // Its circuit closed with the probe: the next pass goes straight through.
    assert_eq!(relay.pass().await.unwrap(), Pass::Sent(1));
    assert_eq!(setup.gw.state.upstream_health.mode().0, UpstreamMode::Online);
    assert_eq!(fake.applied(), (1, false));
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_upstream_is_honoured_with_its_retry_after() {
    let (fake, setup) = towards_a_fake(5_000).await;
    queue(&setup.gw, None).await;
    fake.set(Behaviour::Status(429, Some(2)));
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());
    let mut workers = Workers::new();
    workers.spawn("relay", |stop| relay.run(stop));
    let started = Instant::now();
    while fake.state.lock().unwrap().batches.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.set(Behaviour::Accept);
    while pending(&setup.gw).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "drained after the throttling"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let batches = fake.state.lock().unwrap().batches.clone();
    let gap = batches[1].0 - batches[0].0;
    assert!(
        gap >= Duration::from_secs(2),
        "the second try waited for Retry-After: {gap:?}"
    );
    // A 429 is not a failure of the upstream: it stays online.
    assert_eq!(setup.gw.state.upstream_health.mode().0, UpstreamMode::Online);
    // The relay sees the stop between its passes.
    assert_eq!(workers.stop(Duration::from_secs(5)).await, Stopped::default());
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_rejected_batch_ends_with_each_entry_in_its_right_state() {
    let (fake, setup) = towards_a_fake(5_000).await;
    let record = Uuid::now_v7();
    let first = queue(&setup.gw, Some(record)).await;
    let others: Vec<Uuid> = futures_join(&setup.gw, 3).await;
    fake.set(Behaviour::RejectOdd);
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());
    assert_eq!(relay.pass().await.unwrap(), Pass::Sent(4));
    let mut conn = setup.gw.db.conn().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM outbox WHERE outcome = 'applied'").await,
        2
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM outbox WHERE outcome = 'rejected'").await,
        2
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM dead_letters WHERE discarded_at IS NULL"
        )
        .await,
        2
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").await,
        0
    );
    let rejected_first = count(
        &mut conn,
        &format!("SELECT count(*) AS n FROM dead_letters WHERE mutation_id = '{first}'"),
    )
    .await
        == 1;

    // A later change of a quarantined record waits behind it; other records go on.
    fake.set(Behaviour::Accept);
    let behind = queue(&setup.gw, Some(record)).await;
    let free = queue(&setup.gw, None).await;
    drain(&relay, 5).await;
    let sent =
        |id: Uuid| format!("SELECT count(*) AS n FROM outbox WHERE mutation_id = '{id}' AND sent_at IS NOT NULL");
    assert_eq!(count(&mut conn, &sent(free)).await, 1);
    assert_eq!(
        count(&mut conn, &sent(behind)).await,
        if rejected_first { 0 } else { 1 }
    );
    if rejected_first {
        // Discarding the quarantined entry lets the record go on.
        conn.batch_execute(&format!(
            "UPDATE dead_letters SET discarded_at = now() WHERE mutation_id = '{first}'"
        ))
        .await
        .unwrap();
        drain(&relay, 5).await;
        assert_eq!(count(&mut conn, &sent(behind)).await, 1);
    }
    assert!(others.iter().all(|id| fake.state.lock().unwrap().received.contains(id)));
    fake.stop().await;
}

async fn futures_join(gw: &TestGateway, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(queue(gw, None).await);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_fails_over_to_the_central_lab_and_returns_with_hysteresis() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let cloud = FakeUpstream::start(&pki, "cloud").await;
    let central = FakeUpstream::start(&pki, "central").await;
    let setup = gateway_towards(&pki, &[cloud.url(), central.url()], 2_000).await;
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());
    let health = Arc::clone(&setup.gw.state.upstream_health);

    queue(&setup.gw, None).await;
    drain(&relay, 3).await;
    assert_eq!(health.mode().0, UpstreamMode::Online);

    // The cloud fails: the relay insists a little, then goes to the central lab.
    cloud.set(Behaviour::Status(503, None));
    for _ in 0..5 {
        queue(&setup.gw, None).await;
    }
    for attempt in 1..=2 {
        assert!(relay.pass().await.is_err(), "attempt {attempt} stays with the cloud");
        assert_eq!(health.mode().0, UpstreamMode::Online);
    }
    drain(&relay, 6).await;
    assert_eq!(health.mode().0, UpstreamMode::Failover);
    assert_eq!(central.applied().0, 5, "the backlog went to the central lab");

    // The cloud answers again: the gateway returns only after three probes in a row.
    cloud.set(Behaviour::Accept);
    for probe in 1..=3 {
        setup.upstreams.probe_preferred().await;
        let expected = if probe < 3 {
            UpstreamMode::Failover
        } else {
            UpstreamMode::Online
        };
        assert_eq!(health.mode().0, expected, "after probe {probe}");
        tokio::time::sleep(Duration::from_millis(5_050)).await;
    }
    queue(&setup.gw, None).await;
    drain(&relay, 3).await;
    assert_eq!(cloud.applied().0, 2);
    let changes: Vec<UpstreamMode> = health.view().changes.iter().map(|c| c.mode).collect();
    assert_eq!(
        changes,
        vec![
            UpstreamMode::Online,
            UpstreamMode::Degraded,
            UpstreamMode::Failover,
            UpstreamMode::Online
        ]
    );
    cloud.stop().await;
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_never_written_to() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let standby = FakeUpstream::start(&pki, "standby").await;
    let primary = FakeUpstream::start(&pki, "primary").await;
    standby.set_primary(false);
    let setup = gateway_towards(&pki, &[standby.url(), primary.url()], 2_000).await;
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());
    for _ in 0..3 {
        queue(&setup.gw, None).await;
    }
    drain(&relay, 3).await;
    assert!(
        standby.state.lock().unwrap().received.is_empty(),
        "nothing sent to a standby"
    );
    assert_eq!(primary.applied().0, 3);
    standby.stop().await;
    primary.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_transaction_commits_late_is_still_sent() {
    let (fake, setup) = towards_a_fake(5_000).await;
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());

    // A writer takes the lower sequence number but commits last: its row is a copy of a queued
    // one (the template is sent and out of the way first).
    let template = queue(&setup.gw, None).await;
    drain(&relay, 3).await;
    let late = Uuid::now_v7();
    let mut slow = setup.gw.db.conn().await;
    slow.batch_execute("BEGIN").await.unwrap();
    slow.batch_execute(&format!(
        "INSERT INTO outbox (mutation_id, kind, entity_key, payload) \
         SELECT '{late}', kind, 'collection:{late}', jsonb_set(payload, '{{mutation_id}}', '\"{late}\"') \
         FROM outbox WHERE mutation_id = '{template}'"
    ))
    .await
    .unwrap();
    // Meanwhile a later writer commits, and the relay sends it.
    let early = queue(&setup.gw, None).await;
    drain(&relay, 3).await;
    assert!(fake.state.lock().unwrap().received.contains(&early));
    assert!(!fake.state.lock().unwrap().received.contains(&late));
    // The slow writer commits: its entry, below the ones already sent, still goes.
    slow.batch_execute("COMMIT").await.unwrap();
    drain(&relay, 3).await;
    assert!(
        fake.state.lock().unwrap().received.contains(&late),
        "the late commit was not left behind"
    );
    assert_eq!(pending(&setup.gw).await, 0);
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinical_writes_go_before_audit_checkpoints() {
    let (fake, setup) = towards_a_fake(5_000).await;
    let checkpoint = Uuid::now_v7();
    let payload = serde_json::json!({
        "mutation_id": checkpoint, "recorded_at": "2026-11-28T08:00:00Z", "staff_id": null, "device_id": null,
        "kind": "audit.checkpoint", "chain_seq": 10, "chain_hash": "00", "record_count": 10,
        "signed_at": "2026-11-28T08:00:00Z", "signature": "00"
    });
    setup
        .gw
        .db
        .conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO outbox (mutation_id, lane, kind, entity_key, payload) VALUES ('{checkpoint}', 1, 'audit.checkpoint', 'audit:chain', '{payload}')"
        ))
        .await
        .unwrap();
    let clinical = queue(&setup.gw, None).await;
    let relay = Relay::new(setup.gw.state.clone(), setup.upstreams.clone());
    drain(&relay, 3).await;
    let received = fake.state.lock().unwrap().received.clone();
    let position = |id: Uuid| received.iter().position(|r| *r == id).unwrap();
    assert!(
        position(clinical) < position(checkpoint),
        "the clinical write went first though queued later"
    );
    fake.stop().await;
}

/// The real cloud and a gateway bootstrapped from it, with a nurse logged in on a tablet.
async fn real_cloud() -> (TestCloud, TestGateway, Upstreams, String) {
    let (cloud, summary) = TestCloud::seeded(200, 1).await;
    let lab = summary.proximity_labs().next().unwrap();
    let (gw, upstreams) = cloud.bootstrapped_gateway(&lab.code).await;
    let admin = gw.admin_login_as(&lab.logins.lab_admin, "labedge-admin").await;
    let device = gw.enroll_with(&admin, None).await;
    let tokens = gw.login(&device, lab.logins.nurse.as_deref().unwrap(), "1234").await;
    (cloud, gw, upstreams, tokens.access_token.expose_secret().to_owned())
}

#[derive(diesel::QueryableByName)]
struct Visit {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    appointment: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    patient: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    prescription: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    version: i64,
}

async fn scheduled_visits(gw: &TestGateway, n: i64) -> Vec<Visit> {
    diesel::sql_query(format!(
        "SELECT id AS appointment, patient_id AS patient, prescription_id AS prescription, version \
         FROM appointments WHERE status = 'scheduled' AND prescription_id IS NOT NULL ORDER BY scheduled_at LIMIT {n}"
    ))
    .load(&mut gw.db.conn().await)
    .await
    .unwrap()
}

async fn collect(gw: &TestGateway, token: &str, visit: &Visit) -> Uuid {
    let id = Uuid::now_v7();
    let body = serde_json::json!({
        "id": id, "patient_id": visit.patient, "appointment_id": visit.appointment, "prescription_id": visit.prescription,
        "collected_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
        "identity_checked": true, "identity_check_method": "health_card",
        "tubes": [{"barcode": format!("LB{}", &Uuid::new_v4().simple().to_string()[..12].to_uppercase()), "tube_type": "EDTA"}]
    });
    gw.app
        .send(
            TestRequest::post()
                .uri("/v1/collections")
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("idempotency-key", Uuid::new_v4().to_string()))
                .set_json(&body),
        )
        .await
        .expect(201);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_acknowledged_while_the_cloud_is_down_and_applied_exactly_once_when_it_returns() {
    let (cloud, gw, upstreams, token) = real_cloud().await;
    let relay = Relay::new(gw.state.clone(), upstreams.clone());
    cloud.stop().await;

    let visits = scheduled_visits(&gw, 60).await;
    assert!(visits.len() >= 20, "enough visits in the demo data");
    let mut collections = Vec::new();
    for visit in &visits {
        collections.push(collect(&gw, &token, visit).await);
    }
    for _ in 0..3 {
        assert!(relay.pass().await.is_err(), "the cloud is down");
    }
    assert_eq!(
        pending(&gw).await,
        visits.len() as i64,
        "every acknowledged write is queued"
    );
    assert_eq!(
        gw.state.upstream_health.mode().0,
        UpstreamMode::Degraded,
        "after repeated failures"
    );

    cloud.restart().await;
    tokio::time::sleep(Duration::from_millis(5_100)).await; // the circuit's first rest
    drain(&relay, 20).await;
    let mut conn = cloud.db.conn().await;
    let among = collections_among(&collections);
    assert_eq!(count(&mut conn, &among).await, collections.len() as i64);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM applied_mutations").await,
        collections.len() as i64
    );

    // An acknowledgement lost on the way: the relay sends again, the cloud says duplicate.
    gw.db
        .conn()
        .await
        .batch_execute("UPDATE outbox SET sent_at = NULL, outcome = NULL")
        .await
        .unwrap();
    drain(&relay, 20).await;
    assert_eq!(
        count(
            &mut gw.db.conn().await,
            "SELECT count(*) AS n FROM outbox WHERE outcome = 'duplicate'"
        )
        .await,
        collections.len() as i64
    );
    assert_eq!(count(&mut conn, &among).await, collections.len() as i64);

    // The drain and the feed's catch-up afterwards are measured and shown.
    let times = gw.state.drain.times();
    assert!(
        times.last_drain_seconds.is_some() && times.backlog_at_start >= visits.len() as i64,
        "{times:?}"
    );
    let status = std::sync::RwLock::new(SyncStatus::default());
    sync::pull(&gw.state, &upstreams, &status).await.unwrap();
    gw.state.drain.caught_up();
    assert!(gw.state.drain.times().last_catch_up_seconds.is_some());
    let admin = gw
        .admin_login_as(
            &diesel::sql_query("SELECT login AS p FROM staff WHERE role = 'lab_admin' LIMIT 1")
                .get_result::<LoginRow>(&mut gw.db.conn().await)
                .await
                .unwrap()
                .p,
            "labedge-admin",
        )
        .await;
    let shown: serde_json::Value = gw
        .from_admin_network(
            TestRequest::get()
                .uri("/admin/v1/status")
                .insert_header(("cookie", admin.cookie.clone())),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(shown["upstream"]["mode"], "online");
    assert_eq!(shown["backlog"]["pending"], 0);
    assert!(shown["recovery"]["last_drain_seconds"].is_number());
    assert!(
        shown["upstream"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["mode"] == "degraded")
    );
}

#[derive(diesel::QueryableByName)]
struct LoginRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    p: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appointment_changed_in_the_cloud_and_on_a_tablet_during_an_outage_is_a_recorded_conflict() {
    let (cloud, gw, upstreams, token) = real_cloud().await;
    let relay = Relay::new(gw.state.clone(), upstreams.clone());
    let visit = scheduled_visits(&gw, 1).await.remove(0);
    cloud.stop().await;

    gw.app
        .send(
            TestRequest::patch()
                .uri(&format!("/v1/appointments/{}", visit.appointment))
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("idempotency-key", Uuid::new_v4().to_string()))
                .insert_header(("if-match", format!("\"{}\"", visit.version)))
                .set_json(serde_json::json!({"status": "checked_in"})),
        )
        .await
        .expect(200);
    // Meanwhile the lab's secretary cancels it in the cloud.
    cloud
        .db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE appointments SET status = 'cancelled', status_reason = 'patient called', version = version + 1 WHERE id = '{}'",
            visit.appointment
        ))
        .await
        .unwrap();
    cloud.restart().await;
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    drain(&relay, 5).await;

    let mut conn = gw.db.conn().await;
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM conflicts WHERE resolved_at IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT server_version AS n FROM conflicts WHERE entity_key = 'appointment:{}'",
                visit.appointment
            )
        )
        .await,
        visit.version + 1
    );
    // Not a silent overwrite: the cloud keeps the secretary's change.
    assert_eq!(
        count(
            &mut cloud.db.conn().await,
            &format!(
                "SELECT count(*) AS n FROM appointments WHERE id = '{}' AND status = 'cancelled'",
                visit.appointment
            )
        )
        .await,
        1
    );
}

/// Issue 17, item 5: the cloud's database restored to an earlier point in time (a new timeline in
/// its feed pages) lost acknowledged writes, and its change feed went back below the gateway's
/// checkpoint. The gateway sends what the cloud lost again, applied once; moves its checkpoint back
/// to the cloud's head; and reconciles at once, so a change the cloud made after the restore, at a
/// position the gateway had already passed, still reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_clouds_database_went_back_in_time_the_gateway_sends_what_it_lost_once() {
    let (cloud, gw, upstreams, token) = real_cloud().await;
    let relay = Relay::new(gw.state.clone(), upstreams.clone());
    let status = std::sync::RwLock::new(SyncStatus::default());
    // A first page: the gateway keeps the cloud's timeline.
    sync::pull(&gw.state, &upstreams, &status).await.unwrap();
    let mut edge = gw.db.conn().await;
    let seen = "SELECT position AS n FROM sync_checkpoints WHERE stream = 'cloud_timeline'";
    let timeline = count(&mut edge, seen).await;
    assert!(timeline >= 1);

    let visits = scheduled_visits(&gw, 10).await;
    let mut collections = Vec::new();
    for visit in &visits {
        collections.push(collect(&gw, &token, visit).await);
    }
    drain(&relay, 20).await;
    let mut conn = cloud.db.conn().await;
    let among = collections_among(&collections);
    assert_eq!(count(&mut conn, &among).await, 10);

    // The restore, as the gateway meets it: the cloud no longer has the last four collections nor
    // their mutation ids, its feed's head is below the gateway's checkpoint, and its pages carry
    // another timeline than the one the gateway kept.
    let lost = &collections[6..];
    let lost_list = lost.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let keys = lost
        .iter()
        .map(|id| format!("'collection:{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let mutation_ids: Vec<LoginRow> = diesel::sql_query(format!(
        "SELECT mutation_id::text AS p FROM outbox WHERE entity_key IN ({keys})"
    ))
    .load(&mut edge)
    .await
    .unwrap();
    let mutation_list = mutation_ids
        .iter()
        .map(|m| format!("'{}'", m.p))
        .collect::<Vec<_>>()
        .join(",");
    conn.batch_execute(&format!(
        "DELETE FROM specimen_feed WHERE collection_id IN ({lost_list}); \
         DELETE FROM collections WHERE id IN ({lost_list}); \
         DELETE FROM applied_mutations WHERE mutation_id IN ({mutation_list})"
    ))
    .await
    .unwrap();
    assert_eq!(count(&mut conn, &among).await, 6);
    let cloud_head = count(&mut conn, "SELECT coalesce(max(position), 0) AS n FROM change_log").await;
    edge.batch_execute(&format!(
        "UPDATE sync_checkpoints SET position = {} WHERE stream = 'cloud'; \
         UPDATE sync_checkpoints SET position = {} WHERE stream = 'cloud_timeline'",
        cloud_head + 500,
        timeline + 1
    ))
    .await
    .unwrap();
    // After the restore the LIS changes a patient of the lab: its position is below the
    // gateway's checkpoint, so the feed alone would never bring it.
    let patient: LoginRow = diesel::sql_query("SELECT patient_id::text AS p FROM appointments LIMIT 1")
        .get_result(&mut edge)
        .await
        .unwrap();
    conn.batch_execute(&format!(
        "UPDATE patients SET phone = '+33699999999', version = version + 1 WHERE id = '{}'",
        patient.p
    ))
    .await
    .unwrap();

    sync::pull(&gw.state, &upstreams, &status).await.unwrap();
    assert_eq!(count(&mut edge, seen).await, timeline, "the cloud's timeline kept");
    assert_eq!(
        count(&mut edge, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").await,
        4,
        "the four writes the cloud lost are queued again, no other"
    );
    let checkpoint = count(
        &mut edge,
        "SELECT position AS n FROM sync_checkpoints WHERE stream = 'cloud'",
    )
    .await;
    assert!(checkpoint <= cloud_head + 1, "back to the cloud's head: {checkpoint}");
    let phone = format!(
        "SELECT count(*) AS n FROM patients WHERE id = '{}' AND phone = '+33699999999'",
        patient.p
    );
    assert_eq!(
        count(&mut edge, &phone).await,
        1,
        "the change made after the restore arrived"
    );

    drain(&relay, 20).await;
    assert_eq!(count(&mut conn, &among).await, 10, "the lost collections are back");
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM applied_mutations WHERE mutation_id IN ({mutation_list})")
        )
        .await,
        4,
        "each applied once"
    );
    // Asked again, the cloud holds everything: nothing more is sent.
    let again = sync::lost::resend_lost(&gw.state, &upstreams, sync::lost::CHECK_DAYS)
        .await
        .unwrap();
    assert_eq!(again, 0);
    cloud.stop().await;
}
