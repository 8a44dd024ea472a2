//! Staff sessions on enrolled devices: PIN login (offline: staff credentials are part of the lab's
//! synced data), rotating refresh tokens whose reuse revokes the whole session, logout, `GET /v1/me`.

use std::net::IpAddr;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_schema::db::PooledConnection;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use labedge_service::secrets::{random_token, verify_secret_queued};
use labedge_service::tls::sha256_hex;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{DeviceRef, LabRef, LoginRequest, Me, RefreshRequest, Role, Secret, TokenResponse, TokenType};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::Peer;
use super::lockout::{self, Policy, Subject};
use super::principal::{Principal, device_revoked};
use super::revocation::RevokedKind;
use super::tokens::Confirmation;
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;
use crate::store::devices::{self, DeviceCredentials};
use crate::store::sessions::{self as stored, NewSession, RefreshToken, Session};
use crate::store::staff::{self, Member};

/// The one answer to bad device credentials, an unknown login and a wrong PIN alike.
pub fn invalid_credentials() -> ProblemError {
    ProblemError::new(ErrorCode::InvalidCredentials).detail("the device credentials, login or PIN were not recognised")
}

/// Counts an attempt against the per-device and per-address limits.
pub async fn limit_attempts(
    state: &AppState,
    what: &str,
    device: Option<Uuid>,
    ip: Option<IpAddr>,
) -> Result<(), ProblemError> {
    let auth = &state.config.auth;
    let mut keys = Vec::new();
    if let Some(device) = device {
        keys.push((format!("{what}:device:{device}"), auth.attempts_per_minute_per_device));
    }
    if let Some(ip) = ip {
        keys.push((format!("{what}:ip:{ip}"), auth.attempts_per_minute_per_address));
    }
    for (key, limit) in keys {
        if let Err(retry) = state.limiter.hit(&key, limit).await {
            let mut event = SecurityEvent::failure(Action::RateLimited, "too_many_attempts").source(ip);
            if let Some(device) = device {
                event = event.device(device);
            }
            state.security.emit(event);
            return Err(ProblemError::new(ErrorCode::RateLimited).retry_after(retry.0));
        }
    }
    Ok(())
}

/// Verifies a secret against its argon2 hash off the async workers (a verification takes tens of
/// milliseconds). Without a hash, a dummy verification keeps the timing of "unknown" and "wrong" alike.
pub async fn verify_blocking(secret: String, hash: Option<String>) -> bool {
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
    let matched = verify_secret_queued(secret, hash).await;
    known && matched
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| labedge_service::secrets::hash_secret(&random_token(16)).unwrap_or_default())
}

/// Checks a device's credentials (secret, status, certificate). The answer to every failure is the
/// same `invalid_credentials`, except a revoked device, which is told to wipe itself.
async fn check_device(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    peer: &Peer,
    device_id: Uuid,
    secret: &Secret,
    action: Action,
) -> Result<DeviceCredentials, ApiError> {
    let ip = peer.ip;
    let device = devices::credentials(conn, device_id).await?;
    let hash = device.as_ref().map(|d| d.secret_hash.clone());
    if !verify_blocking(secret.expose_secret().to_owned(), hash).await {
        state.security.emit(
            SecurityEvent::failure(action, "bad_device_credentials")
                .device(device_id)
                .source(ip),
        );
        return Err(invalid_credentials().into());
    }
    let Some(device) = device else {
        return Err(invalid_credentials().into());
    };
    if device.status != "active" {
        state.security.emit(
            SecurityEvent::failure(action, "device_revoked")
                .device(device_id)
                .source(ip),
        );
        return Err(device_revoked().into());
    }
    // A tablet enrolled with a certificate must present it: its secret alone is not enough.
    if let Some(expected) = &device.cert_sha256 {
        let presented = peer.certificate.as_ref().map(|cert| sha256_hex(&cert.0));
        if presented.as_deref() != Some(expected.as_str()) {
            state.security.emit(
                SecurityEvent::failure(action, "certificate_mismatch")
                    .device(device_id)
                    .source(ip),
            );
            return Err(invalid_credentials().into());
        }
    }
    Ok(device)
}

