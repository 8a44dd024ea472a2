//! `POST /v1/prescriptions`: a prescription the patient brings on paper, photographed or scanned at
//! the desk. It is `provisional` until the lab information system transcribes it (its exams are not
//! known before); the document goes to the cloud, then to the LIS as a FHIR `DocumentReference`.
//!
//! The request is `multipart/form-data` with exactly two parts: `prescription`, the JSON
//! [`NewPaperPrescription`], and `file`, the photo or scan (JPEG, PNG or PDF, at most
//! [`MAX_DOCUMENT_BYTES`]). The gateway reads the file's type from its first bytes, never from the
//! part's declared type or file name.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;
use validator::Validate;

use crate::collections::RelayState;

/// The largest document: a phone photo of a page, or a scan of a few pages.
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;

/// The name of the JSON part.
pub const PRESCRIPTION_PART: &str = "prescription";
/// The name of the file part.
pub const FILE_PART: &str = "file";

/// A paper prescription; the id is made by the tablet. `Debug` shows the ids only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPaperPrescription {
    /// Prescription id (UUID, made by the tablet).
    pub id: Uuid,
    /// The patient: one the gateway holds (a walk-in registered at the desk included).
    pub patient_id: Uuid,
    /// The prescriber's name as printed, when readable.
    #[serde(default)]
    #[validate(length(min = 1, max = 200))]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub prescriber_name: Option<String>,
    /// The prescriber's RPPS number (11 digits), when printed.
    #[serde(default)]
    #[validate(custom(function = "crate::paper_prescriptions::rpps"))]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{11}$", examples("10003456789")))]
    pub prescriber_rpps: Option<String>,
    /// Date written on the prescription (`YYYY-MM-DD`).
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub issued_on: Date,
    /// The desk's notes (at most 2,000 characters).
    #[serde(default)]
    #[validate(length(max = 2000))]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    pub notes: Option<String>,
}

impl fmt::Debug for NewPaperPrescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPaperPrescription")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .finish_non_exhaustive()
    }
}

fn rpps(value: &str) -> Result<(), validator::ValidationError> {
    if value.len() == 11 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(validator::ValidationError::new("pattern").with_message("11 digits".into()))
    }
}

/// Where a paper prescription stands: provisional until the LIS transcribes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PaperPrescriptionStatus {
    /// Recorded at the desk; the LIS has not transcribed it yet.
    Provisional,
}

/// The types of document accepted, read from the file's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DocumentMediaType {
    /// A JPEG photo.
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// A PNG image.
    #[serde(rename = "image/png")]
    Png,
    /// A PDF scan.
    #[serde(rename = "application/pdf")]
    Pdf,
}

impl DocumentMediaType {
    /// The type whose signature `bytes` start with, if any: JPEG `FF D8 FF`, PNG's eight-byte
    /// signature, PDF `%PDF-`.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else {
            None
        }
    }

    /// The media type's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Pdf => "application/pdf",
        }
    }

    /// The type of this name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Jpeg, Self::Png, Self::Pdf]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// The document as the gateway stored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentReceipt {
    /// Document id (made by the gateway; the LIS's `DocumentReference` and `Binary` id).
    pub id: Uuid,
    /// Size in bytes.
    pub size_bytes: u32,
    /// The type read from the file's bytes.
    pub media_type: DocumentMediaType,
    /// SHA-256 of the bytes, lowercase hex.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: String,
}

/// The gateway's acknowledgement of a paper prescription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaperPrescriptionReceipt {
    /// The prescription id sent.
    pub id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// `provisional`.
    pub status: PaperPrescriptionStatus,
    /// The document.
    pub document: DocumentReceipt,
    /// Relay state at the time of the answer.
    pub relay: RelayState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_read_from_the_first_bytes() {
        assert_eq!(
            DocumentMediaType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(DocumentMediaType::Jpeg)
        );
        assert_eq!(
            DocumentMediaType::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(DocumentMediaType::Png)
        );
        assert_eq!(DocumentMediaType::sniff(b"%PDF-1.7\n"), Some(DocumentMediaType::Pdf));
        assert_eq!(DocumentMediaType::sniff(b"hello, not a pdf"), None);
        assert_eq!(DocumentMediaType::sniff(b"%PD"), None);
        assert_eq!(DocumentMediaType::sniff(b""), None);
    }

    #[test]
    fn the_prescription_part_is_checked() {
        let mut body: NewPaperPrescription = serde_json::from_value(serde_json::json!({
            "id": Uuid::nil(), "patient_id": Uuid::nil(), "issued_on": "2026-12-01",
            "prescriber_rpps": "10003456789",
        }))
        .unwrap();
        assert!(body.validate().is_ok());
        body.prescriber_rpps = Some("1000345678X".into());
        assert!(body.validate().is_err());
        assert!(
            serde_json::from_value::<NewPaperPrescription>(serde_json::json!({
                "id": Uuid::nil(), "patient_id": Uuid::nil(), "issued_on": "2026-12-01", "exams": []
            }))
            .is_err()
        );
        assert!(!format!("{body:?}").contains("1000345678X"));
    }
}
