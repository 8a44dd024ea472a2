//! The gateway's write path (collections, appointment changes, offline pushes) against real
//! PostgreSQL and Redis: one transaction holds the row, its outbox entry, its idempotency record and
//! its audit record before any 2xx; replays get the stored answer; bad input is refused with the field
//! named and leaves nothing behind; a database that is down or read-only gives 503 + `Retry-After`;
//! appointment changes follow the state machine against the version seen; the lab admin resolves
//! conflicts and dead letters in the console.

#![allow(clippy::unwrap_used)]

use actix_web::test::TestRequest;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::resolve::{ConflictView, DeadLetterView};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_schema::edge::schema::{appointments, audit_log, collection_tubes, collections, idempotency_keys, outbox};
use labedge_schema::sync::AppointmentRow;
use labedge_tests::app::{TestApp, TestResponse};
use labedge_tests::edge_data::{self, collection, home_visit, lab_visit, patient, prescription};
use labedge_tests::gateway::{AdminCookie, HOME_SAMPLER, NURSE, TestGateway};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes::{self, with_id};
use mobile_contracts::{
    Appointment, AppointmentPatch, AppointmentStatus, CollectionReceipt, Mutation, MutationOp, MutationOutcome,
    NewCollection, RelayState, SyncPushRequest, SyncPushResponse,
};
use serde_json::json;
use time::macros::date;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

// ------------------------------------------------------------------------------------------------
// Helpers.

/// A tablet with a staff member logged in.
struct Tablet {
    device: Uuid,
    token: String,
}

/// A lab ready for writes: the catalog; a patient with a prescription and a lab visit today
/// (scheduled, version 1); another patient with their own; a nurse's tablet.
struct Lab {
    gw: TestGateway,
    patient: Uuid,
    prescription: Uuid,
    visit: Uuid,
    other_patient: Uuid,
    other_prescription: Uuid,
    other_visit: Uuid,
    nurse: Tablet,
}

async fn tablet(gw: &TestGateway, (login, pin): (&str, &str)) -> Tablet {
    let device = gw.enroll(None).await;
    let tokens = gw.login(&device, login, pin).await;
    Tablet {
        device: device.id,
        token: tokens.access_token.expose().to_owned(),
    }
}

async fn lab() -> Lab {
    let gw = TestGateway::start().await;
    edge_data::insert_catalog(&gw).await;
    let today = edge_data::local_today(&gw).await;
    let first = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    let second = patient("Martin", "Louise", date!(1960 - 01 - 01));
    edge_data::upsert_patients(&gw, &[first.clone(), second.clone()]).await;
    let first_rx = prescription(gw.lab_id, first.id, today, &["NFS", "BIOCH"]);
    let second_rx = prescription(gw.lab_id, second.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, &[first_rx.clone(), second_rx.clone()]).await;
    let at = edge_data::local_time(&gw, today, 9, 0).await;
    let visit = lab_visit(gw.lab_id, first.id, at);
    let other_visit = lab_visit(gw.lab_id, second.id, at + Duration::minutes(15));
    edge_data::upsert_appointments(&gw, &[visit.clone(), other_visit.clone()]).await;
    let nurse = tablet(&gw, NURSE).await;
    Lab {
        patient: first.id,
        prescription: first_rx.prescription.id,
        visit: visit.id,
        other_patient: second.id,
        other_prescription: second_rx.prescription.id,
        other_visit: other_visit.id,
        nurse,
        gw,
    }
}

/// A fresh idempotency key, as a tablet makes one per write.
fn key() -> String {
    Uuid::now_v7().to_string()
}

fn authed(request: TestRequest, tablet: &Tablet) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {}", tablet.token)))
}

fn with_key(request: TestRequest, key: Option<&str>) -> TestRequest {
    match key {
        Some(key) => request.insert_header(("idempotency-key", key.to_owned())),
        None => request,
    }
}

async fn post_collection(
    app: &TestApp,
    tablet: &Tablet,
    key: Option<&str>,
    body: &impl serde::Serialize,
) -> TestResponse {
    let request = authed(TestRequest::post().uri(routes::COLLECTIONS), tablet).set_json(body);
    app.send(with_key(request, key)).await
}

async fn patch_appointment(
    app: &TestApp,
    tablet: &Tablet,
    id: Uuid,
    if_match: Option<&str>,
    key: Option<&str>,
    body: &serde_json::Value,
) -> TestResponse {
    let mut request = authed(TestRequest::patch().uri(&with_id(routes::APPOINTMENT, id)), tablet).set_json(body);
    if let Some(version) = if_match {
        request = request.insert_header(("if-match", version.to_owned()));
    }
    app.send(with_key(request, key)).await
}

async fn push(app: &TestApp, tablet: &Tablet, body: &impl serde::Serialize) -> TestResponse {
    app.send(authed(TestRequest::post().uri(routes::SYNC_PUSH), tablet).set_json(body))
        .await
}

fn status(status: AppointmentStatus) -> serde_json::Value {
    json!({ "status": status })
}

fn mutation(op: MutationOp) -> Mutation {
    Mutation {
        mutation_id: Uuid::now_v7(),
        queued_at: OffsetDateTime::now_utc() - Duration::hours(1),
        op,
    }
}

fn change(appointment_id: Uuid, if_version: i64, to: AppointmentStatus) -> MutationOp {
    MutationOp::AppointmentUpdate {
        appointment_id,
        if_version,
        patch: AppointmentPatch {
            status: to,
            reason: None,
        },
    }
}

