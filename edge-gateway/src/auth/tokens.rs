//! Access tokens: short-lived JWTs, HS256 only, validated in full (issuer, audience, `exp`, `nbf`,
//! `iat`, a `kid` of the ring, a small leeway). The claims name the staff member, the device, the
//! lab, the role, the session and, for a tablet that authenticated with its client certificate, the
//! certificate it is bound to (RFC 8705 `cnf.x5t#S256`).

use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use mobile_contracts::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::keys::KeyRing;
use crate::config::AuthConfig;

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The staff member.
    pub sub: Uuid,
    /// The enrolled device.
    pub device: Uuid,
    /// The lab code.
    pub lab: String,
    /// The staff member's role.
    pub role: Role,
    /// The session (refresh token family).
    pub sid: Uuid,
    /// This token's id.
    pub jti: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Issuer: this gateway.
    pub iss: String,
    /// Audience: this gateway's tablet API.
    pub aud: String,
    /// The client certificate the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 8705 confirmation claim.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    /// base64url SHA-256 of the DER certificate.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

impl Confirmation {
    /// The confirmation of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        Self {
            x5t_s256: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
        }
    }
}

/// Why a token was refused (logged and counted; the client only ever sees `invalid_token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Missing.
    Missing,
    /// Sent in the query string, where it ends up in logs and browser history.
    InQuery,
    /// Not a JWT.
    Malformed,
    /// Another algorithm than HS256 (`none` included).
    Algorithm,
    /// No `kid`, or one not in the ring.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// Expired.
    Expired,
    /// Not valid yet.
    NotYetValid,
    /// Another issuer (another lab's gateway).
    Issuer,
    /// Another audience.
    Audience,
    /// A required claim is missing or malformed.
    Claims,
    /// Bound to a client certificate that this connection did not present.
    CertificateMismatch,
    /// Without `cnf`, for a device that the device record says is certificate-bound: the gateway never
    /// issues such a token, so it is forged or stale.
    CnfMissing,
    /// Its session, staff member or device was revoked.
    Revoked,
}

impl Refusal {
    /// A fixed word for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::InQuery => "in_query_string",
            Refusal::Malformed => "malformed",
            Refusal::Algorithm => "algorithm",
            Refusal::UnknownKey => "unknown_kid",
            Refusal::Signature => "signature",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Issuer => "issuer",
            Refusal::Audience => "audience",
            Refusal::Claims => "claims",
            Refusal::CertificateMismatch => "certificate_mismatch",
            Refusal::CnfMissing => "cnf_missing",
            Refusal::Revoked => "revoked",
        }
    }
}

/// Issues and verifies this gateway's access tokens.
pub struct Tokens {
    keys: Arc<KeyRing>,
    validation: Validation,
    issuer: String,
    audience: String,
    lab: String,
    ttl_s: i64,
    leeway_s: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: u32,
}

impl Tokens {
    /// The token service of the gateway of `lab`.
    pub fn new(keys: Arc<KeyRing>, lab: &str, config: &AuthConfig) -> Self {
        let issuer = format!("labedge-gateway/{lab}");
        let audience = format!("labedge-tablet-api/{lab}");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = config.leeway_s;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            keys,
            validation,
            issuer,
            audience,
            lab: lab.to_owned(),
            ttl_s: i64::try_from(config.access_token_ttl_s).unwrap_or(900),
            leeway_s: i64::try_from(config.leeway_s).unwrap_or(30),
        }
    }

    /// Issues a token for a staff member's session on a device.
    pub fn issue(
        &self,
        staff: Uuid,
        device: Uuid,
        role: Role,
        session: Uuid,
        cnf: Option<Confirmation>,
    ) -> anyhow::Result<Issued> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            sub: staff,
            device,
            lab: self.lab.clone(),
            role,
            sid: session,
            jti: Uuid::now_v7(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_s,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            cnf,
        };
        let (kid, key) = self
            .keys
            .signing()
            .ok_or_else(|| anyhow::anyhow!("the signing key ring is unavailable"))?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid);
        let token = jsonwebtoken::encode(&header, &claims, &key)?;
        Ok(Issued {
            token,
            expires_in: u32::try_from(self.ttl_s).unwrap_or(900),
        })
    }

    /// Verifies a token: signature by a key of the ring, then every claim.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(Refusal::Algorithm);
        }
        let kid = header.kid.ok_or(Refusal::UnknownKey)?;
        let key = self.keys.verifying(&kid).ok_or(Refusal::UnknownKey)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => Refusal::Signature,
            ErrorKind::ExpiredSignature => Refusal::Expired,
            ErrorKind::ImmatureSignature => Refusal::NotYetValid,
            ErrorKind::InvalidIssuer => Refusal::Issuer,
            ErrorKind::InvalidAudience => Refusal::Audience,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Refusal::Algorithm,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => Refusal::Claims,
            _ => Refusal::Malformed,
        })?;
        let claims = data.claims;
        // jsonwebtoken does not look at iat; a token issued in the future was not issued by us.
        if claims.iat > OffsetDateTime::now_utc().unix_timestamp() + self.leeway_s {
            return Err(Refusal::NotYetValid);
        }
        if claims.lab != self.lab {
            return Err(Refusal::Issuer);
        }
        Ok(claims)
    }
}
