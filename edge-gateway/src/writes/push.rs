//! `POST /v1/sync/push`: a batch of writes queued by an offline tablet, each applied as if it had
//! come alone (its mutation id is its idempotency key), with a verdict per item.

use labedge_schema::runtime::error::ApiError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{MutationOp, MutationOutcome, MutationResult, SyncPushRequest, SyncPushResponse};

use super::{record_collection, update_appointment};
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
        let outcome = match mutation.op {
            MutationOp::CollectionCreate { collection } => {
                record_collection(state, principal, &key, collection, request_id).await
            }
            MutationOp::AppointmentUpdate {
                appointment_id,
                if_version,
                patch,
            } => update_appointment(state, principal, &key, appointment_id, if_version, patch, request_id).await,
        };
        let result = match outcome {
            Ok(written) => MutationResult {
                mutation_id: mutation.mutation_id,
                outcome: if written.replayed {
                    MutationOutcome::Duplicate
                } else {
                    MutationOutcome::Applied
                },
                status: written.status,
                problem: None,
                current_version: None,
            },
            Err(ApiError::Problem(problem)) => {
                let conflict = problem.problem.code == ErrorCode::VersionMismatch;
                let current_version = problem
                    .headers
                    .iter()
                    .find(|(name, _)| name == actix_web::http::header::ETAG)
                    .and_then(|(_, value)| value.to_str().ok())
                    .and_then(mobile_contracts::headers::parse_if_match);
                MutationResult {
                    mutation_id: mutation.mutation_id,
                    outcome: if conflict {
                        MutationOutcome::Conflict
                    } else {
                        MutationOutcome::Rejected
                    },
                    status: problem.problem.status,
                    problem: Some(*problem.problem),
                    current_version,
                }
            }
            Err(other) => return Err(other),
        };
        results.push(result);
    }
    Ok(SyncPushResponse { results })
}