/// The advisory lock a write with `key` from `device` holds while it is written: the computation
/// of `writes::idempotency::lock_key` (private), SHA-256 of the device id's bytes then the key's,
/// first 8 bytes big-endian.
fn lock_key(device: Uuid, staff: Uuid, key: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(
        [
            device.as_bytes().as_slice(),
            staff.as_bytes().as_slice(),
            key.as_bytes(),
        ]
        .concat(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// How many rows the writes left behind.
#[derive(Debug, PartialEq, Eq, QueryableByName)]
struct Stored {
    #[diesel(sql_type = BigInt)]
    collections: i64,
    #[diesel(sql_type = BigInt)]
    tubes: i64,
    #[diesel(sql_type = BigInt)]
    outbox: i64,
    #[diesel(sql_type = BigInt)]
    idempotency: i64,
    #[diesel(sql_type = BigInt)]
    audited_writes: i64,
}

async fn stored(gw: &TestGateway) -> Stored {
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM collections) AS collections, \
                (SELECT count(*) FROM collection_tubes) AS tubes, \
                (SELECT count(*) FROM outbox) AS outbox, \
                (SELECT count(*) FROM idempotency_keys) AS idempotency, \
                (SELECT count(*) FROM audit_log WHERE action IN ('collection.create', 'appointment.update')) \
                    AS audited_writes",
    )
    .get_result(&mut gw.db.conn().await)
    .await
    .unwrap()
}

#[derive(Clone, Debug, Queryable)]
struct OutboxRow {
    seq: i64,
    mutation_id: Uuid,
    lane: i16,
    kind: String,
    entity_key: String,
    payload: serde_json::Value,
    sent_at: Option<OffsetDateTime>,
}

impl OutboxRow {
    fn mutation(&self) -> RelayedMutation {
        serde_json::from_value(self.payload.clone()).expect("an outbox payload is a relayed mutation")
    }
}

async fn outbox_rows(gw: &TestGateway) -> Vec<OutboxRow> {
    outbox::table
        .order(outbox::seq)
        .select((
            outbox::seq,
            outbox::mutation_id,
            outbox::lane,
            outbox::kind,
            outbox::entity_key,
            outbox::payload,
            outbox::sent_at,
        ))
        .load(&mut gw.db.conn().await)
        .await
        .unwrap()
}

#[derive(Debug, PartialEq, Eq, Queryable)]
struct AuditRow {
    staff_id: Option<Uuid>,
    device_id: Option<Uuid>,
    action: String,
    patient_id: Option<Uuid>,
    resource: Option<String>,
}

async fn audited_writes(gw: &TestGateway) -> Vec<AuditRow> {
    audit_log::table
        .filter(audit_log::action.eq_any(["collection.create", "appointment.update"]))
        .order(audit_log::seq)
        .select((
            audit_log::staff_id,
            audit_log::device_id,
            audit_log::action,
            audit_log::patient_id,
            audit_log::resource,
        ))
        .load(&mut gw.db.conn().await)
        .await
        .unwrap()
}

async fn appointment_state(gw: &TestGateway, id: Uuid) -> (String, i64) {
    appointments::table
        .find(id)
        .select((appointments::status, appointments::version))
        .first(&mut gw.db.conn().await)
        .await
        .unwrap()
}

#[track_caller]
fn assert_problem(response: &TestResponse, code: ErrorCode, pointer: Option<&str>) {
    let problem = response.problem();
    assert_eq!(problem.code, code, "{problem:?}");
    assert_eq!(problem.status, response.status.as_u16());
    if let Some(pointer) = pointer {
        let pointers: Vec<_> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, [pointer], "{problem:?}");
    }
}

// ------------------------------------------------------------------------------------------------
// Collections: one transaction, then the answer.

#[derive(Debug, QueryableByName)]
struct Transactions {
    #[diesel(sql_type = Nullable<Text>)]
    collection: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tubes: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    outbox: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    idempotency: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    audit_unchained: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    outbox_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    idempotency_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    audit_at: Option<OffsetDateTime>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_is_acknowledged_once_one_transaction_holds_it_with_its_outbox_key_and_audit() {
    let lab = lab().await;
    let gw = &lab.gw;
    let mut body = collection(lab.patient, lab.prescription, &["EDTA", "SST", "FLUO"]);
    body.appointment_id = Some(lab.visit);
    body.comments = Some("prélèvement difficile".into());
    let key = key();
    let before = OffsetDateTime::now_utc();

    let response = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(response.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        response.header("idempotent-replayed"),
        None,
        "a first write is no replay"
    );
    let receipt: CollectionReceipt = response.json();
    assert_eq!(receipt.id, body.id);
    assert_eq!(receipt.relay, RelayState::Queued);
    assert!(receipt.recorded_at >= before && receipt.recorded_at <= OffsetDateTime::now_utc());

    // The row, its tubes, its outbox entry and its idempotency record carry the same transaction id;
    // the audit row is stamped with the same transaction start (now()), and carries the same
    // transaction id too until the chainer links it (which rewrites it).
    let entity = format!("collection:{}", body.id);
    let tx: Transactions = diesel::sql_query(
        "SELECT (SELECT xmin::text FROM collections WHERE id = $1) AS collection, \
                (SELECT string_agg(DISTINCT xmin::text, ',') FROM collection_tubes WHERE collection_id = $1) AS tubes, \
                (SELECT xmin::text FROM outbox WHERE entity_key = $2) AS outbox, \
                (SELECT xmin::text FROM idempotency_keys WHERE device_id = $3 AND idempotency_key = $4) AS idempotency, \
                (SELECT xmin::text FROM audit_log WHERE resource = $2 AND chain_seq IS NULL) AS audit_unchained, \
                (SELECT created_at FROM outbox WHERE entity_key = $2) AS outbox_at, \
                (SELECT created_at FROM idempotency_keys WHERE device_id = $3 AND idempotency_key = $4) AS idempotency_at, \
                (SELECT at FROM audit_log WHERE resource = $2) AS audit_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(body.id)
    .bind::<Text, _>(&entity)
    .bind::<diesel::sql_types::Uuid, _>(lab.nurse.device)
    .bind::<Text, _>(&key)
    .get_result(&mut gw.db.conn().await)
    .await
    .unwrap();
    let xid = tx.collection.clone().expect("the collection is stored");
    assert_eq!(tx.tubes.as_deref(), Some(xid.as_str()), "{tx:?}");
    assert_eq!(tx.outbox.as_deref(), Some(xid.as_str()), "{tx:?}");
    assert_eq!(tx.idempotency.as_deref(), Some(xid.as_str()), "{tx:?}");
    if let Some(audit) = &tx.audit_unchained {
        assert_eq!(audit, &xid, "{tx:?}");
    }
    let started = tx.outbox_at.expect("outbox entry");
    assert_eq!(tx.idempotency_at, Some(started), "{tx:?}");
    assert_eq!(tx.audit_at, Some(started), "{tx:?}");

    // The collection as recorded: who and which device come from the token.
    type CollectionRow = (
        Uuid,
        Uuid,
        Option<Uuid>,
        Uuid,
        Uuid,
        Uuid,
        bool,
        Option<String>,
        Option<String>,
        OffsetDateTime,
    );
    let row: CollectionRow = collections::table
        .find(body.id)
        .select((
            collections::lab_id,
            collections::patient_id,
            collections::appointment_id,
            collections::prescription_id,
            collections::collected_by,
            collections::device_id,
            collections::identity_checked,
            collections::identity_check_method,
            collections::comments,
            collections::recorded_at,
        ))
        .first(&mut gw.db.conn().await)
        .await
        .unwrap();
    let nurse = gw.staff_id(NURSE.0);
    assert_eq!(
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6),
        (
            gw.lab_id,
            lab.patient,
            Some(lab.visit),
            lab.prescription,
            nurse,
            lab.nurse.device,
            true
        )
    );
    assert_eq!(row.7.as_deref(), Some("health_card"));
    assert_eq!(row.8, body.comments);
    assert!((row.9 - receipt.recorded_at).abs() < Duration::milliseconds(1));
    let mut tubes: Vec<(String, String)> = collection_tubes::table
        .filter(collection_tubes::collection_id.eq(body.id))
        .select((collection_tubes::barcode, collection_tubes::tube_type))
        .load(&mut gw.db.conn().await)
        .await
        .unwrap();
    tubes.sort();
    let mut sent: Vec<(String, String)> = body
        .tubes
        .iter()
        .map(|t| (t.barcode.as_str().to_owned(), t.tube_type.clone()))
        .collect();
    sent.sort();
    assert_eq!(tubes, sent, "every tube");

    // Exactly one outbox entry: the tablet's collection, stamped with who and which device.
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(
        (
            entry.kind.as_str(),
            entry.lane,
            entry.entity_key.as_str(),
            entry.sent_at
        ),
        ("collection.create", 0, entity.as_str(), None)
    );
    let relayed = entry.mutation();
    assert_eq!(relayed.mutation_id, entry.mutation_id);
    assert_eq!(relayed.staff_id, Some(nurse));
    assert_eq!(relayed.device_id, Some(lab.nurse.device));
    assert_eq!(relayed.recorded_at, receipt.recorded_at);
    assert_eq!(
        relayed.op,
        RelayedOp::CollectionCreate {
            collection: body.clone()
        }
    );

    // Exactly one idempotency record, holding the answer given.
    let records: Vec<(Uuid, String, i16, serde_json::Value)> = idempotency_keys::table
        .select((
            idempotency_keys::device_id,
            idempotency_keys::idempotency_key,
            idempotency_keys::response_status,
            idempotency_keys::response_body,
        ))
        .load(&mut gw.db.conn().await)
        .await
        .unwrap();
    assert_eq!(
        records,
        [(
            lab.nurse.device,
            key.clone(),
            201,
            serde_json::from_slice(&response.body).unwrap()
        )]
    );

    // Exactly one audit record of the write, naming the patient.
    assert_eq!(
        audited_writes(gw).await,
        [AuditRow {
            staff_id: Some(nurse),
            device_id: Some(lab.nurse.device),
            action: "collection.create".into(),
            patient_id: Some(lab.patient),
            resource: Some(entity),
        }]
    );
    assert_eq!(
        stored(gw).await,
        Stored {
            collections: 1,
            tubes: 3,
            outbox: 1,
            idempotency: 1,
            audited_writes: 1
        }
    );
}

// ------------------------------------------------------------------------------------------------
// Idempotency.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_collection_gets_the_stored_answer_and_a_reused_missing_or_malformed_key_is_refused() {
    let lab = lab().await;
    let gw = &lab.gw;
    let body = collection(lab.patient, lab.prescription, &["EDTA"]);
    let key = key();
    let first = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    let after_first = stored(gw).await;

