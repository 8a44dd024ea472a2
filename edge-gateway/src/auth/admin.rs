//! The lab admin's console session: password login (lab_admin staff only, lockout like PINs), an
//! HttpOnly, Secure, SameSite=Strict cookie, and a CSRF token every state-changing request must echo
//! in `X-CSRF-Token`. Tablet bearer tokens are never accepted on admin routes.

use actix_web::cookie::{Cookie, SameSite};
use diesel_async::AsyncPgConnection;
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
use super::sessions::{failed_attempt, invalid_credentials, limit_attempts, locked_out, token_hash, verify_blocking};
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;
use crate::store::admin_sessions;
use crate::store::staff::{self, AdminCandidate};

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
    admin_sessions::insert(&mut conn, &token_hash(&cookie_value), admin.id, &csrf_token, expires_at).await?;
    state.security.emit(
        SecurityEvent::success(Action::AdminLogin)
            .staff(admin.id)
            .source(peer.ip),
    );
    Ok((
        AdminSessionView {
            staff_id: admin.id,
            display_name: admin.display_name,
            csrf_token,
            expires_at,
        },
        session_cookie(state, cookie_value),
    ))
}

/// The lab admin of `body`'s login, if the password is right: one attempt of the (login, address)
/// lockout, spent on any failure, cleared on success.
async fn check_admin(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    peer: &Peer,
    body: &AdminLogin,
) -> Result<AdminCandidate, ApiError> {
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
    let admin = staff::admin_by_login(conn, lab_id, &login).await?;
    let hash = admin.as_ref().and_then(|a| a.password_hash.clone());
    let password_ok = verify_blocking(body.password.clone(), hash).await;
    let revoked = match &admin {
        Some(a) => staff::revoked_here(conn, a.id).await?,
        None => false,
    };
    match admin {
        Some(a) if password_ok && a.role == "lab_admin" && a.active && !revoked => {
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
                event = event.staff(a.id);
            }
            failed_attempt(state, event, attempt.locks);
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
    admin_sessions::revoke(&mut conn, &session.id_hash, OffsetDateTime::now_utc()).await?;
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

/// What a console request presents, as the extractor read it off the request.
#[derive(Debug)]
pub struct Presented<'a> {
    /// Whether it carries an `Authorization` header (a tablet token).
    pub authorization: bool,
    /// The session cookie's value.
    pub cookie: Option<&'a str>,
    /// The `X-CSRF-Token` header's bytes.
    pub csrf: &'a [u8],
    /// Whether the method changes state (anything but GET, HEAD, OPTIONS).
    pub state_changing: bool,
    /// The client's address.
    pub ip: Option<std::net::IpAddr>,
}

fn refused(state: &AppState, ip: Option<std::net::IpAddr>, reason: &'static str, code: ErrorCode) -> ProblemError {
    state
        .security
        .emit(SecurityEvent::failure(Action::AdminRefused, reason).source(ip));
    ProblemError::new(code)
}

/// The console session of a request: a live session of an active, unrevoked lab admin, no tablet
/// token beside it, and the CSRF token echoed on a state-changing request.
pub async fn authenticate(state: &AppState, presented: Presented<'_>) -> Result<AdminSession, ApiError> {
    let ip = presented.ip;
    // A tablet token has no business here, whatever else the request carries.
    if presented.authorization {
        return Err(refused(state, ip, "bearer_token_on_admin_route", ErrorCode::Forbidden)
            .detail("tablet tokens are not accepted on admin routes")
            .into());
    }
    let Some(cookie) = presented.cookie else {
        return Err(ProblemError::new(ErrorCode::InvalidCredentials)
            .detail("log in to the admin console")
            .into());
    };
    let id_hash = token_hash(cookie);
    let mut conn = state.pool.get().await?;
    let Some(live) = admin_sessions::live(&mut conn, &id_hash, OffsetDateTime::now_utc()).await? else {
        return Err(refused(state, ip, "no_session", ErrorCode::InvalidCredentials)
            .detail("the admin session is unknown or over: log in again")
            .into());
    };
    let revoked = staff::revoked_here(&mut conn, live.staff_id).await?;
    if live.role != "lab_admin" || !live.active || revoked {
        return Err(refused(state, ip, "not_an_admin", ErrorCode::Forbidden).into());
    }
    if presented.state_changing && !bool::from(presented.csrf.ct_eq(live.csrf_token.as_bytes())) {
        return Err(refused(state, ip, "csrf", ErrorCode::Forbidden)
            .detail("missing or wrong X-CSRF-Token")
            .into());
    }
    Ok(AdminSession {
        staff_id: live.staff_id,
        display_name: live.display_name,
        csrf_token: live.csrf_token,
        expires_at: live.expires_at,
        id_hash,
    })
}
