//! Tablet routes of enrollment and staff sessions.

use actix_web::{HttpRequest, HttpResponse, web};
use labedge_service::error::ApiError;
use labedge_service::http::{OptionalJson, RequestId, ValidatedJson};
use mobile_contracts::routes;
use mobile_contracts::{EnrollRequest, LoginRequest, LogoutRequest, PinChangeRequest, PinResetRequest, RefreshRequest};

use crate::auth::{Peer, Principal, enroll, lifecycle, sessions};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(routes::ENROLL).route(web::post().to(enroll_device)))
        .service(web::resource(routes::LOGIN).route(web::post().to(login)))
        .service(web::resource(routes::REFRESH).route(web::post().to(refresh)))
        .service(web::resource(routes::LOGOUT).route(web::post().to(logout)))
        .service(web::resource(routes::ME).route(web::get().to(me)))
        .service(web::resource(routes::PIN).route(web::post().to(change_pin)))
        .service(web::resource(routes::PIN_RESET).route(web::post().to(reset_pin)));
}

/// Trades a one-time enrollment code for the tablet's device id and secret.
async fn enroll_device(
    state: web::Data<AppState>,
    peer: Peer,
    body: ValidatedJson<EnrollRequest>,
) -> Result<HttpResponse, ApiError> {
    let enrolled = enroll::enroll(&state, &peer, body.0).await?;
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(enrolled))
}

/// Staff login with a PIN on an enrolled device.
async fn login(
    state: web::Data<AppState>,
    peer: Peer,
    body: ValidatedJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = sessions::login(&state, &peer, body.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(tokens))
}

/// A refresh token for a new token pair.
async fn refresh(
    state: web::Data<AppState>,
    peer: Peer,
    body: ValidatedJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = sessions::refresh(&state, &peer, body.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(tokens))
}

/// Ends the caller's session.
async fn logout(
    state: web::Data<AppState>,
    principal: Principal,
    _body: OptionalJson<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    sessions::logout(&state, &principal).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who is logged in, on which device, of which lab.
async fn me(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(sessions::me(&state, &principal).await?))
}

/// The caller changes their own PIN (the current one checked as for a login); their session goes on.
async fn change_pin(
    state: web::Data<AppState>,
    principal: Principal,
    peer: Peer,
    req: HttpRequest,
    body: ValidatedJson<PinChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    lifecycle::change_pin(&state, &principal, &peer, body.0, &RequestId::of(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A staff member sets a new PIN with the one-time code their lab admin made, on an enrolled tablet.
async fn reset_pin(
    state: web::Data<AppState>,
    peer: Peer,
    req: HttpRequest,
    body: ValidatedJson<PinResetRequest>,
) -> Result<HttpResponse, ApiError> {
    lifecycle::reset_pin(&state, &peer, body.0, &RequestId::of(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}
