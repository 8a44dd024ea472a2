//! Issue 12, item 5: the role `edge-gateway serve` runs as cannot rewrite the audit chain. As that
//! role (a login member of `labedge_gateway_runtime`, as in production), every way of changing or
//! removing an audit record fails: UPDATE, DELETE, TRUNCATE, the purge's old setting, disabling or
//! dropping the trigger, dropping the table, silencing triggers, forging an anchor, lowering the
//! retention, and calling the purge function on records inside the retention. The purge function
//! works within the rule and the chain still verifies; `serve` refuses a role that could rewrite it.

use std::time::Duration;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use labedge_edge_gateway::audit::retention::purge_expired;
use labedge_edge_gateway::audit::roles::{powers, record_retention};
use labedge_edge_gateway::audit::{AuditEntry, AuditLog, chain_pending, verify_chain};
use labedge_tests::db::count;
use labedge_tests::fixtures::TestPki;
use labedge_tests::gateway::TestGateway;
use labedge_tests::spawn::{Spawned, output_text, run};
use uuid::Uuid;

/// Appends `n` records dated `age` ago (SQL interval) and chains them, as the serving role.
async fn append_aged(conn: &mut AsyncPgConnection, lab_id: Uuid, n: usize, age: &str) {
    conn.batch_execute(&format!(
        "INSERT INTO audit_pending (at, lab_id, action, patient_id, resource) \
         SELECT now() - interval '{age}' + i * interval '1 second', '{lab_id}', 'patient.read', gen_random_uuid(), 'patient:' || i \
         FROM generate_series(1, {n}) AS i"
    ))
    .await
    .unwrap();
    while chain_pending(conn).await.unwrap() > 0 {}
}

