//! The smaller holes of the security review (issue 12, item 7), each shown closed: idempotency keys
//! scoped to (device, staff) and a replay checked like a first request; retention purges of the
//! authentication and idempotency tables; `no-store` on every admin JSON answer; the cloud's
//! `/metrics` for the supervision only; enrollment checks its code before signing or hashing.
//! (IPv4-mapped peers: `gate.rs`; request ids: `ops.rs`; `collected_at` in the past: `time.rs`.)

use actix_web::test::TestRequest;
use diesel_async::SimpleAsyncConnection;
use labedge_edge_gateway::housekeeping;
use labedge_schema::db::Database;
use labedge_tests::app::{TestApp, TestResponse};
use labedge_tests::db::TestDb;
use labedge_tests::edge_data::{self, collection, home_visit, patient, prescription};
use labedge_tests::gateway::{HOME_SAMPLER, NURSE, TestGateway};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes;
use mobile_contracts::{EnrollRequest, NewCollection};
use time::macros::date;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

async fn post_collection(gw: &TestGateway, token: &str, key: &str, body: &NewCollection) -> TestResponse {
    gw.app
        .send(
            TestRequest::post()
                .uri(routes::COLLECTIONS)
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("idempotency-key", key.to_owned()))
                .set_json(body),
        )
        .await
}

/// A lab with one patient on the home sampler's round today, with a prescription.
async fn round_lab() -> (TestGateway, Uuid, Uuid, Uuid) {
    let gw = TestGateway::start().await;
    edge_data::insert_catalog(&gw).await;
    let today = edge_data::local_today(&gw).await;
    let p = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&p)).await;
    let rx = prescription(gw.lab_id, p.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&rx)).await;
    let at = edge_data::local_time(&gw, today, 9, 0).await;
    let visit = home_visit(gw.lab_id, p.id, gw.staff_id(HOME_SAMPLER.0), at, 1);
    edge_data::upsert_appointments(&gw, std::slice::from_ref(&visit)).await;
    (gw, p.id, rx.prescription.id, visit.id)
}

