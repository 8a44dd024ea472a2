//! Tablet writes: collections, appointment changes, offline batches.

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use labedge_service::error::ApiError;
use labedge_service::http::{ProblemError, RequestId, ValidatedJson, request_lang};
use mobile_contracts::headers::{IDEMPOTENCY_KEY, IF_MATCH, is_valid_idempotency_key, parse_if_match};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes;
use mobile_contracts::{
    AppointmentPatch, CollectionVoid, NewAppointment, NewCollection, NewPatient, Reschedule, SyncPushRequest,
};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Principal;
use crate::state::AppState;
use crate::writes::{self, Answered, AppointmentChange, push};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // A push of 500 collections weighs several hundred kilobytes: more than the default body limit.
    cfg.service(web::resource(routes::COLLECTIONS).route(web::post().to(collections)))
        .service(web::resource(routes::APPOINTMENT).route(web::patch().to(appointment)))
        .service(web::resource(routes::APPOINTMENT_RESCHEDULE).route(web::post().to(reschedule)))
        .service(web::resource(routes::COLLECTION_VOID).route(web::post().to(void_collection)))
        .service(web::resource(routes::PRESCRIPTIONS).route(web::post().to(super::paper_prescriptions::create)))
        .service(
            web::resource(routes::SYNC_PUSH)
                .app_data(labedge_service::http::BodyLimit(PUSH_BODY_LIMIT))
                .route(web::post().to(sync_push)),
        );
}

/// The `Idempotency-Key` header of a write: required.
#[derive(Clone, Debug)]
pub struct IdempotencyKey(pub String);

impl FromRequest for IdempotencyKey {
    type Error = ProblemError;
    type Future = std::future::Ready<Result<Self, ProblemError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = req
            .headers()
            .get(IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        std::future::ready(match key {
            None | Some("") => Err(ProblemError::new(ErrorCode::IdempotencyKeyMissing)
                .detail("every write carries an Idempotency-Key header (a UUID the tablet makes per write)")),
            Some(key) if !is_valid_idempotency_key(key) => {
                Err(ProblemError::new(ErrorCode::BadRequest).detail("the Idempotency-Key header is malformed"))
            }
            Some(key) => Ok(IdempotencyKey(key.to_owned())),
        })
    }
}

/// A write's answer: `no-store`, marked when it replays an earlier one, with the appointment's
/// version as `ETag` when there is one.
pub(super) fn answer<T: Serialize>(status: StatusCode, answered: Answered<T>, version: Option<i64>) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if answered.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    if let Some(version) = version {
        response.insert_header((header::ETAG, mobile_contracts::headers::etag(version)));
    }
    response.json(answered.value)
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
    let answered = writes::record_collection(&state, &principal, &key.0, body.0, &RequestId::of(&req)).await?;
    Ok(answer(StatusCode::CREATED, answered, None))
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
    let if_version = if_match(&req)?;
    let change = AppointmentChange {
        id: id.into_inner(),
        if_version,
        patch: body.0,
    };
    let answered = writes::update_appointment(&state, &principal, &key.0, change, &RequestId::of(&req)).await?;
    let version = answered.value.version;
    Ok(answer(StatusCode::OK, answered, Some(version)))
}

/// The version the tablet saw, from `If-Match` (required).
fn if_match(req: &HttpRequest) -> Result<i64, ProblemError> {
    match req.headers().get(IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => Err(ProblemError::new(ErrorCode::PreconditionRequired)
            .detail("send If-Match with the version of the appointment you changed")),
        Some(value) => parse_if_match(value).ok_or_else(|| {
            ProblemError::new(ErrorCode::BadRequest).detail("If-Match must be an appointment version such as \"3\"")
        }),
    }
}

/// Books an appointment in a free slot; 201 with the appointment (version 1 in `ETag`).
pub(super) async fn book(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    key: IdempotencyKey,
    body: ValidatedJson<NewAppointment>,
) -> Result<HttpResponse, ApiError> {
    let answered = writes::booking::book(&state, &principal, &key.0, body.0, &RequestId::of(&req)).await?;
    let version = answered.value.version;
    Ok(answer(StatusCode::CREATED, answered, Some(version)))
}

/// Moves an appointment to another free slot, against the version the tablet saw (`If-Match`).
async fn reschedule(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidatedJson<Reschedule>,
) -> Result<HttpResponse, ApiError> {
    let if_version = if_match(&req)?;
    let target = (id.into_inner(), if_version);
    let answered =
        writes::booking::reschedule(&state, &principal, &key.0, target, body.0, &RequestId::of(&req)).await?;
    let version = answered.value.version;
    Ok(answer(StatusCode::OK, answered, Some(version)))
}

/// Registers a walk-in patient; 201 with the patient, or 409 `possible_duplicate` with candidates.
pub(super) async fn register_patient(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    key: IdempotencyKey,
    body: ValidatedJson<NewPatient>,
) -> Result<HttpResponse, ApiError> {
    let answered = writes::walk_ins::register(&state, &principal, &key.0, body.0, &RequestId::of(&req)).await?;
    let version = answered.value.version;
    Ok(answer(StatusCode::CREATED, answered, Some(version)))
}

/// Voids a collection recorded by mistake (a reason is required); nothing is deleted.
async fn void_collection(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidatedJson<CollectionVoid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let answered = writes::voids::void(&state, &principal, &key.0, id, body.0, &RequestId::of(&req)).await?;
    Ok(answer(StatusCode::OK, answered, None))
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
    let mut response = push::push(&state, &principal, body.0, &RequestId::of(&req)).await?;
    // Each item's refusal is a problem too, read by the same person as a refusal of the whole push.
    let lang = request_lang(&req);
    for result in &mut response.results {
        result.problem = result.problem.take().map(|problem| problem.localized(lang));
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(response))
}
