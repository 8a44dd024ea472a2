//! Writes from tablets: specimen collections, appointment status changes, and offline batches of
//! both. A write is acknowledged only after one PostgreSQL transaction, committed with
//! `synchronous_commit = on`, holds the row, its outbox entry (what the relay sends to the cloud), its
//! idempotency record (the stored answer) and its audit record. With its database down or read-only
//! the gateway answers 503 + `Retry-After`, never a 2xx.
//!
//! Rules checked here, besides the contract's own (`validator`):
//! - a collection names a patient of the lab, one of the patient's prescriptions, and (optionally) one
//!   of the patient's appointments; a home-sampling staff member only records for patients on their
//!   own appointments; every tube type is in the catalog; a barcode is recorded once;
//! - `collected_at` may not be more than five minutes ahead of the gateway's clock (a tablet whose
//!   clock runs ahead would otherwise date a sample in the future); it may be in the past (a tablet
//!   offline for hours pushes collections made earlier);
//! - an appointment change carries the version the tablet saw (`If-Match`) and follows the status
//!   transitions of `AppointmentStatus::can_transition_to`.

pub mod idempotency;
pub mod push;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_schema::edge::schema::{
    appointments, collection_tubes, collections, outbox, patients, prescriptions, tube_types,
};
use labedge_schema::sync::AppointmentRow;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{AppointmentPatch, AppointmentStatus, CollectionReceipt, NewCollection, RelayState, Role};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use self::idempotency::{Claim, ClaimError, KeyScope, request_hash};
use crate::audit::{AuditEntry, AuditLog};
use crate::auth::Principal;
use crate::reads::store::{assigned_to, render_appointment};
use crate::state::AppState;

/// How far ahead of the gateway's clock a collection may be dated.
pub const FUTURE_TOLERANCE: Duration = Duration::minutes(5);

/// How far before its prescription's issue date (midnight UTC) a collection may be dated: a sample
/// is never taken before it is prescribed, and two days cover a tablet clock a day off plus any time
/// zone. Without a bound, a collection dated 1900-01-01 was accepted.
pub const PAST_TOLERANCE: Duration = Duration::days(2);

/// A write's answer.
#[derive(Debug)]
pub struct Written {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: serde_json::Value,
    /// Whether this is the stored answer of an earlier identical write.
    pub replayed: bool,
}

/// What can stop a write inside its transaction (the transaction rolls back).
#[derive(Debug)]
enum WriteError {
    Problem(ProblemError),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for WriteError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e)
    }
}

impl From<ProblemError> for WriteError {
    fn from(p: ProblemError) -> Self {
        Self::Problem(p)
    }
}

impl From<ClaimError> for WriteError {
    fn from(e: ClaimError) -> Self {
        match e.problem() {
            Some(problem) => Self::Problem(problem),
            None => match e {
                ClaimError::Database(db) => Self::Database(db),
                _ => Self::Problem(ProblemError::new(ErrorCode::Internal)),
            },
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Problem(p) => ApiError::Problem(p),
            WriteError::Database(db) => ApiError::Database(db),
        }
    }
}

fn invalid(pointer: &str, message: &str) -> ProblemError {
    ProblemError::new(ErrorCode::ValidationFailed).errors(vec![FieldError::new(pointer, "invalid", message)])
}

/// The acknowledgement is durable on this gateway's disk before the tablet hears of it, whatever the
/// server's default.
async fn durable(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    conn.batch_execute("SET LOCAL synchronous_commit TO on").await
}