/// The start of a login, a refresh or a PIN reset (`action`): the attempt limits, the lab, a
/// connection and the device's credentials checked.
pub(super) async fn authenticate_device(
    state: &AppState,
    peer: &Peer,
    action: Action,
    device_id: Uuid,
    secret: &Secret,
) -> Result<(LabRef, PooledConnection, DeviceCredentials), ApiError> {
    let what = match action {
        Action::Login => "login",
        Action::PinReset => "pin_reset",
        _ => "refresh",
    };
    limit_attempts(state, what, None, peer.ip).await?;
    let lab = state.lab().await?;
    let mut conn = state.pool.get().await?;
    let device = check_device(state, &mut conn, peer, device_id, secret, action).await?;
    // Counted per device only once the device is authenticated: keyed on the body's `device_id`
    // alone, anyone could spend a colleague's tablet's attempts.
    limit_attempts(state, what, Some(device_id), None).await?;
    Ok((lab, conn, device))
}

/// `POST /v1/auth/login`: the device, then the staff member's PIN (under the lockout), then a new
/// session and its tokens.
pub async fn login(state: &AppState, peer: &Peer, body: LoginRequest) -> Result<TokenResponse, ApiError> {
    let (lab, mut conn, device) =
        authenticate_device(state, peer, Action::Login, body.device_id, &body.device_secret).await?;
    let member = check_staff(state, &mut conn, lab.id, peer, &body).await?;
    let role = parse_role(&member.role)?;
    let now = OffsetDateTime::now_utc();
    let opened = open_session(state, &mut conn, peer, body.device_id, member.id, now).await?;
    let session = SessionOf {
        staff: member.id,
        device: body.device_id,
        role,
        id: opened.session_id,
    };
    let access = issue_access(state, peer, session, Action::Login)?;
    let grace_until = opened.grace_until;
    Ok(TokenResponse {
        access_token: Secret::new(access.token),
        token_type: TokenType::Bearer,
        expires_in: access.expires_in,
        refresh_token: Secret::new(opened.refresh),
        refresh_expires_in: seconds_until(now, opened.refresh_expires),
        offline_grace_until: grace_until,
        staff: Me {
            staff_id: member.id,
            login: member.login,
            display_name: member.display_name,
            role,
            lab,
            device: DeviceRef {
                id: body.device_id,
                label: device.label,
            },
            offline_grace_until: grace_until,
        },
    })
}

/// The staff member of `body`'s login at this lab, if the PIN is right and they may work: one
/// attempt of the (login, device) lockout, spent on any failure, cleared on success.
async fn check_staff(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    peer: &Peer,
    body: &LoginRequest,
) -> Result<Member, ApiError> {
    let login = body.login.to_ascii_lowercase();
    let subject = Subject::Pin {
        login: &login,
        device: body.device_id,
    };
    let attempt = match lockout::reserve(conn, &subject, Policy::of(&state.config.auth)).await? {
        Ok(attempt) => attempt,
        Err(until) => {
            state.security.emit(
                SecurityEvent::failure(Action::Login, "locked_out")
                    .device(body.device_id)
                    .source(peer.ip),
            );
            return Err(locked_out(until).into());
        }
    };
    let member = staff::by_login(conn, lab_id, &login).await?;
    let revoked_locally = match &member {
        Some(m) => staff::revoked_here(conn, m.id).await?,
        None => false,
    };
    let pin_ok = verify_blocking(
        body.pin.expose_secret().to_owned(),
        member.as_ref().map(|m| m.pin_hash.clone()),
    )
    .await;
    match member {
        Some(m) if pin_ok && m.active && !revoked_locally => {
            lockout::succeeded(conn, attempt).await?;
            Ok(m)
        }
        other => {
            let reason = match &other {
                None => "unknown_login",
                Some(_) if !pin_ok => "bad_pin",
                Some(_) => "staff_revoked",
            };
            let mut event = SecurityEvent::failure(Action::Login, reason)
                .device(body.device_id)
                .source(peer.ip);
            if let Some(m) = &other {
                event = event.staff(m.id);
            }
            failed_attempt(state, event, attempt.locks);
            Err(invalid_credentials().into())
        }
    }
}

/// A session just opened, with its refresh token.
struct OpenedSession {
    session_id: Uuid,
    refresh: String,
    refresh_expires: OffsetDateTime,
    grace_until: OffsetDateTime,
}

/// Opens a session of `staff_id` on `device_id` (bound to the peer's certificate, if any), issues
/// its first refresh token and notes the device as seen.
async fn open_session(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    peer: &Peer,
    device_id: Uuid,
    staff_id: Uuid,
    now: OffsetDateTime,
) -> Result<OpenedSession, ApiError> {
    let cert_sha256 = peer.certificate.as_ref().map(|c| sha256_hex(&c.0));
    let grace_until = now + Duration::hours(i64::try_from(state.config.auth.offline_grace_h).unwrap_or(48));
    let session_id = Uuid::now_v7();
    let refresh = random_token(32);
    let refresh_expires = refresh_expiry(state, now, grace_until);
    let session = NewSession {
        id: session_id,
        device_id,
        staff_id,
        cert_sha256,
        expires_at: grace_until,
    };
    stored::insert(conn, &session).await?;
    stored::insert_refresh_token(conn, session_id, &token_hash(&refresh), refresh_expires).await?;
    devices::touch(conn, device_id, now).await?;
    Ok(OpenedSession {
        session_id,
        refresh,
        refresh_expires,
        grace_until,
    })
}

