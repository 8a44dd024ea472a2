//! A staff member's lifecycle at their lab's gateway (issue 15 item 4): their PIN, changed by
//! themselves or set again with a one-time code their lab admin makes, and their deactivation and
//! reactivation by the lab admin.
//!
//! Each works offline, at the gateway alone, and reaches the cloud through the outbox (`staff.pin`
//! with the new PIN's hash, never the PIN; `staff.active`), written in the same transaction as the
//! change, so that the cloud's staff row, and through the change feed every gateway of the lab,
//! follows. Each is a security event and an audit record. A deactivation holds from the member's
//! very next request (the revocation list); a PIN reset ends their sessions.

use diesel_async::AsyncConnection;
use labedge_protocol::relay::{PinHash, RelayedMutation, RelayedOp};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use labedge_service::secrets::hash_secret_queued;
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{PinChangeRequest, PinResetRequest, Secret};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::Peer;
use super::enroll::{code_hash, one_time_code};
use super::lockout::{self, Policy, Subject};
use super::principal::Principal;
use super::revocation::RevokedKind;
use super::sessions::{authenticate_device, failed_attempt, locked_out, verify_blocking};
use crate::audit::AuditEntry;
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;
use crate::store::sessions::{self, Owner};
pub use crate::store::staff::StaffView;
use crate::store::{audit, outbox, pin_resets, staff};

/// A PIN reset code, shown once to the lab admin who made it.
#[derive(serde::Serialize)]
pub struct NewResetCode {
    /// The staff member it is for.
    pub staff_id: Uuid,
    /// The code to read out to them.
    pub code: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

// The code is a credential until it is used.
impl std::fmt::Debug for NewResetCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewResetCode")
            .field("staff_id", &self.staff_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The staff of this gateway's lab, for the console.
pub async fn list(state: &AppState) -> Result<Vec<StaffView>, ApiError> {
    let lab = state.lab().await?;
    let mut conn = state.pool.get().await?;
    Ok(staff::list(&mut conn, lab.id).await?)
}

/// The argon2id hash of a new PIN, made off the async workers (tens of milliseconds).
async fn hash_pin(pin: &Secret) -> Result<String, ApiError> {
    let pin = pin.expose_secret().to_owned();
    hash_secret_queued(pin)
        .await
        .map_err(|e| anyhow::anyhow!("PIN hashing failed: {e}").into())
}

/// The relayed form of a staff change made by `by` (on `device`, if on a tablet).
fn relayed(op: RelayedOp, by: Uuid, device: Option<Uuid>, now: OffsetDateTime) -> RelayedMutation {
    RelayedMutation {
        mutation_id: Uuid::now_v7(),
        recorded_at: now,
        staff_id: Some(by),
        device_id: device,
        op,
    }
}

/// The audit record of a change of `member`'s account made by `by`.
fn audit_entry(
    lab: Uuid,
    by: Uuid,
    device: Option<Uuid>,
    action: &'static str,
    member: Uuid,
    request_id: &str,
) -> AuditEntry {
    AuditEntry {
        lab_id: lab,
        staff_id: Some(by),
        device_id: device,
        action,
        patient_id: None,
        resource: Some(format!("staff:{member}")),
        request_id: Some(request_id.to_owned()),
    }
}

/// Makes a PIN reset code for `member` on behalf of the lab admin `admin`, replacing any earlier
/// one; 404 for a member of no staff of this lab, 409 for a deactivated one.
pub async fn create_reset_code(
    state: &AppState,
    admin: Uuid,
    member: Uuid,
    request_id: &str,
) -> Result<NewResetCode, ApiError> {
    let lab = state.lab().await?;
    let code = one_time_code();
    let ttl = Duration::minutes(i64::try_from(state.config.auth.pin_reset_code_ttl_minutes).unwrap_or(30));
    let expires_at = OffsetDateTime::now_utc() + ttl;
    // In whole microseconds, as PostgreSQL keeps it: the console's list then shows the same instant.
    let expires_at = expires_at
        .replace_nanosecond(expires_at.nanosecond() / 1000 * 1000)
        .unwrap_or(expires_at);
    let hash = code_hash(&code);
    let mut conn = state.pool.get().await?;
    let found = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            if !staff::is_of_lab(conn, lab.id, member).await? {
                return Ok(None);
            }
            if !staff::by_id(conn, member).await?.active {
                return Ok(Some(false));
            }
            pin_resets::replace(conn, member, &hash, admin, expires_at).await?;
            let entry = audit_entry(lab.id, admin, None, "staff.pin_reset_code.create", member, request_id);
            audit::insert(conn, &[entry]).await?;
            Ok(Some(true))
        })
        .await?;
    match found {
        None => return Err(ApiError::not_found()),
        Some(false) => {
            return Err(ApiError::detail(
                ErrorCode::Conflict,
                "this staff member is deactivated: reactivate them first",
            ));
        }
        Some(true) => {}
    }
    state
        .security
        .emit(SecurityEvent::success(Action::PinResetCode).staff(member));
    Ok(NewResetCode {
        staff_id: member,
        code,
        expires_at,
    })
}