    // The same key and body: the same status and body, marked as a replay; nothing written again.
    let replay = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(replay.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(replay.json::<serde_json::Value>(), first.json::<serde_json::Value>());
    assert_eq!(stored(gw).await, after_first);
    assert_eq!(after_first.collections, 1);
    assert_eq!(after_first.outbox, 1);

    // The same key with another body: 422, nothing written.
    let mut other = body.clone();
    other.comments = Some("autre chose".into());
    let reused = post_collection(&gw.app, &lab.nurse, Some(&key), &other)
        .await
        .expect(422);
    assert_problem(&reused, ErrorCode::IdempotencyKeyReused, None);
    let mut elsewhere = collection(lab.patient, lab.prescription, &["SST"]);
    elsewhere.id = Uuid::now_v7();
    let reused = post_collection(&gw.app, &lab.nurse, Some(&key), &elsewhere)
        .await
        .expect(422);
    assert_problem(&reused, ErrorCode::IdempotencyKeyReused, None);
    // Nor can the key be spent on another route.
    let reused = patch_appointment(
        &gw.app,
        &lab.nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key),
        &status(AppointmentStatus::CheckedIn),
    )
    .await
    .expect(422);
    assert_problem(&reused, ErrorCode::IdempotencyKeyReused, None);
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // No key, an empty key, malformed keys: 400.
    let fresh = collection(lab.patient, lab.prescription, &["EDTA"]);
    let missing = post_collection(&gw.app, &lab.nurse, None, &fresh).await.expect(400);
    assert_problem(&missing, ErrorCode::IdempotencyKeyMissing, None);
    let empty = post_collection(&gw.app, &lab.nurse, Some(""), &fresh).await.expect(400);
    assert_problem(&empty, ErrorCode::IdempotencyKeyMissing, None);
    for bad in ["two words".to_owned(), "k".repeat(129), "tab\tinside".to_owned()] {
        let malformed = post_collection(&gw.app, &lab.nurse, Some(&bad), &fresh)
            .await
            .expect(400);
        assert_problem(&malformed, ErrorCode::BadRequest, None);
    }
    // Bytes that are not text at all: refused too (reported as no usable key).
    let request = authed(TestRequest::post().uri(routes::COLLECTIONS), &lab.nurse)
        .set_json(&fresh)
        .insert_header((
            "idempotency-key",
            actix_web::http::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        ));
    gw.app.send(request).await.expect(400).problem();
    assert_eq!(stored(gw).await, after_first);

    // A key is scoped to its device: another tablet's write with the same key is its own.
    let colleague = tablet(gw, NURSE).await;
    post_collection(&gw.app, &colleague, Some(&key), &fresh)
        .await
        .expect(201);
    assert_eq!(stored(gw).await.collections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_while_the_first_write_is_in_flight_gets_409_then_goes_through() {
    let lab = lab().await;
    let gw = &lab.gw;
    let body = collection(lab.patient, lab.prescription, &["EDTA"]);
    let key = key();
    let before = stored(gw).await;

    // Another connection holds the write's lock inside an open transaction, as the first of two
    // identical writes does while it is being recorded.
    let mut holder = gw.db.conn().await;
    holder.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(lock_key(lab.nurse.device, gw.staff_id(NURSE.0), &key))
        .execute(&mut holder)
        .await
        .unwrap();

    let busy = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(409);
    assert_problem(&busy, ErrorCode::IdempotencyInFlight, None);
    let retry_after: u64 = busy.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(stored(gw).await, before, "nothing written while in flight");
    // The lock is the key's: another key from the same tablet is not held back.
    let other = collection(lab.patient, lab.prescription, &["SST"]);
    post_collection(&gw.app, &lab.nurse, Some(&self::key()), &other)
        .await
        .expect(201);

    // Once the first transaction ends, the retry goes through.
    holder.batch_execute("COMMIT").await.unwrap();
    let done = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(done.header("idempotent-replayed"), None);
    assert_eq!(done.json::<CollectionReceipt>().id, body.id);
    assert_eq!(stored(gw).await.collections, 2);
}

// ------------------------------------------------------------------------------------------------
// Bad input: refused with the field named, never a 5xx, nothing stored.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_collections_are_refused_naming_the_field_and_leave_nothing_behind() {
    let lab = lab().await;
    let gw = &lab.gw;
    let recorded = collection(lab.patient, lab.prescription, &["EDTA", "SST"]);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &recorded)
        .await
        .expect(201);
    let baseline = stored(gw).await;
    let good = || collection(lab.patient, lab.prescription, &["EDTA"]);

    let mut cases: Vec<(&str, NewCollection, u16, ErrorCode, &str)> = Vec::new();
    let mut body = good();
    body.patient_id = Uuid::now_v7();
    cases.push(("unknown patient", body, 422, ErrorCode::ValidationFailed, "/patient_id"));
    let mut body = good();
    body.prescription_id = lab.other_prescription;
    cases.push((
        "another patient's prescription",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/prescription_id",
    ));
    let mut body = good();
    body.prescription_id = Uuid::now_v7();
    cases.push((
        "unknown prescription",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/prescription_id",
    ));
    let mut body = good();
    body.appointment_id = Some(lab.other_visit);
    cases.push((
        "another patient's appointment",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/appointment_id",
    ));
    let mut body = good();
    body.tubes[0].tube_type = "HEPARINE".into();
    cases.push((
        "unknown tube type",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/tubes/0/tube_type",
    ));
    let body = collection(lab.patient, lab.prescription, &["EDTA", "HEPARINE"]);
    cases.push((
        "unknown second tube type",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/tubes/1/tube_type",
    ));
    let mut body = good();
    body.collected_at = OffsetDateTime::now_utc() + Duration::minutes(10);
    cases.push((
        "collected in the future",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/collected_at",
    ));
    let mut body = good();
    body.tubes.push(recorded.tubes[1].clone());
    cases.push(("a barcode already recorded", body, 409, ErrorCode::Conflict, "/tubes"));
    let mut body = good();
    body.id = recorded.id;
    cases.push((
        "a collection id already recorded",
        body,
        409,
        ErrorCode::Conflict,
        "/id",
    ));

