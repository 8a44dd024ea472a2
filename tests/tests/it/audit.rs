//! The audit log's supervision (issue "Supervision", deliverable 5): `edge-gateway audit verify`
//! (the real binary) names a tampered, deleted or moved record and exits 1, and passes an intact
//! chain; the retention purge removes only old chained records, in chain order, and the chain still
//! verifies from its anchor; signed checkpoints travel through the relay to the real cloud, which
//! records them with their continuity, and refuses a forged signature or a fork.

use std::path::PathBuf;
use std::time::Instant;

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::audit::checkpoint::{self, Signer, checkpoint_now, checkpoint_op};
use labedge_edge_gateway::audit::retention::{PurgeError, purge_expired};
use labedge_edge_gateway::audit::verify::verify;
use labedge_edge_gateway::audit::{
    AuditEntry, AuditLog, AuditRecord, ChainBreak, chain_pending, record_hash, verify_chain,
};
use labedge_edge_gateway::relay::{Pass, Relay};
use labedge_edge_gateway::sync;
use labedge_edge_gateway::sync::upstream::Upstreams;
use labedge_protocol::relay::checkpoint::{SignedHead, signed_bytes};
use labedge_protocol::relay::{AckOutcome, MutationAck, MutationAcks, MutationBatch, RelayedMutation};
use labedge_service::workers::{Stopped, Workers};
use labedge_tests::cloud::TestCloud;
use labedge_tests::db::count;
use labedge_tests::fixtures::TestPki;
use labedge_tests::gateway::TestGateway;
use labedge_tests::spawn::{output_text, run};
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct Bytes {
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    b: Vec<u8>,
}

async fn bytes(conn: &mut AsyncPgConnection, sql: &str) -> Vec<u8> {
    diesel::sql_query(sql).get_result::<Bytes>(conn).await.unwrap().b
}

fn entry(lab_id: Uuid, i: usize) -> AuditEntry {
    AuditEntry {
        lab_id,
        staff_id: Some(Uuid::now_v7()),
        device_id: Some(Uuid::now_v7()),
        action: if i.is_multiple_of(2) {
            "patient.read"
        } else {
            "prescription.read"
        },
        patient_id: Some(Uuid::now_v7()),
        resource: Some(format!("patient:{i}")),
        request_id: Some(format!("req-{i}")),
    }
}

/// Appends `n` records of `lab_id` and chains them.
async fn append(conn: &mut AsyncPgConnection, lab_id: Uuid, n: usize) {
    let entries: Vec<AuditEntry> = (0..n).map(|i| entry(lab_id, i)).collect();
    AuditLog::insert_in(conn, &entries).await.unwrap();
    chain_all(conn).await;
}

/// Appends `n` records dated `age` ago (SQL interval), pending as a write's are.
async fn append_aged(conn: &mut AsyncPgConnection, lab_id: Uuid, n: usize, age: &str) {
    conn.batch_execute(&format!(
        "INSERT INTO audit_pending (at, lab_id, action, patient_id, resource) \
         SELECT now() - interval '{age}' + i * interval '1 second', '{lab_id}', 'patient.read', gen_random_uuid(), 'patient:' || i \
         FROM generate_series(1, {n}) AS i"
    ))
    .await
    .unwrap();
}

/// Chains whatever is pending (the gateway's own journal may beat us to it).
async fn chain_all(conn: &mut AsyncPgConnection) {
    while chain_pending(conn).await.unwrap() > 0 {}
    assert_eq!(count(conn, "SELECT count(*) AS n FROM audit_pending").await, 0);
}

/// Changes the log behind the append-only trigger, as someone with the database's superuser would.
async fn tamper(conn: &mut AsyncPgConnection, sql: &str) {
    conn.batch_execute(&format!(
        "BEGIN; SET LOCAL session_replication_role = replica; {sql}; COMMIT;"
    ))
    .await
    .unwrap();
}

