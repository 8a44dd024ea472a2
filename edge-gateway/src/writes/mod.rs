//! Writes from tablets: specimen collections, appointment status changes, and offline batches of
//! both. A write is acknowledged only after one PostgreSQL transaction, committed with
//! `synchronous_commit = on`, holds the row, its outbox entry (what the relay sends to the cloud), its
//! idempotency record (the stored answer) and its audit record. With its database down or read-only
//! the gateway answers 503 + `Retry-After`, never a 2xx. The rules live here; the queries in
//! [`crate::store`]; the key, the replay and the stored answer in [`idempotent`]. Collections, the
//! bulk of the writes, are committed many to a transaction by [`group`].
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

mod appointments;
pub mod booking;
mod collections;
pub mod group;
mod lab_bookings;
pub mod paper_prescriptions;
pub mod push;
mod slot_grid;
pub mod voids;
pub mod walk_ins;

use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::appointments::{AppointmentChange, ChangeWriter, update_appointment};
pub use self::collections::{
    CollectionWriter, FUTURE_TOLERANCE, PAST_TOLERANCE, prepare as prepare_collection, record_collection,
};
pub use self::lab_bookings::BookingWriter;
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::state::AppState;
pub use crate::store::idempotency::Answered;
use crate::store::idempotency::{self, Claim, ClaimError, KeyScope, Keyed, ToStore};

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

/// The idempotency key `key` of a write by `principal` (keys are per device and staff member), its
/// request hash, and the status its answer is stored with.
fn keyed<'a>(principal: &Principal, key: &'a str, hash: &'a [u8], status: u16) -> Keyed<'a> {
    Keyed {
        scope: KeyScope {
            device: principal.device_id,
            staff: principal.staff_id,
        },
        key,
        hash,
        status,
    }
}

/// Claims the keys of a group's writes (their locks, then their stored answers, one statement each):
/// one verdict per key, in order.
async fn claim_group(conn: &mut AsyncPgConnection, keys: &[Keyed<'_>]) -> QueryResult<Vec<Result<Claim, ClaimError>>> {
    let keys: Vec<_> = keys.iter().map(|k| (k.scope, k.key, k.hash)).collect();
    idempotency::claim_many(conn, &keys).await
}

/// Stores the answers of a group's accepted writes, each under its key, with one statement.
async fn store_group_answers<'a, T: serde::Serialize + 'a>(
    conn: &mut AsyncPgConnection,
    answers: impl Iterator<Item = (Keyed<'a>, &'a T)>,
) -> QueryResult<()> {
    let (keys, bodies): (Vec<Keyed<'a>>, Vec<&T>) = answers.unzip();
    let bodies = bodies
        .into_iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::store::serde_failure)?;
    let answers: Vec<ToStore<'_>> = keys
        .into_iter()
        .zip(&bodies)
        .map(|(keyed, body)| ToStore { keyed, body })
        .collect();
    idempotency::store_many(conn, &answers).await
}

/// The outbox entry of a write by `principal`.
fn mutation(principal: &Principal, recorded_at: OffsetDateTime, op: RelayedOp) -> RelayedMutation {
    RelayedMutation {
        mutation_id: Uuid::now_v7(),
        recorded_at,
        staff_id: Some(principal.staff_id),
        device_id: Some(principal.device_id),
        op,
    }
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

/// Wakes the relay once a write put something in the outbox (a replay put nothing).
fn wake_relay<T>(state: &AppState, answered: &Answered<T>) {
    if !answered.replayed {
        state.wrote();
    }
}
