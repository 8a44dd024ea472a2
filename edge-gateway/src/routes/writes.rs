//! Tablet writes: collections, appointment changes, offline batches.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use labedge_service::error::ApiError;
use labedge_service::http::{ProblemError, RequestId, ValidatedJson};
use mobile_contracts::headers::{IF_MATCH, parse_if_match};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes;
use mobile_contracts::{AppointmentPatch, NewCollection, SyncPushRequest};
use uuid::Uuid;

use crate::auth::Principal;
use crate::state::AppState;
use crate::writes::idempotency::IdempotencyKey;
use crate::writes::{self, Written, push};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // A push of 500 collections weighs several hundred kilobytes: more than the default body limit.
    cfg.service(web::resource(routes::COLLECTIONS).route(web::post().to(collections)))
        .service(web::resource(routes::APPOINTMENT).route(web::patch().to(appointment)))
        .service(
            web::resource(routes::SYNC_PUSH)
                .app_data(labedge_service::http::BodyLimit(PUSH_BODY_LIMIT))
                .route(web::post().to(sync_push)),
        );
}

fn answer(written: Written) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(written.status).unwrap_or(actix_web::http::StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if written.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    if let Some(version) = written.body.get("version").and_then(serde_json::Value::as_i64) {
        response.insert_header((header::ETAG, mobile_contracts::headers::etag(version)));
    }
    response.json(written.body)
}

/// Records a specimen collection; 201 once it is committed at the gateway (the relay takes it to the
/// cloud afterwards).
async fn collections(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    key: IdempotencyKey,
    body: ValidatedJson<NewCollection>,
) -> Result<HttpResponse, ApiError> {
    let written = writes::record_collection(&state, &principal, &key.0, body.0, &RequestId::of(&req)).await?;
    Ok(answer(written))
}

/// Changes an appointment's status against the version the tablet saw (`If-Match`).
async fn appointment(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidatedJson<AppointmentPatch>,
) -> Result<HttpResponse, ApiError> {
    let if_version = match req.headers().get(IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => {
            return Err(ProblemError::new(ErrorCode::PreconditionRequired)
                .detail("send If-Match with the version of the appointment you changed")
                .into());
        }
        Some(value) => parse_if_match(value).ok_or_else(|| {
            ProblemError::new(ErrorCode::BadRequest).detail("If-Match must be an appointment version such as \"3\"")
        })?,
    };
    let written = writes::update_appointment(
        &state,
        &principal,
        &key.0,
        id.into_inner(),
        if_version,
        body.0,
        &RequestId::of(&req),
    )
    .await?;
    Ok(answer(written))
}

/// Largest push body: 500 mutations of a few kilobytes each.
pub const PUSH_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Applies a batch of writes queued by an offline tablet; one verdict per item.
async fn sync_push(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: ValidatedJson<SyncPushRequest>,
) -> Result<HttpResponse, ApiError> {
    let response = push::push(&state, &principal, body.0, &RequestId::of(&req)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(response))
}
