//! `POST /v1/collections`: the record of a sample collection, made on the tablet.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use validator::{Validate, ValidationError};

use crate::common::IdentityCheckMethod;
use crate::personal::redact_option;
use crate::rules;

/// Most tubes in one collection.
pub const MAX_TUBES: u64 = 20;
/// Longest `comments`, in characters.
pub const MAX_COMMENTS_LEN: u64 = 1000;

/// Why a string is not a tube barcode; never repeats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TubeBarcodeError {
    /// Not 8 to 20 characters.
    #[error("a tube barcode has 8 to 20 characters, found {found}")]
    Length {
        /// How many characters were found.
        found: usize,
    },
    /// A character other than A-Z, 0-9 and '-'.
    #[error("a tube barcode holds only A-Z, 0-9 and '-'")]
    Characters,
}

/// The barcode printed on a tube label: 8 to 20 characters among A-Z, 0-9 and '-'.
///
/// [`TubeBarcode::parse`] is the checked constructor. Deserialization only trims and upper-cases, so
/// that a misread barcode in a request comes back as a 422 with a pointer (`/tubes/3/barcode`) from the
/// enclosing request's `Validate`, not as an opaque JSON error; handlers see a barcode after
/// validation, hence a valid one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, examples("LAB2025-000123"), description = "Barcode of a tube label: 8 to 20 characters among A-Z, 0-9 and '-'."))]
pub struct TubeBarcode(String);

impl TubeBarcode {
    /// Trims, upper-cases and checks a scanned or typed barcode.
    pub fn parse(input: &str) -> Result<Self, TubeBarcodeError> {
        let candidate = Self::normalized(input);
        candidate.check()?;
        Ok(candidate)
    }

    /// The barcode, upper-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the barcode has the documented shape (always true after [`TubeBarcode::parse`]).
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    fn normalized(input: &str) -> Self {
        Self(input.trim().to_uppercase())
    }

    fn check(&self) -> Result<(), TubeBarcodeError> {
        let found = self.0.chars().count();
        if !(8..=20).contains(&found) {
            return Err(TubeBarcodeError::Length { found });
        }
        if !self
            .0
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(TubeBarcodeError::Characters);
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for TubeBarcode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(Self::normalized(&raw))
    }
}

fn valid_barcode(barcode: &TubeBarcode) -> Result<(), ValidationError> {
    barcode.check().map_err(|error| {
        let message = match error {
            TubeBarcodeError::Length { .. } => "must be 8 to 20 characters",
            TubeBarcodeError::Characters => "must use only A-Z, 0-9 and '-'",
        };
        rules::fail("tube_barcode", message)
    })
}

/// One tube drawn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tube {
    /// Barcode on the tube label (8 to 20 characters among A-Z, 0-9, '-'; sent upper-case).
    #[validate(custom(function = valid_barcode))]
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 8, max_length = 20, pattern = "^[A-Z0-9-]{8,20}$"))]
    pub barcode: TubeBarcode,
    /// Tube type code from the tube plan (2 to 24 characters among A-Z, 0-9, '_').
    #[validate(custom(function = rules::tube_type))]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 2, max_length = 24, pattern = "^[A-Z0-9_]{2,24}$", examples("EDTA"))
    )]
    pub tube_type: String,
}

/// A sample collection, recorded once whatever the retries: its `id` is made by the tablet.
///
/// Who collected it, with which device and for which lab come from the access token, never from the
/// body, which is why unknown fields such as `lab_id` or `collected_by` are refused.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = identity_check_is_consistent, skip_on_field_errors = false))]
#[validate(schema(function = barcodes_are_unique, skip_on_field_errors = false))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCollection {
    /// Collection id made by the tablet (UUID v7 recommended: time-ordered); also a good `Idempotency-Key`.
    #[validate(custom(function = rules::not_nil))]
    pub id: Uuid,
    /// The patient sampled.
    #[validate(custom(function = rules::not_nil))]
    pub patient_id: Uuid,
    /// The appointment, if the collection happened during one.
    #[serde(default)]
    pub appointment_id: Option<Uuid>,
    /// The prescription sampled.
    #[validate(custom(function = rules::not_nil))]
    pub prescription_id: Uuid,
    /// When the first tube was drawn, tablet clock (RFC 3339 with offset).
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    /// Whether the sampler checked the patient's identity.
    pub identity_checked: bool,
    /// How; required when `identity_checked` is true, refused otherwise.
    #[serde(default)]
    pub identity_check_method: Option<IdentityCheckMethod>,
    /// The tubes drawn: 1 to 20, each barcode once.
    #[validate(length(min = 1, max = 20, message = "must hold 1 to 20 tubes"), nested)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 20))]
    pub tubes: Vec<Tube>,
    /// Sampler's remarks (difficult draw, haemolysis risk…), up to 1000 characters; no control
    /// character but line breaks and tabs.
    #[serde(default)]
    #[validate(
        length(max = 1000, message = "must be at most 1000 characters"),
        custom(function = rules::free_text)
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 1000, pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$")
    )]
    pub comments: Option<String>,
}

