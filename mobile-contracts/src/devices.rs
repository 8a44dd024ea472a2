//! `POST /v1/devices/enroll`: a tablet trades a one-time code for its device identity.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use crate::common::LabRef;
use crate::personal::{Secret, redact_option};
use crate::rules::{self, Checks};

/// What a CSR sent at enrollment must start with (PEM, PKCS#10).
pub const CSR_PEM_HEADER: &str = "-----BEGIN CERTIFICATE REQUEST-----";

/// Largest CSR accepted, in bytes.
pub const CSR_PEM_MAX_LEN: usize = 8192;

/// Enrollment of a tablet with the one-time code a lab admin generated.
///
/// The tablet should upper-case the code and drop spaces before sending it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// One-time enrollment code: 6 to 12 characters among A-Z and 2-9.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 6, max_length = 12, pattern = "^[A-Z2-9]{6,12}$", examples("K7PQ4XZM"))
    )]
    pub code: String,
    /// Name shown in the admin's device list, 1 to 64 characters, no control character.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$",
            examples("Tablette tournée 3")
        )
    )]
    pub label: String,
    /// Version of the tablet app, 1 to 32 characters, no control character.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 32,
            pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$",
            examples("2.4.1")
        )
    )]
    pub app_version: Option<String>,
    /// PKCS#10 request in PEM, when the gateway issues client certificates for mutual TLS.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 8192, pattern = "^-----BEGIN CERTIFICATE REQUEST-----")
    )]
    pub csr_pem: Option<String>,
}

impl fmt::Debug for EnrollRequest {
    // The code is a credential until it is used.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("code", &crate::personal::REDACTED)
            .field("label", &self.label)
            .field("app_version", &self.app_version)
            .field("csr_pem", &redact_option(&self.csr_pem))
            .finish()
    }
}

impl Validate for EnrollRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        checks.field("code", rules::enrollment_code(&self.code));
        checks.field("label", rules::label(&self.label, 1, 64));
        if let Some(version) = &self.app_version {
            checks.field("app_version", rules::label(version, 1, 32));
        }
        if let Some(csr) = &self.csr_pem {
            checks.field(
                "csr_pem",
                rules::ensure(
                    csr.len() <= CSR_PEM_MAX_LEN && csr.trim_start().starts_with(CSR_PEM_HEADER),
                    "csr_pem",
                    "must be a PEM certificate request of at most 8192 bytes",
                ),
            );
        }
        checks.finish()
    }
}

/// The identity of a newly enrolled device. Shown once: the secret is stored only hashed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    /// Device id, sent with every login.
    pub device_id: Uuid,
    /// Device secret, sent with every login and refresh; keep it in the platform keystore.
    pub device_secret: Secret,
    /// The lab the device now belongs to.
    pub lab: LabRef,
    /// Client certificate signed from `csr_pem`, when one was sent.
    pub client_certificate_pem: Option<String>,
    /// The CA that signs the gateway's server certificate, to pin it.
    pub ca_certificate_pem: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EnrollRequest {
        EnrollRequest {
            code: "K7PQ4XZM".into(),
            label: "Tablette tournée 3".into(),
            app_version: Some("2.4.1".into()),
            csr_pem: Some(format!("{CSR_PEM_HEADER}\nMIIB\n-----END CERTIFICATE REQUEST-----\n")),
        }
    }

    #[test]
    fn valid_request_passes() {
        valid().validate().expect("valid");
    }

    #[test]
    fn each_rule_is_enforced() {
        let mut request = valid();
        request.code = "k7pq".into();
        request.label = "x".repeat(65);
        request.app_version = Some("y".repeat(33));
        request.csr_pem = Some("-----BEGIN CERTIFICATE-----".into());
        let errors = request.validate().expect_err("invalid");
        let fields = errors.field_errors();
        for field in ["code", "label", "app_version", "csr_pem"] {
            assert!(fields.contains_key(field), "{field}");
        }
        let oversized = EnrollRequest {
            csr_pem: Some(format!("{CSR_PEM_HEADER}{}", "A".repeat(8192))),
            ..valid()
        };
        assert!(oversized.validate().is_err());
    }

    #[test]
    fn debug_hides_the_code() {
        let text = format!("{:?}", valid());
        assert!(!text.contains("K7PQ4XZM"), "{text}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let body = r#"{"code":"K7PQ4XZM","label":"t","lab_id":"00000000-0000-0000-0000-000000000001"}"#;
        let error = serde_json::from_str::<EnrollRequest>(body).expect_err("lab_id");
        assert!(error.to_string().contains("unknown field `lab_id`"), "{error}");
    }
}