/// The one answer to a reset refused for its device secret, login or code (unknown, used, expired)
/// alike, as for a login.
fn reset_refused() -> ProblemError {
    ProblemError::new(ErrorCode::InvalidCredentials)
        .detail("the device credentials, login or reset code were not recognised, or the code is used or expired")
}

/// `POST /v1/auth/pin/reset`: the device, then the code under the (login, device) lockout of PIN
/// logins, then in one transaction the code spent, the new PIN's hash, the member's sessions ended,
/// the relayed change and the audit record.
pub async fn reset_pin(state: &AppState, peer: &Peer, body: PinResetRequest, request_id: &str) -> Result<(), ApiError> {
    let (lab, mut conn, _) =
        authenticate_device(state, peer, Action::PinReset, body.device_id, &body.device_secret).await?;
    let device = body.device_id;
    let login = body.login.to_ascii_lowercase();
    let subject = Subject::Pin { login: &login, device };
    let attempt = match lockout::reserve(&mut conn, &subject, Policy::of(&state.config.auth)).await? {
        Ok(attempt) => attempt,
        Err(until) => {
            state.security.emit(
                SecurityEvent::failure(Action::PinReset, "locked_out")
                    .device(device)
                    .source(peer.ip),
            );
            return Err(locked_out(until).into());
        }
    };
    let now = OffsetDateTime::now_utc();
    let hash = code_hash(body.reset_code.expose_secret());
    let member = staff::by_login(&mut conn, lab.id, &login).await?;
    let refusal = match &member {
        None => Some("unknown_login"),
        Some(m) if !m.active || staff::revoked_here(&mut conn, m.id).await? => Some("staff_revoked"),
        Some(m) if !pin_resets::is_live(&mut conn, m.id, &hash, now).await? => Some("invalid_code"),
        Some(_) => None,
    };
    let member = match (member, refusal) {
        (Some(member), None) => member,
        (member, reason) => {
            let mut event = SecurityEvent::failure(Action::PinReset, reason.unwrap_or("unknown_login"))
                .device(device)
                .source(peer.ip);
            if let Some(member) = &member {
                event = event.staff(member.id);
            }
            failed_attempt(state, event, attempt.locks);
            return Err(reset_refused().into());
        }
    };
    // Hashed before the transaction: no row stays locked for the tens of milliseconds it takes.
    let pin_hash = hash_pin(&body.new_pin).await?;
    let ended = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            // Checked again by the statement that spends it: two resets with one code, one wins.
            if !pin_resets::spend(conn, member.id, &hash, device, now).await? {
                return Ok(None);
            }
            staff::set_pin_hash(conn, member.id, &pin_hash).await?;
            let ended = sessions::revoke_all_of(conn, Owner::Staff(member.id), "pin_reset", now).await?;
            let op = RelayedOp::StaffPin {
                member_id: member.id,
                pin_hash: PinHash(pin_hash.clone()),
            };
            outbox::enqueue(conn, &relayed(op, member.id, Some(device), now)).await?;
            let entry = audit_entry(
                lab.id,
                member.id,
                Some(device),
                "staff.pin.reset",
                member.id,
                request_id,
            );
            audit::insert(conn, &[entry]).await?;
            Ok(Some(ended))
        })
        .await?;
    let Some(ended) = ended else {
        failed_attempt(
            state,
            SecurityEvent::failure(Action::PinReset, "invalid_code")
                .staff(member.id)
                .device(device)
                .source(peer.ip),
            attempt.locks,
        );
        return Err(reset_refused().into());
    };
    lockout::succeeded(&mut conn, attempt).await?;
    for session in ended {
        state.revocations.revoked(RevokedKind::Session, session).await;
    }
    state.wrote();
    state.security.emit(
        SecurityEvent::success(Action::PinReset)
            .staff(member.id)
            .device(device)
            .source(peer.ip),
    );
    Ok(())
}