async fn enqueue(conn: &mut AsyncPgConnection, mutation: &RelayedMutation) -> QueryResult<()> {
    let payload = serde_json::to_value(mutation).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::insert_into(outbox::table)
        .values((
            outbox::mutation_id.eq(mutation.mutation_id),
            outbox::lane.eq(mutation.op.lane()),
            outbox::kind.eq(mutation.op.kind()),
            outbox::entity_key.eq(mutation.op.entity_key()),
            outbox::payload.eq(payload),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

fn entry(
    principal: &Principal,
    lab_id: Uuid,
    action: &'static str,
    patient: Uuid,
    resource: String,
    request_id: &str,
) -> AuditEntry {
    AuditEntry {
        lab_id,
        staff_id: Some(principal.staff_id),
        device_id: Some(principal.device_id),
        action,
        patient_id: Some(patient),
        resource: Some(resource),
        request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
    }
}

/// Records a specimen collection (`POST /v1/collections`, or one item of a push).
pub async fn record_collection(
    state: &AppState,
    principal: &Principal,
    key: &str,
    body: NewCollection,
    request_id: &str,
) -> Result<Written, ApiError> {
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[b"collection.create", &canonical]);
    let mut conn = state.pool.get().await?;
    let now = stored_precision(OffsetDateTime::now_utc());
    let audit = entry(
        principal,
        lab.id,
        "collection.create",
        body.patient_id,
        format!("collection:{}", body.id),
        request_id,
    );
    let principal = principal.clone();
    let written = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            if let Claim::Replay { status, body: answer } =
                idempotency::claim(conn, key_scope(&principal), key, &hash).await?
            {
                patient_in_scope(conn, lab.id, &principal, body.patient_id).await?;
                return Ok(Written {
                    status,
                    body: answer,
                    replayed: true,
                });
            }
            check_collection(conn, lab.id, &principal, &body, now).await?;
            // The same collection again under another key (its first answer was lost and the tablet
            // queued it anew): recorded once, answered as a replay. A different collection under an
            // id already used is a conflict.
            if let Some(recorded_at) = same_collection_recorded(conn, &principal, &body).await? {
                let receipt = CollectionReceipt {
                    id: body.id,
                    recorded_at,
                    relay: RelayState::Queued,
                };
                let answer = serde_json::to_value(&receipt)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                return Ok(Written {
                    status: 201,
                    body: answer,
                    replayed: true,
                });
            }
            diesel::insert_into(collections::table)
                .values((
                    collections::id.eq(body.id),
                    collections::lab_id.eq(lab.id),
                    collections::patient_id.eq(body.patient_id),
                    collections::appointment_id.eq(body.appointment_id),
                    collections::prescription_id.eq(body.prescription_id),
                    collections::collected_at.eq(body.collected_at),
                    collections::collected_by.eq(principal.staff_id),
                    collections::device_id.eq(principal.device_id),
                    collections::identity_checked.eq(body.identity_checked),
                    collections::identity_check_method.eq(body.identity_check_method.map(method_name)),
                    collections::comments.eq(&body.comments),
                    collections::recorded_at.eq(now),
                ))
                .execute(conn)
                .await?;
            let tubes: Vec<_> = body
                .tubes
                .iter()
                .map(|t| {
                    (
                        collection_tubes::collection_id.eq(body.id),
                        collection_tubes::barcode.eq(t.barcode.as_str().to_owned()),
                        collection_tubes::tube_type.eq(t.tube_type.clone()),
                    )
                })
                .collect();
            diesel::insert_into(collection_tubes::table)
                .values(&tubes)
                .execute(conn)
                .await?;
            let receipt = CollectionReceipt {
                id: body.id,
                recorded_at: now,
                relay: RelayState::Queued,
            };
            let mutation = RelayedMutation {
                mutation_id: Uuid::now_v7(),
                recorded_at: now,
                staff_id: Some(principal.staff_id),
                device_id: Some(principal.device_id),
                op: RelayedOp::CollectionCreate { collection: body },
            };
            enqueue(conn, &mutation).await?;
            AuditLog::insert_in(conn, &[audit]).await?;
            let answer =
                serde_json::to_value(&receipt).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
            idempotency::store(conn, key_scope(&principal), key, &hash, 201, &answer).await?;
            Ok(Written {
                status: 201,
                body: answer,
                replayed: false,
            })
        })
        .await?;
    if !written.replayed {
        state.relay_wakeup.notify_one();
    }
    Ok(written)
}