    for (case, body, code, error, pointer) in cases {
        let response = post_collection(&gw.app, &lab.nurse, Some(&key()), &body).await;
        assert_eq!(response.status.as_u16(), code, "{case}: {}", response.text());
        let problem = response.problem();
        assert_eq!(problem.code, error, "{case}: {problem:?}");
        let pointers: Vec<_> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, [pointer], "{case}");
        assert_eq!(stored(gw).await, baseline, "{case}: nothing stored");
    }

    // Fields the gateway owns cannot be sent (mass assignment).
    for (field, value) in [
        ("lab_id", json!(Uuid::now_v7())),
        ("collected_by", json!(Uuid::now_v7())),
        ("device_id", json!(Uuid::now_v7())),
        ("recorded_at", json!("2025-03-14T09:00:00Z")),
    ] {
        let mut body = serde_json::to_value(good()).unwrap();
        body[field] = value;
        let response = post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
            .await
            .expect(422);
        let problem = response.problem();
        assert_eq!(problem.code, ErrorCode::ValidationFailed, "{field}");
        assert_eq!(problem.errors[0].pointer, format!("/{field}"), "{field}");
        assert_eq!(problem.errors[0].code, "unknown_field", "{field}");
        assert_eq!(stored(gw).await, baseline, "{field}: nothing stored");
    }

    // A home sampler records only for the patients of their own appointments.
    let sampler = tablet(gw, HOME_SAMPLER).await;
    let refused = post_collection(&gw.app, &sampler, Some(&key()), &good())
        .await
        .expect(422);
    assert_problem(&refused, ErrorCode::ValidationFailed, Some("/patient_id"));
    assert_eq!(stored(gw).await, baseline, "home sampler: nothing stored");

    // Five minutes of tolerance for a tablet clock that runs ahead.
    let mut ahead = good();
    ahead.collected_at = OffsetDateTime::now_utc() + Duration::minutes(2);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &ahead)
        .await
        .expect(201);
    // Collections made hours ago while offline are fine.
    let mut late = good();
    late.collected_at = OffsetDateTime::now_utc() - Duration::hours(9);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &late)
        .await
        .expect(201);
    assert_eq!(stored(gw).await.collections, baseline.collections + 2);
}

// ------------------------------------------------------------------------------------------------
// Durability: no database, no 2xx.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_unreachable_writes_get_503_with_retry_after() {
    let lab = lab().await;
    let gw = &lab.gw;
    let before = stored(gw).await;
    // The same gateway with a pool that reaches no PostgreSQL. The token is still checked: by the
    // in-memory key ring, and for revocation by the shared checker (Redis first).
    let mut dead = gw.state.clone();
    let mut db = labedge_service::config::DatabaseConfig::new("postgres://postgres@127.0.0.1:1/none");
    db.acquire_timeout_ms = 300;
    db.connect_timeout_ms = 300;
    dead.pool = labedge_schema::db::build_pool(&db.pool_settings()).unwrap();
    let app = TestApp::new(labedge_edge_gateway::startup::app(dead)).await;

    let body = collection(lab.patient, lab.prescription, &["EDTA"]);
    let responses = [
        post_collection(&app, &lab.nurse, Some(&key()), &body).await,
        patch_appointment(
            &app,
            &lab.nurse,
            lab.visit,
            Some("\"1\""),
            Some(&key()),
            &status(AppointmentStatus::CheckedIn),
        )
        .await,
        push(
            &app,
            &lab.nurse,
            &SyncPushRequest {
                mutations: vec![mutation(MutationOp::CollectionCreate {
                    collection: body.clone(),
                })],
            },
        )
        .await,
    ];
    for response in responses {
        let response = response.expect(503);
        let problem = response.problem();
        assert_eq!(problem.code, ErrorCode::ServiceUnavailable);
        assert!(
            !problem.detail.unwrap_or_default().contains("credentials"),
            "the write failed, not the authentication"
        );
        assert!(response.header("retry-after").is_some());
    }
    assert_eq!(stored(gw).await, before);
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // The tablet's retry, once the database is back, is recorded once.
    let key = key();
    post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(stored(gw).await.collections, before.collections + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_read_only_writes_get_503_and_nothing_is_stored() {
    let lab = lab().await;
    let gw = &lab.gw;
    let before = stored(gw).await;
    // This connection was opened read-write and stays so: it turns the database back at the end.
    let mut admin = gw.db.conn().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            gw.db.name()
        ))
        .await
        .unwrap();
    // A gateway whose connections are all new, hence read-only.
    let config = (*gw.state.config).clone();
    let state = labedge_edge_gateway::startup::build_state(config.clone())
        .await
        .unwrap();
    let app = TestApp::new(labedge_edge_gateway::startup::app(state)).await;

    let body = collection(lab.patient, lab.prescription, &["EDTA", "SST"]);
    let key = key();
    let responses = [
        post_collection(&app, &lab.nurse, Some(&key), &body).await,
        patch_appointment(
            &app,
            &lab.nurse,
            lab.visit,
            Some("\"1\""),
            Some(&self::key()),
            &status(AppointmentStatus::CheckedIn),
        )
        .await,
        push(
            &app,
            &lab.nurse,
            &SyncPushRequest {
                mutations: vec![mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn))],
            },
        )
        .await,
    ];
    for response in responses {
        let response = response.expect(503);
        let problem = response.problem();
        assert_eq!(problem.code, ErrorCode::ServiceUnavailable);
        assert!(response.header("retry-after").is_some());
    }
    assert_eq!(stored(gw).await, before);
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // Writable again: the tablet's retry with the same key is recorded, once.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            gw.db.name()
        ))
        .await
        .unwrap();
    let state = labedge_edge_gateway::startup::build_state(config).await.unwrap();
    let app = TestApp::new(labedge_edge_gateway::startup::app(state)).await;
    post_collection(&app, &lab.nurse, Some(&key), &body).await.expect(201);
    assert_eq!(stored(gw).await.collections, before.collections + 1);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// PostgreSQL going away while a write is inside its transaction (a restart, a failover: every
