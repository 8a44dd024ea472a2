//! Gateway authentication: the client certificate of the mutual-TLS connection, looked up by its
//! SHA-256 fingerprint in `gateways` (recorded by `api provision-gateway`). The certificate names
//! the lab; the path must name the same one.

use actix_web::HttpRequest;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{gateways, labs};
use labedge_schema::db::PgPool;
use labedge_service::http::{check_json_headers, parse_json, read_body};
use labedge_service::tls::{peer_certificate, sha256_hex};
use mobile_contracts::problem::ErrorCode;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ApiError;

/// How often, at most, a gateway's `last_contact_at` is written.
const CONTACT_RESOLUTION: time::Duration = time::Duration::minutes(1);

/// An authenticated gateway and its lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayCredential {
    /// The credential (`gateways.id`).
    pub gateway_id: Uuid,
    /// Its lab.
    pub lab_id: Uuid,
    /// Its lab's code, as in the paths.
    pub lab_code: String,
}

/// Why a certificate was refused (logged only: every case answers the same 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The connection presented no client certificate.
    NoCertificate,
    /// No credential has this fingerprint.
    Unknown,
    /// The credential was revoked.
    Revoked,
    /// The certificate's validity has ended.
    Expired,
}

impl Refusal {
    /// The reason as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_certificate",
            Refusal::Unknown => "unknown_certificate",
            Refusal::Revoked => "revoked",
            Refusal::Expired => "expired",
        }
    }
}

type Found = (
    Uuid,
    Uuid,
    String,
    Option<OffsetDateTime>,
    OffsetDateTime,
    Option<OffsetDateTime>,
);

/// Looks a certificate (DER) up: the credential when it is known, not revoked and not expired at
/// `now`, and when it last made contact.
pub async fn lookup(
    conn: &mut AsyncPgConnection,
    der: &[u8],
    now: OffsetDateTime,
) -> QueryResult<Result<(GatewayCredential, Option<OffsetDateTime>), Refusal>> {
    let fingerprint = sha256_hex(der);
    let found: Option<Found> = gateways::table
        .inner_join(labs::table)
        .filter(gateways::cert_sha256.eq(&fingerprint))
        .select((
            gateways::id,
            gateways::lab_id,
            labs::code,
            gateways::revoked_at,
            gateways::cert_not_after,
            gateways::last_contact_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(match found {
        None => Err(Refusal::Unknown),
        Some((.., Some(_), _, _)) => Err(Refusal::Revoked),
        Some((.., not_after, _)) if not_after <= now => Err(Refusal::Expired),
        Some((gateway_id, lab_id, lab_code, None, _, last_contact)) => Ok((
            GatewayCredential {
                gateway_id,
                lab_id,
                lab_code,
            },
            last_contact,
        )),
    })
}

/// A gateway's POST: authenticates it ([`authorize`], with a connection given back at once), then
/// reads its JSON body of at most `max_bytes`. The body of an unauthenticated caller or of another
/// lab's path is refused unread.
pub async fn authorized_body<T: serde::de::DeserializeOwned>(
    pool: &PgPool,
    req: &HttpRequest,
    lab_code: &str,
    payload: actix_web::web::Payload,
    max_bytes: usize,
) -> Result<(GatewayCredential, T), ApiError> {
    let credential = {
        let mut conn = pool.get().await?;
        authorize(req, &mut conn, lab_code).await?
    };
    check_json_headers(req, max_bytes)?;
    let body = read_body(payload.into_inner(), max_bytes).await?;
    Ok((credential, parse_json(&body)?))
}

/// Authenticates the request's gateway and checks that `lab_code` (from the path) is its lab: 401
/// `invalid_credentials` without a valid credential, 403 `forbidden` for another lab's path. Every
/// refusal is a security event. Records the contact, at most once a minute per gateway.
pub async fn authorize(
    req: &HttpRequest,
    conn: &mut AsyncPgConnection,
    lab_code: &str,
) -> Result<GatewayCredential, ApiError> {
    let now = OffsetDateTime::now_utc();
    let found = match peer_certificate(req) {
        None => Err(Refusal::NoCertificate),
        Some(cert) => lookup(conn, cert.0.as_ref(), now).await?,
    };
    let (credential, last_contact) = match found {
        Ok(found) => found,
        Err(refusal) => {
            security_event(None, lab_code, refusal.as_str());
            return Err(ApiError::detail(
                ErrorCode::InvalidCredentials,
                "a valid gateway client certificate is required",
            ));
        }
    };
    if credential.lab_code != lab_code {
        security_event(Some(&credential), lab_code, "other_lab");
        return Err(ApiError::detail(
            ErrorCode::Forbidden,
            "this credential is not for that lab",
        ));
    }
    if last_contact.is_none_or(|at| now - at >= CONTACT_RESOLUTION) {
        touch(conn, credential.gateway_id).await;
    }
    Ok(credential)
}

/// Writes `last_contact_at`, best effort: a standby database refuses writes, and the feed must still
/// answer from it.
async fn touch(conn: &mut AsyncPgConnection, gateway_id: Uuid) {
    let written = diesel::update(gateways::table.filter(gateways::id.eq(gateway_id)))
        .set(gateways::last_contact_at.eq(diesel::dsl::now))
        .execute(conn)
        .await;
    if let Err(e) = written {
        tracing::debug!(gateway.id = %gateway_id, error = %e, "gateway contact not recorded");
    }
}

fn security_event(credential: Option<&GatewayCredential>, lab_code: &str, reason: &'static str) {
    // The path is the client's text: logged only when it has the shape of a lab code.
    let lab_code = if lab_code.len() <= 16 && lab_code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        lab_code
    } else {
        "(not a lab code)"
    };
    let gateway = credential.map(|c| c.gateway_id.to_string()).unwrap_or_default();
    let credential_lab = credential.map(|c| c.lab_code.as_str()).unwrap_or_default();
    tracing::event!(
        target: "security",
        tracing::Level::WARN,
        event.kind = "security",
        event.category = "authentication",
        event.action = "gateway_refused",
        event.outcome = "failure",
        event.reason = reason,
        gateway.id = %gateway,
        gateway.lab = %credential_lab,
        requested.lab = %lab_code,
        "security event"
    );
    metrics::counter!(
        "labedge_security_events_total",
        "action" => "gateway_refused",
        "outcome" => "failure",
        "reason" => reason
    )
    .increment(1);
}
