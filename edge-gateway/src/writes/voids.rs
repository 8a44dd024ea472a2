//! Corrections: a collection recorded by mistake is voided (`POST /v1/collections/{id}/void`) with a
//! mandatory reason. Nothing is deleted: the void is its own record, relayed after the collection
//! (same record key, so in order) and shown to the LIS as the Specimen's `entered-in-error` version.
//!
//! Who may void: the staff member who recorded it, or a nurse or lab admin of the lab (a home
//! sampler only their own). A collection is voided once; a second void is a 409.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_protocol::relay::RelayedOp;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{CollectionVoid, RelayState, Role, VoidReceipt};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{WriteError, durable, entry, keyed, mutation, wake_relay};
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::collections::{self as stored, Recording};
use crate::store::idempotency::{Answered, idempotent, request_hash};
use crate::store::{audit, outbox};

/// Voids collection `id`.
pub async fn void(
    state: &AppState,
    principal: &Principal,
    key: &str,
    id: Uuid,
    body: CollectionVoid,
    request_id: &str,
) -> Result<Answered<VoidReceipt>, ApiError> {
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[b"collection.void", id.as_bytes(), &canonical]);
    let mut conn = state.pool.get().await?;
    let answered = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            idempotent(
                conn,
                keyed(principal, key, &hash, 200),
                async |conn| owned(conn, lab.id, principal, id).await.map(|_| ()),
                async move |conn| insert_void(conn, lab.id, principal, (id, body), request_id).await,
            )
            .await
        })
        .await?;
    wake_relay(state, &answered);
    Ok(answered)
}

/// The collection's patient, locked, if the caller may void it; 404 otherwise (another lab's
/// collection, or a home sampler's colleague's, is not theirs to know of).
async fn owned(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    id: Uuid,
) -> Result<Uuid, WriteError> {
    match stored::lock_owner(conn, id).await? {
        Some((lab, patient, recorder))
            if lab == lab_id && (principal.role != Role::HomeSampler || recorder == principal.staff_id) =>
        {
            Ok(patient)
        }
        _ => Err(ProblemError::new(ErrorCode::NotFound).into()),
    }
}

async fn insert_void(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    (id, body): (Uuid, CollectionVoid),
    request_id: &str,
) -> Result<Answered<VoidReceipt>, WriteError> {
    let patient = owned(conn, lab_id, principal, id).await?;
    if stored::voided_at(conn, id).await?.is_some() {
        return Err(ProblemError::new(ErrorCode::Conflict)
            .detail("this collection is already voided")
            .into());
    }
    let now = super::collections::stored_precision(OffsetDateTime::now_utc());
    let by = Recording {
        lab_id,
        staff_id: principal.staff_id,
        device_id: principal.device_id,
        recorded_at: now,
    };
    let reason = body.reason.trim().to_owned();
    if reason.chars().count() < 3 {
        return Err(super::invalid("/reason", "must be 3 to 500 characters").into());
    }
    stored::insert_void(conn, id, &reason, by).await?;
    let op = RelayedOp::CollectionVoid {
        collection_id: id,
        reason,
        voided_at: now,
    };
    outbox::enqueue(conn, &mutation(principal, now, op)).await?;
    let audit_entry = entry(
        principal,
        lab_id,
        "collection.void",
        patient,
        format!("collection:{id}"),
        request_id,
    );
    audit::insert(conn, &[audit_entry]).await?;
    Ok(Answered::fresh(VoidReceipt {
        collection_id: id,
        voided_at: now,
        relay: RelayState::Queued,
    }))
}
