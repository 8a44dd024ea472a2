//! The gateway's write path (collections, appointment changes, offline pushes) against real
//! PostgreSQL and Redis: one transaction holds the row, its outbox entry, its idempotency record and
//! its audit record before any 2xx; replays get the stored answer; bad input is refused with the field
//! named and leaves nothing behind; a database that is down or read-only gives 503 + `Retry-After`;
//! appointment changes follow the state machine against the version seen; the lab admin resolves
//! conflicts and dead letters in the console.

use actix_web::test::TestRequest;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::conflicts::{ConflictView, DeadLetterView};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_schema::edge::schema::{appointments, audit_log, collection_tubes, collections, idempotency_keys, outbox};
use labedge_schema::sync::AppointmentRow;
use labedge_tests::app::{TestApp, TestResponse};
use labedge_tests::db::AUDIT_RECORDS;
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

mod appointment_changes;
mod durability;
mod group_commit;
mod idempotency;
mod push;
mod recording;
mod refusals;
mod resolution;

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
        token: tokens.access_token.expose_secret().to_owned(),
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
    diesel::sql_query(format!(
        "SELECT (SELECT count(*) FROM collections) AS collections, \
                (SELECT count(*) FROM collection_tubes) AS tubes, \
                (SELECT count(*) FROM outbox) AS outbox, \
                (SELECT count(*) FROM idempotency_keys) AS idempotency, \
                (SELECT count(*) FROM {AUDIT_RECORDS} WHERE action IN ('collection.create', 'appointment.update')) \
                    AS audited_writes",
    ))
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

/// The writes' audit records in the order they were appended (chained first: the pending ones wait
/// for the journal).
async fn audited_writes(gw: &TestGateway) -> Vec<AuditRow> {
    let mut conn = gw.db.conn().await;
    labedge_edge_gateway::audit::chain_pending(&mut conn).await.unwrap();
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
        .load(&mut conn)
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
