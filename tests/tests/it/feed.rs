//! The cloud's gateway-facing sync API, in process against a real migrated cloud database: the
//! change feed (commit-safe positions, scope, removals, related rows), snapshots, checksums (checked
//! against the gateway's own digest of the rows it received), the horizon job and the mutual-TLS
//! credential.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_api::config::Config;
use labedge_api::demo::{SeedArgs, seed_into};
use labedge_api::feed::{advance_horizon, read_changes};
use labedge_api::startup::{app, build_state};
use labedge_schema::db::Database;
use labedge_schema::sync::{
    AppointmentRow, Checksums, Entity, ExamRow, FeedChange, FeedHead, FeedPage, LabRow, PatientRow, PrescriptionRecord,
    Record, SnapshotPage, StaffRow, TubeTypeRow, digest,
};
use labedge_service::tls::{install_crypto_provider, parse_certs};
use labedge_tests::app::TestApp;
use labedge_tests::db::TestDb;
use labedge_tests::fixtures::{TestPki, api_config};
use mobile_contracts::problem::ErrorCode;
use time::OffsetDateTime;
use uuid::Uuid;

/// Two proximity labs with a gateway each, the catalog, and staff; the app answers as lab A's
/// gateway until `app.certificate` is changed.
struct Net {
    db: TestDb,
    conn: AsyncPgConnection,
    app: TestApp,
    config: Config,
    pki: TestPki,
    lab_a: Uuid,
    lab_b: Uuid,
    cert_a: Vec<u8>,
    cert_b: Vec<u8>,
    _dir: tempfile::TempDir,
}

/// The end of the default window (3 days ahead, Paris), restated independently of the API's code.
const WINDOW_END: &str =
    "((date_trunc('day', now() AT TIME ZONE 'Europe/Paris') + interval '4 days') AT TIME ZONE 'Europe/Paris')";

async fn net() -> Net {
    install_crypto_provider();
    let db = TestDb::migrated(Database::Cloud).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let config = api_config(db.url(), dir.path());
    let app = TestApp::new(app(build_state(config.clone()).unwrap())).await;
    let mut conn = db.conn().await;
    let (lab_a, lab_b) = (Uuid::now_v7(), Uuid::now_v7());
    conn.batch_execute(&format!(
        "INSERT INTO labs (id, code, name, kind) VALUES ('{lab_a}', 'LAB-A', 'Lab A', 'proximity'), \
                                                        ('{lab_b}', 'LAB-B', 'Lab B', 'proximity');
         INSERT INTO tube_types (code, label, cap_color, capacity_ul, draw_order)
             VALUES ('EDTA', 'EDTA', 'lavender', 4000, 3), ('SST', 'Serum', 'gold', 5000, 2);
         INSERT INTO exam_catalog (code, label, tube_type, volume_ul) VALUES ('NFS', 'Blood count', 'EDTA', 2000),
             ('GLY', 'Glucose', 'SST', 1000);
         INSERT INTO staff (id, lab_id, login, display_name, role, pin_hash) VALUES
             ('{}', '{lab_a}', 'nurse.a', 'Nurse A', 'nurse', 'x'),
             ('{}', '{lab_b}', 'nurse.b', 'Nurse B', 'nurse', 'x');",
        Uuid::now_v7(),
        Uuid::now_v7()
    ))
    .await
    .unwrap();
    let cert_a = gateway(&mut conn, &pki, lab_a, "LAB-A").await;
    let cert_b = gateway(&mut conn, &pki, lab_b, "LAB-B").await;
    let mut net = Net {
        db,
        conn,
        app,
        config,
        pki,
        lab_a,
        lab_b,
        cert_a,
        cert_b,
        _dir: dir,
    };
    net.app.certificate = Some(net.cert_a.clone());
    net
}

/// Issues and records a lab's gateway credential, as `api provision-gateway` does; returns the DER.
async fn gateway(conn: &mut AsyncPgConnection, pki: &TestPki, lab: Uuid, code: &str) -> Vec<u8> {
    let der = client_cert(pki, code);
    let fingerprint = labedge_service::tls::sha256_hex(&der);
    conn.batch_execute(&format!(
        "INSERT INTO gateways (id, lab_id, cert_serial, cert_sha256, cert_not_after) \
         VALUES ('{}', '{lab}', '{}', '{fingerprint}', now() + interval '30 days')",
        Uuid::now_v7(),
        Uuid::now_v7().simple()
    ))
    .await
    .unwrap();
    der
}

/// A client certificate signed by the cloud CA (DER), not yet recorded anywhere.
fn client_cert(pki: &TestPki, code: &str) -> Vec<u8> {
    let issued = pki
        .ca
        .issue_client(&format!("LabEdge gateway {code}"), code, 30)
        .unwrap();
    parse_certs(&issued.cert_pem).unwrap().remove(0).to_vec()
}