/// A configuration file for the real binary, on this gateway's database.
fn config_file(gw: &TestGateway) -> PathBuf {
    let path = gw.pki.path().join("edge-gateway.toml");
    std::fs::write(
        &path,
        format!(
            "profile = \"sandbox\"\nlab = \"TEST-LAB\"\n[http]\naddr = \"127.0.0.1:0\"\nplain_http = true\n\
             [database]\nurl = \"{}\"\n[log]\nformat = \"text\"\nfilter = \"warn\"\n\
             [upstream]\nendpoints = [{{ name = \"cloud\", url = \"https://127.0.0.1:1\" }}]\n\
             ca = \"/nonexistent/ca.pem\"\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
            gw.db.url()
        ),
    )
    .unwrap();
    path
}

/// `edge-gateway audit <command>`: exit status and output.
fn audit_cli(config: &std::path::Path, command: &str) -> (Option<i32>, String) {
    let out = run(
        "edge-gateway",
        &["--config", config.to_str().unwrap(), "audit", command],
        &[],
    );
    (out.status.code(), output_text(&out))
}

/// A gateway whose chain holds `n` records; their (seq, chain_seq), in chain order.
async fn chained_gateway(n: usize) -> (TestGateway, Vec<(i64, i64)>) {
    let gw = TestGateway::start().await;
    let mut conn = gw.db.conn().await;
    append(&mut conn, gw.lab_id, n).await;
    let rows = positions(&mut conn).await;
    assert_eq!(rows.len(), n);
    (gw, rows)
}