/// `POST /v1/auth/pin`: the caller's current PIN checked under the (login, device) lockout of PIN
/// logins, then the new PIN's hash, the relayed change and the audit record in one transaction.
/// Their sessions go on.
pub async fn change_pin(
    state: &AppState,
    principal: &Principal,
    peer: &Peer,
    body: PinChangeRequest,
    request_id: &str,
) -> Result<(), ApiError> {
    let lab = state.lab().await?;
    let mut conn = state.pool.get().await?;
    let member = staff::by_id(&mut conn, principal.staff_id).await?;
    let subject = Subject::Pin {
        login: &member.login,
        device: principal.device_id,
    };
    let attempt = match lockout::reserve(&mut conn, &subject, Policy::of(&state.config.auth)).await? {
        Ok(attempt) => attempt,
        Err(until) => {
            state.security.emit(
                SecurityEvent::failure(Action::PinChange, "locked_out")
                    .staff(member.id)
                    .device(principal.device_id)
                    .source(peer.ip),
            );
            return Err(locked_out(until).into());
        }
    };
    let current = body.current_pin.expose_secret().to_owned();
    if !verify_blocking(current, Some(member.pin_hash.clone())).await {
        failed_attempt(
            state,
            SecurityEvent::failure(Action::PinChange, "bad_pin")
                .staff(member.id)
                .device(principal.device_id)
                .source(peer.ip),
            attempt.locks,
        );
        return Err(ProblemError::new(ErrorCode::ValidationFailed)
            .errors(vec![FieldError::new(
                "/current_pin",
                "wrong_pin",
                "is not your current PIN",
            )])
            .into());
    }
    let pin_hash = hash_pin(&body.new_pin).await?;
    let now = OffsetDateTime::now_utc();
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        staff::set_pin_hash(conn, member.id, &pin_hash).await?;
        let op = RelayedOp::StaffPin {
            member_id: member.id,
            pin_hash: PinHash(pin_hash.clone()),
        };
        outbox::enqueue(conn, &relayed(op, member.id, Some(principal.device_id), now)).await?;
        let entry = audit_entry(
            lab.id,
            member.id,
            Some(principal.device_id),
            "staff.pin.change",
            member.id,
            request_id,
        );
        audit::insert(conn, &[entry]).await?;
        Ok(())
    })
    .await?;
    lockout::succeeded(&mut conn, attempt).await?;
    state.wrote();
    state.security.emit(
        SecurityEvent::success(Action::PinChange)
            .staff(member.id)
            .device(principal.device_id)
            .source(peer.ip),
    );
    Ok(())
}

/// Deactivates (`active = false`: refused from their next request, their sessions ended) or
/// reactivates (a revocation at this gateway lifted too) staff member `member` of this lab, on
/// behalf of the lab admin `admin`; 404 for a member of no staff of this lab, 409 for an admin
/// deactivating themselves.
pub async fn set_active(
    state: &AppState,
    admin: Uuid,
    member: Uuid,
    active: bool,
    request_id: &str,
) -> Result<(), ApiError> {
    if !active && member == admin {
        return Err(ApiError::detail(
            ErrorCode::Conflict,
            "a lab admin cannot deactivate themselves: ask another lab admin",
        ));
    }
    let lab = state.lab().await?;
    let now = OffsetDateTime::now_utc();
    let mut conn = state.pool.get().await?;
    let ended = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            if !staff::set_active(conn, lab.id, member, active).await? {
                return Ok(None);
            }
            let ended = if active {
                staff::lift_revocation(conn, member).await?;
                Vec::new()
            } else {
                sessions::revoke_all_of(conn, Owner::Staff(member), "staff_deactivated", now).await?
            };
            let op = RelayedOp::StaffActive {
                member_id: member,
                active,
            };
            outbox::enqueue(conn, &relayed(op, admin, None, now)).await?;
            let action = if active { "staff.reactivate" } else { "staff.deactivate" };
            audit::insert(conn, &[audit_entry(lab.id, admin, None, action, member, request_id)]).await?;
            Ok(Some(ended))
        })
        .await?;
    let Some(ended) = ended else {
        return Err(ApiError::not_found());
    };
    // After the commit, so that the list never says more than PostgreSQL does. The ended sessions
    // are listed on their own: a reactivation lifts the member's entry, not their old sessions.
    for session in ended {
        state.revocations.revoked(RevokedKind::Session, session).await;
    }
    if active {
        state.revocations.restored(RevokedKind::Staff, member).await;
    } else {
        state.revocations.revoked(RevokedKind::Staff, member).await;
    }
    state.wrote();
    let action = if active {
        Action::StaffReactivate
    } else {
        Action::StaffDeactivate
    };
    state.security.emit(SecurityEvent::success(action).staff(member));
    Ok(())
}