/// A time as PostgreSQL keeps it (microseconds), so that a receipt says what is stored.
fn stored_precision(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

#[derive(Queryable)]
struct RecordedCollection {
    patient_id: Uuid,
    appointment_id: Option<Uuid>,
    prescription_id: Uuid,
    collected_at: OffsetDateTime,
    device_id: Uuid,
    identity_checked: bool,
    identity_check_method: Option<String>,
    comments: Option<String>,
    recorded_at: OffsetDateTime,
}

/// When `body`'s id is already recorded: its time if it is the same collection from the same device
/// (a retry under another key), a 409 if it is another one.
async fn same_collection_recorded(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    body: &NewCollection,
) -> Result<Option<OffsetDateTime>, WriteError> {
    let recorded: Option<RecordedCollection> = collections::table
        .find(body.id)
        .select((
            collections::patient_id,
            collections::appointment_id,
            collections::prescription_id,
            collections::collected_at,
            collections::device_id,
            collections::identity_checked,
            collections::identity_check_method,
            collections::comments,
            collections::recorded_at,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some(recorded) = recorded else { return Ok(None) };
    let mut tubes: Vec<(String, String)> = collection_tubes::table
        .filter(collection_tubes::collection_id.eq(body.id))
        .select((collection_tubes::barcode, collection_tubes::tube_type))
        .load(conn)
        .await?;
    tubes.sort();
    let mut sent: Vec<(String, String)> = body
        .tubes
        .iter()
        .map(|t| (t.barcode.as_str().to_owned(), t.tube_type.clone()))
        .collect();
    sent.sort();
    let same = recorded.device_id == principal.device_id
        && recorded.patient_id == body.patient_id
        && recorded.appointment_id == body.appointment_id
        && recorded.prescription_id == body.prescription_id
        // PostgreSQL keeps microseconds; a tablet may send nanoseconds.
        && (recorded.collected_at - body.collected_at).abs() < Duration::microseconds(1)
        && recorded.identity_checked == body.identity_checked
        && recorded.identity_check_method.as_deref() == body.identity_check_method.map(method_name)
        && recorded.comments == body.comments
        && tubes == sent;
    if same {
        Ok(Some(recorded.recorded_at))
    } else {
        Err(ProblemError::new(ErrorCode::Conflict)
            .detail("a different collection with this id is already recorded")
            .errors(vec![FieldError::new("/id", "taken", "already recorded")])
            .into())
    }
}

fn method_name(method: mobile_contracts::IdentityCheckMethod) -> &'static str {
    use mobile_contracts::IdentityCheckMethod as M;
    match method {
        M::IdDocument => "id_document",
        M::HealthCard => "health_card",
        M::KnownPatient => "known_patient",
        M::ThirdParty => "third_party",
    }
}

async fn check_collection(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    body: &NewCollection,
    now: OffsetDateTime,
) -> Result<(), WriteError> {
    if body.collected_at > now + FUTURE_TOLERANCE {
        return Err(invalid("/collected_at", "is in the future: check the tablet's clock").into());
    }
    patient_in_scope(conn, lab_id, principal, body.patient_id).await?;
    let prescription: Option<(Uuid, Uuid, Date)> = prescriptions::table
        .find(body.prescription_id)
        .select((
            prescriptions::patient_id,
            prescriptions::lab_id,
            prescriptions::issued_on,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((_, _, issued_on)) = prescription.filter(|p| (p.0, p.1) == (body.patient_id, lab_id)) else {
        return Err(invalid("/prescription_id", "not a prescription of this patient at this lab").into());
    };
    if body.collected_at < issued_on.midnight().assume_utc() - PAST_TOLERANCE {
        return Err(invalid(
            "/collected_at",
            "is before the prescription was issued: check the tablet's clock",
        )
        .into());
    }
    if let Some(appointment) = body.appointment_id {
        let found: Option<(Uuid, Uuid)> = appointments::table
            .find(appointment)
            .select((appointments::patient_id, appointments::lab_id))
            .first(conn)
            .await
            .optional()?;
        if found != Some((body.patient_id, lab_id)) {
            return Err(invalid("/appointment_id", "not an appointment of this patient at this lab").into());
        }
    }
    let types: Vec<String> = body.tubes.iter().map(|t| t.tube_type.clone()).collect();
    let known: Vec<String> = tube_types::table
        .filter(tube_types::code.eq_any(&types))
        .select(tube_types::code)
        .load(conn)
        .await?;
    if let Some(index) = types.iter().position(|t| !known.contains(t)) {
        return Err(invalid(&format!("/tubes/{index}/tube_type"), "not a tube type of the catalog").into());
    }
    Ok(())
}

/// Whose idempotency keys a write uses.
fn key_scope(principal: &Principal) -> KeyScope {
    KeyScope {
        device: principal.device_id,
        staff: principal.staff_id,
    }
}

/// The patient is one of the caller's: known at this gateway, and on a home sampler's own round.
async fn patient_in_scope(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    patient_id: Uuid,
) -> Result<(), WriteError> {
    let patient_known: bool = diesel::select(diesel::dsl::exists(patients::table.find(patient_id)))
        .get_result(conn)
        .await?;
    let in_scope = patient_known
        && (principal.role != Role::HomeSampler || assigned_to(conn, lab_id, principal.staff_id, patient_id).await?);
    if !in_scope {
        return Err(invalid("/patient_id", "no such patient among yours").into());
    }
    Ok(())
}

/// The appointment is the lab's, and a home sampler's own.
async fn appointment_in_scope(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    id: Uuid,
) -> Result<(), WriteError> {
    let row: Option<(Uuid, Option<Uuid>)> = appointments::table
        .find(id)
        .select((appointments::lab_id, appointments::assigned_staff_id))
        .first(conn)
        .await
        .optional()?;
    match row {
        Some((lab, assigned))
            if lab == lab_id && (principal.role != Role::HomeSampler || assigned == Some(principal.staff_id)) =>
        {
            Ok(())
        }
        _ => Err(ProblemError::new(ErrorCode::NotFound).into()),
    }
}

/// Changes an appointment's status (`PATCH /v1/appointments/{id}`, or one item of a push).
#[allow(clippy::too_many_arguments)]
pub async fn update_appointment(
    state: &AppState,
    principal: &Principal,
    key: &str,
    id: Uuid,
    if_version: i64,
    patch: AppointmentPatch,
    request_id: &str,
) -> Result<Written, ApiError> {
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&patch).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[
        b"appointment.update",
        id.as_bytes(),
        &if_version.to_be_bytes(),
        &canonical,
    ]);
    let mut conn = state.pool.get().await?;
    let principal = principal.clone();
    let request_id = request_id.to_owned();
    let written = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            if let Claim::Replay { status, body } = idempotency::claim(conn, key_scope(&principal), key, &hash).await? {
                appointment_in_scope(conn, lab.id, &principal, id).await?;
                return Ok(Written {
                    status,
                    body,
                    replayed: true,
                });
            }
            let row: Option<AppointmentRow> = appointments::table
                .find(id)
                .select(AppointmentRow::EDGE_COLUMNS)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let row = match row {
                Some(row)
                    if row.lab_id == lab.id
                        && (principal.role != Role::HomeSampler
                            || row.assigned_staff_id == Some(principal.staff_id)) =>
                {
                    row
                }
                _ => return Err(ProblemError::new(ErrorCode::NotFound).into()),
            };
            if row.version != if_version {
                return Err(ProblemError::new(ErrorCode::VersionMismatch)
                    .detail(format!(
                        "the appointment is at version {}: reload it and try again",
                        row.version
                    ))
                    .header(
                        actix_web::http::header::ETAG,
                        &mobile_contracts::headers::etag(row.version),
                    )
                    .into());
            }
            let from = crate::reads::store::parse_enum::<AppointmentStatus>("status", &row.status)
                .map_err(|_| ProblemError::new(ErrorCode::Internal))?;
            if !from.can_transition_to(patch.status) {
                return Err(ProblemError::new(ErrorCode::InvalidTransition)
                    .detail("this status change is not allowed from the appointment's current status")
                    .into());
            }
            let status_text = serde_json::to_value(patch.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let updated: AppointmentRow = diesel::update(appointments::table.find(id))
                .set((
                    appointments::status.eq(&status_text),
                    appointments::status_reason.eq(&patch.reason),
                    appointments::version.eq(row.version + 1),
                ))
                .returning(AppointmentRow::EDGE_COLUMNS)
                .get_result(conn)
                .await?;
            let now = OffsetDateTime::now_utc();
            let mutation = RelayedMutation {
                mutation_id: Uuid::now_v7(),
                recorded_at: now,
                staff_id: Some(principal.staff_id),
                device_id: Some(principal.device_id),
                op: RelayedOp::AppointmentUpdate {
                    appointment_id: id,
                    if_version,
                    patch,
                },
            };
            enqueue(conn, &mutation).await?;
            let audit = entry(
                &principal,
                lab.id,
                "appointment.update",
                row.patient_id,
                format!("appointment:{id}"),
                &request_id,
            );
            AuditLog::insert_in(conn, &[audit]).await?;
            let rendered = render_appointment(&updated).map_err(|_| ProblemError::new(ErrorCode::Internal))?;
            let answer =
                serde_json::to_value(&rendered).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
            idempotency::store(conn, key_scope(&principal), key, &hash, 200, &answer).await?;
            Ok(Written {
                status: 200,
                body: answer,
                replayed: false,
            })
        })
        .await?;
    if !written.replayed {
        state.relay_wakeup.notify_one();
    }
    Ok(written)
}