/// `POST /v1/auth/refresh`: a spent refresh token for a new pair. Presenting a token that was already
/// spent means it was copied: the whole session is revoked.
pub async fn refresh(state: &AppState, peer: &Peer, body: RefreshRequest) -> Result<TokenResponse, ApiError> {
    let (lab, mut conn, device) =
        authenticate_device(state, peer, Action::Refresh, body.device_id, &body.device_secret).await?;
    let spent = spend_refresh_token(state, &mut conn, peer, &body).await?;
    let (token, session, now) = (spent.token, spent.session, spent.now);
    let member = check_session_staff(state, &mut conn, peer, body.device_id, &session).await?;
    let new_refresh = random_token(32);
    let refresh_expires = refresh_expiry(state, now, session.expires_at);
    stored::insert_refresh_token(&mut conn, token.session_id, &token_hash(&new_refresh), refresh_expires).await?;
    devices::touch(&mut conn, body.device_id, now).await?;
    let role = parse_role(&member.role)?;
    let access_of = SessionOf {
        staff: member.id,
        device: body.device_id,
        role,
        id: token.session_id,
    };
    let access = issue_access(state, peer, access_of, Action::Refresh)?;
    Ok(TokenResponse {
        access_token: Secret::new(access.token),
        token_type: TokenType::Bearer,
        expires_in: access.expires_in,
        refresh_token: Secret::new(new_refresh),
        refresh_expires_in: seconds_until(now, refresh_expires),
        offline_grace_until: session.expires_at,
        staff: Me {
            staff_id: member.id,
            login: member.login,
            display_name: member.display_name,
            role,
            lab,
            device: DeviceRef {
                id: body.device_id,
                label: device.label,
            },
            offline_grace_until: session.expires_at,
        },
    })
}

/// A refresh refused: the security event, and the answer (the same for every reason).
fn refresh_refused(state: &AppState, peer: &Peer, device_id: Uuid, reason: &'static str) -> ApiError {
    state.security.emit(
        SecurityEvent::failure(Action::Refresh, reason)
            .device(device_id)
            .source(peer.ip),
    );
    ApiError::from(super::principal::invalid_token())
}

/// A refresh token just spent, its session, and the time it was checked at.
struct SpentToken {
    token: RefreshToken,
    session: Session,
    now: OffsetDateTime,
}

/// Spends `body`'s refresh token, if it is this device's, unspent, unexpired, of a live session.
/// A token spent before revokes its session.
async fn spend_refresh_token(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    peer: &Peer,
    body: &RefreshRequest,
) -> Result<SpentToken, ApiError> {
    let hash = token_hash(body.refresh_token.expose_secret());
    let refused = |reason: &'static str| refresh_refused(state, peer, body.device_id, reason);
    let token = stored::refresh_token(conn, &hash)
        .await?
        .ok_or_else(|| refused("unknown_refresh_token"))?;
    let session = stored::get(conn, token.session_id).await?;
    if session.device_id != body.device_id {
        return Err(refused("other_device"));
    }
    // Spend the token atomically: of two concurrent uses, exactly one wins; the other is a reuse.
    let spent = stored::spend_refresh_token(conn, &hash, OffsetDateTime::now_utc()).await?;
    if token.used_at.is_some() || !spent {
        revoke_session(state, conn, token.session_id, "refresh_token_reuse").await?;
        state.security.emit(
            SecurityEvent::failure(Action::RefreshReuse, "spent_token_presented")
                .staff(session.staff_id)
                .device(body.device_id)
                .source(peer.ip),
        );
        return Err(super::principal::invalid_token().into());
    }
    let now = OffsetDateTime::now_utc();
    if session.revoked_at.is_some() {
        return Err(refused("session_revoked"));
    }
    if session.expires_at <= now {
        state
            .security
            .emit(SecurityEvent::failure(Action::Refresh, "offline_grace_expired").device(body.device_id));
        return Err(ProblemError::new(ErrorCode::OfflineGraceExpired)
            .detail("the session is older than the offline grace bound: log in with the PIN again")
            .into());
    }
    if token.expires_at <= now {
        return Err(refused("refresh_token_expired"));
    }
    Ok(SpentToken { token, session, now })
}

