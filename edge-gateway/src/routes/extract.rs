//! The extractors that read who is calling off the request: the peer (address and certificate),
//! the tablet's [`Principal`] and the console's [`AdminSession`]. They hand plain values to
//! [`crate::auth`], which never sees the HTTP request.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use labedge_service::tls::peer_certificate;
use mobile_contracts::problem::ErrorCode;

use crate::auth::Peer;
use crate::auth::admin::{self, AdminSession, COOKIE, CSRF_HEADER};
use crate::auth::principal::{self, Principal};
use crate::state::AppState;
use crate::vpn_gate::client_ip;

/// The gateway's state, which every app built by `startup` carries.
fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, ProblemError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ProblemError::new(ErrorCode::Internal))
}

/// The client's address (`X-Forwarded-For` only behind a trusted proxy) and certificate.
fn peer_of(req: &HttpRequest) -> Peer {
    let ip = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| client_ip(&state.config.access, req));
    Peer {
        ip,
        certificate: peer_certificate(req),
    }
}

/// The handlers read the peer off the connection; the services get it as a value.
impl FromRequest for Peer {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(peer_of(req)))
    }
}

impl FromRequest for Principal {
    type Error = ProblemError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ProblemError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req)?;
            let peer = peer_of(&req);
            let presented = principal::Presented {
                bearer: bearer(&req),
                token_in_query: req
                    .query_string()
                    .split('&')
                    .any(|pair| pair.starts_with("access_token=")),
                peer: &peer,
            };
            principal::authenticate(&state, presented).await
        })
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequest for AdminSession {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req).map_err(|_| ApiError::code(ErrorCode::Internal))?;
            let cookie = req.cookie(COOKIE);
            let presented = admin::Presented {
                authorization: req.headers().contains_key(header::AUTHORIZATION),
                cookie: cookie.as_ref().map(|c| c.value()),
                csrf: req.headers().get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default(),
                state_changing: !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS),
                ip: peer_of(&req).ip,
            };
            admin::authenticate(&state, presented).await
        })
    }
}