/// backend gets `admin_shutdown`) is the database being down: 503 + `Retry-After`, as the error
/// mapping promises for "an unreachable database", not an opaque 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_connection_is_cut_mid_transaction_gets_503_not_500() {
    let lab = lab().await;
    let gw = &lab.gw;
    let before = stored(gw).await;
    // Another transaction holds the appointment's row, so the change waits inside its transaction.
    let mut holder = gw.db.conn().await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM appointments WHERE id = '{}' FOR UPDATE",
            lab.visit
        ))
        .await
        .unwrap();
    let checked_in = status(AppointmentStatus::CheckedIn);
    let key = key();
    let write = patch_appointment(&gw.app, &lab.nurse, lab.visit, Some("\"1\""), Some(&key), &checked_in);
    // Then its backend is terminated, as a shutting-down server does.
    let cut = async {
        let mut watcher = gw.db.conn().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let cut: Count = diesel::sql_query(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .get_result(&mut watcher)
            .await
            .unwrap();
            if cut.n > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the write never waited on the row"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let (response, ()) = tokio::join!(write, cut);
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(stored(gw).await, before, "nothing stored");
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));
    let response = response.expect(503);
    assert_problem(&response, ErrorCode::ServiceUnavailable, None);
    assert!(response.header("retry-after").is_some());
}

