//! `update_appointment`: an appointment's status change against the version the tablet saw, written
//! with the changes waiting at the same moment ([`super::group`]).

use std::future::Future;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_protocol::relay::RelayedOp;
use labedge_schema::sync::AppointmentRow;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{Appointment, AppointmentPatch, AppointmentStatus, Role};
use time::OffsetDateTime;
use uuid::Uuid;

use super::group::{GroupWriter, Grouped, ItemVerdict, Mark};
use super::{WriteError, claim_group, durable, entry, keyed, mutation, store_group_answers, wake_relay};
use crate::auth::Principal;
use crate::reads::render::{parse_enum, render_appointment};
use crate::state::AppState;
use crate::store::appointments as stored;
use crate::store::idempotency::{Answered, Claim, request_hash};
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

/// The group writer of appointment status changes.
pub type ChangeWriter = GroupWriter<StatusChange>;

/// A status change to write, checked against the contract already.
#[derive(Debug)]
pub struct StatusChange {
    lab_id: Uuid,
    principal: Principal,
    key: String,
    hash: Vec<u8>,
    change: AppointmentChange,
    request_id: String,
}

impl Grouped for StatusChange {
    type Answer = Appointment;

    const NAME: &'static str = "appointment_change";

    /// Two changes of one appointment are never grouped: the second is judged on the first's
    /// version, after its commit.
    fn marks(&self) -> Vec<Mark<'_>> {
        let principal = &self.principal;
        vec![
            Mark::Key(principal.device_id, principal.staff_id, self.key.as_str()),
            Mark::Id(self.change.id),
        ]
    }

    fn write_group<'a>(
        conn: &'a mut AsyncPgConnection,
        items: &'a [&'a Self],
    ) -> impl Future<Output = QueryResult<Vec<ItemVerdict<Appointment>>>> + Send + 'a {
        write_group(conn, items)
    }
}

/// Changes an appointment's status (`PATCH /v1/appointments/{id}`, or one item of a push), through
/// the group writer: the changes waiting at one moment share a transaction and its commit.
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
    let item = StatusChange {
        lab_id: lab.id,
        principal: principal.clone(),
        key: key.to_owned(),
        hash,
        change,
        request_id: request_id.to_owned(),
    };
    let answered = state
        .appointment_changes
        .write(vec![item])
        .await
        .pop()
        .unwrap_or_else(|| Err(ProblemError::new(ErrorCode::Internal).into()))?;
    wake_relay(state, &answered);
    Ok(answered)
}

/// The verdicts of a group of changes in one transaction: the keys claimed, the appointments locked
/// and read by one statement each (in the order of their ids, so that two groups cannot deadlock),
/// each change judged on its row as `PATCH` always did, then the accepted ones written with one
/// statement per table.
async fn write_group(
    conn: &mut AsyncPgConnection,
    items: &[&StatusChange],
) -> QueryResult<Vec<ItemVerdict<Appointment>>> {
    durable(conn).await?;
    let keys: Vec<_> = items
        .iter()
        .map(|i| keyed(&i.principal, &i.key, &i.hash, 200))
        .collect();
    let claims = claim_group(conn, &keys).await?;
    let ids: Vec<Uuid> = items.iter().map(|i| i.change.id).collect();
    let rows = stored::lock_many(conn, &ids).await?;
    let mut verdicts = Vec::with_capacity(items.len());
    let mut changed: Vec<(&StatusChange, AppointmentRow, Appointment)> = Vec::new();
    for (item, claim) in items.iter().zip(claims) {
        let row = rows
            .get(&item.change.id)
            .filter(|row| in_scope(row, item.lab_id, &item.principal));
        verdicts.push(match (claim, row) {
            (Err(refused), _) => Err(refused
                .problem()
                .unwrap_or_else(|| ProblemError::new(ErrorCode::Internal))),
            (Ok(_), None) => Err(ProblemError::new(ErrorCode::NotFound)),
            // A replay is answered its stored answer after the scope check, run again.
            (Ok(Claim::Replay { body, .. }), Some(_)) => serde_json::from_value(body)
                .map(Answered::replayed)
                .map_err(|_| ProblemError::new(ErrorCode::Internal)),
            (Ok(Claim::Fresh), Some(row)) => match changed_row(row, &item.change) {
                Ok((updated, rendered)) => {
                    changed.push((item, updated, rendered.clone()));
                    Ok(Answered::fresh(rendered))
                }
                Err(refused) => Err(refused),
            },
        });
    }
    if !changed.is_empty() {
        insert(conn, &changed).await?;
    }
    Ok(verdicts)
}

/// The row as the change leaves it, and its answer, if the version and the transition allow it.
fn changed_row(
    row: &AppointmentRow,
    change: &AppointmentChange,
) -> Result<(AppointmentRow, Appointment), ProblemError> {
    check_version(row, change.if_version)?;
    let status = transition(row, change.patch.status)?;
    let mut updated = row.clone();
    updated.status = status;
    updated.status_reason = change.patch.reason.clone();
    updated.version = row.version + 1;
    let rendered = render_appointment(&updated).map_err(|_| ProblemError::new(ErrorCode::Internal))?;
    Ok((updated, rendered))
}

/// The changed rows, their outbox entries, audit records and stored answers.
async fn insert(
    conn: &mut AsyncPgConnection,
    changed: &[(&StatusChange, AppointmentRow, Appointment)],
) -> QueryResult<()> {
    let rows: Vec<&AppointmentRow> = changed.iter().map(|(_, row, _)| row).collect();
    stored::set_statuses(conn, &rows).await?;
    let now = OffsetDateTime::now_utc();
    let mutations: Vec<_> = changed
        .iter()
        .map(|(item, _, _)| {
            let op = RelayedOp::AppointmentUpdate {
                appointment_id: item.change.id,
                if_version: item.change.if_version,
                patch: item.change.patch.clone(),
            };
            mutation(&item.principal, now, op)
        })
        .collect();
    outbox::enqueue_many(conn, &mutations).await?;
    let audits: Vec<_> = changed
        .iter()
        .map(|(item, row, _)| {
            entry(
                &item.principal,
                item.lab_id,
                "appointment.update",
                row.patient_id,
                format!("appointment:{}", row.id),
                &item.request_id,
            )
        })
        .collect();
    audit::insert(conn, &audits).await?;
    let answers = changed
        .iter()
        .map(|(item, _, rendered)| (keyed(&item.principal, &item.key, &item.hash, 200), rendered));
    store_group_answers(conn, answers).await
}

/// The appointment is the lab's, and a home sampler's own.
fn in_scope(row: &AppointmentRow, lab_id: Uuid, principal: &Principal) -> bool {
    row.lab_id == lab_id && (principal.role != Role::HomeSampler || row.assigned_staff_id == Some(principal.staff_id))
}

/// The appointment, locked, if it is the lab's and (for a home sampler) the caller's own.
pub(super) async fn lock_in_scope(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    id: Uuid,
) -> Result<AppointmentRow, WriteError> {
    match stored::lock(conn, id).await? {
        Some(row) if in_scope(&row, lab_id, principal) => Ok(row),
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