impl fmt::Debug for NewCollection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCollection")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("appointment_id", &self.appointment_id)
            .field("prescription_id", &self.prescription_id)
            .field("collected_at", &self.collected_at)
            .field("identity_checked", &self.identity_checked)
            .field("identity_check_method", &self.identity_check_method)
            .field("tubes", &self.tubes)
            .field("comments", &redact_option(&self.comments))
            .finish()
    }
}

/// A struct-level error that points at one field (see `Problem::from_validation`).
fn error_at(pointer: String, code: &'static str, message: &'static str) -> ValidationError {
    let mut error = rules::fail(code, message);
    error.add_param(Cow::Borrowed("pointer"), &pointer);
    error
}

fn identity_check_is_consistent(collection: &NewCollection) -> Result<(), ValidationError> {
    match (collection.identity_checked, collection.identity_check_method) {
        (true, None) => Err(error_at(
            "/identity_check_method".into(),
            "identity_check_method_required",
            "is required when identity_checked is true",
        )),
        (false, Some(_)) => Err(error_at(
            "/identity_check_method".into(),
            "identity_check_method_unexpected",
            "must be absent when identity_checked is false",
        )),
        _ => Ok(()),
    }
}

fn barcodes_are_unique(collection: &NewCollection) -> Result<(), ValidationError> {
    for (index, tube) in collection.tubes.iter().enumerate() {
        if collection.tubes[..index]
            .iter()
            .any(|earlier| earlier.barcode == tube.barcode)
        {
            return Err(error_at(
                format!("/tubes/{index}/barcode"),
                "duplicate_barcode",
                "is already used by an earlier tube of this collection",
            ));
        }
    }
    Ok(())
}

/// Where the collection stands on its way to the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RelayState {
    /// Stored at the gateway, waiting in the outbox (e.g. cloud unreachable).
    Queued,
    /// Already acknowledged by the cloud.
    Sent,
}

/// The gateway's acknowledgement: the collection is durably stored (and in the outbox).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionReceipt {
    /// The collection id sent.
    pub id: Uuid,
    /// When the gateway stored it (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// Relay state at the time of the answer.
    pub relay: RelayState,
}

/// `POST /v1/collections/{id}/void`: a collection recorded by mistake is voided, never deleted; the
/// void is its own record, relayed to the cloud and shown to the LIS (the Specimen becomes
/// `entered-in-error`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionVoid {
    /// Why (mandatory), 3 to 500 characters; no control character but line breaks and tabs.
    #[validate(
        length(min = 3, max = 500, message = "must be 3 to 500 characters"),
        custom(function = rules::free_text)
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 3,
            max_length = 500,
            pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
        )
    )]
    pub reason: String,
}

impl fmt::Debug for CollectionVoid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectionVoid").finish_non_exhaustive()
    }
}

