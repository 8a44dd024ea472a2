//! `POST /v1/labs/{lab}/mutations`, and `POST /v1/labs/{lab}/mutations/known`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use labedge_protocol::relay::{KnownMutations, MAX_KNOWN_IDS, MutationAcks, MutationBatch, MutationIds};
use labedge_schema::cloud::schema::applied_mutations;
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
    cfg.service(known).service(mutations);
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
        return Err(too_long("/mutations", format!("at most {MAX_BATCH} mutations a batch")));
    }
    let mut conn = state.pool.get().await?;
    let results = apply_batch(&mut conn, credential.lab_id, &credential.lab_code, batch.mutations).await?;
    Ok(no_store(&MutationAcks { results }))
}

/// Which of the ids the cloud holds for the gateway's lab (`applied_mutations`, any outcome): the
/// gateway asks after the cloud's database changed timeline, and sends the others again.
#[post("/v1/labs/{lab}/mutations/known")]
async fn known(
    state: web::Data<AppState>,
    lab: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // 1,000 ids of 38 bytes in JSON, with room.
    let (credential, body): (_, MutationIds) = authorized_body(&state.pool, &req, &lab, payload, 64 * 1024).await?;
    if body.ids.len() > MAX_KNOWN_IDS {
        return Err(too_long("/ids", format!("at most {MAX_KNOWN_IDS} ids a request")));
    }
    let mut conn = state.pool.get().await?;
    let known: Vec<uuid::Uuid> = applied_mutations::table
        .filter(applied_mutations::lab_id.eq(credential.lab_id))
        .filter(applied_mutations::mutation_id.eq_any(&body.ids))
        .select(applied_mutations::mutation_id)
        .load(&mut conn)
        .await?;
    Ok(no_store(&KnownMutations { known }))
}

/// A list longer than the route takes: 422 naming it.
fn too_long(pointer: &str, message: String) -> ApiError {
    ProblemError::new(ErrorCode::ValidationFailed)
        .errors(vec![FieldError::new(pointer, "too_long", message)])
        .into()
}

/// A 200 answer that no cache on the way keeps (verdicts and ids of patient data).
fn no_store<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(body)
}