/// Takes every visit out of every round (as a reassignment would).
async fn unassign_every_visit(gw: &TestGateway) {
    gw.db
        .conn()
        .await
        .batch_execute("UPDATE appointments SET assigned_staff_id = NULL")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_used_by_one_staff_member_is_never_answered_to_another_on_the_same_tablet() {
    let (gw, patient, rx, _) = round_lab().await;
    let device = gw.enroll(None).await;
    let nurse = gw.login(&device, NURSE.0, NURSE.1).await;
    let key = Uuid::now_v7().to_string();
    let mut body = collection(patient, rx, &["EDTA"]);
    body.collected_at = OffsetDateTime::now_utc();
    post_collection(&gw, nurse.access_token.expose_secret(), &key, &body)
        .await
        .expect(201);
    // Another member on the same tablet, whose round does not hold this patient any more (the
    // visit reassigned), replays the nurse's request byte for byte.
    unassign_every_visit(&gw).await;
    let sampler = gw.login(&device, HOME_SAMPLER.0, HOME_SAMPLER.1).await;
    let replay = post_collection(&gw, sampler.access_token.expose_secret(), &key, &body).await;
    assert_eq!(
        replay.status.as_u16(),
        422,
        "judged as her own first request: {}",
        replay.text()
    );
    assert_eq!(replay.problem().errors[0].pointer, "/patient_id");
    // The nurse's own replay still gets the stored answer.
    post_collection(&gw, nurse.access_token.expose_secret(), &key, &body)
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_checked_against_scope_and_role_like_a_first_request() {
    let (gw, patient, rx, visit) = round_lab().await;
    let (_, sampler) = {
        let device = gw.enroll(None).await;
        let tokens = gw.login(&device, HOME_SAMPLER.0, HOME_SAMPLER.1).await;
        (device, tokens)
    };
    let token = sampler.access_token.expose_secret().to_owned();
    let key = Uuid::now_v7().to_string();
    let mut body = collection(patient, rx, &["EDTA"]);
    body.collected_at = OffsetDateTime::now_utc();
    body.appointment_id = Some(visit);
    let first = post_collection(&gw, &token, &key, &body).await.expect(201);
    post_collection(&gw, &token, &key, &body).await.expect(201);
    // The visit leaves her round: her replay no longer shows her the patient's receipt.
    unassign_every_visit(&gw).await;
    let replay = post_collection(&gw, &token, &key, &body).await.expect(422);
    assert_eq!(replay.problem().code, ErrorCode::ValidationFailed);
    assert_ne!(replay.body, first.body);
    // The appointment change of the same kind: a replay on a visit she no longer has is 404.
    gw.db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE appointments SET assigned_staff_id = '{}'",
            gw.staff_id(HOME_SAMPLER.0)
        ))
        .await
        .unwrap();
    let patch = |token: &str, key: &str| {
        TestRequest::patch()
            .uri(&routes::with_id(routes::APPOINTMENT, visit))
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("idempotency-key", key.to_owned()))
            .insert_header(("if-match", "\"1\""))
            .set_json(serde_json::json!({"status": "checked_in"}))
    };
    let key = Uuid::now_v7().to_string();
    gw.app.send(patch(&token, &key)).await.expect(200);
    unassign_every_visit(&gw).await;
    gw.app.send(patch(&token, &key)).await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_authentication_and_idempotency_rows_are_purged_by_their_documented_rule() {
    let db = TestDb::migrated(Database::Edge).await;
    let mut conn = db.conn().await;
    // For each table, a row just past its retention and one just inside it.
    conn.batch_execute(
        "INSERT INTO login_failures (scope, kind, login, failures, updated_at) VALUES \
           ('pin:a:old', 'pin', 'old', 2, now() - interval '25 hours'), \
           ('pin:a:new', 'pin', 'new', 2, now() - interval '23 hours'); \
         INSERT INTO login_failures (scope, kind, login, failures, locked_until, updated_at) VALUES \
           ('pin:a:locked', 'pin', 'locked', 0, now() + interval '3 hours', now() - interval '25 hours'); \
         INSERT INTO idempotency_keys (device_id, staff_id, idempotency_key, request_sha256, response_status, \
                                       response_body, created_at) VALUES \
           (gen_random_uuid(), gen_random_uuid(), 'old', '\\x00', 201, '{}', now() - interval '8 days'), \
           (gen_random_uuid(), gen_random_uuid(), 'new', '\\x00', 201, '{}', now() - interval '6 days'); \
         INSERT INTO auth_sessions (id, device_id, staff_id, expires_at, revoked_at) VALUES \
           ('00000000-0000-7000-8000-000000000001', gen_random_uuid(), gen_random_uuid(), now() - interval '31 days', NULL), \
           ('00000000-0000-7000-8000-000000000002', gen_random_uuid(), gen_random_uuid(), now() + interval '1 day', now() - interval '31 days'), \
           ('00000000-0000-7000-8000-000000000003', gen_random_uuid(), gen_random_uuid(), now() - interval '29 days', NULL); \
         INSERT INTO refresh_tokens (token_sha256, session_id, expires_at) VALUES \
           ('\\x01', '00000000-0000-7000-8000-000000000001', now() + interval '1 hour'), \
           ('\\x02', '00000000-0000-7000-8000-000000000003', now() - interval '25 hours'), \
           ('\\x03', '00000000-0000-7000-8000-000000000003', now() - interval '23 hours'); \
         INSERT INTO admin_sessions (id_sha256, staff_id, csrf_token, expires_at) VALUES \
           ('\\x01', gen_random_uuid(), 'x', now() - interval '25 hours'), \
           ('\\x02', gen_random_uuid(), 'x', now() - interval '23 hours'); \
         INSERT INTO enrollment_codes (code_sha256, created_by, expires_at, used_at) VALUES \
           ('\\x01', gen_random_uuid(), now() - interval '8 days', NULL), \
           ('\\x02', gen_random_uuid(), now() + interval '1 day', now() - interval '8 days'), \
           ('\\x03', gen_random_uuid(), now() - interval '6 days', NULL); \
         INSERT INTO outbox (mutation_id, kind, entity_key, payload, sent_at, outcome) VALUES \
           (gen_random_uuid(), 'collection.create', 'collection:1', '{}', now() - interval '31 days', 'applied'), \
           (gen_random_uuid(), 'collection.create', 'collection:2', '{}', now() - interval '31 days', 'duplicate'), \
           (gen_random_uuid(), 'collection.create', 'collection:3', '{}', now() - interval '29 days', 'applied'), \
           (gen_random_uuid(), 'appointment.update', 'appointment:4', '{}', now() - interval '31 days', 'conflict'), \
           (gen_random_uuid(), 'collection.create', 'collection:5', '{}', NULL, NULL); \
         INSERT INTO change_log (position, entity, entity_id, op, changed_at) VALUES \
           (nextval('change_position_seq'), 'patient', gen_random_uuid(), 'upsert', now() - interval '73 hours'), \
           (nextval('change_position_seq'), 'patient', gen_random_uuid(), 'upsert', now() - interval '71 hours');",
    )
    .await
    .unwrap();
    let purged = housekeeping::purge(&mut conn, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(
        purged,
        housekeeping::Purged {
            login_failures: 1,
            idempotency_keys: 1,
            refresh_tokens: 2,
            auth_sessions: 2,
            admin_sessions: 1,
            enrollment_codes: 2,
            pin_reset_codes: 0,
            outbox_sent: 2,
            change_log: 1,
            collections: 0,
        }
    );
    // What stays is what is inside its retention.
    let remaining: Vec<(String, i64)> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT 'login_failures' AS t, count(*) AS n FROM login_failures UNION ALL \
             SELECT 'idempotency_keys', count(*) FROM idempotency_keys UNION ALL \
             SELECT 'refresh_tokens', count(*) FROM refresh_tokens UNION ALL \
             SELECT 'auth_sessions', count(*) FROM auth_sessions UNION ALL \
             SELECT 'admin_sessions', count(*) FROM admin_sessions UNION ALL \
             SELECT 'enrollment_codes', count(*) FROM enrollment_codes UNION ALL \
             SELECT 'outbox', count(*) FROM outbox UNION ALL \
             SELECT 'change_log', count(*) FROM change_log",
        ),
        &mut conn,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|row: Count| (row.t, row.n))
    .collect();
    for (table, left) in remaining {
        let expected = match table.as_str() {
            "login_failures" => 2,
            "refresh_tokens" => 1,
            // Sent 29 days ago, a conflict kept for the lab admin, one pending.
            "outbox" => 3,
            _ => 1,
        };
        assert_eq!(left, expected, "{table}");
    }
    // A second pass finds nothing more.
    let again = housekeeping::purge(&mut conn, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(again, housekeeping::Purged::default());
    // An hour later, nothing crossed a bound yet either; a week and a half later, everything has.
    let later = housekeeping::purge(&mut conn, OffsetDateTime::now_utc() + Duration::days(40))
        .await
        .unwrap();
    assert!(later.idempotency_keys == 1 && later.auth_sessions == 1 && later.enrollment_codes == 1);
    // The conflict and the pending entry are never purged.
    assert!(later.outbox_sent == 1 && later.change_log == 1, "{later:?}");
}

