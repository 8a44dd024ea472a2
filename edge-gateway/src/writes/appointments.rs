//! `update_appointment`: an appointment's status change against the version the tablet saw.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_protocol::relay::RelayedOp;
use labedge_schema::sync::AppointmentRow;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{Appointment, AppointmentPatch, AppointmentStatus, Role};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{WriteError, durable, entry, keyed, mutation, wake_relay};
use crate::auth::Principal;
use crate::reads::render::{parse_enum, render_appointment};
use crate::state::AppState;
use crate::store::appointments as stored;
use crate::store::idempotency::{Answered, idempotent, request_hash};
use crate::store::{audit, outbox};

/// A status change: which appointment, at which version, to what.
#[derive(Debug)]
pub struct AppointmentChange {
    /// The appointment.
    pub id: Uuid,
    /// The version the tablet saw (`If-Match`).
    pub if_version: i64,
    /// The new status.
    pub patch: AppointmentPatch,
}

/// Changes an appointment's status (`PATCH /v1/appointments/{id}`, or one item of a push).
pub async fn update_appointment(
    state: &AppState,
    principal: &Principal,
    key: &str,
    change: AppointmentChange,
    request_id: &str,
) -> Result<Answered<Appointment>, ApiError> {
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&change.patch).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[
        b"appointment.update",
        change.id.as_bytes(),
        &change.if_version.to_be_bytes(),
        &canonical,
    ]);
    let id = change.id;
    let mut conn = state.pool.get().await?;
    let answered = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            idempotent(
                conn,
                keyed(principal, key, &hash, 200),
                async |conn| appointment_in_scope(conn, lab.id, principal, id).await,
                async move |conn| change_status(conn, lab.id, principal, change, request_id).await,
            )
            .await
        })
        .await?;
    wake_relay(state, &answered);
    Ok(answered)
}

/// The write itself, once the key is claimed: the row locked and checked, changed, queued, audited.
async fn change_status(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    change: AppointmentChange,
    request_id: &str,
) -> Result<Answered<Appointment>, WriteError> {
    let AppointmentChange { id, if_version, patch } = change;
    let row = lock_in_scope(conn, lab_id, principal, id).await?;
    check_version(&row, if_version)?;
    let status = transition(&row, patch.status)?;
    let updated = stored::set_status(conn, id, &status, patch.reason.as_deref(), row.version + 1).await?;
    let op = RelayedOp::AppointmentUpdate {
        appointment_id: id,
        if_version,
        patch,
    };
    outbox::enqueue(conn, &mutation(principal, OffsetDateTime::now_utc(), op)).await?;
    let audit_entry = entry(
        principal,
        lab_id,
        "appointment.update",
        row.patient_id,
        format!("appointment:{id}"),
        request_id,
    );
    audit::insert(conn, &[audit_entry]).await?;
    let rendered = render_appointment(&updated).map_err(|_| ProblemError::new(ErrorCode::Internal))?;
    Ok(Answered::fresh(rendered))
}

/// The appointment, locked, if it is the lab's and (for a home sampler) the caller's own.
pub(super) async fn lock_in_scope(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    id: Uuid,
) -> Result<AppointmentRow, WriteError> {
    match stored::lock(conn, id).await? {
        Some(row)
            if row.lab_id == lab_id
                && (principal.role != Role::HomeSampler || row.assigned_staff_id == Some(principal.staff_id)) =>
        {
            Ok(row)
        }
        _ => Err(ProblemError::new(ErrorCode::NotFound).into()),
    }
}

/// The tablet changed the version it saw, or is told the current one (in `ETag`).
pub(super) fn check_version(row: &AppointmentRow, if_version: i64) -> Result<(), ProblemError> {
    if row.version == if_version {
        return Ok(());
    }
    Err(ProblemError::new(ErrorCode::VersionMismatch)
        .detail(format!(
            "the appointment is at version {}: reload it and try again",
            row.version
        ))
        .header(
            actix_web::http::header::ETAG,
            &mobile_contracts::headers::etag(row.version),
        ))
}

/// The new status's stored name, if the change from the row's status is allowed.
fn transition(row: &AppointmentRow, to: AppointmentStatus) -> Result<String, ProblemError> {
    let from =
        parse_enum::<AppointmentStatus>("status", &row.status).map_err(|_| ProblemError::new(ErrorCode::Internal))?;
    if !from.can_transition_to(to) {
        return Err(ProblemError::new(ErrorCode::InvalidTransition)
            .detail("this status change is not allowed from the appointment's current status"));
    }
    Ok(serde_json::to_value(to)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default())
}

/// The appointment is the lab's, and a home sampler's own.
async fn appointment_in_scope(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    id: Uuid,
) -> Result<(), WriteError> {
    match stored::lab_and_assignee(conn, id).await? {
        Some((lab, assigned))
            if lab == lab_id && (principal.role != Role::HomeSampler || assigned == Some(principal.staff_id)) =>
        {
            Ok(())
        }
        _ => Err(ProblemError::new(ErrorCode::NotFound).into()),
    }
}