// ------------------------------------------------------------------------------------------------
// Appointment changes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointment_changes_follow_the_state_machine_against_the_version_seen() {
    let lab = lab().await;
    let gw = &lab.gw;
    let at = OffsetDateTime::now_utc();
    let done = AppointmentRow {
        status: "collected".into(),
        version: 3,
        ..lab_visit(gw.lab_id, lab.patient, at)
    };
    edge_data::upsert_appointments(gw, std::slice::from_ref(&done)).await;
    let nurse = &lab.nurse;
    let baseline = stored(gw).await;
    let checked_in = status(AppointmentStatus::CheckedIn);

    // No If-Match: 428.
    let response = patch_appointment(&gw.app, nurse, lab.visit, None, Some(&key()), &checked_in)
        .await
        .expect(428);
    assert_problem(&response, ErrorCode::PreconditionRequired, None);
    // A weak or listed tag names no one version: 400.
    for bad in ["W/\"1\"", "*", "\"1\", \"2\""] {
        let response = patch_appointment(&gw.app, nurse, lab.visit, Some(bad), Some(&key()), &checked_in)
            .await
            .expect(400);
        assert_problem(&response, ErrorCode::BadRequest, None);
    }
    // Another version: 412 with the current one.
    let response = patch_appointment(&gw.app, nurse, lab.visit, Some("\"7\""), Some(&key()), &checked_in)
        .await
        .expect(412);
    assert_problem(&response, ErrorCode::VersionMismatch, None);
    assert_eq!(response.header("etag").as_deref(), Some("\"1\""));
    // From a final status, nowhere: 409.
    for to in [
        AppointmentStatus::Scheduled,
        AppointmentStatus::CheckedIn,
        AppointmentStatus::Cancelled,
    ] {
        let response = patch_appointment(&gw.app, nurse, done.id, Some("\"3\""), Some(&key()), &status(to))
            .await
            .expect(409);
        assert_problem(&response, ErrorCode::InvalidTransition, None);
    }
    // Staying put is no transition either.
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key()),
        &status(AppointmentStatus::Scheduled),
    )
    .await
    .expect(409);
    assert_problem(&response, ErrorCode::InvalidTransition, None);
    // No such appointment: 404; a body out of the contract: 422.
    let response = patch_appointment(&gw.app, nurse, Uuid::now_v7(), Some("\"1\""), Some(&key()), &checked_in)
        .await
        .expect(404);
    assert_problem(&response, ErrorCode::NotFound, None);
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key()),
        &json!({"status": "checked_in", "version": 2}),
    )
    .await
    .expect(422);
    assert_problem(&response, ErrorCode::ValidationFailed, Some("/version"));
    assert_eq!(stored(gw).await, baseline, "refused changes store nothing");
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));
    assert_eq!(appointment_state(gw, done.id).await, ("collected".into(), 3));

    // scheduled → checked_in against version 1: 200, version 2, ETag, outbox entry, audit.
    let response = patch_appointment(&gw.app, nurse, lab.visit, Some("\"1\""), Some(&key()), &checked_in)
        .await
        .expect(200);
    assert_eq!(response.header("etag").as_deref(), Some("\"2\""));
    let appointment: Appointment = response.json();
    assert_eq!(
        (appointment.id, appointment.status, appointment.version),
        (lab.visit, AppointmentStatus::CheckedIn, 2)
    );
    assert_eq!(appointment_state(gw, lab.visit).await, ("checked_in".into(), 2));
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 1);
    let entity = format!("appointment:{}", lab.visit);
    assert_eq!(
        (
            entries[0].kind.as_str(),
            entries[0].lane,
            entries[0].entity_key.as_str()
        ),
        ("appointment.update", 0, entity.as_str())
    );
    let relayed = entries[0].mutation();
    assert_eq!(
        relayed.op,
        RelayedOp::AppointmentUpdate {
            appointment_id: lab.visit,
            if_version: 1,
            patch: AppointmentPatch {
                status: AppointmentStatus::CheckedIn,
                reason: None
            },
        }
    );
    assert_eq!(relayed.staff_id, Some(gw.staff_id(NURSE.0)));
    assert_eq!(relayed.device_id, Some(nurse.device));
    assert_eq!(
        audited_writes(gw).await,
        [AuditRow {
            staff_id: Some(gw.staff_id(NURSE.0)),
            device_id: Some(nurse.device),
            action: "appointment.update".into(),
            patient_id: Some(lab.patient),
            resource: Some(entity.clone()),
        }]
    );

    // Version 1 is now stale; version 2 moves on to collected, with a reason.
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key()),
        &status(AppointmentStatus::Collected),
    )
    .await
    .expect(412);
    assert_eq!(response.header("etag").as_deref(), Some("\"2\""));
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("2"),
        Some(&key()),
        &json!({"status": "collected", "reason": "bilan fait"}),
    )
    .await
    .expect(200);
    let appointment: Appointment = response.json();
    assert_eq!(
        (
            appointment.status,
            appointment.version,
            appointment.status_reason.as_deref()
        ),
        (AppointmentStatus::Collected, 3, Some("bilan fait"))
    );
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 2);
    match entries[1].mutation().op {
        RelayedOp::AppointmentUpdate { if_version, .. } => assert_eq!(if_version, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(audited_writes(gw).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_sampler_changes_and_records_only_for_their_own_appointments() {
    let lab = lab().await;
    let gw = &lab.gw;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let at = OffsetDateTime::now_utc();
    let mine = home_visit(gw.lab_id, lab.other_patient, me, at, 1);
    let nurses = home_visit(gw.lab_id, lab.patient, gw.staff_id(NURSE.0), at, 1);
    edge_data::upsert_appointments(gw, &[mine.clone(), nurses.clone()]).await;
    let sampler = tablet(gw, HOME_SAMPLER).await;
    let baseline = stored(gw).await;
    let collected = status(AppointmentStatus::Collected);

    // Not theirs: 404 whatever the version, so nothing about it leaks.
    for (id, version) in [(nurses.id, "\"1\""), (nurses.id, "\"9\""), (lab.visit, "\"1\"")] {
        let response = patch_appointment(&gw.app, &sampler, id, Some(version), Some(&key()), &collected)
            .await
            .expect(404);
        assert_problem(&response, ErrorCode::NotFound, None);
    }
    assert_eq!(stored(gw).await, baseline);
    assert_eq!(appointment_state(gw, nurses.id).await, ("scheduled".into(), 1));

    // Theirs: scheduled → collected (no check-in desk at home), and the collection of its patient.
    let response = patch_appointment(&gw.app, &sampler, mine.id, Some("\"1\""), Some(&key()), &collected)
        .await
        .expect(200);
    assert_eq!(response.json::<Appointment>().status, AppointmentStatus::Collected);
    let mut body = collection(lab.other_patient, lab.other_prescription, &["EDTA"]);
    body.appointment_id = Some(mine.id);
    post_collection(&gw.app, &sampler, Some(&key()), &body)
        .await
        .expect(201);
    let relayed: Vec<_> = outbox_rows(gw).await.iter().map(OutboxRow::mutation).collect();
    assert_eq!(relayed.len(), 2);
    assert!(
        relayed
            .iter()
            .all(|m| m.staff_id == Some(me) && m.device_id == Some(sampler.device))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_appointment_change_gets_the_stored_answer() {
    let lab = lab().await;
    let gw = &lab.gw;
    let nurse = &lab.nurse;
    let key = key();
    let checked_in = status(AppointmentStatus::CheckedIn);
    let first = patch_appointment(&gw.app, nurse, lab.visit, Some("\"1\""), Some(&key), &checked_in)
        .await
        .expect(200);
    let after_first = stored(gw).await;

    // The same change again (the tablet missed the answer): the stored answer, although version 1
    // is no longer current.
    let replay = patch_appointment(&gw.app, nurse, lab.visit, Some("\"1\""), Some(&key), &checked_in)
        .await
        .expect(200);
    assert_eq!(replay.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(replay.header("etag").as_deref(), Some("\"2\""));
    assert_eq!(replay.json::<serde_json::Value>(), first.json::<serde_json::Value>());
    assert_eq!(stored(gw).await, after_first);
    assert_eq!(appointment_state(gw, lab.visit).await, ("checked_in".into(), 2));

    // The same key for another change, or against another version: 422.
    let cancelled = status(AppointmentStatus::Cancelled);
    for (version, body) in [("\"1\"", &cancelled), ("\"2\"", &checked_in), ("\"2\"", &cancelled)] {
        let response = patch_appointment(&gw.app, nurse, lab.visit, Some(version), Some(&key), body)
            .await
            .expect(422);
        assert_problem(&response, ErrorCode::IdempotencyKeyReused, None);
    }
    // The same key on another appointment: 422 too.
    let response = patch_appointment(&gw.app, nurse, lab.other_visit, Some("\"1\""), Some(&key), &checked_in)
        .await
        .expect(422);
    assert_problem(&response, ErrorCode::IdempotencyKeyReused, None);
    // No key: 400.
    let response = patch_appointment(&gw.app, nurse, lab.visit, Some("\"2\""), None, &cancelled)
        .await
        .expect(400);
    assert_problem(&response, ErrorCode::IdempotencyKeyMissing, None);
    assert_eq!(stored(gw).await, after_first);
}

// ------------------------------------------------------------------------------------------------
// Offline push.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_gives_one_verdict_per_item_and_the_same_push_again_finds_duplicates() {
    let lab = lab().await;
    let gw = &lab.gw;
    let good = collection(lab.patient, lab.prescription, &["EDTA", "SST"]);
    let unknown_patient = collection(Uuid::now_v7(), lab.prescription, &["EDTA"]);
    let batch = SyncPushRequest {
        mutations: vec![
            mutation(MutationOp::CollectionCreate {
                collection: good.clone(),
            }),
            mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn)),
            mutation(MutationOp::CollectionCreate {
                collection: unknown_patient.clone(),
            }),
            // Queued on the same version as the change before it: stale once that one is applied.
            mutation(change(lab.visit, 1, AppointmentStatus::Collected)),
        ],
    };
    let ids: Vec<Uuid> = batch.mutations.iter().map(|m| m.mutation_id).collect();

    let response = push(&gw.app, &lab.nurse, &batch).await.expect(200);
    assert_eq!(response.header("cache-control").as_deref(), Some("no-store"));
    let answer: SyncPushResponse = response.json();
    let verdicts: Vec<_> = answer
        .results
        .iter()
        .map(|r| (r.mutation_id, r.outcome, r.status))
        .collect();
    assert_eq!(
        verdicts,
        [
            (ids[0], MutationOutcome::Applied, 201),
            (ids[1], MutationOutcome::Applied, 200),
            (ids[2], MutationOutcome::Rejected, 422),
            (ids[3], MutationOutcome::Conflict, 412),
        ]
    );
    assert!(answer.results[0].problem.is_none() && answer.results[1].problem.is_none());
    let rejected = answer.results[2].problem.as_ref().expect("why it was rejected");
    assert_eq!(rejected.code, ErrorCode::ValidationFailed);
    assert_eq!(rejected.errors[0].pointer, "/patient_id");
    let conflict = &answer.results[3];
    assert_eq!(conflict.problem.as_ref().unwrap().code, ErrorCode::VersionMismatch);
    assert_eq!(conflict.current_version, Some(2));

    // What was applied is stored, with its outbox entries; the rest is not.
    assert_eq!(appointment_state(gw, lab.visit).await, ("checked_in".into(), 2));
    let exists = |id: Uuid| async move {
        diesel::select(diesel::dsl::exists(collections::table.find(id)))
            .get_result::<bool>(&mut gw.db.conn().await)
            .await
            .unwrap()
    };
    assert!(exists(good.id).await);
    assert!(!exists(unknown_patient.id).await);
    let kinds: Vec<_> = outbox_rows(gw).await.into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["collection.create", "appointment.update"]);
    let after_first = stored(gw).await;
    assert_eq!(after_first.audited_writes, 2);

    // The same push again (the tablet missed the answer): duplicates for what was applied.
    let again: SyncPushResponse = push(&gw.app, &lab.nurse, &batch).await.expect(200).json();
    let verdicts: Vec<_> = again
        .results
        .iter()
        .map(|r| (r.mutation_id, r.outcome, r.status))
        .collect();
    assert_eq!(
        verdicts,
        [
            (ids[0], MutationOutcome::Duplicate, 201),
            (ids[1], MutationOutcome::Duplicate, 200),
            (ids[2], MutationOutcome::Rejected, 422),
            (ids[3], MutationOutcome::Conflict, 412),
        ]
    );
    assert_eq!(again.results[3].current_version, Some(2));
    assert_eq!(stored(gw).await, after_first);

    // A mutation id is the idempotency key of its item: reused for another change, it is refused.
    let reused = SyncPushRequest {
        mutations: vec![Mutation {
            mutation_id: ids[1],
            ..mutation(change(lab.other_visit, 1, AppointmentStatus::CheckedIn))
        }],
    };
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &reused).await.expect(200).json();
    assert_eq!(answer.results[0].outcome, MutationOutcome::Rejected);
    assert_eq!(
        answer.results[0].problem.as_ref().unwrap().code,
        ErrorCode::IdempotencyKeyReused
    );
    assert_eq!(stored(gw).await, after_first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_holds_1_to_500_mutations() {
    let lab = lab().await;
    let gw = &lab.gw;
    let baseline = stored(gw).await;
    let batch = |n: usize| SyncPushRequest {
        mutations: (0..n)
            .map(|_| mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn)))
            .collect(),
    };

    for n in [0, 501] {
        let response = push(&gw.app, &lab.nurse, &batch(n)).await.expect(422);
        assert_problem(&response, ErrorCode::ValidationFailed, Some("/mutations"));
    }
    assert_eq!(stored(gw).await, baseline, "a refused batch applies nothing");
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // 500 is fine: the first is applied, the 499 others queued on the same version conflict.
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &batch(500)).await.expect(200).json();
    assert_eq!(answer.results.len(), 500);
    assert_eq!(answer.results[0].outcome, MutationOutcome::Applied);
    assert!(
        answer.results[1..]
            .iter()
            .all(|r| r.outcome == MutationOutcome::Conflict && r.current_version == Some(2))
    );
    assert_eq!(stored(gw).await.outbox, baseline.outbox + 1);
}

