//! The lab admin's console session: password login (lab_admin staff only, lockout like PINs), an
//! HttpOnly, Secure, SameSite=Strict cookie, and a CSRF token every state-changing request must echo
//! in `X-CSRF-Token`. Tablet bearer tokens are never accepted on admin routes.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{admin_sessions, staff, staff_revocations};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use labedge_service::secrets::random_token;
use mobile_contracts::problem::ErrorCode;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use validator::Validate;

use super::Peer;
use super::lockout::{self, Policy, Subject};
use super::sessions::{invalid_credentials, limit_attempts, locked_out, token_hash, verify_blocking};
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;
use crate::vpn_gate::client_ip;

/// Name of the session cookie.
pub const COOKIE: &str = "labedge_admin";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `POST /admin/v1/login` body.
#[derive(Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct AdminLogin {
    /// The lab admin's login.
    #[validate(length(min = 3, max = 32))]
    pub login: String,
    /// Their password.
    #[validate(length(min = 1, max = 256))]
    pub password: String,
}

impl std::fmt::Debug for AdminLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminLogin").finish_non_exhaustive()
    }
}

/// What the console knows of its session.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdminSessionView {
    /// The admin.
    pub staff_id: Uuid,
    /// Their name.
    pub display_name: String,
    /// To send back in `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    /// When the session ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// An authenticated admin console request.
#[derive(Clone, Debug)]
pub struct AdminSession {
    /// The lab admin.
    pub staff_id: Uuid,
    /// Their name.
    pub display_name: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: OffsetDateTime,
    id_hash: Vec<u8>,
}

/// Logs a lab admin in; returns the session and its cookie.
pub async fn login(
    state: &AppState,
    peer: &Peer,
    body: AdminLogin,
) -> Result<(AdminSessionView, Cookie<'static>), ApiError> {
    limit_attempts(state, "admin_login", None, peer.ip).await?;
    let lab = state.lab().await?;
    let mut conn = state.pool.get().await?;
    let admin = check_admin(state, &mut conn, lab.id, peer, &body).await?;
    let cookie_value = random_token(32);
    let csrf_token = random_token(24);
    let expires_at = OffsetDateTime::now_utc()
        + Duration::minutes(i64::try_from(state.config.auth.admin_session_minutes).unwrap_or(480));
    diesel::insert_into(admin_sessions::table)
        .values((
            admin_sessions::id_sha256.eq(token_hash(&cookie_value)),
            admin_sessions::staff_id.eq(admin.0),
            admin_sessions::csrf_token.eq(&csrf_token),
            admin_sessions::expires_at.eq(expires_at),
        ))
        .execute(&mut conn)
        .await?;
    state.security.emit(
        SecurityEvent::success(Action::AdminLogin)
            .staff(admin.0)
            .source(peer.ip),
    );
    Ok((
        AdminSessionView {
            staff_id: admin.0,
            display_name: admin.4,
            csrf_token,
            expires_at,
        },
        session_cookie(state, cookie_value),
    ))
}

/// An admin's id, role, password hash, whether active, and display name.
type AdminRow = (Uuid, String, Option<String>, bool, String);

/// The lab admin of `body`'s login, if the password is right: one attempt of the (login, address)
/// lockout, spent on any failure, cleared on success.
async fn check_admin(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    peer: &Peer,
    body: &AdminLogin,
) -> Result<AdminRow, ApiError> {
    let ip = peer.ip;
    let login = body.login.to_ascii_lowercase();
    // Per address: failures from one machine never lock the admin out of another.
    let subject = Subject::Admin {
        login: &login,
        source: ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
    };
    let attempt = match lockout::reserve(conn, &subject, Policy::of(&state.config.auth)).await? {
        Ok(attempt) => attempt,
        Err(until) => {
            state
                .security
                .emit(SecurityEvent::failure(Action::AdminLogin, "locked_out").source(ip));
            return Err(locked_out(until).into());
        }
    };
    let admin: Option<AdminRow> = staff::table
        .filter(staff::lab_id.eq(lab_id))
        .filter(staff::login.eq(&login))
        .select((
            staff::id,
            staff::role,
            staff::password_hash,
            staff::active,
            staff::display_name,
        ))
        .first(conn)
        .await
        .optional()?;
    let hash = admin.as_ref().and_then(|a| a.2.clone());
    let password_ok = verify_blocking(body.password.clone(), hash).await;
    let revoked = match &admin {
        Some(a) => {
            diesel::select(diesel::dsl::exists(staff_revocations::table.find(a.0)))
                .get_result(conn)
                .await?
        }
        None => false,
    };
    match admin {
        Some(a) if password_ok && a.1 == "lab_admin" && a.3 && !revoked => {
            lockout::succeeded(conn, attempt).await?;
            Ok(a)
        }
        other => {
            let mut event = SecurityEvent::failure(
                Action::AdminLogin,
                if other.is_some() {
                    "bad_password_or_role"
                } else {
                    "unknown_login"
                },
            )
            .source(ip);
            if let Some(a) = &other {
                event = event.staff(a.0);
            }
            state.security.emit(event.clone());
            if attempt.locks {
                state.security.emit(SecurityEvent {
                    action: Action::Lockout,
                    reason: Some("too_many_failures"),
                    ..event
                });
            }
            Err(invalid_credentials().into())
        }
    }
}

