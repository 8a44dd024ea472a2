//! `POST /v1/labs/{lab}/mutations`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use labedge_protocol::relay::{MutationAcks, MutationBatch};
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};

use super::{MAX_BATCH, apply_batch};
use crate::ApiError;
use crate::feed::credential::authorized_body;
use crate::state::AppState;

/// Largest batch body: 5,000 mutations of about a kilobyte each, with room.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(mutations);
}

/// Applies a gateway's batch of mutations; answers one verdict per mutation. The gateway is
/// authenticated before its body is read: another lab's mutations are refused unread.
#[post("/v1/labs/{lab}/mutations")]
async fn mutations(
    state: web::Data<AppState>,
    lab: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (credential, batch): (_, MutationBatch) =
        authorized_body(&state.pool, &req, &lab, payload, MAX_BODY_BYTES).await?;
    if batch.mutations.len() > MAX_BATCH {
        return Err(ProblemError::new(ErrorCode::ValidationFailed)
            .errors(vec![FieldError::new(
                "/mutations",
                "too_long",
                format!("at most {MAX_BATCH} mutations a batch"),
            )])
            .into());
    }
    let mut conn = state.pool.get().await?;
    let results = apply_batch(&mut conn, credential.lab_id, &credential.lab_code, batch.mutations).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(MutationAcks { results }))
}
