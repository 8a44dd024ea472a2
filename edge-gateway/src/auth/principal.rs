//! Who is calling: [`authenticate`] checks what every tablet request presents (bearer access token,
//! certificate binding, revocation), read off the request by the `Principal` extractor in
//! `routes/`, and the `Role` checks authorise it.

use actix_web::http::header;
use labedge_service::http::ProblemError;
use labedge_service::tls::sha256_hex;
use mobile_contracts::Role;
use mobile_contracts::problem::ErrorCode;
use uuid::Uuid;

use super::Peer;
use super::revocation::{Binding, Standing};
use super::tokens::{AccessClaims, Confirmation, Refusal};
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;

/// An authenticated staff member on an enrolled device of this lab.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The staff member.
    pub staff_id: Uuid,
    /// The device.
    pub device_id: Uuid,
    /// The role.
    pub role: Role,
    /// The session.
    pub session_id: Uuid,
    /// The token's expiry (seconds since the epoch).
    pub expires_at: i64,
}

impl Principal {
    /// Refuses (403) unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ProblemError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ProblemError::new(ErrorCode::Forbidden).detail("your role does not give access to this"))
        }
    }
}

/// The 401 every refused token gets (RFC 6750).
pub fn invalid_token() -> ProblemError {
    ProblemError::new(ErrorCode::InvalidToken).header(
        header::WWW_AUTHENTICATE,
        "Bearer realm=\"labedge\", error=\"invalid_token\"",
    )
}

/// The 403 a revoked device gets: the tablet must wipe what it holds.
pub fn device_revoked() -> ProblemError {
    ProblemError::new(ErrorCode::DeviceRevoked)
        .detail("this device has been revoked: erase the data it holds and enroll it again")
        .header(
            header::HeaderName::from_static("clear-site-data"),
            "\"cache\", \"cookies\", \"storage\"",
        )
}

/// What a tablet request presents to be authenticated, as the extractor read it off the request.
#[derive(Debug)]
pub struct Presented<'a> {
    /// The bearer token of the `Authorization` header.
    pub bearer: Option<&'a str>,
    /// Whether the query string carries an `access_token`.
    pub token_in_query: bool,
    /// The client's address and certificate.
    pub peer: &'a Peer,
}

/// The 503 when the credentials cannot be checked (no key ring yet, no revocation answer): fail
/// closed.
fn cannot_check() -> ProblemError {
    ProblemError::new(ErrorCode::ServiceUnavailable)
        .detail("credentials cannot be checked right now")
        .retry_after(2)
}

/// Authenticates a tablet request: the token (not in the URL, signed by the ring, its claims), its
/// certificate binding, the revocations, the device record's binding.
pub async fn authenticate(state: &AppState, presented: Presented<'_>) -> Result<Principal, ProblemError> {
    let refusal = Refuser {
        state,
        ip: presented.peer.ip,
    };
    // A token in the URL ends up in logs, proxies and histories: refused even next to a good header.
    if presented.token_in_query {
        return Err(refusal.refuse(Refusal::InQuery, None));
    }
    let Some(token) = presented.bearer else {
        return Err(ProblemError::new(ErrorCode::InvalidToken)
            .detail("an access token is required")
            .header(header::WWW_AUTHENTICATE, "Bearer realm=\"labedge\""));
    };
    if !state.keys.is_loaded() {
        return Err(cannot_check());
    }
    let claims = state
        .tokens
        .verify(token)
        .map_err(|reason| refusal.refuse(reason, None))?;
    if let Some(cnf) = &claims.cnf {
        let presented = presented
            .peer
            .certificate
            .as_ref()
            .map(|cert| Confirmation::of_certificate(&cert.0));
        if presented.as_ref() != Some(cnf) {
            return Err(refusal.refuse(Refusal::CertificateMismatch, Some(&claims)));
        }
    }
    check_standing(state, &refusal, &claims).await?;
    check_binding(state, &refusal, &claims, presented.peer).await?;
    Ok(Principal {
        staff_id: claims.sub,
        device_id: claims.device,
        role: claims.role,
        session_id: claims.sid,
        expires_at: claims.exp,
    })
}

/// The security events of refused tokens, from one address.
struct Refuser<'a> {
    state: &'a AppState,
    ip: Option<std::net::IpAddr>,
}

impl Refuser<'_> {
    /// A refused token: its event, and the 401.
    fn refuse(&self, reason: Refusal, claims: Option<&AccessClaims>) -> ProblemError {
        let mut event = SecurityEvent::failure(Action::TokenRefused, reason.as_str()).source(self.ip);
        if let Some(claims) = claims {
            event = event.staff(claims.sub).device(claims.device);
        }
        self.state.security.emit(event);
        invalid_token()
    }

    /// A token of a device revoked or unknown (`reason`): its event, and the 403 that wipes the tablet.
    fn device_gone(&self, reason: &'static str, claims: &AccessClaims) -> ProblemError {
        self.state.security.emit(
            SecurityEvent::failure(Action::TokenRefused, reason)
                .staff(claims.sub)
                .device(claims.device)
                .source(self.ip),
        );
        device_revoked()
    }
}

/// The device, staff member and session of `claims` are not revoked.
async fn check_standing(state: &AppState, refusal: &Refuser<'_>, claims: &AccessClaims) -> Result<(), ProblemError> {
    match state.revocations.check(claims.device, claims.sub, claims.sid).await {
        Ok(Standing::Good) => Ok(()),
        Ok(Standing::DeviceRevoked) => Err(refusal.device_gone("device_revoked", claims)),
        Ok(Standing::StaffRevoked | Standing::SessionRevoked) => Err(refusal.refuse(Refusal::Revoked, Some(claims))),
        // Fail closed: without a revocation answer nobody is let in.
        Err(_) => Err(cannot_check()),
    }
}

/// The device record, not the token, says whether the device is bound to a certificate: a token of
/// a bound device without `cnf` was never issued by this gateway (forged or stale), and one whose
/// `cnf` names another certificate is refused even when the connection presents that one.
async fn check_binding(
    state: &AppState,
    refusal: &Refuser<'_>,
    claims: &AccessClaims,
    peer: &Peer,
) -> Result<(), ProblemError> {
    match state.revocations.binding(claims.device).await {
        Ok(Binding::Unbound) => Ok(()),
        Ok(Binding::Bound(expected)) => {
            if claims.cnf.is_none() {
                return Err(refusal.refuse(Refusal::CnfMissing, Some(claims)));
            }
            let presented = peer.certificate.as_ref().map(|cert| sha256_hex(&cert.0));
            if presented.as_deref() != Some(expected.as_str()) {
                return Err(refusal.refuse(Refusal::CertificateMismatch, Some(claims)));
            }
            Ok(())
        }
        Ok(Binding::Unknown) => Err(refusal.device_gone("device_unknown", claims)),
        Err(_) => Err(cannot_check()),
    }
}