async fn patient(conn: &mut AsyncPgConnection, family: &str) -> Uuid {
    let id = Uuid::now_v7();
    conn.batch_execute(&format!(
        "INSERT INTO patients (id, identity_status, birth_family_name, birth_given_names, first_given_name, \
                               birth_date, sex) \
         VALUES ('{id}', 'provisional', '{family}', 'Jean Paul', 'Jean', '1970-05-04', 'M')"
    ))
    .await
    .unwrap();
    id
}

/// An open prescription of `lab` issued `days_ago`, with two exams.
async fn prescription(conn: &mut AsyncPgConnection, patient: Uuid, lab: Uuid, days_ago: i32) -> Uuid {
    let id = Uuid::now_v7();
    conn.batch_execute(&format!(
        "BEGIN;
         INSERT INTO prescriptions (id, patient_id, lab_id, prescriber_name, prescriber_rpps, issued_on, status) \
         VALUES ('{id}', '{patient}', '{lab}', 'Dr Martin', '10001234567', current_date - {days_ago}, 'open');
         INSERT INTO prescribed_exams (prescription_id, exam_code) VALUES ('{id}', 'NFS'), ('{id}', 'GLY');
         COMMIT;"
    ))
    .await
    .unwrap();
    id
}

/// A lab visit of `lab` at `at` (an SQL expression).
async fn appointment(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    patient: Uuid,
    prescription: Option<Uuid>,
    at: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    let prescription = prescription.map_or("NULL".to_owned(), |p| format!("'{p}'"));
    conn.batch_execute(&format!(
        "INSERT INTO appointments (id, lab_id, patient_id, prescription_id, kind, scheduled_at, status) \
         VALUES ('{id}', '{lab}', '{patient}', {prescription}, 'lab', {at}, 'scheduled')"
    ))
    .await
    .unwrap();
    id
}

/// Reads the feed from `after` until nothing more waits; returns every change and the last `next`.
async fn drain(app: &TestApp, lab: &str, after: i64) -> (Vec<FeedChange>, i64) {
    let mut changes = Vec::new();
    let mut position = after;
    loop {
        let page: FeedPage = app
            .get(&format!("/v1/labs/{lab}/changes?after={position}&limit=3"))
            .await
            .expect(200)
            .json();
        assert_eq!(page.lab, lab);
        assert_eq!(page.after, position);
        assert!(page.next >= position);
        assert!(
            page.changes.windows(2).all(|w| w[0].position <= w[1].position),
            "by position"
        );
        assert!(
            page.changes
                .iter()
                .all(|c| c.position > position && c.position <= page.next)
        );
        if page.has_more {
            assert_eq!(
                page.changes.last().unwrap().position,
                page.next,
                "a full page ends with its last entry"
            );
        }
        changes.extend(page.changes);
        position = page.next;
        if !page.has_more {
            assert_eq!(page.next, page.head, "caught up with the head");
            return (changes, position);
        }
    }
}

async fn head(app: &TestApp, lab: &str) -> i64 {
    app.get(&format!("/v1/labs/{lab}/changes/head"))
        .await
        .expect(200)
        .json::<FeedHead>()
        .position
}

/// The last change of a row in `changes`.
fn last_of(changes: &[FeedChange], entity: Entity, key: Uuid) -> Option<&FeedChange> {
    let key = key.to_string();
    changes.iter().rev().find(|c| c.entity == entity && c.key == key)
}

fn upserted(changes: &[FeedChange], entity: Entity, key: Uuid) -> Option<&Record> {
    last_of(changes, entity, key).and_then(|c| c.record.as_ref())
}

