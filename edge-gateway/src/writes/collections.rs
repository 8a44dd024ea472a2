//! `record_collection`: a specimen collection, checked, stored with its tubes, queued for the cloud.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_protocol::relay::RelayedOp;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{CollectionReceipt, NewCollection, RelayState, Role};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{WriteError, durable, entry, invalid, keyed, mutation, wake_relay};
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::collections::{self as stored, Recording, method_name};
use crate::store::idempotency::{Answered, idempotent, request_hash};
use crate::store::reads::assigned_to;
use crate::store::{audit, outbox};

/// How far ahead of the gateway's clock a collection may be dated.
pub const FUTURE_TOLERANCE: Duration = Duration::minutes(5);

/// How far before its prescription's issue date (midnight UTC) a collection may be dated: a sample
/// is never taken before it is prescribed, and two days cover a tablet clock a day off plus any time
/// zone. Without a bound, a collection dated 1900-01-01 was accepted.
pub const PAST_TOLERANCE: Duration = Duration::days(2);

/// Records a specimen collection (`POST /v1/collections`, or one item of a push).
pub async fn record_collection(
    state: &AppState,
    principal: &Principal,
    key: &str,
    body: NewCollection,
    request_id: &str,
) -> Result<Answered<CollectionReceipt>, ApiError> {
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[b"collection.create", &canonical]);
    let now = stored_precision(OffsetDateTime::now_utc());
    let audit = entry(
        principal,
        lab.id,
        "collection.create",
        body.patient_id,
        format!("collection:{}", body.id),
        request_id,
    );
    let patient_id = body.patient_id;
    let mut conn = state.pool.get().await?;
    let answered = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            idempotent(
                conn,
                keyed(principal, key, &hash, 201),
                async |conn| patient_in_scope(conn, lab.id, principal, patient_id).await,
                async move |conn| insert(conn, lab.id, principal, body, now, audit).await,
            )
            .await
        })
        .await?;
    wake_relay(state, &answered);
    Ok(answered)
}

/// The write itself, once the key is claimed: checks, rows, outbox entry, audit.
async fn insert(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    body: NewCollection,
    now: OffsetDateTime,
    audit: AuditEntry,
) -> Result<Answered<CollectionReceipt>, WriteError> {
    check_collection(conn, lab_id, principal, &body, now).await?;
    // The same collection again under another key (its first answer was lost and the tablet queued
    // it anew): recorded once, answered as a replay. A different collection under an id already used
    // is a conflict.
    if let Some(recorded_at) = same_collection_recorded(conn, principal, &body).await? {
        return Ok(Answered::replayed(receipt(body.id, recorded_at)));
    }
    let recording = Recording {
        lab_id,
        staff_id: principal.staff_id,
        device_id: principal.device_id,
        recorded_at: now,
    };
    stored::insert(conn, &body, recording).await?;
    let receipt = receipt(body.id, now);
    let op = RelayedOp::CollectionCreate { collection: body };
    outbox::enqueue(conn, &mutation(principal, now, op)).await?;
    audit::insert(conn, &[audit]).await?;
    Ok(Answered::fresh(receipt))
}

fn receipt(id: Uuid, recorded_at: OffsetDateTime) -> CollectionReceipt {
    CollectionReceipt {
        id,
        recorded_at,
        relay: RelayState::Queued,
    }
}

/// A time as PostgreSQL keeps it (microseconds), so that a receipt says what is stored.
pub(super) fn stored_precision(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

/// When `body`'s id is already recorded: its time if it is the same collection from the same device
/// (a retry under another key), a 409 if it is another one.
async fn same_collection_recorded(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    body: &NewCollection,
) -> Result<Option<OffsetDateTime>, WriteError> {
    let Some(recorded) = stored::find(conn, body.id).await? else {
        return Ok(None);
    };
    let tubes = stored::tubes(conn, body.id).await?;
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
    let prescription = stored::prescription(conn, body.prescription_id).await?;
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
        let found = crate::store::appointments::patient_and_lab(conn, appointment).await?;
        if found != Some((body.patient_id, lab_id)) {
            return Err(invalid("/appointment_id", "not an appointment of this patient at this lab").into());
        }
    }
    let types: Vec<String> = body.tubes.iter().map(|t| t.tube_type.clone()).collect();
    let known = stored::known_tube_types(conn, &types).await?;
    if let Some(index) = types.iter().position(|t| !known.contains(t)) {
        return Err(invalid(&format!("/tubes/{index}/tube_type"), "not a tube type of the catalog").into());
    }
    Ok(())
}

/// The patient is one of the caller's: known at this gateway, and on a home sampler's own round.
async fn patient_in_scope(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    patient_id: Uuid,
) -> Result<(), WriteError> {
    let in_scope = stored::patient_exists(conn, patient_id).await?
        && (principal.role != Role::HomeSampler || assigned_to(conn, lab_id, principal.staff_id, patient_id).await?);
    if !in_scope {
        return Err(invalid("/patient_id", "no such patient among yours").into());
    }
    Ok(())
}