/// The session's staff member, if still active here, on the certificate the session was opened with.
async fn check_session_staff(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    peer: &Peer,
    device_id: Uuid,
    session: &Session,
) -> Result<Member, ApiError> {
    let member = staff::by_id(conn, session.staff_id).await?;
    let revoked_locally = staff::revoked_here(conn, member.id).await?;
    if !member.active || revoked_locally {
        return Err(refresh_refused(state, peer, device_id, "staff_revoked"));
    }
    let presented = peer.certificate.as_ref().map(|c| sha256_hex(&c.0));
    if session.cert_sha256.as_deref() != presented.as_deref() {
        return Err(refresh_refused(state, peer, device_id, "certificate_mismatch"));
    }
    Ok(member)
}

/// `POST /v1/auth/logout`: ends the caller's session (every token of it).
pub async fn logout(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    revoke_session(state, &mut conn, principal.session_id, "logout").await?;
    state.security.emit(
        SecurityEvent::success(Action::Logout)
            .staff(principal.staff_id)
            .device(principal.device_id),
    );
    Ok(())
}

/// `GET /v1/me`.
pub async fn me(state: &AppState, principal: &Principal) -> Result<Me, ApiError> {
    let lab: LabRef = state.lab().await?;
    let mut conn = state.pool.get().await?;
    let (login, display_name) = staff::names(&mut conn, principal.staff_id).await?;
    let label = devices::label(&mut conn, principal.device_id).await?;
    let grace = stored::grace_until(&mut conn, principal.session_id).await?;
    Ok(Me {
        staff_id: principal.staff_id,
        login,
        display_name,
        role: principal.role,
        lab,
        device: DeviceRef {
            id: principal.device_id,
            label,
        },
        offline_grace_until: grace,
    })
}

/// Ends a session in PostgreSQL, then tells the revocation list.
pub async fn revoke_session(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    session: Uuid,
    reason: &str,
) -> QueryResult<()> {
    stored::revoke(conn, session, reason, OffsetDateTime::now_utc()).await?;
    state.revocations.revoked(RevokedKind::Session, session).await;
    Ok(())
}

/// Whose session an access token is for.
#[derive(Clone, Copy, Debug)]
struct SessionOf {
    staff: Uuid,
    device: Uuid,
    role: Role,
    id: Uuid,
}

/// An access token of `session`, bound to the peer's certificate when the request came over mutual
/// TLS, and the security event of the login or refresh (`action`) that earned it.
fn issue_access(
    state: &AppState,
    peer: &Peer,
    session: SessionOf,
    action: Action,
) -> Result<super::tokens::Issued, ApiError> {
    let cnf = peer
        .certificate
        .as_ref()
        .map(|cert| Confirmation::of_certificate(&cert.0));
    let access = state
        .tokens
        .issue(session.staff, session.device, session.role, session.id, cnf)?;
    state.security.emit(
        SecurityEvent::success(action)
            .staff(session.staff)
            .device(session.device)
            .source(peer.ip),
    );
    Ok(access)
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    match role {
        "nurse" => Ok(Role::Nurse),
        "home_sampler" => Ok(Role::HomeSampler),
        "lab_admin" => Ok(Role::LabAdmin),
        other => Err(anyhow::anyhow!("unknown role {other} in the staff table").into()),
    }
}

/// SHA-256 of a refresh token or cookie: what is stored instead of the token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn refresh_expiry(state: &AppState, now: OffsetDateTime, grace_until: OffsetDateTime) -> OffsetDateTime {
    let ttl = Duration::seconds(i64::try_from(state.config.auth.refresh_token_ttl_s).unwrap_or(43_200));
    (now + ttl).min(grace_until)
}

fn seconds_until(now: OffsetDateTime, then: OffsetDateTime) -> u32 {
    u32::try_from((then - now).whole_seconds().max(0)).unwrap_or(u32::MAX)
}

/// The security events of a failed PIN or password attempt: the failure, and the lockout when the
/// attempt `locks`.
pub fn failed_attempt(state: &AppState, event: SecurityEvent, locks: bool) {
    state.security.emit(event.clone());
    if locks {
        state.security.emit(SecurityEvent {
            action: Action::Lockout,
            reason: Some("too_many_failures"),
            ..event
        });
    }
}

/// The answer while a login is locked out.
pub fn locked_out(until: OffsetDateTime) -> ProblemError {
    let seconds = (until - OffsetDateTime::now_utc()).whole_seconds().max(1);
    ProblemError::new(ErrorCode::LockedOut)
        .detail("too many failed attempts: try again later")
        .retry_after(seconds.unsigned_abs())
}