/// The gateway's acknowledgement of a void.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoidReceipt {
    /// The collection voided.
    pub collection_id: Uuid,
    /// When the gateway stored the void (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub voided_at: OffsetDateTime,
    /// Relay state at the time of the answer.
    pub relay: RelayState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Problem;

    fn valid() -> NewCollection {
        crate::fixtures::collection()
    }

    fn pointers(collection: &NewCollection) -> Vec<String> {
        let errors = collection.validate().expect_err("should be invalid");
        Problem::from_validation(&errors)
            .errors
            .into_iter()
            .map(|e| e.pointer)
            .collect()
    }

    #[test]
    fn barcode_parse() {
        assert_eq!(
            TubeBarcode::parse(" lab2025-000123\r\n").expect("valid").as_str(),
            "LAB2025-000123"
        );
        assert_eq!(TubeBarcode::parse("SHORT"), Err(TubeBarcodeError::Length { found: 5 }));
        assert_eq!(
            TubeBarcode::parse(&"A".repeat(21)),
            Err(TubeBarcodeError::Length { found: 21 })
        );
        assert_eq!(TubeBarcode::parse("LAB_2025_0001"), Err(TubeBarcodeError::Characters));
        assert_eq!(TubeBarcode::parse("LAB 2025 0001"), Err(TubeBarcodeError::Characters));
        assert!(!TubeBarcodeError::Characters.to_string().contains("LAB"));
        let lenient: TubeBarcode = serde_json::from_str(r#"" ab-12345678 ""#).expect("lenient");
        assert_eq!(lenient.as_str(), "AB-12345678");
        assert!(lenient.is_valid());
    }

    #[test]
    fn valid_collection_passes() {
        valid().validate().expect("valid");
    }

    #[test]
    fn twenty_one_tubes_are_refused() {
        let mut collection = valid();
        collection.tubes = (0..21)
            .map(|n| Tube {
                barcode: TubeBarcode::parse(&format!("LAB-{n:08}")).expect("barcode"),
                tube_type: "EDTA".into(),
            })
            .collect();
        assert_eq!(pointers(&collection), ["/tubes"]);
        collection.tubes.clear();
        assert_eq!(pointers(&collection), ["/tubes"]);
    }

    #[test]
    fn bad_barcode_and_tube_type_point_into_the_list() {
        let mut collection = valid();
        collection.tubes[1].tube_type = "edta".into();
        collection.tubes.push(Tube {
            barcode: TubeBarcode::normalized("SECRET?1234"),
            tube_type: "SST".into(),
        });
        collection.tubes.push(Tube {
            barcode: TubeBarcode::normalized("X1"),
            tube_type: "SST".into(),
        });
        assert_eq!(
            pointers(&collection),
            ["/tubes/1/tube_type", "/tubes/2/barcode", "/tubes/3/barcode"]
        );
        let problem = Problem::from_validation(&collection.validate().expect_err("invalid"));
        let text = serde_json::to_string(&problem).expect("json");
        assert!(!text.contains("SECRET") && !text.contains("edta"), "{text}");
        assert_eq!(problem.errors[1].code, "tube_barcode");
    }

    #[test]
    fn duplicate_barcodes_are_refused_even_with_other_case() {
        let mut collection = valid();
        let copy: TubeBarcode =
            serde_json::from_value(serde_json::json!(collection.tubes[0].barcode.as_str().to_lowercase()))
                .expect("barcode");
        collection.tubes[1].barcode = copy;
        let problem = Problem::from_validation(&collection.validate().expect_err("duplicate"));
        assert_eq!(problem.errors.len(), 1);
        assert_eq!(problem.errors[0].pointer, "/tubes/1/barcode");
        assert_eq!(problem.errors[0].code, "duplicate_barcode");
    }

    #[test]
    fn identity_check_needs_a_method_and_only_then() {
        let mut collection = valid();
        collection.identity_check_method = None;
        assert_eq!(pointers(&collection), ["/identity_check_method"]);
        collection.identity_checked = false;
        collection.validate().expect("not checked, no method");
        collection.identity_check_method = Some(IdentityCheckMethod::HealthCard);
        assert_eq!(pointers(&collection), ["/identity_check_method"]);
    }

    #[test]
    fn long_comments_and_nil_ids_are_refused() {
        let mut collection = valid();
        collection.comments = Some("c".repeat(1001));
        collection.id = Uuid::nil();
        assert_eq!(pointers(&collection), ["/comments", "/id"]);
        collection.comments = Some("c".repeat(1000));
        collection.id = Uuid::from_u128(9);
        collection.validate().expect("1000 characters");
    }

    #[test]
    fn server_owned_fields_are_refused_by_serde() {
        let valid_json = serde_json::to_value(valid()).expect("json");
        serde_json::from_value::<NewCollection>(valid_json.clone()).expect("valid body");
        for (field, value) in [
            ("lab_id", serde_json::json!("0190a000-0000-7000-8000-000000000001")),
            ("status", serde_json::json!("sent")),
            (
                "collected_by",
                serde_json::json!("0190a000-0000-7000-8000-000000000002"),
            ),
            ("device_id", serde_json::json!("0190a000-0000-7000-8000-000000000003")),
        ] {
            let mut body = valid_json.clone();
            body[field] = value;
            let error = serde_json::from_value::<NewCollection>(body).expect_err(field);
            assert!(
                error.to_string().contains(&format!("unknown field `{field}`")),
                "{error}"
            );
        }
        let mut body = valid_json;
        body["tubes"][0]["volume_ul"] = serde_json::json!(4000);
        assert!(
            serde_json::from_value::<NewCollection>(body).is_err(),
            "unknown tube field"
        );
    }

    #[test]
    fn debug_hides_comments() {
        let mut collection = valid();
        collection.comments = Some("patiente très anxieuse".into());
        assert!(!format!("{collection:?}").contains("anxieuse"));
    }
}