async fn positions(conn: &mut AsyncPgConnection) -> Vec<(i64, i64)> {
    #[derive(diesel::QueryableByName)]
    struct P {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        chain_seq: i64,
    }
    diesel::sql_query("SELECT seq, chain_seq FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY chain_seq")
        .load::<P>(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.seq, p.chain_seq))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// `edge-gateway audit verify`

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_an_intact_chain_and_names_a_tampered_record_with_exit_1() {
    let (gw, rows) = chained_gateway(40).await;
    let config = config_file(&gw);
    let (status, text) = audit_cli(&config, "verify");
    assert_eq!(status, Some(0), "{text}");
    let head = hex::encode(
        bytes(
            &mut gw.db.conn().await,
            "SELECT hash AS b FROM audit_log WHERE chain_seq = 40",
        )
        .await,
    );
    assert!(
        text.contains("audit chain OK: 40 record(s) verified")
            && text.contains(&format!("head at position 40, hash {head}")),
        "{text}"
    );

    // The append-only trigger refuses the change; with the trigger off, the chain gives it away.
    let mut conn = gw.db.conn().await;
    assert!(
        conn.batch_execute("UPDATE audit_log SET action = 'patient.search' WHERE chain_seq = 17")
            .await
            .is_err()
    );
    tamper(
        &mut conn,
        "UPDATE audit_log SET action = 'patient.search' WHERE chain_seq = 17",
    )
    .await;
    let (status, text) = audit_cli(&config, "verify");
    assert_eq!(status, Some(1), "{text}");
    let seq = rows[16].0;
    assert!(
        text.contains(&format!(
            "BROKEN at record seq {seq} at chain position 17: hash mismatch"
        )) && text.contains("16 record(s) verified before it"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_deleted_record() {
    let (gw, rows) = chained_gateway(30).await;
    let mut conn = gw.db.conn().await;
    assert!(
        conn.batch_execute("DELETE FROM audit_log WHERE chain_seq = 12")
            .await
            .is_err(),
        "deletes need the purge's setting"
    );
    tamper(&mut conn, "DELETE FROM audit_log WHERE chain_seq = 12").await;
    let (status, text) = audit_cli(&config_file(&gw), "verify");
    assert_eq!(status, Some(1), "{text}");
    assert!(
        text.contains("BROKEN at chain position 12: row deleted: the record at position 12 is missing")
            && text.contains(&format!("the next record is seq {} at position 13", rows[12].0)),
        "{text}"
    );

    // Several in a row, at the very start.
    tamper(&mut conn, "DELETE FROM audit_log WHERE chain_seq <= 3").await;
    assert_eq!(
        verify_chain(&mut conn).await.unwrap(),
        Err(ChainBreak::Deleted {
            from: 1,
            to: 3,
            next_seq: Some(rows[3].0)
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_reordered_chain() {
    let (gw, rows) = chained_gateway(30).await;
    let mut conn = gw.db.conn().await;
    // Records 8 and 9 swap places (the unique position goes through a free value).
    tamper(
        &mut conn,
        "UPDATE audit_log SET chain_seq = -1 WHERE chain_seq = 8; \
         UPDATE audit_log SET chain_seq = 8 WHERE chain_seq = 9; \
         UPDATE audit_log SET chain_seq = 9 WHERE chain_seq = -1",
    )
    .await;
    let (status, text) = audit_cli(&config_file(&gw), "verify");
    assert_eq!(status, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "BROKEN at record seq {} at chain position 8: chain reordered: the record that follows position 7 is seq {}, found at position 9",
            rows[8].0, rows[7].0
        )),
        "{text}"
    );

    // A record moved to the end of the chain.
    let (gw, rows) = chained_gateway(20).await;
    let mut conn = gw.db.conn().await;
    tamper(&mut conn, "UPDATE audit_log SET chain_seq = 1000 WHERE chain_seq = 5").await;
    assert_eq!(
        verify_chain(&mut conn).await.unwrap(),
        Err(ChainBreak::Reordered {
            record_seq: rows[4].0,
            found_at: 1000
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehashed_record_breaks_the_link_and_a_cut_off_end_is_caught_by_the_checkpoints() {
    let (gw, rows) = chained_gateway(20).await;
    let mut conn = gw.db.conn().await;
    // Record 6 altered and its hash recomputed as the journal would: record 7 no longer links to it.
    let mut record = record_at(&mut conn, 6).await;
    record.action = "patient.search".into();
    let prev = bytes(&mut conn, "SELECT prev_hash AS b FROM audit_log WHERE chain_seq = 6").await;
    let rehashed = record_hash(&prev, &record);
    tamper(
        &mut conn,
        &format!(
            "UPDATE audit_log SET action = 'patient.search', hash = '\\x{}' WHERE chain_seq = 6",
            hex::encode(rehashed)
        ),
    )
    .await;
    let bad = verify(&mut conn).await.unwrap().unwrap_err();
    assert_eq!(bad.problem, ChainBreak::Link(7));
    assert_eq!((bad.seq, bad.chain_seq, bad.verified), (Some(rows[6].0), 7, 6));
    assert!(bad.to_string().contains("broken link"), "{bad}");

    // The last records deleted: nothing is left to break, but this gateway signed the head.
    let gw = TestGateway::start().await;
    let mut conn = gw.db.conn().await;
    append(&mut conn, gw.lab_id, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let (cert, key) = pki.client("gw", "TEST-LAB");
    let signer = Signer::load(&cert, &key).unwrap();
    labedge_edge_gateway::audit::checkpoint::checkpoint_head(&mut conn, gw.lab_id, &signer)
        .await
        .unwrap()
        .unwrap();
    tamper(&mut conn, "DELETE FROM audit_log WHERE chain_seq > 7").await;
    let bad = verify(&mut conn).await.unwrap().unwrap_err();
    assert_eq!(
        bad.problem,
        ChainBreak::Truncated {
            head: 7,
            checkpoint: 10
        }
    );
    assert!(bad.to_string().contains("rows deleted at the end"), "{bad}");

    // The end rewritten consistently (records re-chained from position 8): the checkpoint's hash
    // no longer matches.
    append(&mut conn, gw.lab_id, 5).await;
    assert_eq!(verify_chain(&mut conn).await.unwrap(), Err(ChainBreak::Checkpoint(10)));
}

/// The chained record at `chain_seq`, as hashed.
async fn record_at(conn: &mut AsyncPgConnection, chain_seq: i64) -> AuditRecord {
    use diesel::{ExpressionMethods, NullableExpressionMethods, QueryDsl};
    use labedge_schema::edge::schema::audit_log;
    audit_log::table
        .filter(audit_log::chain_seq.eq(chain_seq))
        .select((
            audit_log::seq,
            audit_log::chain_seq.assume_not_null(),
            audit_log::at,
            audit_log::lab_id,
            audit_log::staff_id,
            audit_log::device_id,
            audit_log::action,
            audit_log::patient_id,
            audit_log::resource,
            audit_log::request_id,
        ))
        .first(conn)
        .await
        .unwrap()
}

// ------------------------------------------------------------------------------------------------
// Retention

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_removes_only_old_chained_records_in_chain_order_and_the_chain_still_verifies() {
    let gw = TestGateway::start().await;
    let mut conn = gw.db.conn().await;
    // Chain order: 30 records of 14 months ago, 10 of last month, then 5 of 13 months ago chained
    // late (they stay: they come after younger ones).
    append_aged(&mut conn, gw.lab_id, 30, "14 months").await;
    chain_all(&mut conn).await;
    append_aged(&mut conn, gw.lab_id, 10, "1 month").await;
    chain_all(&mut conn).await;
    append_aged(&mut conn, gw.lab_id, 5, "13 months").await;
    chain_all(&mut conn).await;
    let hash_30 = bytes(&mut conn, "SELECT hash AS b FROM audit_log WHERE chain_seq = 30").await;

    // An old record not chained yet (the journal may chain it meanwhile: then after the young ones).
    append_aged(&mut conn, gw.lab_id, 1, "2 years").await;

    let purged = purge_expired(&mut conn, 12).await.unwrap();
    assert_eq!(purged.records, 30);
    assert_eq!(purged.anchor.map(|a| (a.0, a.1.to_vec())), Some((30, hash_30.clone())));
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM audit_log WHERE chain_seq <= 30").await,
        0
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM audit_log WHERE chain_seq BETWEEN 31 AND 45"
        )
        .await,
        15,
        "the young records and the old ones chained after them stay"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT (SELECT count(*) FROM audit_pending) + (SELECT count(*) FROM audit_log WHERE chain_seq > 45) AS n"
        )
        .await,
        1,
        "a pending record is never purged"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM audit_anchors WHERE chain_seq = 30 AND first_chain_seq = 1 AND purged_rows = 30"
        )
        .await,
        1
    );
    // The purge's permission ended with its transaction.
    assert!(
        conn.batch_execute("DELETE FROM audit_log WHERE chain_seq = 31")
            .await
            .is_err(),
        "SET LOCAL: the session is not allowed to delete"
    );
    assert!(
        conn.batch_execute("DELETE FROM audit_anchors").await.is_err(),
        "anchors are append-only"
    );
    assert_eq!(
        purge_expired(&mut conn, 12).await.unwrap().records,
        0,
        "nothing more is due"
    );

    chain_all(&mut conn).await;
    let (status, text) = audit_cli(&config_file(&gw), "verify");
    assert_eq!(status, Some(0), "{text}");
    assert!(
        text.contains("audit chain OK: 16 record(s) verified, head at position 46")
            && text.contains(&format!(
                "starts after the retention anchor at position 30 (hash {}",
                hex::encode(&hash_30)
            )),
        "{text}"
    );

    // A record deleted right after the anchor is still caught.
    tamper(&mut conn, "DELETE FROM audit_log WHERE chain_seq = 31").await;
    let (status, text) = audit_cli(&config_file(&gw), "verify");
    assert_eq!(status, Some(1), "{text}");
    assert!(
        text.contains("row deleted: the record at position 31 is missing"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_everything_is_purged_the_chain_continues_from_the_anchor() {
    let gw = TestGateway::start().await;
    let config = config_file(&gw);
    let mut conn = gw.db.conn().await;
    append_aged(&mut conn, gw.lab_id, 8, "2 years").await;
    chain_all(&mut conn).await;
    let hash_8 = bytes(&mut conn, "SELECT hash AS b FROM audit_log WHERE chain_seq = 8").await;
    let (status, text) = audit_cli(&config, "purge");
    assert_eq!(status, Some(0), "{text}");
    assert!(
        text.contains("8 audit record(s) older than 12 month(s) purged"),
        "{text}"
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit_log").await, 0);
    let (status, text) = audit_cli(&config, "verify");
    assert_eq!(status, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "audit chain OK: 0 record(s) verified, head at position 8, hash {}",
            hex::encode(&hash_8)
        )),
        "{text}"
    );

    append(&mut conn, gw.lab_id, 3).await;
    assert_eq!(
        bytes(&mut conn, "SELECT prev_hash AS b FROM audit_log WHERE chain_seq = 9").await,
        hash_8,
        "the first record after the purge links to the anchor"
    );
    assert_eq!(verify_chain(&mut conn).await.unwrap(), Ok(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_keeps_old_records_that_do_not_verify() {
    let gw = TestGateway::start().await;
    let mut conn = gw.db.conn().await;
    append_aged(&mut conn, gw.lab_id, 20, "2 years").await;
    chain_all(&mut conn).await;
    tamper(
        &mut conn,
        "UPDATE audit_log SET resource = 'patient:0' WHERE chain_seq = 11",
    )
    .await;
    match purge_expired(&mut conn, 12).await {
        Err(PurgeError::Broken(bad)) => assert_eq!(bad.problem, ChainBreak::Hash(11)),
        other => panic!("the purge must refuse: {other:?}"),
    }
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM audit_log").await,
        20,
        "kept as evidence"
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit_anchors").await, 0);
}

// ------------------------------------------------------------------------------------------------
// Checkpoints

struct Lab {
    cloud: TestCloud,
    gw: TestGateway,
    upstreams: Upstreams,
    code: String,
    lab_id: Uuid,
}

/// The real cloud, seeded, and a gateway bootstrapped from it with its credential.
async fn cloud_and_gateway() -> Lab {
    let (cloud, summary) = TestCloud::seeded(50, 1).await;
    let code = summary.proximity_labs().next().unwrap().code.clone();
    let (gw, upstreams) = cloud.bootstrapped_gateway(&code).await;
    let lab_id = gw.state.lab().await.unwrap().id;
    Lab {
        cloud,
        gw,
        upstreams,
        code,
        lab_id,
    }
}

async fn drain(relay: &Relay) {
    for _ in 0..10 {
        if relay.pass().await.unwrap() == Pass::Idle {
            return;
        }
    }
    panic!("the outbox did not drain");
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct CloudCheckpoint {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    chain_seq: i64,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    chain_hash: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    record_count: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    prev_chain_seq: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    continuity_ok: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    signed_by_gateway: bool,
}

async fn cloud_checkpoints(lab: &Lab) -> Vec<CloudCheckpoint> {
    diesel::sql_query(format!(
        "SELECT c.chain_seq, c.chain_hash, c.record_count, c.prev_chain_seq, c.continuity_ok, \
                (g.cert_sha256 IS NOT NULL) AS signed_by_gateway \
         FROM audit_checkpoints c LEFT JOIN gateways g ON g.id = c.gateway_id \
         WHERE c.lab_id = '{}' ORDER BY c.chain_seq",
        lab.lab_id
    ))
    .load(&mut lab.cloud.db.conn().await)
    .await
    .unwrap()
}

async fn head_hash(lab: &Lab, chain_seq: i64) -> Vec<u8> {
    bytes(
        &mut lab.gw.db.conn().await,
        &format!("SELECT hash AS b FROM audit_log WHERE chain_seq = {chain_seq}"),
    )
    .await
}

/// Issue 12, item 5: the records chained while the cloud was out of reach are anchored as soon as an
/// upstream is back, not at the next interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_taken_as_soon_as_an_upstream_is_back_after_an_outage() {
    let lab = cloud_and_gateway().await;
    let mut conn = lab.gw.db.conn().await;
    let health = &lab.gw.state.upstream_health;
    assert_eq!(
        health.mode().0,
        sync::health::UpstreamMode::Online,
        "the bootstrap reached the cloud"
    );
    let mut workers = Workers::new();
    let state = lab.gw.state.clone();
    workers.spawn("audit checkpoint", |stop| checkpoint::run(state, stop));
    // The cloud fails (three calls in a row open its circuit); the lab goes on and audits.
    for _ in 0..3 {
        health.failure(0);
    }
    assert_eq!(health.mode().0, sync::health::UpstreamMode::Degraded);
    append(&mut conn, lab.lab_id, 12).await;
    let checkpoints = "SELECT count(*) AS n FROM audit_checkpoints WHERE chain_seq = 12";
    assert_eq!(count(&mut conn, checkpoints).await, 0);

    // It answers again: the checkpoint follows within seconds (the first timed one would come 30 s
    // after start, the next ones every `audit.checkpoint_interval_minutes`).
    let back = Instant::now();
    health.success(0);
    while count(&mut conn, checkpoints).await == 0 {
        assert!(
            back.elapsed() < std::time::Duration::from_secs(10),
            "no checkpoint 10 s after the upstream came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        workers.stop(std::time::Duration::from_secs(5)).await,
        Stopped::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_travel_through_the_relay_and_the_cloud_records_their_continuity() {
    let lab = cloud_and_gateway().await;
    let relay = Relay::new(lab.gw.state.clone(), lab.upstreams.clone());
    drain(&relay).await;
    let mut conn = lab.gw.db.conn().await;
    // An empty chain has no checkpoint.
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit_log").await, 0);
    assert!(checkpoint_now(&lab.gw.state).await.unwrap().is_none());

    append(&mut conn, lab.lab_id, 25).await;
    let first = checkpoint_now(&lab.gw.state).await.unwrap().unwrap();
    assert_eq!((first.head.chain_seq, first.head.previous), (25, None));
    assert!(
        checkpoint_now(&lab.gw.state).await.unwrap().is_none(),
        "no new checkpoint while the head has not moved"
    );
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM outbox WHERE mutation_id = '{}' AND lane = 1 AND kind = 'audit.checkpoint' AND sent_at IS NULL",
                first.mutation_id
            )
        )
        .await,
        1,
        "queued on the low-priority lane"
    );
    drain(&relay).await;
    let hash_25 = head_hash(&lab, 25).await;
    assert_eq!(
        cloud_checkpoints(&lab).await,
        vec![CloudCheckpoint {
            chain_seq: 25,
            chain_hash: hash_25.clone(),
            record_count: 25,
            prev_chain_seq: None,
            continuity_ok: true,
            signed_by_gateway: true,
        }]
    );

    append(&mut conn, lab.lab_id, 10).await;
    let second = checkpoint_now(&lab.gw.state).await.unwrap().unwrap();
    assert_eq!(
        second.head.previous.map(|(seq, hash)| (seq, hash.to_vec())),
        Some((25, hash_25))
    );
    drain(&relay).await;
    let held = cloud_checkpoints(&lab).await;
    assert_eq!(held.len(), 2);
    assert_eq!(
        (
            held[1].chain_seq,
            held[1].record_count,
            held[1].prev_chain_seq,
            held[1].continuity_ok
        ),
        (35, 35, Some(25), true)
    );
    assert_eq!(held[1].chain_hash, head_hash(&lab, 35).await);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM outbox WHERE kind = 'audit.checkpoint' AND outcome = 'applied'"
        )
        .await,
        2
    );
    // The cloud's own audit log says it received them.
    assert_eq!(
        count(
            &mut lab.cloud.db.conn().await,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'audit.checkpoint'"
        )
        .await,
        2
    );
    // And the gateway's chain, checked against its checkpoints, is intact.
    let summary = verify(&mut conn).await.unwrap().unwrap();
    assert_eq!((summary.records, summary.checkpoints), (35, 2));
}

/// Sends one mutation to the cloud as the relay does; its verdict.
async fn send(lab: &Lab, mutation: RelayedMutation) -> MutationAck {
    let (acks, _) = lab
        .upstreams
        .post::<_, MutationAcks>(
            &format!("/v1/labs/{}/mutations", lab.code),
            &MutationBatch {
                mutations: vec![mutation],
            },
        )
        .await
        .unwrap();
    acks.results.into_iter().next().unwrap()
}

fn mutation(op: labedge_protocol::relay::RelayedOp) -> RelayedMutation {
    RelayedMutation {
        mutation_id: Uuid::now_v7(),
        recorded_at: time::OffsetDateTime::now_utc(),
        staff_id: None,
        device_id: None,
        op,
    }
}

fn signed_at() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap()
}

fn security_events(lab: &Lab, reason: &str) -> u64 {
    let rendered = lab.gw.state.metrics.render();
    rendered
        .lines()
        .filter(|l| {
            l.starts_with("labedge_security_events_total")
                && l.contains("action=\"audit_checkpoint_rejected\"")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_signature_and_a_fork_are_rejected_as_security_events() {
    let lab = cloud_and_gateway().await;
    let relay = Relay::new(lab.gw.state.clone(), lab.upstreams.clone());
    drain(&relay).await;
    let mut conn = lab.gw.db.conn().await;
    append(&mut conn, lab.lab_id, 12).await;
    checkpoint_now(&lab.gw.state).await.unwrap().unwrap();
    drain(&relay).await;
    let hash_12: [u8; 32] = head_hash(&lab, 12).await.try_into().unwrap();
    let credential = &lab.gw.state.config.upstream;
    let gateway = Signer::load(&credential.cert, &credential.key).unwrap();
    let next = |chain_seq: i64, previous: Option<(i64, [u8; 32])>| SignedHead {
        lab_id: lab.lab_id,
        chain_seq,
        chain_hash: [7; 32],
        record_count: chain_seq,
        previous,
        signed_at: signed_at(),
    };

    // Signed by another key, under the gateway's name.
    let dir = tempfile::tempdir().unwrap();
    let other_pki = TestPki::new(dir.path());
    let (cert, key) = other_pki.client("intruder", &lab.code);
    let intruder = Signer::load(&cert, &key).unwrap();
    let head = next(20, Some((12, hash_12)));
    let forged = checkpoint_op(
        &head,
        Some(gateway.cert_sha256().to_owned()),
        &intruder.sign(&signed_bytes(&head)).unwrap(),
    );
    let ack = send(&lab, mutation(forged)).await;
    assert_eq!(ack.outcome, AckOutcome::Rejected);
    assert!(ack.reason.as_deref().unwrap().starts_with("bad_signature:"), "{ack:?}");

    // The gateway's signature over other figures than those sent.
    let mut altered = gateway.checkpoint_op(&head).unwrap();
    if let labedge_protocol::relay::RelayedOp::AuditCheckpoint { record_count, .. } = &mut altered {
        *record_count += 1;
    }
    let ack = send(&lab, mutation(altered)).await;
    assert!(ack.reason.as_deref().unwrap().starts_with("bad_signature:"), "{ack:?}");

    // A certificate that is no credential of this lab.
    let ack = send(&lab, mutation(intruder.checkpoint_op(&head).unwrap())).await;
    assert!(ack.reason.as_deref().unwrap().starts_with("unknown_signer:"), "{ack:?}");
    assert_eq!(security_events(&lab, "bad_signature"), 2);
    assert_eq!(security_events(&lab, "unknown_signer"), 1);
    assert_eq!(cloud_checkpoints(&lab).await.len(), 1, "forgeries are not recorded");

    // Forks, validly signed: a new chain from scratch, a chain continuing an older point, a chain
    // continuing the right position with another hash, a chain going back.
    for (head, why) in [
        (next(30, None), "starts a new chain"),
        (next(30, Some((5, [1; 32]))), "continues position 5"),
        (next(30, Some((12, [1; 32]))), " with another hash"),
        (next(10, Some((12, hash_12))), "goes back"),
    ] {
        let ack = send(&lab, mutation(gateway.checkpoint_op(&head).unwrap())).await;
        assert_eq!(ack.outcome, AckOutcome::Rejected);
        let reason = ack.reason.unwrap();
        assert!(reason.starts_with("audit_fork:") && reason.contains(why), "{reason}");
    }
    assert_eq!(security_events(&lab, "audit_fork"), 4);
    let held = cloud_checkpoints(&lab).await;
    assert_eq!(
        held.iter().map(|c| (c.chain_seq, c.continuity_ok)).collect::<Vec<_>>(),
        vec![(10, false), (12, true), (30, false)],
        "a fork is kept as evidence where its position is free"
    );

    // The gateway's next real checkpoint still continues what the cloud holds.
    append(&mut conn, lab.lab_id, 3).await;
    checkpoint_now(&lab.gw.state).await.unwrap().unwrap();
    drain(&relay).await;
    let held = cloud_checkpoints(&lab).await;
    assert!(
        held.iter()
            .any(|c| (c.chain_seq, c.prev_chain_seq, c.continuity_ok) == (15, Some(12), true))
    );

    // A forged checkpoint that reaches the gateway's outbox is quarantined by the relay.
    let forged = mutation(checkpoint_op(
        &next(40, Some((15, [0; 32]))),
        Some(gateway.cert_sha256().to_owned()),
        &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
    ));
    let payload = serde_json::to_string(&forged).unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO outbox (mutation_id, lane, kind, entity_key, payload) VALUES ('{}', 1, 'audit.checkpoint', 'audit:chain', '{payload}')",
        forged.mutation_id
    ))
    .await
    .unwrap();
    drain(&relay).await;
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM dead_letters WHERE mutation_id = '{}' AND reason LIKE 'bad_signature:%'",
                forged.mutation_id
            )
        )
        .await,
        1
    );
    assert_eq!(security_events(&lab, "bad_signature"), 3);
}

// ------------------------------------------------------------------------------------------------
// Speed

/// `edge-gateway audit verify` over a year of records (3,650,000 by default, i.e. 10,000 a day;
/// `LABEDGE_AUDIT_RECORDS` to change): prints the time the command took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: builds a long chain, takes minutes"]
async fn verify_speed_on_a_year_of_records() {
    let records: i64 = std::env::var("LABEDGE_AUDIT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_650_000);
    let gw = TestGateway::start().await;
    let mut conn = gw.db.conn().await;
    let started = Instant::now();
    let mut done = 0;
    while done < records {
        let n = (records - done).min(100_000);
        conn.batch_execute(&format!(
            "INSERT INTO audit_pending (at, lab_id, staff_id, device_id, action, patient_id, resource, request_id) \
             SELECT now() - interval '365 days' + i * interval '8 seconds', '{}', gen_random_uuid(), gen_random_uuid(), \
                    'patient.read', gen_random_uuid(), 'patient:' || i, 'req-' || i \
             FROM generate_series({}, {}) AS i",
            gw.lab_id,
            done + 1,
            done + n
        ))
        .await
        .unwrap();
        chain_all(&mut conn).await;
        done += n;
    }
    eprintln!("{records} records chained in {:.1} s", started.elapsed().as_secs_f64());
    conn.batch_execute("VACUUM ANALYZE audit_log").await.unwrap();
    let started = Instant::now();
    let (status, text) = audit_cli(&config_file(&gw), "verify");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(status, Some(0), "{text}");
    assert!(
        text.contains(&format!("audit chain OK: {records} record(s) verified")),
        "{text}"
    );
    eprintln!(
        "edge-gateway audit verify: {records} records in {seconds:.1} s ({:.0} records/s)\n{text}",
        records as f64 / seconds
    );
}
