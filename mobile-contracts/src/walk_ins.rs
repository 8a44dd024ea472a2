//! `POST /v1/patients`: a patient who walks in without a record, registered at the desk with a
//! provisional identity (the INS traits), `validated` when an identity document was checked.
//!
//! Before creating, the gateway looks for probable duplicates (same birth date and sex, and a birth
//! family name equal once accents and case are folded, or sounding the same). When it finds some it
//! answers 409 `possible_duplicate` with them in `candidates`; the nurse checks each and, when none
//! is the patient, sends the request again with their ids in `confirmed_distinct_from`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationError, ValidationErrors};

use crate::common::Sex;
use crate::nir::Nir;
use crate::personal::{Address, BirthDate, PersonName, PhoneNumber};
use crate::rules::{self, Checks};

/// The identity document the nurse checked (a high-trust document makes the identity `validated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IdentityDocument {
    /// Carte nationale d'identité.
    IdCard,
    /// Passport.
    Passport,
    /// Residence permit (titre de séjour).
    ResidencePermit,
    /// Birth certificate extract (minors).
    BirthCertificate,
    /// Livret de famille (minors).
    FamilyBook,
}

impl IdentityDocument {
    /// The FR Core identity validation mode (`fr-core-cs-mode-validation-identity`).
    pub fn validation_mode(self) -> &'static str {
        match self {
            Self::IdCard => "CN",
            Self::Passport => "PA",
            Self::ResidencePermit => "CS",
            Self::BirthCertificate => "AN",
            Self::FamilyBook => "LE",
        }
    }
}

/// A walk-in patient; the id is made by the tablet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPatient {
    /// Patient id (UUID, made by the tablet).
    pub id: Uuid,
    /// Family name at birth (strict INS trait), 1 to 100 letters, spaces, hyphens and apostrophes.
    #[cfg_attr(feature = "openapi", schema(value_type = String, max_length = 100, pattern = "^[' -]*[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ' -]*$"))]
    pub birth_family_name: PersonName,
    /// All given names at birth, space separated (strict trait).
    #[cfg_attr(feature = "openapi", schema(value_type = String, max_length = 100, pattern = "^[' -]*[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ' -]*$"))]
    pub birth_given_names: PersonName,
    /// First given name at birth; the first of `birth_given_names` when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 100, pattern = "^[' -]*[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ' -]*$"))]
    pub first_given_name: Option<PersonName>,
    /// Family name in use, when different.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 100, pattern = "^[' -]*[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ' -]*$"))]
    pub used_family_name: Option<PersonName>,
    /// Given name in use, when different.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 100, pattern = "^[' -]*[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ' -]*$"))]
    pub used_given_name: Option<PersonName>,
    /// Birth date (strict trait), not in the future.
    pub birth_date: BirthDate,
    /// Sex (strict trait).
    pub sex: Sex,
    /// INSEE code of the place of birth (strict trait): a commune (`13001`, `2A004`) or `99` and a
    /// country code for a birth abroad (`99134`).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([0-9]{2}|2[AB])[0-9]{3}$", examples("13055"))
    )]
    pub birth_place_code: String,
    /// NIR, when the patient gives it: key-checked, and its sex and birth year must match.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[1-478][0-9]{4}([0-9]{2}|2[AB])[0-9]{8}$"))]
    pub nir: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<PhoneNumber>,
    /// Home address.
    #[serde(default)]
    pub address: Option<Address>,
    /// The identity document checked at the desk, if any: the identity is then `validated`.
    #[serde(default)]
    pub identity_document: Option<IdentityDocument>,
    /// Probable duplicates the nurse checked and found to be other people.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub confirmed_distinct_from: Vec<Uuid>,
}

impl NewPatient {
    /// The first given name, as sent or the first of the given names.
    pub fn first_given_name(&self) -> String {
        match &self.first_given_name {
            Some(name) => name.as_str().trim().to_owned(),
            None => self
                .birth_given_names
                .as_str()
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The NIR, parsed (after validation it is valid when present).
    pub fn parsed_nir(&self) -> Option<Nir> {
        self.nir.as_deref().and_then(|n| Nir::parse(n).ok())
    }
}

/// A name of the INS referential: letters (accents allowed), spaces, hyphens, apostrophes.
fn ins_name(name: &PersonName) -> Result<(), ValidationError> {
    let text = name.as_str().trim();
    rules::ensure(
        (1..=100).contains(&rules::char_len(text))
            && text.chars().any(char::is_alphabetic)
            && text.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'')),
        "ins_name",
        "must be 1 to 100 letters, spaces, hyphens or apostrophes",
    )
}