/// The push route answers per item: an item refused for a reason the database finds (a barcode
/// already recorded, a unique constraint) must be `rejected` on its own, like any other refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_collection_whose_barcode_is_already_recorded_is_rejected_alone() {
    let lab = lab().await;
    let gw = &lab.gw;
    let recorded = collection(lab.patient, lab.prescription, &["EDTA"]);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &recorded)
        .await
        .expect(201);
    // Offline, the tablet queued a new collection then scanned the same tube again for another one.
    let fine = collection(lab.patient, lab.prescription, &["SST"]);
    let mut same_tube = collection(lab.patient, lab.prescription, &["EDTA"]);
    same_tube.tubes = recorded.tubes.clone();
    let after = collection(lab.patient, lab.prescription, &["FLUO"]);
    let batch = SyncPushRequest {
        mutations: vec![
            mutation(MutationOp::CollectionCreate { collection: fine }),
            mutation(MutationOp::CollectionCreate { collection: same_tube }),
            mutation(MutationOp::CollectionCreate { collection: after }),
        ],
    };
    for _ in 0..2 {
        let response = push(&gw.app, &lab.nurse, &batch).await;
        let answer: SyncPushResponse = response.expect(200).json();
        let outcomes: Vec<_> = answer.results.iter().map(|r| (r.outcome, r.status)).collect();
        assert!(
            matches!(
                outcomes[..],
                [
                    (MutationOutcome::Applied | MutationOutcome::Duplicate, 201),
                    (MutationOutcome::Rejected, 409),
                    (MutationOutcome::Applied | MutationOutcome::Duplicate, 201),
                ]
            ),
            "{outcomes:?}"
        );
        let problem = answer.results[1].problem.as_ref().unwrap();
        assert_eq!(problem.code, ErrorCode::Conflict);
        assert_eq!(problem.errors[0].pointer, "/tubes");
    }
    assert_eq!(stored(gw).await.collections, 3);
}

/// `MutationResult::current_version` is documented as "for `conflict` (and after an applied
/// update)": a tablet that pushed a change needs the new version for its next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_appointment_change_in_a_push_reports_the_new_version() {
    let lab = lab().await;
    let gw = &lab.gw;
    let batch = SyncPushRequest {
        mutations: vec![mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn))],
    };
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &batch).await.expect(200).json();
    assert_eq!(answer.results[0].outcome, MutationOutcome::Applied);
    assert_eq!(answer.results[0].current_version, Some(2));
    let again: SyncPushResponse = push(&gw.app, &lab.nurse, &batch).await.expect(200).json();
    assert_eq!(again.results[0].outcome, MutationOutcome::Duplicate);
    assert_eq!(again.results[0].current_version, Some(2));
}

// ------------------------------------------------------------------------------------------------
// Conflicts and dead letters in the console.

async fn console(gw: &TestGateway, admin: &AdminCookie, request: TestRequest) -> TestResponse {
    gw.from_admin_network(
        request
            .insert_header(("cookie", admin.cookie.clone()))
            .insert_header(("x-csrf-token", admin.csrf.clone())),
    )
    .await
}

async fn backlog(gw: &TestGateway, admin: &AdminCookie) -> (i64, i64, i64) {
    let status: serde_json::Value = console(gw, admin, TestRequest::get().uri("/admin/v1/status"))
        .await
        .expect(200)
        .json();
    let backlog = &status["backlog"];
    (
        backlog["pending"].as_i64().unwrap(),
        backlog["dead_letters"].as_i64().unwrap(),
        backlog["conflicts"].as_i64().unwrap(),
    )
}

/// What the relay does when the cloud answers "conflict" for an outbox entry.
async fn cloud_answered_conflict(gw: &TestGateway, entry: &OutboxRow, server_version: i64) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = gw.db.conn().await;
    conn.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query(
        "INSERT INTO conflicts (id, outbox_seq, mutation_id, entity_key, local_payload, server_version, server_state) \
         SELECT $1, seq, mutation_id, entity_key, payload, $2, $3 FROM outbox WHERE seq = $4",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<BigInt, _>(server_version)
    .bind::<Jsonb, _>(json!({"status": "cancelled", "version": server_version}))
    .bind::<BigInt, _>(entry.seq)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("UPDATE outbox SET sent_at = now(), upstream = 'cloud', outcome = 'conflict' WHERE seq = $1")
        .bind::<BigInt, _>(entry.seq)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    id
}