/// Runs `sql` and expects PostgreSQL to refuse it; returns the error text.
async fn refused(conn: &mut AsyncPgConnection, sql: &str) -> String {
    match conn.batch_execute(sql).await {
        Ok(()) => panic!("the serving role could run: {sql}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_the_serving_role_no_audit_record_can_be_changed_or_removed() {
    let gw = TestGateway::start().await;
    let mut runtime = gw.db.runtime_conn().await;
    // The serving role appends (as the write path does) and chains the pending records (the journal).
    let entries: Vec<AuditEntry> = (0..10)
        .map(|i| AuditEntry {
            lab_id: gw.lab_id,
            staff_id: Some(Uuid::now_v7()),
            device_id: None,
            action: "patient.read",
            patient_id: Some(Uuid::now_v7()),
            resource: Some(format!("patient:{i}")),
            request_id: None,
        })
        .collect();
    AuditLog::insert_in(&mut runtime, &entries).await.unwrap();
    append_aged(&mut runtime, gw.lab_id, 20, "2 years").await;
    assert_eq!(verify_chain(&mut runtime).await.unwrap(), Ok(30));
    let tail = 30;

    let attacks = [
        format!("UPDATE audit_log SET resource = 'patient:0' WHERE chain_seq = {tail}"),
        format!("UPDATE audit_log SET hash = prev_hash WHERE chain_seq = {tail}"),
        format!("UPDATE audit_log SET chain_seq = NULL, prev_hash = NULL, hash = NULL WHERE chain_seq = {tail}"),
        format!("DELETE FROM audit_log WHERE chain_seq = {tail}"),
        "DELETE FROM audit_log".into(),
        "TRUNCATE audit_log".into(),
        "TRUNCATE audit_anchors".into(),
        "TRUNCATE audit_checkpoints".into(),
        // Writes' records waiting for the journal: only `audit_adopt` moves them, content untouched.
        "UPDATE audit_pending SET resource = 'patient:0'".into(),
        "DELETE FROM audit_pending".into(),
        "TRUNCATE audit_pending".into(),
        "SET labedge.audit_adopt = on; DELETE FROM audit_pending".into(),
        "ALTER FUNCTION audit_adopt(bigint[], bigint[], bytea[], bytea[]) SECURITY INVOKER".into(),
        "TRUNCATE audit_log, audit_anchors, audit_checkpoints CASCADE".into(),
        // The purge's old permission: any session could set it.
        format!("SET labedge.audit_purge = on; DELETE FROM audit_log WHERE chain_seq = {tail}"),
        format!(
            "BEGIN; SET LOCAL labedge.audit_purge = on; DELETE FROM audit_log WHERE chain_seq >= {}; COMMIT",
            tail - 5
        ),
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only".into(),
        "ALTER TABLE audit_log DISABLE TRIGGER ALL".into(),
        "DROP TRIGGER audit_log_append_only ON audit_log".into(),
        "CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$"
            .into(),
        "DROP TABLE audit_log".into(),
        "DROP TABLE audit_log CASCADE".into(),
        "ALTER TABLE audit_log RENAME TO audit_log_old".into(),
        "SET session_replication_role = replica".into(),
        "SET ROLE postgres".into(),
        // A forged anchor would make verification start past the records it hides.
        format!(
            "INSERT INTO audit_anchors (chain_seq, hash, first_chain_seq, purged_rows, cutoff) \
             SELECT chain_seq, hash, 1, chain_seq, now() FROM audit_log WHERE chain_seq = {tail}"
        ),
        "DELETE FROM audit_anchors".into(),
        "UPDATE audit_checkpoints SET chain_hash = chain_hash".into(),
        "DELETE FROM audit_checkpoints".into(),
        // The retention the purge function enforces.
        "UPDATE audit_retention SET months = 1".into(),
        "DELETE FROM audit_retention".into(),
        // The purge function, on records inside the retention (the 10 young ones at 1 to 10).
        format!("SELECT audit_purge({tail})"),
        "SELECT audit_purge(10)".into(),
        "ALTER FUNCTION audit_purge(bigint) SECURITY INVOKER".into(),
        "CREATE OR REPLACE FUNCTION audit_purge(p_upto bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$"
            .into(),
    ];
    for sql in &attacks {
        let error = refused(&mut runtime, sql).await;
        // A transaction left open by the statement's failure is closed before the next one.
        let _ = runtime.batch_execute("ROLLBACK").await;
        assert!(
            error.contains("permission denied")
                || error.contains("must be owner")
                || error.contains("append-only")
                || error.contains("younger than the retention")
                || error.contains("not allowed")
                || error.contains("not after the latest anchor"),
            "{sql}: {error}"
        );
    }
    // A SECURITY DEFINER function searches the caller's temporary schema first unless told
    // otherwise: a temporary `audit_retention` of 0 months must not open the whole log.
    let error = refused(
        &mut runtime,
        "CREATE TEMP TABLE audit_retention (singleton boolean, months integer, updated_at timestamptz); \
         INSERT INTO audit_retention VALUES (true, 0, now()); \
         SELECT audit_purge(30)",
    )
    .await;
    assert!(error.contains("younger than the retention of 12 month(s)"), "{error}");
    refused(
        &mut runtime,
        "CREATE TEMP TABLE audit_log (seq bigint, chain_seq bigint, at timestamptz, hash bytea); \
         INSERT INTO audit_log SELECT i, i, now() - interval '5 years', '\\x00' FROM generate_series(1, 30) AS i; \
         SELECT audit_purge(30)",
    )
    .await;

    // Not even at the session level does the old setting open the door.
    runtime.batch_execute("SET labedge.audit_purge = on").await.unwrap();
    refused(&mut runtime, "DELETE FROM audit_log WHERE chain_seq = 1").await;

    // Everything is still there, and the chain verifies.
    let mut owner = gw.db.conn().await;
    assert_eq!(count(&mut owner, "SELECT count(*) AS n FROM audit_log").await, 30);
    assert_eq!(count(&mut owner, "SELECT count(*) AS n FROM audit_anchors").await, 0);
    assert_eq!(verify_chain(&mut owner).await.unwrap(), Ok(30));
    // The role is what serve's check accepts.
    assert!(
        powers(&mut runtime).await.unwrap().problems().is_empty(),
        "{:?}",
        powers(&mut runtime).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_function_removes_only_records_past_the_recorded_retention() {
    let gw = TestGateway::start().await;
    let mut runtime = gw.db.runtime_conn().await;
    append_aged(&mut runtime, gw.lab_id, 20, "30 months").await;
    append_aged(&mut runtime, gw.lab_id, 10, "14 months").await;
    append_aged(&mut runtime, gw.lab_id, 5, "1 month").await;

    // `migrate` (the owner) recorded a retention of 24 months: the serving role's wish for 12 does not
    // shorten it, and the function refuses the 14-month-old records directly too.
    record_retention(gw.db.url(), 24).await.unwrap();
    let error = refused(&mut runtime, "SELECT audit_purge(30)").await;
    assert!(error.contains("younger than the retention of 24 month(s)"), "{error}");
    let purged = purge_expired(&mut runtime, 12).await.unwrap();
    assert_eq!(purged.records, 20, "only the 30-month-old records");
    assert_eq!(purged.anchor.map(|a| a.0), Some(20));

    // The owner brings the retention back to 12 months: the next purge takes the 14-month-old ones.
    record_retention(gw.db.url(), 12).await.unwrap();
    assert_eq!(purge_expired(&mut runtime, 1).await.unwrap().records, 10);
    assert_eq!(
        purge_expired(&mut runtime, 1).await.unwrap().records,
        0,
        "the records of last month stay, whatever the caller asks"
    );
    refused(&mut runtime, "SELECT audit_purge(35)").await;

    let mut owner = gw.db.conn().await;
    assert_eq!(count(&mut owner, "SELECT count(*) AS n FROM audit_log").await, 5);
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) AS n FROM audit_anchors WHERE (chain_seq, first_chain_seq, purged_rows) IN ((20, 1, 20), (30, 21, 10))"
        )
        .await,
        2
    );
    // The chain verifies from the anchor, with the binary, as the serving role.
    let config = gw.pki.path().join("edge-gateway.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"sandbox\"\nlab = \"TEST-LAB\"\n[http]\naddr = \"127.0.0.1:0\"\nplain_http = true\n\
             [database]\nurl = \"{}\"\n[log]\nformat = \"text\"\nfilter = \"warn\"\n\
             [upstream]\nendpoints = [{{ name = \"cloud\", url = \"https://127.0.0.1:1\" }}]\n\
             ca = \"/nonexistent/ca.pem\"\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
            gw.db.runtime_url().await
        ),
    )
    .unwrap();
    let out = run(
        "edge-gateway",
        &["--config", config.to_str().unwrap(), "audit", "verify"],
        &[],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("audit chain OK: 5 record(s) verified, head at position 35"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_database_role_that_could_rewrite_the_audit_chain() {
    let gw = TestGateway::start().await;
    // A configuration serve would run with (it did, before the check): real credential files, the
    // lab CA in the test's folder, sync and relay off.
    let dir = tempfile::tempdir().unwrap();
    let upstream = TestPki::new(&dir.path().join("upstream"));
    let (cert, key) = upstream.client("upstream-client", "TEST-LAB");
    let config = dir.path().join("edge-gateway.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"preproduction\"\nlab = \"TEST-LAB\"\n[http]\naddr = \"127.0.0.1:0\"\nplain_http = true\n\
             [database]\nurl = \"{url}\"\n[redis]\nkey_prefix = \"{prefix}\"\n[log]\nformat = \"text\"\nfilter = \"warn\"\n\
             [pki]\ndir = \"{d}/pki\"\n[sync]\nenabled = false\n[relay]\nenabled = false\n\
             [upstream]\nendpoints = [{{ name = \"cloud\", url = \"http://127.0.0.1:1\" }}]\n\
             ca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
            url = gw.db.url(),
            prefix = gw.redis.prefix(),
            d = dir.path().display(),
            ca = upstream.ca_path().display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    // The twin's key-encryption key, so that only the role check can stop serve.
    let kek = gw.key_encryption_key();
    let mut serve = Spawned::start(
        "edge-gateway",
        &["--config", config.to_str().unwrap(), "serve"],
        &[("LABEDGE_GATEWAY_AUTH__KEY_ENCRYPTION_KEY", kek.as_str())],
        dir.path(),
    );
    let status = serve.wait_exit(Duration::from_secs(20)).await;
    let text = serve.output();
    if status.is_none() {
        serve.signal("KILL");
    }
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{text}");
    assert!(
        text.contains("could rewrite the audit chain") && text.contains("labedge_gateway_runtime"),
        "{text}"
    );

    // What it found: the owner (here the superuser the tests migrate with) is what serve ran as before.
    let mut owner = gw.db.conn().await;
    let problems = powers(&mut owner).await.unwrap().problems();
    assert!(
        problems.iter().any(|p| p.contains("superuser")) && problems.iter().any(|p| p.contains("owns")),
        "{problems:?}"
    );
}

#[test]
fn the_checkpoint_interval_defaults_to_5_minutes_and_the_migration_url_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let load = |extra: &str, audit: &str| {
        let path = dir.path().join("edge-gateway.toml");
        std::fs::write(
            &path,
            format!(
                "profile = \"sandbox\"\nlab = \"TEST-LAB\"\n[http]\naddr = \"127.0.0.1:0\"\nplain_http = true\n\
                 [database]\nurl = \"postgres://labedge_gateway@127.0.0.1/labedge_edge\"\n{extra}\n\
                 [upstream]\nendpoints = [{{ name = \"cloud\", url = \"https://127.0.0.1:1\" }}]\n\
                 ca = \"/nonexistent/ca.pem\"\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n{audit}"
            ),
        )
        .unwrap();
        labedge_edge_gateway::config::Config::load(Some(&path), false)
    };
    let config = load("", "").unwrap();
    assert_eq!(config.audit.checkpoint_interval_minutes, 5);
    assert_eq!(
        config.database.migration_url(),
        "postgres://labedge_gateway@127.0.0.1/labedge_edge",
        "migrate uses database.url when no migration_url is given"
    );
    let owner = "postgresql:///labedge_edge?host=/var/run/postgresql&user=labedge_gateway_owner";
    let config = load(&format!("migration_url = \"{owner}\""), "").unwrap();
    assert_eq!(config.database.migration_url(), owner);
    for minutes in [0, 61] {
        let error = load("", &format!("[audit]\ncheckpoint_interval_minutes = {minutes}"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("audit.checkpoint_interval_minutes"), "{error}");
    }
    let error = load("migration_url = \"mysql://root@db/x\"", "")
        .unwrap_err()
        .to_string();
    assert!(error.contains("database.migration_url"), "{error}");
}