fn mentions(changes: &[FeedChange], key: Uuid) -> bool {
    let key = key.to_string();
    changes.iter().any(|c| c.key == key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_in_the_cloud_appears_after_the_gateways_position() {
    let mut net = net().await;
    let p = patient(&mut net.conn, "DURAND").await;
    let rx = prescription(&mut net.conn, p, net.lab_a, 2).await;
    let (bootstrap, position) = drain(&net.app, "LAB-A", 0).await;
    assert_eq!(position, head(&net.app, "LAB-A").await);
    assert!(upserted(&bootstrap, Entity::Prescription, rx).is_some());

    net.conn
        .batch_execute(&format!(
            "UPDATE patients SET used_family_name = 'MARTIN', version = version + 1 WHERE id = '{p}';
             UPDATE staff SET active = false, version = version + 1 WHERE login = 'nurse.a';
             UPDATE exam_catalog SET volume_ul = 2500, version = version + 1 WHERE code = 'NFS';"
        ))
        .await
        .unwrap();
    let (changes, next) = drain(&net.app, "LAB-A", position).await;
    assert!(next > position);
    assert!(changes.iter().all(|c| c.position > position));
    let Some(Record::Patient(row)) = upserted(&changes, Entity::Patient, p) else {
        panic!("the patient's change reaches the gateway: {changes:?}");
    };
    assert_eq!(row.used_family_name.as_deref(), Some("MARTIN"));
    assert_eq!(row.version, 2);
    let staff: Vec<&StaffRow> = changes
        .iter()
        .filter_map(|c| match &c.record {
            Some(Record::Staff(s)) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(staff.len(), 1, "only lab A's staff");
    assert!(!staff[0].active, "a deactivation arrives as active = false");
    assert!(
        changes
            .iter()
            .any(|c| matches!(&c.record, Some(Record::Exam(e)) if e.code == "NFS" && e.volume_ul == 2500))
    );

    // Nothing new: an empty page that stays where it is.
    let page: FeedPage = net
        .app
        .get(&format!("/v1/labs/LAB-A/changes?after={next}"))
        .await
        .expect(200)
        .json();
    assert!(page.changes.is_empty() && !page.has_more);
    assert_eq!((page.next, page.head), (next, next));

    // The contact is recorded.
    #[derive(diesel::QueryableByName)]
    struct Contacts {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let contacts: Contacts =
        diesel::sql_query("SELECT count(*) AS n FROM gateways WHERE last_contact_at > now() - interval '1 minute'")
            .get_result(&mut net.conn)
            .await
            .unwrap();
    assert_eq!(contacts.n, 1, "lab A's gateway only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_committing_change_is_not_skipped() {
    let mut net = net().await;
    let a = patient(&mut net.conn, "ALPHA").await;
    let b = patient(&mut net.conn, "BRAVO").await;
    for p in [a, b] {
        appointment(&mut net.conn, net.lab_a, p, None, "now() + interval '1 hour'").await;
    }
    let (_, start) = drain(&net.app, "LAB-A", 0).await;

    // T1 changes A first and stays open; T2 changes B and commits.
    let mut t1 = net.db.conn().await;
    t1.batch_execute(&format!(
        "BEGIN; UPDATE patients SET phone = '0600000001', version = version + 1 WHERE id = '{a}'"
    ))
    .await
    .unwrap();
    net.conn
        .batch_execute(&format!(
            "UPDATE patients SET phone = '0600000002', version = version + 1 WHERE id = '{b}'"
        ))
        .await
        .unwrap();
    let (first, seen) = drain(&net.app, "LAB-A", start).await;
    assert!(upserted(&first, Entity::Patient, b).is_some(), "B committed: {first:?}");
    assert!(!mentions(&first, a), "A is not committed yet");

    t1.batch_execute("COMMIT").await.unwrap();
    let (second, _) = drain(&net.app, "LAB-A", seen).await;
    let Some(Record::Patient(row)) = upserted(&second, Entity::Patient, a) else {
        panic!("A's change, committed last, comes after the position already read: {second:?}");
    };
    assert_eq!(row.phone.as_deref(), Some("0600000001"));
    assert!(last_of(&second, Entity::Patient, a).unwrap().position > seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_following_the_feed_during_concurrent_commits_misses_nothing() {
    use diesel_async::AsyncConnection;
    let mut net = net().await;
    let mut patients = Vec::new();
    for i in 0..60 {
        let p = patient(&mut net.conn, &format!("WRITER{i}")).await;
        appointment(&mut net.conn, net.lab_a, p, None, "now()").await;
        patients.push(p);
    }
    let (_, start) = drain(&net.app, "LAB-A", 0).await;

    // Four writers, each updating its own patients once, in transactions that sleep before they
    // commit, so that commits overtake one another while the gateway reads.
    let mut writers = Vec::new();
    for (w, mine) in patients.chunks(15).enumerate() {
        let (url, mine) = (net.db.url().to_owned(), mine.to_vec());
        writers.push(tokio::spawn(async move {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            for (i, p) in mine.iter().enumerate() {
                let pause = (w + i) % 4;
                conn.batch_execute(&format!(
                    "BEGIN; UPDATE patients SET version = version + 1 WHERE id = '{p}'; \
                     SELECT pg_sleep(0.00{pause}); COMMIT;"
                ))
                .await
                .unwrap();
            }
        }));
    }
    let mut position = start;
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    loop {
        let finished = writers.iter().all(|w| w.is_finished());
        let (changes, next) = drain(&net.app, "LAB-A", position).await;
        for change in changes {
            if let Some(Record::Patient(p)) = change.record {
                seen.insert(p.id.to_string(), p.version);
            }
        }
        position = next;
        if finished {
            break;
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(seen.len(), patients.len(), "every change was read");
    assert!(seen.values().all(|&version| version == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appointment_in_the_window_brings_its_patient_and_prescription_and_one_outside_is_not_sent() {
    let mut net = net().await;
    // A prescription issued long ago is out of scope by itself, and so is its patient.
    let p_in = patient(&mut net.conn, "INSIDE").await;
    let rx = prescription(&mut net.conn, p_in, net.lab_a, 60).await;
    let (before, position) = drain(&net.app, "LAB-A", 0).await;
    assert!(last_of(&before, Entity::Prescription, rx).unwrap().record.is_none());
    assert!(last_of(&before, Entity::Patient, p_in).unwrap().record.is_none());

    let p_late = patient(&mut net.conn, "LATER").await;
    let p_old = patient(&mut net.conn, "OLDER").await;
    let inside = appointment(&mut net.conn, net.lab_a, p_in, Some(rx), "now() + interval '1 day'").await;
    let ahead = appointment(
        &mut net.conn,
        net.lab_a,
        p_late,
        None,
        &format!("{WINDOW_END} + interval '1 minute'"),
    )
    .await;
    let past = appointment(&mut net.conn, net.lab_a, p_old, None, "now() - interval '31 days'").await;
    let last_day = appointment(
        &mut net.conn,
        net.lab_a,
        p_late,
        None,
        &format!("{WINDOW_END} - interval '1 minute'"),
    )
    .await;
    let (changes, _) = drain(&net.app, "LAB-A", position).await;

    let entry = last_of(&changes, Entity::Appointment, inside).unwrap();
    let Some(Record::Appointment(row)) = &entry.record else {
        panic!("in the window: {entry:?}");
    };
    assert_eq!(row.prescription_id, Some(rx));
    // Its patient and prescription entered the scope without a change of their own: they come at
    // the appointment's position.
    let patient_entry = last_of(&changes, Entity::Patient, p_in).unwrap();
    let rx_entry = last_of(&changes, Entity::Prescription, rx).unwrap();
    assert_eq!(
        (patient_entry.position, rx_entry.position),
        (entry.position, entry.position)
    );
    assert!(matches!(&patient_entry.record, Some(Record::Patient(p)) if p.birth_family_name == "INSIDE"));
    let Some(Record::Prescription(record)) = &rx_entry.record else {
        panic!("{rx_entry:?}");
    };
    assert_eq!(record.exams, vec!["GLY".to_owned(), "NFS".to_owned()]);

    assert!(
        last_of(&changes, Entity::Appointment, ahead).unwrap().record.is_none(),
        "after the window"
    );
    assert!(
        last_of(&changes, Entity::Appointment, past).unwrap().record.is_none(),
        "before the window"
    );
    assert!(upserted(&changes, Entity::Patient, p_old).is_none());
    assert!(
        upserted(&changes, Entity::Appointment, last_day).is_some(),
        "the last day is whole"
    );
    assert!(
        upserted(&changes, Entity::Patient, p_late).is_some(),
        "through the last day's visit"
    );

    // Each page names the window's end, so that the gateway books only where it holds every
    // appointment (`writes::booking::AppointmentWindow`).
    #[derive(diesel::QueryableByName)]
    struct End {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        at: time::OffsetDateTime,
    }
    let end: End = diesel::sql_query(format!("SELECT {WINDOW_END} AS at"))
        .get_result(&mut net.conn)
        .await
        .unwrap();
    let page: FeedPage = net
        .app
        .get(&format!("/v1/labs/LAB-A/changes?after={position}&limit=3"))
        .await
        .expect(200)
        .json();
    assert_eq!(page.window_ends, Some(end.at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appointment_moved_to_another_lab_is_removed_from_one_feed_and_sent_in_the_other() {
    let mut net = net().await;
    let p = patient(&mut net.conn, "MOVED").await;
    let rx = prescription(&mut net.conn, p, net.lab_a, 40).await;
    let visit = appointment(&mut net.conn, net.lab_a, p, Some(rx), "now() + interval '2 hours'").await;
    let (a_changes, a_pos) = drain(&net.app, "LAB-A", 0).await;
    assert!(upserted(&a_changes, Entity::Appointment, visit).is_some());
    let mut app_b = net.app;
    app_b.certificate = Some(net.cert_b.clone());
    let (b_changes, b_pos) = drain(&app_b, "LAB-B", 0).await;
    assert!(upserted(&b_changes, Entity::Appointment, visit).is_none());
    assert!(upserted(&b_changes, Entity::Patient, p).is_none());

    net.conn
        .batch_execute(&format!(
            "UPDATE appointments SET lab_id = '{}', version = version + 1 WHERE id = '{visit}'",
            net.lab_b
        ))
        .await
        .unwrap();
    let (b_changes, b_pos) = drain(&app_b, "LAB-B", b_pos).await;
    assert!(
        matches!(upserted(&b_changes, Entity::Appointment, visit), Some(Record::Appointment(a)) if a.lab_id == net.lab_b)
    );
    assert!(upserted(&b_changes, Entity::Patient, p).is_some());
    assert!(
        upserted(&b_changes, Entity::Prescription, rx).is_some(),
        "lab A's prescription, for B's visit"
    );
    app_b.certificate = Some(net.cert_a.clone());
    let (a_changes, _) = drain(&app_b, "LAB-A", a_pos).await;
    let left = last_of(&a_changes, Entity::Appointment, visit).unwrap();
    assert!(left.record.is_none(), "a removal in the old lab's feed: {left:?}");

    // The prescription stays lab A's, yet lab B hears of its changes while B's visit refers to it.
    net.conn
        .batch_execute(&format!(
            "UPDATE prescriptions SET notes = 'fasting since 8 pm', version = version + 1 WHERE id = '{rx}'"
        ))
        .await
        .unwrap();
    app_b.certificate = Some(net.cert_b.clone());
    let (b_changes, _) = drain(&app_b, "LAB-B", b_pos).await;
    assert!(
        matches!(upserted(&b_changes, Entity::Prescription, rx), Some(Record::Prescription(r)) if r.prescription.notes.is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_labs_patients_never_reach_another_labs_feed_snapshot_or_checksums() {
    let mut net = net().await;
    let mine = patient(&mut net.conn, "OURS").await;
    let theirs = patient(&mut net.conn, "THEIRS").await;
    appointment(&mut net.conn, net.lab_a, mine, None, "now()").await;
    let their_rx = prescription(&mut net.conn, theirs, net.lab_b, 1).await;
    let their_visit = appointment(&mut net.conn, net.lab_b, theirs, Some(their_rx), "now()").await;
    net.conn
        .batch_execute(&format!(
            "UPDATE patients SET phone = '0611111111' WHERE id = '{theirs}'"
        ))
        .await
        .unwrap();

    let (changes, _) = drain(&net.app, "LAB-A", 0).await;
    assert!(upserted(&changes, Entity::Patient, mine).is_some());
    assert!(upserted(&changes, Entity::Patient, theirs).is_none());
    assert!(
        changes
            .iter()
            .filter(|c| c.key == theirs.to_string())
            .all(|c| c.record.is_none()),
        "at most a key to remove, never the row"
    );
    assert!(
        !mentions(&changes, their_visit) && !mentions(&changes, their_rx),
        "lab B's own entries"
    );
    let body =
        String::from_utf8_lossy(&net.app.get("/v1/labs/LAB-A/changes?after=0").await.expect(200).body).into_owned();
    assert!(!body.contains("THEIRS") && !body.contains("0611111111"));

    let snapshot: SnapshotPage = net.app.get("/v1/labs/LAB-A/snapshot/patient").await.expect(200).json();
    let keys: Vec<String> = snapshot.records.iter().map(Record::key).collect();
    assert_eq!(keys, vec![mine.to_string()]);
    for entity in ["prescription", "appointment", "staff", "lab"] {
        let page: SnapshotPage = net
            .app
            .get(&format!("/v1/labs/LAB-A/snapshot/{entity}"))
            .await
            .expect(200)
            .json();
        for record in &page.records {
            let lab = match record {
                Record::Prescription(r) => r.prescription.lab_id,
                Record::Appointment(r) => r.lab_id,
                Record::Staff(r) => r.lab_id,
                Record::Lab(r) => r.id,
                other => panic!("{other:?}"),
            };
            assert_eq!(lab, net.lab_a, "{entity}");
        }
    }
    let sums: Checksums = net.app.get("/v1/labs/LAB-A/checksums").await.expect(200).json();
    let count = |e: Entity| sums.tables.iter().find(|t| t.entity == e).unwrap().digest.count;
    assert_eq!(
        (
            count(Entity::Lab),
            count(Entity::Staff),
            count(Entity::Patient),
            count(Entity::Prescription)
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(
        (count(Entity::TubeType), count(Entity::Exam), count(Entity::Appointment)),
        (2, 2, 1)
    );
}

async fn refused(app: &TestApp, routes: &[&str], status: u16, code: ErrorCode) {
    for route in routes {
        let problem = app.get(route).await.expect(status).problem();
        assert_eq!(problem.code, code, "{route}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_valid_credential_reads_and_only_its_own_lab() {
    let mut net = net().await;
    let routes = [
        "/v1/labs/LAB-B/changes/head",
        "/v1/labs/LAB-B/changes?after=0",
        "/v1/labs/LAB-B/snapshot/patient",
        "/v1/labs/LAB-B/checksums",
    ];
    net.app.certificate = None;
    refused(&net.app, &routes, 401, ErrorCode::InvalidCredentials).await;
    // Signed by the cloud CA, but never recorded as a gateway credential.
    net.app.certificate = Some(client_cert(&net.pki, "LAB-B"));
    refused(&net.app, &routes, 401, ErrorCode::InvalidCredentials).await;
    // Lab A's credential on lab B's routes, or a lab that does not exist.
    net.app.certificate = Some(net.cert_a.clone());
    refused(&net.app, &routes, 403, ErrorCode::Forbidden).await;
    net.app.get("/v1/labs/NOPE/changes/head").await.expect(403);
    // Authentication comes before the query is even read.
    net.app.certificate = None;
    net.app.get("/v1/labs/LAB-B/changes?limit=999999").await.expect(401);

    net.app.certificate = Some(net.cert_b.clone());
    for route in routes {
        net.app.get(route).await.expect(200);
    }
    net.conn
        .batch_execute(&format!(
            "UPDATE gateways SET cert_not_after = now() - interval '1 second' WHERE lab_id = '{}'",
            net.lab_b
        ))
        .await
        .unwrap();
    refused(&net.app, &routes, 401, ErrorCode::InvalidCredentials).await;
    net.conn
        .batch_execute(&format!(
            "UPDATE gateways SET cert_not_after = now() + interval '1 day', revoked_at = now() WHERE lab_id = '{}'",
            net.lab_b
        ))
        .await
        .unwrap();
    refused(&net.app, &routes, 401, ErrorCode::InvalidCredentials).await;
    // Lab A's credential is untouched.
    net.app.certificate = Some(net.cert_a.clone());
    net.app.get("/v1/labs/LAB-A/changes/head").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_422_and_an_unknown_table_404() {
    let net = net().await;
    let cases = [
        ("/v1/labs/LAB-A/changes?after=0&limit=5001", "/limit"),
        ("/v1/labs/LAB-A/changes?limit=0", "/limit"),
        ("/v1/labs/LAB-A/changes?after=-1", "/after"),
        ("/v1/labs/LAB-A/changes?after=x", "/after"),
        ("/v1/labs/LAB-A/changes?from=3", "/from"),
        ("/v1/labs/LAB-A/snapshot/patient?limit=10001", "/limit"),
        ("/v1/labs/LAB-A/snapshot/patient?after=not-a-uuid", "/after"),
        ("/v1/labs/LAB-A/snapshot/patient?bucket=G1", "/bucket"),
        ("/v1/labs/LAB-A/snapshot/patient?bucket=abc", "/bucket"),
        ("/v1/labs/LAB-A/checksums?entity=visits", "/entity"),
    ];
    for (route, pointer) in cases {
        let problem = net.app.get(route).await.expect(422).problem();
        assert_eq!(problem.code, ErrorCode::ValidationFailed, "{route}");
        assert_eq!(problem.errors[0].pointer, pointer, "{route}");
    }
    net.app
        .get("/v1/labs/LAB-A/changes?after=0&limit=5000")
        .await
        .expect(200);
    net.app.get("/v1/labs/LAB-A/snapshot/collections").await.expect(404);
    net.app
        .get("/v1/labs/LAB-A/snapshot/exam?after=NFS&bucket=0a")
        .await
        .expect(200);
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    key: String,
}

/// The keys of `entity` in `lab`'s scope, by SQL written here from the documented rules.
async fn expected_keys(conn: &mut AsyncPgConnection, entity: Entity, lab: Uuid) -> BTreeSet<String> {
    let appointments = format!(
        "SELECT * FROM appointments WHERE lab_id = '{lab}' AND scheduled_at >= now() - interval '30 days' \
         AND scheduled_at < {WINDOW_END}"
    );
    let prescriptions = format!(
        "SELECT * FROM prescriptions WHERE (lab_id = '{lab}' AND status = 'open' \
           AND issued_on >= (now() AT TIME ZONE 'Europe/Paris')::date - 30) \
         OR id IN (SELECT prescription_id FROM ({appointments}) a)"
    );
    let sql = match entity {
        Entity::Lab => format!("SELECT id::text AS key FROM labs WHERE id = '{lab}'"),
        Entity::Staff => format!("SELECT id::text AS key FROM staff WHERE lab_id = '{lab}'"),
        Entity::TubeType => "SELECT code AS key FROM tube_types".to_owned(),
        Entity::Exam => "SELECT code AS key FROM exam_catalog".to_owned(),
        Entity::Appointment => format!("SELECT id::text AS key FROM ({appointments}) a"),
        Entity::Prescription => format!("SELECT id::text AS key FROM ({prescriptions}) p"),
        Entity::Patient => format!(
            "SELECT id::text AS key FROM patients WHERE id IN (SELECT patient_id FROM ({appointments}) a) \
             OR id IN (SELECT patient_id FROM ({prescriptions}) p)"
        ),
    };
    let keys: Vec<Key> = diesel::sql_query(sql).load(conn).await.unwrap();
    keys.into_iter().map(|k| k.key).collect()
}

/// Reads a whole table of the scope, `limit` rows a page, optionally one bucket.
async fn snapshot_all(app: &TestApp, lab: &str, entity: Entity, limit: usize, bucket: Option<&str>) -> Vec<Record> {
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/labs/{lab}/snapshot/{}?limit={limit}", entity.as_str());
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        if let Some(bucket) = bucket {
            path.push_str(&format!("&bucket={bucket}"));
        }
        let page: SnapshotPage = app.get(&path).await.expect(200).json();
        assert_eq!(page.entity, entity);
        assert!(page.records.len() <= limit);
        pages += 1;
        assert!(pages < 10_000, "the snapshot ends");
        records.extend(page.records);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return records,
        }
    }
}

/// Writes snapshot rows into a gateway database, as the gateway does.
async fn apply(edge: &mut AsyncPgConnection, records: Vec<Record>) {
    for record in records {
        match record {
            Record::Lab(r) => LabRow::upsert_edge(edge, &[r]).await,
            Record::Staff(r) => StaffRow::upsert_edge(edge, &[r]).await,
            Record::TubeType(r) => TubeTypeRow::upsert_edge(edge, &[r]).await,
            Record::Exam(r) => ExamRow::upsert_edge(edge, &[r]).await,
            Record::Patient(r) => PatientRow::upsert_edge(edge, &[r]).await,
            Record::Prescription(r) => PrescriptionRecord::upsert_edge(edge, &[r]).await,
            Record::Appointment(r) => AppointmentRow::upsert_edge(edge, &[r]).await,
        }
        .unwrap();
    }
}

/// A seeded network (the demo seeder) with a gateway credential for its first proximity lab.
async fn seeded() -> (Net, Uuid, String) {
    let mut net = net().await;
    // The seeder wants an empty database: start from a fresh one, keep the harness.
    let db = TestDb::migrated(Database::Cloud).await;
    let mut conn = db.conn().await;
    let summary = seed_into(
        &mut conn,
        &SeedArgs {
            patients: 300,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let lab = summary.proximity_labs().next().unwrap().clone();
    let cert = gateway(&mut conn, &net.pki, lab.id, &lab.code).await;
    let config = api_config(db.url(), net._dir.path());
    net.app = TestApp::new(app(build_state(config.clone()).unwrap())).await;
    net.app.certificate = Some(cert);
    net.config = config;
    net.conn = conn;
    net.db = db;
    (net, lab.id, lab.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_pages_return_every_row_in_scope_exactly_once() {
    let (mut net, lab, code) = seeded().await;
    let mut total = 0;
    for entity in Entity::ALL {
        let records = snapshot_all(&net.app, &code, entity, 37, None).await;
        let keys: Vec<String> = records.iter().map(Record::key).collect();
        let unique: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(unique.len(), keys.len(), "{entity:?}: no row twice");
        assert_eq!(unique, expected_keys(&mut net.conn, entity, lab).await, "{entity:?}");
        total += keys.len();
        // One page holding everything gives the same rows in the same order.
        let whole: SnapshotPage = net
            .app
            .get(&format!("/v1/labs/{code}/snapshot/{}?limit=10000", entity.as_str()))
            .await
            .expect(200)
            .json();
        assert_eq!(whole.records, records, "{entity:?}");
        assert!(whole.next_after.is_none());
    }
    assert!(total > 300, "a real share of the network: {total}");

    // Patients are exactly those the appointments and prescriptions of the snapshot refer to.
    let patients: HashSet<String> = snapshot_all(&net.app, &code, Entity::Patient, 500, None)
        .await
        .iter()
        .map(Record::key)
        .collect();
    let mut referenced = HashSet::new();
    for record in snapshot_all(&net.app, &code, Entity::Appointment, 500, None).await {
        let Record::Appointment(a) = record else { unreachable!() };
        assert_eq!(a.lab_id, lab);
        referenced.insert(a.patient_id.to_string());
    }
    for record in snapshot_all(&net.app, &code, Entity::Prescription, 500, None).await {
        let Record::Prescription(p) = record else {
            unreachable!()
        };
        referenced.insert(p.prescription.patient_id.to_string());
    }
    assert_eq!(patients, referenced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_are_stable_match_the_gateways_digest_and_change_with_a_row() {
    let (mut net, _lab, code) = seeded().await;
    let path = format!("/v1/labs/{code}/checksums?buckets=true");
    let first: Checksums = net.app.get(&path).await.expect(200).json();
    let again: Checksums = net.app.get(&path).await.expect(200).json();
    assert_eq!(first, again, "stable while nothing changes");
    assert_eq!(first.position, head(&net.app, &code).await);

    // A gateway holding exactly the snapshot computes the same digests over its whole tables.
    let edge_db = TestDb::migrated(Database::Edge).await;
    let mut edge = edge_db.conn().await;
    for entity in Entity::ALL {
        apply(&mut edge, snapshot_all(&net.app, &code, entity, 1000, None).await).await;
    }
    for table in &first.tables {
        let from = format!("FROM {} t", table.entity.table());
        let (whole, buckets) = digest(&mut edge, table.entity, &from, true).await.unwrap();
        assert_eq!(whole, table.digest, "{:?}", table.entity);
        assert_eq!(buckets, table.buckets, "{:?}", table.entity);
        let sum: i64 = table.buckets.iter().map(|(_, d)| d.count).sum();
        assert_eq!(sum, table.digest.count, "{:?}: buckets add up", table.entity);
    }

    // Per bucket, the snapshot of a bucket holds the bucket's rows.
    let patients = first.tables.iter().find(|t| t.entity == Entity::Patient).unwrap();
    assert!(patients.digest.count > 0);
    for (bucket, d) in patients.buckets.iter().take(12) {
        let rows = snapshot_all(&net.app, &code, Entity::Patient, 5, Some(bucket)).await;
        assert_eq!(rows.len() as i64, d.count, "bucket {bucket}");
    }

    // One patient changes: its table's checksum and its bucket's change, nothing else.
    let one: SnapshotPage = net
        .app
        .get(&format!("/v1/labs/{code}/snapshot/patient?limit=1"))
        .await
        .expect(200)
        .json();
    let one = one.records[0].key();
    net.conn
        .batch_execute(&format!(
            "UPDATE patients SET phone = '0699999999', version = version + 1 WHERE id = '{one}'"
        ))
        .await
        .unwrap();
    let after: Checksums = net
        .app
        .get(&format!("/v1/labs/{code}/checksums?entity=patient&buckets=true"))
        .await
        .expect(200)
        .json();
    assert_eq!(after.tables.len(), 1);
    assert!(after.position > first.position);
    let changed = &after.tables[0];
    assert_eq!(changed.digest.count, patients.digest.count);
    assert_ne!(changed.digest.checksum, patients.digest.checksum);
    let differing: Vec<&String> = changed
        .buckets
        .iter()
        .zip(&patients.buckets)
        .filter(|(now, before)| now != before)
        .map(|(now, _)| &now.0)
        .collect();
    assert_eq!(differing.len(), 1, "one bucket differs");
    let whole: Checksums = net
        .app
        .get(&format!("/v1/labs/{code}/checksums"))
        .await
        .expect(200)
        .json();
    let by_entity = |c: &Checksums| -> BTreeMap<String, String> {
        c.tables
            .iter()
            .map(|t| (t.entity.as_str().to_owned(), t.digest.checksum.clone()))
            .collect()
    };
    let (before, now) = (by_entity(&first), by_entity(&whole));
    for (entity, checksum) in &before {
        assert_eq!(checksum == &now[entity], entity != "patient", "{entity}");
    }
    assert!(
        whole.tables.iter().all(|t| t.buckets.is_empty()),
        "buckets only when asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_horizon_job_announces_appointments_that_entered_the_window() {
    let mut net = net().await;
    let now = OffsetDateTime::now_utc();
    let three_days_ago = now - time::Duration::days(3);
    // The job last ran three days ago.
    let first = advance_horizon(&mut net.conn, &net.config.feed, three_days_ago)
        .await
        .unwrap();
    assert_eq!(first.previous, None);
    assert!(first.horizon > three_days_ago && first.horizon <= three_days_ago + time::Duration::days(4));

    // Back then, a visit two days from today was beyond the window: the gateway heard of it as
    // out of scope.
    let p = patient(&mut net.conn, "SOON").await;
    let rx = prescription(&mut net.conn, p, net.lab_a, 45).await;
    let visit = appointment(&mut net.conn, net.lab_a, p, Some(rx), "now() + interval '2 days'").await;
    let then = read_changes(
        &mut net.conn,
        &net.config.feed,
        net.lab_a,
        "LAB-A",
        0,
        1000,
        Some(three_days_ago),
    )
    .await
    .unwrap();
    assert!(!then.has_more);
    assert!(
        last_of(&then.changes, Entity::Appointment, visit)
            .unwrap()
            .record
            .is_none()
    );
    assert!(upserted(&then.changes, Entity::Patient, p).is_none());
    let position = then.next;

    // Days passed, nothing changed the visit: the job announces it.
    let run = advance_horizon(&mut net.conn, &net.config.feed, now).await.unwrap();
    assert_eq!(run.previous, Some(first.horizon));
    assert!(run.horizon > first.horizon);
    assert!(run.appended >= 1);
    let (changes, next) = drain(&net.app, "LAB-A", position).await;
    let entry = last_of(&changes, Entity::Appointment, visit).unwrap();
    assert!(matches!(&entry.record, Some(Record::Appointment(a)) if a.id == visit));
    assert_eq!(last_of(&changes, Entity::Patient, p).unwrap().position, entry.position);
    assert!(upserted(&changes, Entity::Prescription, rx).is_some());

    // Running again the same day announces nothing more.
    let again = advance_horizon(&mut net.conn, &net.config.feed, now).await.unwrap();
    assert_eq!((again.previous, again.appended), (Some(run.horizon), 0));
    assert_eq!(drain(&net.app, "LAB-A", next).await.0, Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_real_mutual_tls_the_client_certificate_names_the_lab_and_the_horizon_job_runs_at_start() {
    let cloud = labedge_tests::cloud::TestCloud::start().await;
    let mut conn = cloud.db.conn().await;
    conn.batch_execute(
        "INSERT INTO labs (id, code, name, kind) VALUES (gen_random_uuid(), 'LAB-A', 'Lab A', 'proximity'), \
                                                        (gen_random_uuid(), 'LAB-B', 'Lab B', 'proximity')",
    )
    .await
    .unwrap();
    let credential = cloud.credential("LAB-A").await;
    let gateway = cloud.pki.client_for(Some((&credential.cert, &credential.key)));
    let anonymous = cloud.pki.client_for(None);
    let url = |lab: &str| format!("{}/v1/labs/{lab}/changes/head", cloud.url());

    let answer = gateway.get(url("LAB-A")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let head: FeedHead = answer.json().await.unwrap();
    assert!(head.position > 0, "the labs were logged");
    assert_eq!(gateway.get(url("LAB-B")).send().await.unwrap().status(), 403);
    let refused = anonymous.get(url("LAB-A")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");

    // Application::build started the horizon job: its first run leaves the horizon behind.
    #[derive(diesel::QueryableByName)]
    struct Horizons {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let horizons: Horizons = diesel::sql_query("SELECT count(*) AS n FROM feed_horizon")
            .get_result(&mut conn)
            .await
            .unwrap();
        if horizons.n == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the horizon job ran at start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cloud.stop().await;
}
