//! `POST /v1/sync/push`: a batch of writes queued by an offline tablet, each applied as if it had
//! come alone (its mutation id is its idempotency key), with a verdict per item.

use labedge_service::error::ApiError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{MutationOp, MutationOutcome, MutationResult, SyncPushRequest, SyncPushResponse};

use super::{AppointmentChange, record_collection, update_appointment};
use crate::auth::Principal;
use crate::state::AppState;

/// Applies the batch in order. A database failure stops it with 503: the items before it are
/// committed, and the tablet's retry of the whole batch finds them as duplicates.
pub async fn push(
    state: &AppState,
    principal: &Principal,
    request: SyncPushRequest,
    request_id: &str,
) -> Result<SyncPushResponse, ApiError> {
    let mut results = Vec::with_capacity(request.mutations.len());
    for mutation in request.mutations {
        let key = mutation.mutation_id.to_string();
        // (replayed, status, the appointment's new version)
        let outcome = match mutation.op {
            MutationOp::CollectionCreate { collection } => {
                record_collection(state, principal, &key, collection, request_id)
                    .await
                    .map(|answered| (answered.replayed, 201, None))
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
                update_appointment(state, principal, &key, change, request_id)
                    .await
                    .map(|answered| (answered.replayed, 200, Some(answered.value.version)))
            }
            MutationOp::CollectionVoid { collection_id, void } => {
                super::voids::void(state, principal, &key, collection_id, void, request_id)
                    .await
                    .map(|answered| (answered.replayed, 200, None))
            }
        };
        let result = match outcome {
            Ok((replayed, status, current_version)) => MutationResult {
                mutation_id: mutation.mutation_id,
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
                    mutation_id: mutation.mutation_id,
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
        };
        results.push(result);
    }
    Ok(SyncPushResponse { results })
}