/// An INSEE place code: five digits, Corsica as `2A`/`2B`; `99xxx` abroad; never `00000`.
fn birth_place(code: &str) -> Result<(), ValidationError> {
    let bytes = code.as_bytes();
    let shape = bytes.len() == 5
        && bytes[0].is_ascii_digit()
        && (bytes[1].is_ascii_digit() || (bytes[0] == b'2' && matches!(bytes[1], b'A' | b'B')))
        && bytes[2..].iter().all(u8::is_ascii_digit)
        && code != "00000";
    rules::ensure(
        shape,
        "birth_place_code",
        "must be an INSEE code: 5 characters, 2A/2B for Corsica, 99xxx abroad",
    )
}

fn nir_matches(body: &NewPatient, text: &str) -> Result<(), ValidationError> {
    let nir = Nir::parse(text).map_err(|_| rules::fail("nir", "is not a NIR with a valid key"))?;
    let digits = nir.as_str().as_bytes();
    let sex_ok = match body.sex {
        Sex::M => matches!(digits[0], b'1' | b'3' | b'7'),
        Sex::F => matches!(digits[0], b'2' | b'4' | b'8'),
        Sex::I => true,
    };
    rules::ensure(sex_ok, "nir_sex", "its first digit does not match the sex")?;
    let year = i32::from(digits[1] - b'0') * 10 + i32::from(digits[2] - b'0');
    rules::ensure(
        body.birth_date.get().year().rem_euclid(100) == year,
        "nir_birth_year",
        "its birth year does not match the birth date",
    )
}

impl Validate for NewPatient {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        checks
            .field("id", rules::not_nil(&self.id))
            .field("birth_family_name", ins_name(&self.birth_family_name))
            .field("birth_given_names", ins_name(&self.birth_given_names))
            .field("birth_place_code", birth_place(&self.birth_place_code));
        for (field, name) in [
            ("first_given_name", &self.first_given_name),
            ("used_family_name", &self.used_family_name),
            ("used_given_name", &self.used_given_name),
        ] {
            if let Some(name) = name {
                checks.field(field, ins_name(name));
            }
        }
        let today = time::OffsetDateTime::now_utc().date();
        let born = self.birth_date.get();
        checks.field(
            "birth_date",
            rules::ensure(
                born <= today && born.year() >= 1890,
                "birth_date",
                "must be a date between 1890 and today",
            ),
        );
        if let Some(nir) = &self.nir {
            checks.field("nir", nir_matches(self, nir));
        }
        if let Some(phone) = &self.phone {
            let digits = phone.as_str().chars().filter(char::is_ascii_digit).count();
            let shape = phone
                .as_str()
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '.' | '-'));
            checks.field(
                "phone",
                rules::ensure(shape && (8..=15).contains(&digits), "phone", "must be 8 to 15 digits"),
            );
        }
        if let Some(address) = &self.address {
            checks.field("address", crate::booking::valid_address(address));
        }
        checks.field(
            "confirmed_distinct_from",
            rules::ensure(
                self.confirmed_distinct_from.len() <= 50,
                "length",
                "must list at most 50 patients",
            ),
        );
        checks.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_in() -> NewPatient {
        serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(9),
            "birth_family_name": "Lefèvre-D'Almeida",
            "birth_given_names": "Amandine Rose",
            "birth_date": "1995-10-12",
            "sex": "F",
            "birth_place_code": "2A004",
            "nir": "295109912611193",
        }))
        .expect("parses")
    }

    #[test]
    fn a_walk_in_is_checked_trait_by_trait() {
        let ok = walk_in();
        ok.validate().expect("valid");
        assert_eq!(ok.first_given_name(), "Amandine");
        let bad = NewPatient {
            birth_family_name: PersonName::new("R2D2"),
            birth_place_code: "2C004".into(),
            sex: Sex::M,
            ..walk_in()
        };
        let errors = bad.validate().expect_err("invalid");
        let fields = errors.field_errors();
        for field in ["birth_family_name", "birth_place_code", "nir"] {
            assert!(fields.contains_key(field), "{field}: {errors:?}");
        }
        assert!(!format!("{errors:?}").contains("R2D2"), "no value in errors");
        let wrong_key = NewPatient {
            nir: Some("295109912611194".into()),
            ..walk_in()
        };
        assert!(wrong_key.validate().is_err());
        let wrong_year = NewPatient {
            birth_date: BirthDate::new(time::macros::date!(1996 - 10 - 12)),
            ..walk_in()
        };
        assert!(wrong_year.validate().is_err());
    }
}
