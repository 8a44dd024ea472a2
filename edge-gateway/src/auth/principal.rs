//! Who is calling: the `Principal` extractor authenticates every tablet request (bearer access token,
//! certificate binding, revocation) and the `Role` checks authorise it.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use labedge_service::http::ProblemError;
pub use labedge_service::tls::peer_certificate;
use labedge_service::tls::sha256_hex;
use mobile_contracts::Role;
use mobile_contracts::problem::ErrorCode;
use uuid::Uuid;

use super::revocation::{Binding, Standing};
use super::tokens::{AccessClaims, Confirmation, Refusal};
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;
use crate::vpn_gate::client_ip;

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

impl FromRequest for Principal {
    type Error = ProblemError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ProblemError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ProblemError::new(ErrorCode::Internal))?;
            authenticate(&state, &req).await
        })
    }
}

async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, ProblemError> {
    let refuse = |reason: Refusal, claims: Option<&AccessClaims>| {
        let mut event =
            SecurityEvent::failure(Action::TokenRefused, reason.as_str()).source(client_ip(&state.config.access, req));
        if let Some(claims) = claims {
            event = event.staff(claims.sub).device(claims.device);
        }
        state.security.emit(event);
        invalid_token()
    };
    // A token in the URL ends up in logs, proxies and histories: refused even next to a good header.
    if req
        .query_string()
        .split('&')
        .any(|pair| pair.starts_with("access_token="))
    {
        return Err(refuse(Refusal::InQuery, None));
    }
    let Some(token) = bearer(req) else {
        return Err(ProblemError::new(ErrorCode::InvalidToken)
            .detail("an access token is required")
            .header(header::WWW_AUTHENTICATE, "Bearer realm=\"labedge\""));
    };
    if !state.keys.is_loaded() {
        return Err(ProblemError::new(ErrorCode::ServiceUnavailable)
            .detail("credentials cannot be checked right now")
            .retry_after(2));
    }
    let claims = state.tokens.verify(token).map_err(|reason| refuse(reason, None))?;
    if let Some(cnf) = &claims.cnf {
        let presented = peer_certificate(req).map(|cert| Confirmation::of_certificate(&cert.0));
        if presented.as_ref() != Some(cnf) {
            return Err(refuse(Refusal::CertificateMismatch, Some(&claims)));
        }
    }
    match state.revocations.check(claims.device, claims.sub, claims.sid).await {
        Ok(Standing::Good) => {}
        Ok(Standing::DeviceRevoked) => {
            state.security.emit(
                SecurityEvent::failure(Action::TokenRefused, "device_revoked")
                    .staff(claims.sub)
                    .device(claims.device)
                    .source(client_ip(&state.config.access, req)),
            );
            return Err(device_revoked());
        }
        Ok(Standing::StaffRevoked | Standing::SessionRevoked) => return Err(refuse(Refusal::Revoked, Some(&claims))),
        Err(_) => {
            // Fail closed: without a revocation answer nobody is let in.
            return Err(ProblemError::new(ErrorCode::ServiceUnavailable)
                .detail("credentials cannot be checked right now")
                .retry_after(2));
        }
    }
    // The device record, not the token, says whether the device is bound to a certificate: a token
    // of a bound device without `cnf` was never issued by this gateway (forged or stale), and one
    // whose `cnf` names another certificate is refused even when the connection presents that one.
    match state.revocations.binding(claims.device).await {
        Ok(Binding::Unbound) => {}
        Ok(Binding::Bound(expected)) => {
            if claims.cnf.is_none() {
                return Err(refuse(Refusal::CnfMissing, Some(&claims)));
            }
            let presented = peer_certificate(req).map(|cert| sha256_hex(&cert.0));
            if presented.as_deref() != Some(expected.as_str()) {
                return Err(refuse(Refusal::CertificateMismatch, Some(&claims)));
            }
        }
        Ok(Binding::Unknown) => {
            state.security.emit(
                SecurityEvent::failure(Action::TokenRefused, "device_unknown")
                    .staff(claims.sub)
                    .device(claims.device)
                    .source(client_ip(&state.config.access, req)),
            );
            return Err(device_revoked());
        }
        Err(_) => {
            return Err(ProblemError::new(ErrorCode::ServiceUnavailable)
                .detail("credentials cannot be checked right now")
                .retry_after(2));
        }
    }
    Ok(Principal {
        staff_id: claims.sub,
        device_id: claims.device,
        role: claims.role,
        session_id: claims.sid,
        expires_at: claims.exp,
    })
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
