//! Tablet reads and the delta pull. Each handler authenticates (`Principal`, any role), then reads
//! its query (`ValidatedQuery`, after authentication, so that a caller without a valid session
//! learns nothing from validation errors), calls a read of [`crate::reads`] or [`crate::tablet_pull`], and
//! answers through [`respond`]: the read's audit is committed first (503 if it cannot be), then the
//! JSON body goes out with an `ETag` (`If-None-Match` → 304) and `Cache-Control: private, no-cache`.
//! Compression is the app's (`Compress`); the tag is weak (`W/"…"`) because the gzip and identity
//! encodings of one body share it.

use std::hash::{DefaultHasher, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use labedge_service::error::ApiError;
use labedge_service::http::{RequestId, ValidatedQuery};
use mobile_contracts::routes;
use mobile_contracts::{DateQuery, PatientSearchQuery, SlotQuery, SyncPullQuery};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use validator::Validate;

use crate::auth::Principal;
use crate::reads::{self, Audited, Caller};
use crate::state::AppState;
use crate::tablet_pull;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // A path's methods share one resource: a second resource of the same path would never be reached.
    cfg.service(
        web::resource(routes::PATIENTS)
            .route(web::get().to(search_patients))
            .route(web::post().to(super::writes::register_patient)),
    )
    .service(web::resource(routes::PATIENT).route(web::get().to(patient)))
    .service(web::resource(routes::PATIENT_PRESCRIPTIONS).route(web::get().to(patient_prescriptions)))
    .service(web::resource(routes::PRESCRIPTION).route(web::get().to(prescription)))
    .service(web::resource(routes::ROUNDS).route(web::get().to(round)))
    .service(
        web::resource(routes::APPOINTMENTS)
            .route(web::get().to(appointments))
            .route(web::post().to(super::writes::book)),
    )
    .service(web::resource(routes::SLOTS).route(web::get().to(slots)))
    .service(web::resource(routes::SYNC_PULL).route(web::get().to(sync_pull)));
}

async fn caller(state: &AppState, principal: &Principal, req: &HttpRequest) -> Result<Caller, ApiError> {
    let lab = state.lab().await?;
    Ok(Caller::new(principal, lab.id, RequestId::of(req)))
}

/// The caller, then the validated query string (after the caller: see the module's doc).
async fn caller_and_query<Q: DeserializeOwned + Validate>(
    state: &AppState,
    principal: &Principal,
    req: &HttpRequest,
) -> Result<(Caller, Q), ApiError> {
    let caller = caller(state, principal, req).await?;
    let query = ValidatedQuery::<Q>::extract(req).await?;
    Ok((caller, query.0))
}

/// The entity tag of a body: a hash of the bytes sent, so that it changes with anything shown (a
/// catalog change in a tube plan, the NIR masking of a role), not only with a row version. SipHash
/// (std's `DefaultHasher`, fixed keys) is fast enough for an 80 kB round on the hot path; an entity
/// tag only has to tell this body from the tablet's previous copy, and its values may change with
/// a new build (the tablet then downloads once more).
fn etag_of(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    format!("W/\"{:016x}{:08x}\"", hasher.finish(), body.len())
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 wants for this header).
fn matches_if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag.trim_start_matches("W/"))
}

/// Commits the read's audit, then answers (304 when the tablet already has this body).
async fn respond<T: Serialize>(
    state: &AppState,
    req: &HttpRequest,
    read: Audited<T>,
) -> Result<HttpResponse, ApiError> {
    // The body is serialised while the audit commits.
    let (committed, body) = tokio::join!(state.audit.record(read.audit), async { serde_json::to_vec(&read.body) });
    committed?;
    let body = body.map_err(|e| ApiError::Internal(e.into()))?;
    let etag = etag_of(&body);
    let mut response = if matches_if_none_match(req, &etag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok().content_type("application/json").body(body)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

/// `GET /v1/patients?q=&page=&per_page=`: patient search by name prefix, birth date or NIR.
async fn search_patients(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (caller, query) = caller_and_query::<PatientSearchQuery>(&state, &principal, &req).await?;
    let read = reads::patients::search_page(&state, &caller, &query).await?;
    respond(&state, &req, read).await
}

/// `GET /v1/patients/{id}`: one patient, as the caller's role may see it. The hot path: the
/// caller's authentication and the cache read run side by side (both Redis commands share one
/// round trip on the multiplexed connection); the cached row is used only once the caller is known.
async fn patient(state: web::Data<AppState>, req: HttpRequest, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (principal, cached) = tokio::join!(Principal::extract(&req), reads::patients::cached_row(&state, id));
    let caller = caller(&state, &principal?, &req).await?;
    let read = reads::patients::get(&state, &caller, id, cached).await?;
    respond(&state, &req, read).await
}

/// `GET /v1/patients/{id}/prescriptions`: the patient's prescriptions at this lab, newest first.
async fn patient_prescriptions(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &principal, &req).await?;
    let read = reads::patients::prescriptions(&state, &caller, id.into_inner()).await?;
    respond(&state, &req, read).await
}

/// `GET /v1/prescriptions/{id}`: a prescription with its exams and tube plan.
async fn prescription(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &principal, &req).await?;
    let read = reads::prescriptions::get(&state, &caller, id.into_inner()).await?;
    respond(&state, &req, read).await
}

/// `GET /v1/rounds?date=`: the caller's home-sampling round of a day.
async fn round(state: web::Data<AppState>, principal: Principal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (caller, query) = caller_and_query::<DateQuery>(&state, &principal, &req).await?;
    let read = reads::rounds::round(&state, &caller, query.date).await?;
    respond(&state, &req, read).await
}

/// `GET /v1/appointments?date=`: the lab's appointments of a day (a home sampler's own).
async fn appointments(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (caller, query) = caller_and_query::<DateQuery>(&state, &principal, &req).await?;
    let read = reads::appointments::of_day(&state, &caller, query.date).await?;
    respond(&state, &req, read).await
}

/// `GET /v1/slots?date=&kind=`: the day's bookable slots and their free places (no patient data,
/// so no audit).
async fn slots(state: web::Data<AppState>, principal: Principal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (_, query) = caller_and_query::<SlotQuery>(&state, &principal, &req).await?;
    let list = crate::writes::booking::slots(&state, query.date, query.kind).await?;
    respond(
        &state,
        &req,
        Audited {
            body: list,
            audit: Vec::new(),
        },
    )
    .await
}

/// `GET /v1/sync/pull?cursor=`: what changed in the device's scope since the cursor.
async fn sync_pull(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (caller, query) = caller_and_query::<SyncPullQuery>(&state, &principal, &req).await?;
    let read = tablet_pull::pull(&state, &caller, query.cursor.as_deref()).await?;
    respond(&state, &req, read).await
}