/// The session cookie: the console's paths only, never readable by scripts, never sent cross-site.
fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/admin")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::minutes(
            i64::try_from(state.config.auth.admin_session_minutes).unwrap_or(480),
        ))
        .finish()
}

/// Ends an admin session; returns the cookie that clears it.
pub async fn logout(state: &AppState, session: &AdminSession) -> Result<Cookie<'static>, ApiError> {
    let mut conn = state.pool.get().await?;
    diesel::update(admin_sessions::table.find(&session.id_hash))
        .set(admin_sessions::revoked_at.eq(OffsetDateTime::now_utc()))
        .execute(&mut conn)
        .await?;
    let mut cookie = Cookie::build(COOKIE, "")
        .path("/admin")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    Ok(cookie)
}

impl AdminSession {
    /// What the console may know of it.
    pub fn view(&self) -> AdminSessionView {
        AdminSessionView {
            staff_id: self.staff_id,
            display_name: self.display_name.clone(),
            csrf_token: self.csrf_token.clone(),
            expires_at: self.expires_at,
        }
    }
}

fn refused(state: &AppState, req: &HttpRequest, reason: &'static str, code: ErrorCode) -> ProblemError {
    state
        .security
        .emit(SecurityEvent::failure(Action::AdminRefused, reason).source(client_ip(&state.config.access, req)));
    ProblemError::new(code)
}

impl FromRequest for AdminSession {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::code(ErrorCode::Internal))?;
            // A tablet token has no business here, whatever else the request carries.
            if req.headers().contains_key(header::AUTHORIZATION) {
                return Err(
                    refused(&state, &req, "bearer_token_on_admin_route", ErrorCode::Forbidden)
                        .detail("tablet tokens are not accepted on admin routes")
                        .into(),
                );
            }
            let Some(cookie) = req.cookie(COOKIE) else {
                return Err(ProblemError::new(ErrorCode::InvalidCredentials)
                    .detail("log in to the admin console")
                    .into());
            };
            let id_hash = token_hash(cookie.value());
            let mut conn = state.pool.get().await?;
            let row: Option<(Uuid, String, OffsetDateTime, String, bool, String)> = admin_sessions::table
                .inner_join(staff::table.on(staff::id.eq(admin_sessions::staff_id)))
                .filter(admin_sessions::id_sha256.eq(&id_hash))
                .filter(admin_sessions::revoked_at.is_null())
                .filter(admin_sessions::expires_at.gt(OffsetDateTime::now_utc()))
                .select((
                    staff::id,
                    admin_sessions::csrf_token,
                    admin_sessions::expires_at,
                    staff::role,
                    staff::active,
                    staff::display_name,
                ))
                .first(&mut conn)
                .await
                .optional()?;
            let Some((staff_id, csrf_token, expires_at, role, active, display_name)) = row else {
                return Err(refused(&state, &req, "no_session", ErrorCode::InvalidCredentials)
                    .detail("the admin session is unknown or over: log in again")
                    .into());
            };
            let revoked: bool = diesel::select(diesel::dsl::exists(staff_revocations::table.find(staff_id)))
                .get_result(&mut conn)
                .await?;
            if role != "lab_admin" || !active || revoked {
                return Err(refused(&state, &req, "not_an_admin", ErrorCode::Forbidden).into());
            }
            let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
            if !safe {
                let sent = req.headers().get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
                if !bool::from(sent.ct_eq(csrf_token.as_bytes())) {
                    return Err(refused(&state, &req, "csrf", ErrorCode::Forbidden)
                        .detail("missing or wrong X-CSRF-Token")
                        .into());
                }
            }
            Ok(AdminSession {
                staff_id,
                display_name,
                csrf_token,
                expires_at,
                id_hash,
            })
        })
    }
}