/// Collections go 30 days after their sample once the cloud holds them, with their tubes and void;
/// one whose entry is still pending, in conflict or rejected, or whose void is, stays.
#[tokio::test]
async fn collections_the_cloud_holds_are_purged_after_thirty_days_with_their_tubes() {
    let db = TestDb::migrated(Database::Edge).await;
    let mut conn = db.conn().await;
    // c1: old, applied, voided (applied); c2: old, still pending; c3: 29 days, applied;
    // c4: old, applied, its void in conflict; c5: old, its entry already purged (applied long ago).
    let taken = |n: u8, days: u8| {
        format!(
            "('00000000-0000-4000-8000-0000000000c{n}', gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), \
              now() - interval '{days} days', gen_random_uuid(), gen_random_uuid(), false)"
        )
    };
    let tube = |n: u8| format!("('00000000-0000-4000-8000-0000000000c{n}', 'BC-{n}', 'EDTA')");
    let entry = |n: u8, kind: &str, outcome: &str| {
        format!(
            "(gen_random_uuid(), '{kind}', 'collection:00000000-0000-4000-8000-0000000000c{n}', '{{}}', \
              {sent}, {outcome})",
            sent = if outcome == "NULL" {
                "NULL"
            } else {
                "now() - interval '20 days'"
            }
        )
    };
    conn.batch_execute(&format!(
        "INSERT INTO collections (id, lab_id, patient_id, prescription_id, collected_at, collected_by, device_id, \
                                  identity_checked) VALUES {}, {}, {}, {}, {}; \
         INSERT INTO collection_tubes (collection_id, barcode, tube_type) VALUES {}, {}, {}, {}, {}; \
         INSERT INTO collection_voids (collection_id, reason, voided_by, device_id) VALUES \
           ('00000000-0000-4000-8000-0000000000c1', 'wrong patient', gen_random_uuid(), gen_random_uuid()), \
           ('00000000-0000-4000-8000-0000000000c4', 'wrong patient', gen_random_uuid(), gen_random_uuid()); \
         INSERT INTO outbox (mutation_id, kind, entity_key, payload, sent_at, outcome) VALUES {}, {}, {}, {}, {}, {}, {};",
        taken(1, 31),
        taken(2, 31),
        taken(3, 29),
        taken(4, 31),
        taken(5, 60),
        tube(1),
        tube(2),
        tube(3),
        tube(4),
        tube(5),
        entry(1, "collection.create", "'applied'"),
        entry(1, "collection.void", "'duplicate'"),
        entry(2, "collection.create", "NULL"),
        entry(3, "collection.create", "'applied'"),
        entry(4, "collection.create", "'applied'"),
        entry(4, "collection.void", "'conflict'"),
        entry(5, "appointment.update", "'rejected'").replace("collection:00000000-0000-4000-8000-0000000000c5", "appointment:5"),
    ))
    .await
    .unwrap();
    let purged = housekeeping::purge(&mut conn, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(purged.collections, 2, "{purged:?}");
    let left = |table: &str, column: &str| {
        format!(
            "SELECT count(*) AS n FROM {table} WHERE {column}::text IN ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000c5')"
        )
    };
    for (table, column) in [
        ("collections", "id"),
        ("collection_tubes", "collection_id"),
        ("collection_voids", "collection_id"),
    ] {
        assert_eq!(
            labedge_tests::db::count(&mut conn, &left(table, column)).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        labedge_tests::db::count(&mut conn, "SELECT count(*) AS n FROM collections").await,
        3
    );
    assert_eq!(
        labedge_tests::db::count(&mut conn, "SELECT count(*) AS n FROM collection_tubes").await,
        3
    );
    assert_eq!(
        labedge_tests::db::count(&mut conn, "SELECT count(*) AS n FROM collection_voids").await,
        1,
        "the void in conflict stays with its collection"
    );
    // A day later, the 29-day-old one has crossed the bound; the pending and the conflict never do.
    let later = housekeeping::purge(&mut conn, OffsetDateTime::now_utc() + Duration::days(2))
        .await
        .unwrap();
    assert_eq!(later.collections, 1, "{later:?}");
    let kept = housekeeping::purge(&mut conn, OffsetDateTime::now_utc() + Duration::days(400))
        .await
        .unwrap();
    assert_eq!(kept.collections, 0);
}

/// The console's days of autonomy rest on the database's growth: from the hourly samples of the
/// last day before the latest, once they span an hour.
#[tokio::test]
async fn the_databases_daily_growth_is_read_from_the_last_day_of_samples() {
    use labedge_edge_gateway::storage;
    let db = TestDb::migrated(Database::Edge).await;
    let mut conn = db.conn().await;
    assert_eq!(storage::growth(&mut conn).await.unwrap(), None, "no sample yet");
    storage::sample(&mut conn).await.unwrap();
    assert_eq!(
        storage::growth(&mut conn).await.unwrap(),
        None,
        "one sample spans no time"
    );
    conn.batch_execute(
        "DELETE FROM storage_samples; \
         INSERT INTO storage_samples (at, database_bytes) VALUES \
           (now() - interval '40 hours', 1), \
           (now() - interval '20 hours', 1000000000), \
           (now() - interval '11 hours', 1200000000), \
           (now() - interval '2 hours', 1450000000), \
           (now() - interval '9 days', 5);",
    )
    .await
    .unwrap();
    // 450 MB over the 18 hours from the oldest sample of the day before the latest: 600 MB a day.
    assert_eq!(storage::growth(&mut conn).await.unwrap(), Some(600_000_000));
    let status = storage::storage(&mut conn, std::path::Path::new("/")).await.unwrap();
    assert!(status.database_bytes > 0);
    let free = status.free_bytes.expect("the root's free space is readable");
    #[expect(clippy::cast_precision_loss, reason = "a test's comparison")]
    let expected = free as f64 / 600_000_000.0;
    assert!(
        status
            .autonomy_days
            .is_some_and(|d| (d - expected).abs() < expected * 0.01 + 0.01)
    );
    // Sampling again forgets what is older than eight days.
    storage::sample(&mut conn).await.unwrap();
    assert_eq!(
        labedge_tests::db::count(&mut conn, "SELECT count(*) AS n FROM storage_samples").await,
        5
    );
    let unreadable = storage::storage(&mut conn, std::path::Path::new("/no/such/disk"))
        .await
        .unwrap();
    assert_eq!((unreadable.free_bytes, unreadable.autonomy_days), (None, None));
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_json_answer_is_no_store_errors_included() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let device = gw.enroll(None).await;
    let patient = Uuid::now_v7();
    let mut checked = 0;
    for path in [
        "/admin/v1/session".to_owned(),
        "/admin/v1/devices".to_owned(),
        "/admin/v1/devices/pending-pushes".to_owned(),
        "/admin/v1/security-events".to_owned(),
        "/admin/v1/status".to_owned(),
        "/admin/v1/conflicts".to_owned(),
        "/admin/v1/dead-letters".to_owned(),
        "/admin/v1/lockouts".to_owned(),
        "/admin/v1/history".to_owned(),
        "/admin/v1/reconciliations".to_owned(),
        format!("/admin/v1/patients/{patient}/access"),
        "/admin/v1/no-such-route".to_owned(),
    ] {
        for with_cookie in [true, false] {
            let mut request = TestRequest::get().uri(&path);
            if with_cookie {
                request = request.insert_header(("cookie", admin.cookie.clone()));
            }
            let response = gw.from_admin_network(request).await;
            assert_eq!(
                response.header("cache-control").as_deref(),
                Some("no-store"),
                "{path} (cookie: {with_cookie}) answered {}",
                response.status
            );
            checked += 1;
        }
    }
    // State changes too, refused ones included.
    let revoke = gw.revoke_device(&admin, device.id).await;
    assert_eq!(revoke.header("cache-control").as_deref(), Some("no-store"));
    assert!(checked >= 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clouds_metrics_answer_the_supervision_only() {
    let db = TestDb::migrated(Database::Cloud).await;
    let pki = tempfile::tempdir().unwrap();
    let mut config = labedge_tests::fixtures::api_config(db.url(), pki.path());
    config.monitoring.ranges = vec!["10.200.0.0/24".parse().unwrap()];
    let state = labedge_api::startup::build_state(config).unwrap();
    let app = TestApp::new(labedge_api::startup::app(state)).await;
    for outsider in [
        "10.8.1.7:5000",
        "10.31.0.10:5000",
        "[::ffff:10.31.0.10]:5000",
        "127.0.0.1:5000",
    ] {
        let refused = app.from_peer(outsider).get("/metrics").await.expect(403);
        assert_eq!(refused.problem().code, ErrorCode::PeerNotAllowed, "{outsider}");
        assert!(!refused.text().contains("labedge_"), "no series to {outsider}");
    }
    for supervision in ["10.200.0.5:5000", "[::ffff:10.200.0.5]:5000"] {
        let scraped = app.from_peer(supervision).get("/metrics").await.expect(200);
        assert!(scraped.text().contains("# TYPE"), "{supervision}");
    }
    // The health routes stay open to the load balancer.
    app.from_peer("10.10.0.2:5000").get("/healthz").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_checks_its_code_before_signing_or_hashing_anything() {
    let gw = TestGateway::start().await;
    // A bad code with a CSR the gateway cannot sign: the code is what is refused, so the CSR was
    // never looked at (nor a secret hashed).
    let request = EnrollRequest {
        code: "ZZZZZZZZ".into(),
        label: "Tablette".into(),
        app_version: None,
        csr_pem: Some("-----BEGIN CERTIFICATE REQUEST-----\nnot a CSR\n-----END CERTIFICATE REQUEST-----\n".into()),
    };
    let refused = gw
        .app
        .json(actix_web::http::Method::POST, "/v1/devices/enroll", &request)
        .await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.text());
    assert_eq!(refused.problem().code, ErrorCode::EnrollmentCodeInvalid);
    // With a live code, the same CSR is refused for itself, and the code is not spent by it.
    let admin = gw.admin_login().await;
    let code = gw.enrollment_code(&admin).await;
    let bad_csr = EnrollRequest {
        code: code.clone(),
        ..request
    };
    let r = gw
        .app
        .json(actix_web::http::Method::POST, "/v1/devices/enroll", &bad_csr)
        .await
        .expect(422);
    assert_eq!(r.problem().errors[0].pointer, "/csr_pem");
    let good = EnrollRequest {
        csr_pem: None,
        ..bad_csr
    };
    gw.app
        .json(actix_web::http::Method::POST, "/v1/devices/enroll", &good)
        .await
        .expect(201);
}
