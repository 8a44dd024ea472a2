//! Enrollment: a lab admin creates a short one-time code; a tablet trades it for a device id and a
//! device secret (and, when it sends a CSR, a client certificate from the lab's CA, for mutual TLS).

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use labedge_service::pki::IssuedCert;
use labedge_service::secrets::{fill_random, hash_secret_queued, random_token};
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{EnrollRequest, EnrollResponse, Secret};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::Peer;
use super::sessions::limit_attempts;
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;
use crate::store::devices::{self, NewDevice};
use crate::store::enrollment_codes;

/// Letters and digits a person reads without confusion (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Eight characters: about 40 bits, against a ten-minute life and rate-limited attempts.
const CODE_LENGTH: usize = 8;

/// A new one-time code.
#[derive(Debug, serde::Serialize)]
pub struct NewCode {
    /// The code to type or scan on the tablet.
    pub code: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The same code as a QR code for the tablet's camera (`labedge://enroll?code=…&lab=…`), SVG.
    pub qr_svg: Option<String>,
}

/// What is stored of a one-time code (enrollment or PIN reset): its SHA-256, as typed in capitals.
pub(crate) fn code_hash(code: &str) -> Vec<u8> {
    Sha256::digest(code.trim().to_ascii_uppercase().as_bytes()).to_vec()
}

/// A new one-time code of [`CODE_LENGTH`] characters of [`CODE_ALPHABET`].
pub(crate) fn one_time_code() -> String {
    let mut bytes = [0u8; CODE_LENGTH];
    fill_random(&mut bytes);
    // 256 is not a multiple of 31: the tiny bias does not matter against a short-lived code.
    bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()]))
        .collect()
}

/// Creates an enrollment code on behalf of the lab admin `admin`.
pub async fn create_code(state: &AppState, admin: Uuid) -> Result<NewCode, ApiError> {
    let code = one_time_code();
    let expires_at = OffsetDateTime::now_utc()
        + Duration::minutes(i64::try_from(state.config.auth.enrollment_code_ttl_minutes).unwrap_or(10));
    let mut conn = state.pool.get().await?;
    enrollment_codes::insert(&mut conn, &code_hash(&code), admin, expires_at).await?;
    state
        .security
        .emit(SecurityEvent::success(Action::EnrollmentCode).staff(admin));
    let qr_svg = crate::console::qr::svg(&crate::console::qr::enrollment_uri(&code, &state.config.lab));
    Ok(NewCode {
        code,
        expires_at,
        qr_svg,
    })
}

fn invalid_code(state: &AppState, ip: Option<std::net::IpAddr>) -> ApiError {
    state
        .security
        .emit(SecurityEvent::failure(Action::Enroll, "invalid_code").source(ip));
    ProblemError::new(ErrorCode::EnrollmentCodeInvalid)
        .detail("the enrollment code is unknown, used or expired: ask the lab admin for a new one")
        .into()
}

/// `POST /v1/devices/enroll`: a live code, then the certificate (when the tablet sent a CSR) and the
/// secret, then the code spent and the device registered in one transaction.
pub async fn enroll(state: &AppState, peer: &Peer, body: EnrollRequest) -> Result<EnrollResponse, ApiError> {
    let ip = peer.ip;
    limit_attempts(state, "enroll", None, ip).await?;
    let lab = state.lab().await?;
    let device_id = Uuid::now_v7();
    let hash = code_hash(&body.code);
    let mut conn = state.pool.get().await?;
    // The code before anything costly: without a live code, no certificate is signed and no secret
    // hashed (an argon2 hash is 19 MiB and tens of milliseconds, a signature is the lab CA's). The
    // code is spent below, by the statement that checks it again.
    if !enrollment_codes::is_live(&mut conn, &hash, OffsetDateTime::now_utc()).await? {
        return Err(invalid_code(state, ip));
    }
    // Then the certificate: a CSR that cannot be signed must not spend the code.
    let certificate = match &body.csr_pem {
        Some(csr) => Some(sign_certificate(state, csr, device_id, &lab.code)?),
        None => None,
    };
    let secret = random_token(32);
    let secret_hash = hash_secret_queued(secret.clone()).await.map_err(anyhow::Error::from)?;
    let device = NewDevice {
        id: device_id,
        label: body.label.clone(),
        app_version: body.app_version.clone(),
        secret_hash,
        cert_sha256: certificate.as_ref().map(|c| c.sha256_hex.clone()),
    };
    // Spent by a concurrent enrollment since the check above.
    let Some(created_by) = spend_code_and_register(&mut conn, hash, device).await? else {
        return Err(invalid_code(state, ip));
    };
    state.security.emit(
        SecurityEvent::success(Action::Enroll)
            .device(device_id)
            .staff(created_by)
            .source(ip),
    );
    Ok(EnrollResponse {
        device_id,
        device_secret: Secret::new(secret),
        lab,
        ca_certificate_pem: certificate.as_ref().map(|_| state.lab_ca.cert_pem().to_owned()),
        client_certificate_pem: certificate.map(|c| c.cert_pem),
    })
}

/// The tablet's client certificate, signed by the lab CA (422 naming `/csr_pem` if it cannot be).
fn sign_certificate(state: &AppState, csr: &str, device_id: Uuid, lab_code: &str) -> Result<IssuedCert, ProblemError> {
    state
        .lab_ca
        .sign_csr(
            csr,
            &device_id.to_string(),
            lab_code,
            state.config.auth.device_cert_days,
        )
        .map_err(|_| {
            ProblemError::new(ErrorCode::ValidationFailed).errors(vec![FieldError::new(
                "/csr_pem",
                "invalid",
                "not a certificate signing request this gateway can sign",
            )])
        })
}

/// Spends the code and registers the device, in one transaction; returns who created the code, or
/// `None` if the code was spent (or expired) meanwhile.
async fn spend_code_and_register(
    conn: &mut AsyncPgConnection,
    hash: Vec<u8>,
    device: NewDevice,
) -> QueryResult<Option<Uuid>> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        // Single use: the code is spent by the same statement that checks it.
        let Some(creator) = enrollment_codes::spend(conn, &hash, device.id, OffsetDateTime::now_utc()).await? else {
            return Ok(None);
        };
        devices::insert(conn, &device, creator).await?;
        Ok(Some(creator))
    })
    .await
}