/// What the relay does when the cloud rejects an outbox entry.
async fn cloud_rejected(gw: &TestGateway, entry: &OutboxRow) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = gw.db.conn().await;
    conn.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query(
        "INSERT INTO dead_letters (id, outbox_seq, mutation_id, lane, kind, entity_key, payload, reason, attempts) \
         SELECT $1, seq, mutation_id, lane, kind, entity_key, payload, 'prescription_closed', attempts + 1 \
         FROM outbox WHERE seq = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<BigInt, _>(entry.seq)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(
        "UPDATE outbox SET sent_at = now(), upstream = 'cloud', outcome = 'rejected', \
         last_error = 'prescription_closed' WHERE seq = $1",
    )
    .bind::<BigInt, _>(entry.seq)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_admin_resolves_conflicts_and_replays_or_discards_dead_letters() {
    let lab = lab().await;
    let gw = &lab.gw;
    // Two appointment changes and two collections, sent by the relay; the cloud answered conflict
    // for the changes and rejected the collections.
    let checked_in = status(AppointmentStatus::CheckedIn);
    for visit in [lab.visit, lab.other_visit] {
        patch_appointment(&gw.app, &lab.nurse, visit, Some("\"1\""), Some(&key()), &checked_in)
            .await
            .expect(200);
    }
    for _ in 0..2 {
        let body = collection(lab.patient, lab.prescription, &["EDTA"]);
        post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
            .await
            .expect(201);
    }
    let sent = outbox_rows(gw).await;
    assert_eq!(sent.len(), 4);
    let reapplied = cloud_answered_conflict(gw, &sent[0], 5).await;
    let kept = cloud_answered_conflict(gw, &sent[1], 4).await;
    let replayed = cloud_rejected(gw, &sent[2]).await;
    let discarded = cloud_rejected(gw, &sent[3]).await;
    let admin = gw.admin_login().await;
    assert_eq!(
        backlog(gw, &admin).await,
        (0, 2, 2),
        "(pending, dead letters, conflicts)"
    );

    let conflicts: Vec<ConflictView> = console(gw, &admin, TestRequest::get().uri("/admin/v1/conflicts"))
        .await
        .expect(200)
        .json();
    assert_eq!(conflicts.len(), 2);
    let listed = conflicts.iter().find(|c| c.id == reapplied).unwrap();
    assert_eq!(listed.entity_key, sent[0].entity_key);
    assert_eq!(listed.local_payload, sent[0].payload);
    assert_eq!(listed.server_version, Some(5));
    assert!(
        conflicts
            .iter()
            .all(|c| c.resolved_at.is_none() && c.resolution.is_none())
    );
    let dead: Vec<DeadLetterView> = console(gw, &admin, TestRequest::get().uri("/admin/v1/dead-letters"))
        .await
        .expect(200)
        .json();
    assert_eq!(dead.len(), 2);
    let listed = dead.iter().find(|d| d.id == replayed).unwrap();
    assert_eq!(
        (
            listed.kind.as_str(),
            listed.entity_key.as_str(),
            listed.reason.as_str(),
            listed.attempts
        ),
        (
            "collection.create",
            sent[2].entity_key.as_str(),
            "prescription_closed",
            1
        )
    );
    assert_eq!(listed.payload, sent[2].payload);

    let resolve = |id: Uuid, resolution: &str| {
        TestRequest::post()
            .uri(&format!("/admin/v1/conflicts/{id}/resolve"))
            .set_json(json!({ "resolution": resolution }))
    };
    let dead_letter =
        |id: Uuid, action: &str| TestRequest::post().uri(&format!("/admin/v1/dead-letters/{id}/{action}"));

    // Without the CSRF header (or with another token): 403, nothing done.
    let forged = [
        gw.from_admin_network(resolve(reapplied, "reapply_local").insert_header(("cookie", admin.cookie.clone())))
            .await,
        gw.from_admin_network(
            resolve(reapplied, "reapply_local")
                .insert_header(("cookie", admin.cookie.clone()))
                .insert_header(("x-csrf-token", "not-the-token")),
        )
        .await,
        gw.from_admin_network(dead_letter(replayed, "replay").insert_header(("cookie", admin.cookie.clone())))
            .await,
    ];
    for response in forged {
        assert_problem(&response.expect(403), ErrorCode::Forbidden, None);
    }
    assert_eq!(backlog(gw, &admin).await, (0, 2, 2));

    // reapply_local: the tablet's change again, as a new mutation against the cloud's version.
    console(gw, &admin, resolve(reapplied, "reapply_local"))
        .await
        .expect(204);
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 5);
    let requeued = &entries[4];
    assert_eq!(requeued.sent_at, None);
    assert_eq!(
        (requeued.kind.as_str(), requeued.entity_key.as_str(), requeued.lane),
        ("appointment.update", sent[0].entity_key.as_str(), 0)
    );
    assert!(sent.iter().all(|s| s.mutation_id != requeued.mutation_id));
    let (original, again) = (sent[0].mutation(), requeued.mutation());
    assert_eq!(again.mutation_id, requeued.mutation_id);
    assert_eq!(
        (again.staff_id, again.device_id),
        (original.staff_id, original.device_id)
    );
    assert_eq!(
        again.op,
        RelayedOp::AppointmentUpdate {
            appointment_id: lab.visit,
            if_version: 5,
            patch: AppointmentPatch {
                status: AppointmentStatus::CheckedIn,
                reason: None
            },
        }
    );
    // keep_server: nothing to send.
    console(gw, &admin, resolve(kept, "keep_server")).await.expect(204);
    assert_eq!(outbox_rows(gw).await.len(), 5);
    let conflicts: Vec<ConflictView> = console(gw, &admin, TestRequest::get().uri("/admin/v1/conflicts"))
        .await
        .expect(200)
        .json();
    let resolution = |id: Uuid| {
        let c = conflicts.iter().find(|c| c.id == id).unwrap();
        assert!(c.resolved_at.is_some());
        c.resolution.clone()
    };
    assert_eq!(resolution(reapplied).as_deref(), Some("reapply_local"));
    assert_eq!(resolution(kept).as_deref(), Some("keep_server"));

    // Replay: the same write as a new mutation; discard: nothing to send.
    console(gw, &admin, dead_letter(replayed, "replay")).await.expect(204);
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 6);
    let requeued = &entries[5];
    assert_eq!(requeued.sent_at, None);
    assert_eq!(
        (requeued.kind.as_str(), requeued.entity_key.as_str()),
        ("collection.create", sent[2].entity_key.as_str())
    );
    assert!(sent.iter().all(|s| s.mutation_id != requeued.mutation_id));
    assert_eq!(requeued.mutation().op, sent[2].mutation().op);
    console(gw, &admin, dead_letter(discarded, "discard")).await.expect(204);
    assert_eq!(outbox_rows(gw).await.len(), 6);
    let dead: Vec<DeadLetterView> = console(gw, &admin, TestRequest::get().uri("/admin/v1/dead-letters"))
        .await
        .expect(200)
        .json();
    let handled = |id: Uuid| {
        let d = dead.iter().find(|d| d.id == id).unwrap();
        (d.replayed_at.is_some(), d.discarded_at.is_some())
    };
    assert_eq!(handled(replayed), (true, false));
    assert_eq!(handled(discarded), (false, true));
    assert_eq!(backlog(gw, &admin).await, (2, 0, 0));

    // Handled once only: 409; unknown ids: 404.
    for request in [
        resolve(reapplied, "reapply_local"),
        resolve(reapplied, "keep_server"),
        resolve(kept, "reapply_local"),
        dead_letter(replayed, "replay"),
        dead_letter(replayed, "discard"),
        dead_letter(discarded, "replay"),
        dead_letter(discarded, "discard"),
    ] {
        assert_problem(
            &console(gw, &admin, request).await.expect(409),
            ErrorCode::Conflict,
            None,
        );
    }
    for request in [
        resolve(Uuid::now_v7(), "keep_server"),
        dead_letter(Uuid::now_v7(), "replay"),
        dead_letter(Uuid::now_v7(), "discard"),
    ] {
        assert_problem(
            &console(gw, &admin, request).await.expect(404),
            ErrorCode::NotFound,
            None,
        );
    }
    assert_eq!(outbox_rows(gw).await.len(), 6);
    assert_eq!(backlog(gw, &admin).await, (2, 0, 0));
}

/// A tablet whose answer was lost queues the same collection again under a new key: it is recorded
/// once and the retry gets the first receipt; another device using the id gets 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_collection_under_a_new_key_is_recorded_once() {
    let lab = lab().await;
    let gw = &lab.gw;
    let body = edge_data::collection(lab.patient, lab.prescription, &["EDTA"]);
    let first: mobile_contracts::CollectionReceipt = post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
        .await
        .expect(201)
        .json();
    let again = post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
        .await
        .expect(201);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    let receipt: mobile_contracts::CollectionReceipt = again.json();
    assert_eq!((receipt.id, receipt.recorded_at), (first.id, first.recorded_at));
    let stored = stored(gw).await;
    assert_eq!((stored.collections, stored.outbox), (1, 1), "recorded and relayed once");
    let colleague = tablet(gw, NURSE).await;
    post_collection(&gw.app, &colleague, Some(&key()), &body)
        .await
        .expect(409);
}
