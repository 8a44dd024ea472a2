//! `POST /v1/sync/push`: a batch of writes queued by an offline tablet, each applied as if it had
//! come alone (its mutation id is its idempotency key), with a verdict per item.

use labedge_service::error::ApiError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{MutationOp, MutationOutcome, MutationResult, NewCollection, SyncPushRequest, SyncPushResponse};
use uuid::Uuid;

use super::{AppointmentChange, prepare_collection, update_appointment};
use crate::auth::Principal;
use crate::state::AppState;

/// Applies the batch in order. A database failure stops it with 503: the items before it are
/// committed, and the tablet's retry of the whole batch finds them as duplicates. Consecutive
/// collections go to the group writer together (one transaction for all of them when none fails a
/// statement); an item after a failed one may then be committed too, and is found as a duplicate
/// by the retry all the same.
pub async fn push(
    state: &AppState,
    principal: &Principal,
    request: SyncPushRequest,
    request_id: &str,
) -> Result<SyncPushResponse, ApiError> {
    let mut results = Vec::with_capacity(request.mutations.len());
    let mut mutations = request.mutations.into_iter().peekable();
    while let Some(mutation) = mutations.next() {
        // (replayed, status, the appointment's new version)
        let outcome = match mutation.op {
            MutationOp::CollectionCreate { collection } => {
                let mut run = vec![(mutation.mutation_id, collection)];
                while let Some(next) = mutations.next_if(|m| matches!(m.op, MutationOp::CollectionCreate { .. })) {
                    if let MutationOp::CollectionCreate { collection } = next.op {
                        run.push((next.mutation_id, collection));
                    }
                }
                collections(state, principal, run, request_id, &mut results).await?;
                continue;
            }
            MutationOp::AppointmentUpdate {
                appointment_id,
                if_version,
                patch,
            } => {
                let change = AppointmentChange {
                    id: appointment_id,
                    if_version,
                    patch,
                };
                update_appointment(state, principal, &mutation.mutation_id.to_string(), change, request_id)
                    .await
                    .map(|answered| (answered.replayed, 200, Some(answered.value.version)))
            }
            MutationOp::CollectionVoid { collection_id, void } => {
                let key = mutation.mutation_id.to_string();
                super::voids::void(state, principal, &key, collection_id, void, request_id)
                    .await
                    .map(|answered| (answered.replayed, 200, None))
            }
        };
        results.push(verdict(mutation.mutation_id, outcome)?);
    }
    Ok(SyncPushResponse { results })
}

/// A run of consecutive collections, written as one batch of the group writer; their verdicts are
/// appended to `results`. Stops at the first 5xx, after waking the relay for what was committed.
async fn collections(
    state: &AppState,
    principal: &Principal,
    run: Vec<(Uuid, NewCollection)>,
    request_id: &str,
    results: &mut Vec<MutationResult>,
) -> Result<(), ApiError> {
    let mut ids = Vec::with_capacity(run.len());
    let mut items = Vec::with_capacity(run.len());
    for (id, collection) in run {
        items.push(prepare_collection(state, principal, &id.to_string(), collection, request_id).await?);
        ids.push(id);
    }
    let verdicts = state.collections.write(items).await;
    if verdicts
        .iter()
        .any(|v| v.as_ref().is_ok_and(|answered| !answered.replayed))
    {
        state.wrote();
    }
    for (id, answered) in ids.into_iter().zip(verdicts) {
        results.push(verdict(id, answered.map(|answered| (answered.replayed, 201, None)))?);
    }
    Ok(())
}

/// An item's verdict in the push's answer; `Err` for an unavailable or failing gateway (which stops
/// the batch).
fn verdict(mutation_id: Uuid, outcome: Result<(bool, u16, Option<i64>), ApiError>) -> Result<MutationResult, ApiError> {
    Ok(match outcome {
        Ok((replayed, status, current_version)) => MutationResult {
            mutation_id,
            outcome: if replayed {
                MutationOutcome::Duplicate
            } else {
                MutationOutcome::Applied
            },
            status,
            problem: None,
            // An applied appointment change tells the tablet its new version.
            current_version,
        },
        Err(error) => {
            let problem = error.to_problem();
            // Only an unavailable or failing gateway stops the batch; any refusal (the contract's,
            // or the database's, such as a barcode already recorded) is this item's verdict.
            if problem.status >= 500 {
                return Err(error);
            }
            let current_version = match &error {
                ApiError::Problem(p) => p
                    .headers
                    .iter()
                    .find(|(name, _)| name == actix_web::http::header::ETAG)
                    .and_then(|(_, value)| value.to_str().ok())
                    .and_then(mobile_contracts::headers::parse_if_match),
                _ => None,
            };
            MutationResult {
                mutation_id,
                outcome: if problem.code == ErrorCode::VersionMismatch {
                    MutationOutcome::Conflict
                } else {
                    MutationOutcome::Rejected
                },
                status: problem.status,
                problem: Some(problem),
                current_version,
            }
        }
    })
}
