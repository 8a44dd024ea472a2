//! The lab admin's routes (`/admin`), behind the console session. Not part of the tablet contract.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use labedge_service::error::ApiError;
use labedge_service::http::{OptionalJson, RequestId, ValidatedJson};
use serde::Deserialize;
use uuid::Uuid;
use validator::Validate;

use crate::auth::admin::{self, AdminLogin, AdminSession};
use crate::auth::{Peer, enroll, lifecycle, lockout, manage};
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/v1/login").route(web::post().to(login)))
        .service(web::resource("/admin/v1/logout").route(web::post().to(logout)))
        .service(web::resource("/admin/v1/session").route(web::get().to(current_session)))
        .service(web::resource("/admin/v1/enrollment-codes").route(web::post().to(create_enrollment_code)))
        .service(web::resource("/admin/v1/devices").route(web::get().to(devices)))
        .service(web::resource("/admin/v1/devices/{id}/revoke").route(web::post().to(revoke_device)))
        .service(web::resource("/admin/v1/staff").route(web::get().to(staff_list)))
        .service(web::resource("/admin/v1/staff/{id}/revoke").route(web::post().to(revoke_staff)))
        .service(web::resource("/admin/v1/staff/{id}/pin-reset").route(web::post().to(create_pin_reset)))
        .service(web::resource("/admin/v1/staff/{id}/deactivate").route(web::post().to(deactivate_staff)))
        .service(web::resource("/admin/v1/staff/{id}/reactivate").route(web::post().to(reactivate_staff)))
        .service(web::resource("/admin/v1/security-events").route(web::get().to(security_events)))
        .service(web::resource("/admin/v1/lockouts").route(web::get().to(lockouts)))
        .service(web::resource("/admin/v1/lockouts/{id}/unlock").route(web::post().to(unlock)))
        .service(web::resource("/admin/v1/status").route(web::get().to(status)))
        .service(web::resource("/admin/v1/conflicts").route(web::get().to(conflicts)))
        .service(web::resource("/admin/v1/conflicts/{id}/resolve").route(web::post().to(resolve_conflict)))
        .service(web::resource("/admin/v1/dead-letters").route(web::get().to(dead_letters)))
        .service(web::resource("/admin/v1/dead-letters/{id}/replay").route(web::post().to(replay_dead_letter)))
        .service(web::resource("/admin/v1/dead-letters/{id}/discard").route(web::post().to(discard_dead_letter)));
}

/// Every answer of the admin JSON routes, errors included, is `Cache-Control: no-store`: they carry
/// CSRF tokens, staff, devices and patients' access histories, which no browser or proxy cache may
/// keep. Set here once rather than by each handler, so that a new route cannot forget it.
pub async fn no_store(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let admin_json = req.match_info().as_str().starts_with("/admin/v1/");
    let mut response = next.call(req).await?;
    if admin_json {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// Password login of a lab admin: sets the session cookie, returns the CSRF token.
async fn login(
    state: web::Data<AppState>,
    peer: Peer,
    body: ValidatedJson<AdminLogin>,
) -> Result<HttpResponse, ApiError> {
    let (view, cookie) = admin::login(&state, &peer, body.0).await?;
    Ok(HttpResponse::Ok().cookie(cookie).json(view))
}

/// Ends the admin session.
async fn logout(state: web::Data<AppState>, session: AdminSession) -> Result<HttpResponse, ApiError> {
    let cookie = admin::logout(&state, &session).await?;
    Ok(HttpResponse::NoContent().cookie(cookie).finish())
}

/// The current admin session (the console reads its CSRF token here).
async fn current_session(session: AdminSession) -> HttpResponse {
    HttpResponse::Ok().json(session.view())
}

/// A one-time code for enrolling a tablet.
async fn create_enrollment_code(state: web::Data<AppState>, session: AdminSession) -> Result<HttpResponse, ApiError> {
    let code = enroll::create_code(&state, session.staff_id).await?;
    Ok(HttpResponse::Created().json(code))
}

/// Every enrolled tablet.
async fn devices(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(manage::list_devices(&state).await?))
}

/// Revokes a tablet: refused from its very next request, and told to wipe its data.
async fn revoke_device(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(manage::revoke_device(&state, session.staff_id, id.into_inner()).await?))
}

/// Why a staff member is revoked.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct RevokeStaff {
    #[validate(length(max = 500))]
    reason: Option<String>,
}

/// Revokes a staff member at this gateway: their sessions end at once.
async fn revoke_staff(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
    body: OptionalJson<RevokeStaff>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.0.and_then(|b| b.reason);
    manage::revoke_staff(&state, session.staff_id, id.into_inner(), reason).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The staff of the lab: who may work, who has a PIN reset code pending.
async fn staff_list(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(lifecycle::list(&state).await?))
}

/// A one-time code for a staff member who forgot their PIN, shown once: they type it on a tablet
/// with a new PIN.
async fn create_pin_reset(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let code = lifecycle::create_reset_code(&state, session.staff_id, id.into_inner(), &RequestId::of(&req)).await?;
    Ok(HttpResponse::Created().json(code))
}

/// Deactivates a staff member: refused from their next request, everywhere once the cloud has it.
async fn deactivate_staff(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    lifecycle::set_active(&state, session.staff_id, id.into_inner(), false, &RequestId::of(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reactivates a staff member (and lifts a revocation at this gateway).
async fn reactivate_staff(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    lifecycle::set_active(&state, session.staff_id, id.into_inner(), true, &RequestId::of(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The most recent security events.
async fn security_events(state: web::Data<AppState>, _session: AdminSession) -> HttpResponse {
    HttpResponse::Ok().json(state.security.recent(200))
}

/// Logins locked out, and counters with failures, per (login, device) and (login, address).
async fn lockouts(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(lockout::list(&mut conn).await?))
}

/// Lifts a lockout at once (a colleague locked out of their tablet, the admin of their desk).
async fn unlock(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    if !lockout::unlock(&mut conn, id.into_inner()).await? {
        return Err(ApiError::code(mobile_contracts::problem::ErrorCode::NotFound));
    }
    state
        .security
        .emit(SecurityEvent::success(Action::Unlock).staff(session.staff_id));
    Ok(HttpResponse::NoContent().finish())
}

/// The gateway's state: upstream mode and since when, backlog, sync, last drain and catch-up.
async fn status(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(crate::relay::gateway_status(&state).await?))
}

/// Conflicts, open ones first.
async fn conflicts(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(crate::conflicts::list_conflicts(&state).await?))
}

/// How to resolve a conflict.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct Resolve {
    resolution: crate::conflicts::Resolution,
}

/// Resolves a conflict: keep the cloud's state, or send the tablet's change again.
async fn resolve_conflict(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
    body: ValidatedJson<Resolve>,
) -> Result<HttpResponse, ApiError> {
    crate::conflicts::resolve_conflict(&state, session.staff_id, id.into_inner(), body.0.resolution).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Dead letters, open ones first.
async fn dead_letters(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(crate::conflicts::list_dead_letters(&state).await?))
}

/// Sends a dead letter again (as a new mutation).
async fn replay_dead_letter(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    crate::conflicts::handle_dead_letter(&state, session.staff_id, id.into_inner(), true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Discards a dead letter: the later writes of its record go on.
async fn discard_dead_letter(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    crate::conflicts::handle_dead_letter(&state, session.staff_id, id.into_inner(), false).await?;
    Ok(HttpResponse::NoContent().finish())
}
