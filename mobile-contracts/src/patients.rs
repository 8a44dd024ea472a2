//! Patient lookup: `GET /v1/patients?q=`, `GET /v1/patients/{id}`.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use crate::common::{IdentityStatus, Role, Sex};
use crate::nir::{Nir, NirError};
use crate::personal::{Address, BirthDate, PersonName, PhoneNumber, REDACTED, redact_option};
use crate::rules::{self, Checks};

/// Page size when `per_page` is absent.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Largest `per_page`.
pub const MAX_PER_PAGE: u32 = 50;
/// Largest `page`: deeper paging means the search term is too vague.
pub const MAX_PAGE: u32 = 1000;
/// Fewest letters a name search needs, so a search cannot enumerate the lab's patients.
pub const MIN_NAME_LETTERS: usize = 3;

/// Query of `GET /v1/patients`.
///
/// `q` is one of: a family-name prefix of at least 3 letters (birth or used name, case and accents
/// ignored, `%` and `_` matched literally), a birth date `YYYY-MM-DD` or `DD/MM/YYYY`, or an exact
/// NIR (spaces allowed). Results are limited to the caller's lab scope.
///
/// `q` is personal data travelling in a URL: servers and proxies must not log this route's query
/// string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct PatientSearchQuery {
    /// Name prefix (≥ 3 letters), birth date (`YYYY-MM-DD` or `DD/MM/YYYY`) or NIR; 1 to 64 characters.
    #[cfg_attr(feature = "openapi", param(min_length = 1, max_length = 64, example = "MART"))]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub q: String,
    /// Page number, from 1 (default 1, at most 1000).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub page: Option<u32>,
    /// Results per page, 1 to 50 (default 20).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 50))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub per_page: Option<u32>,
}

impl fmt::Debug for PatientSearchQuery {
    // The search term is a name, a birth date or a NIR.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientSearchQuery")
            .field("q", &REDACTED)
            .field("page", &self.page)
            .field("per_page", &self.per_page)
            .finish()
    }
}

impl PatientSearchQuery {
    /// The page asked for, 1 if absent.
    pub fn page_or_default(&self) -> u32 {
        self.page.unwrap_or(1)
    }

    /// The page size asked for, [`DEFAULT_PER_PAGE`] if absent.
    pub fn per_page_or_default(&self) -> u32 {
        self.per_page.unwrap_or(DEFAULT_PER_PAGE)
    }

    /// What `q` asks for.
    pub fn term(&self) -> Result<SearchTerm, SearchTermError> {
        SearchTerm::parse(&self.q)
    }
}

impl Validate for PatientSearchQuery {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        if !(1..=64).contains(&rules::char_len(&self.q)) {
            checks.field("q", Err(rules::length(1, 64)));
        } else if let Err(error) = self.term() {
            checks.field("q", Err(rules::fail("search_term", error.message())));
        }
        if let Some(page) = self.page {
            checks.field(
                "page",
                rules::ensure((1..=MAX_PAGE).contains(&page), "range", "must be between 1 and 1000"),
            );
        }
        if let Some(per_page) = self.per_page {
            checks.field(
                "per_page",
                rules::ensure(
                    (1..=MAX_PER_PAGE).contains(&per_page),
                    "range",
                    "must be between 1 and 50",
                ),
            );
        }
        checks.finish()
    }
}

/// The three kinds of patient search.
#[derive(Clone, PartialEq, Eq)]
pub enum SearchTerm {
    /// Family-name prefix, trimmed, inner spaces collapsed; original case kept.
    NamePrefix(String),
    /// Exact birth date.
    BirthDate(Date),
    /// Exact NIR.
    Nir(Nir),
}

impl fmt::Debug for SearchTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::NamePrefix(_) => "NamePrefix",
            Self::BirthDate(_) => "BirthDate",
            Self::Nir(_) => "Nir",
        };
        write!(f, "{kind}({REDACTED})")
    }
}

/// Why `q` is not a usable search term; never repeats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SearchTermError {
    /// Only spaces.
    #[error("the search term is empty")]
    Empty,
    /// A name prefix with fewer than 3 letters.
    #[error("a name search needs at least 3 letters")]
    TooShort,
    /// Control characters.
    #[error("the search term contains control characters")]
    ControlCharacters,
    /// Looks like a date but is not a valid `YYYY-MM-DD` or `DD/MM/YYYY` date.
    #[error("a date search must be a valid YYYY-MM-DD or DD/MM/YYYY date")]
    InvalidDate,
    /// Starts with a digit but is not a valid NIR.
    #[error("a NIR search must be a valid NIR: {0}")]
    InvalidNir(NirError),
}

impl SearchTermError {
    /// A static message for validation errors.
    fn message(self) -> &'static str {
        match self {
            Self::Empty => "the search term is empty",
            Self::TooShort => "a name search needs at least 3 letters",
            Self::ControlCharacters => "the search term contains control characters",
            Self::InvalidDate => "a date search must be a valid YYYY-MM-DD or DD/MM/YYYY date",
            Self::InvalidNir(_) => "a search starting with a digit must be a valid NIR or date",
        }
    }
}

impl SearchTerm {
    /// Classifies `q`: a date if it has `-` or `/` between digits, a NIR if it starts with a digit,
    /// a name prefix otherwise.
    pub fn parse(q: &str) -> Result<Self, SearchTermError> {
        let trimmed = q.trim();
        if trimmed.is_empty() {
            return Err(SearchTermError::Empty);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(SearchTermError::ControlCharacters);
        }
        let date_like =
            trimmed.chars().all(|c| c.is_ascii_digit() || c == '-' || c == '/') && trimmed.contains(['-', '/']);
        if date_like {
            let day_first = format_description!("[day]/[month]/[year]");
            return crate::serde_date::parse(trimmed)
                .or_else(|_| Date::parse(trimmed, day_first))
                .map(Self::BirthDate)
                .map_err(|_| SearchTermError::InvalidDate);
        }
        if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
            return Nir::parse(trimmed).map(Self::Nir).map_err(SearchTermError::InvalidNir);
        }
        if trimmed.chars().filter(|c| c.is_alphabetic()).count() < MIN_NAME_LETTERS {
            return Err(SearchTermError::TooShort);
        }
        Ok(Self::NamePrefix(
            trimmed.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    }
}

/// A SQL `LIKE` pattern matching names that start with `prefix`, with `%`, `_` and `\` escaped
/// (use with `ESCAPE '\'`), so that the characters a user types are matched literally.
pub fn like_prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A NIR as the caller may see it: in full, or masked for roles that do not need it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NirView {
    /// The 15 characters (`295109912611193`), or the masked form (`2 95 10 ** *** *** **`).
    pub value: String,
    /// Whether `value` is masked.
    pub masked: bool,
}

impl fmt::Debug for NirView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NirView")
            .field("value", &REDACTED)
            .field("masked", &self.masked)
            .finish()
    }
}

impl NirView {
    /// The NIR in full, or masked when `masked`.
    pub fn new(nir: &Nir, masked: bool) -> Self {
        let value = if masked { nir.masked() } else { nir.as_str().to_owned() };
        Self { value, masked }
    }

    /// The view a role gets: home-sampling staff work on the road and see the masked form only.
    pub fn for_role(nir: &Nir, role: Role) -> Self {
        Self::new(nir, matches!(role, Role::HomeSampler))
    }
}

/// One search hit, enough to tell homonyms apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientSummary {
    /// Patient id.
    pub id: Uuid,
    /// INS status of the identity.
    pub identity_status: IdentityStatus,
    /// Family name at birth.
    pub birth_family_name: PersonName,
    /// Family name in use, when different.
    pub used_family_name: Option<PersonName>,
    /// First given name at birth.
    pub first_given_name: PersonName,
    /// Birth date.
    pub birth_date: BirthDate,
    /// Sex.
    pub sex: Sex,
    /// NIR, masked for home-sampling staff.
    pub nir: Option<NirView>,
}

/// A page of search results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientPage {
    /// The hits, by birth family name then first given name then birth date.
    pub items: Vec<PatientSummary>,
    /// This page's number, from 1.
    pub page: u32,
    /// Page size used.
    pub per_page: u32,
    /// Whether another page follows.
    pub has_more: bool,
}

/// The INS identity traits and the NIR.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientIdentity {
    /// Family name at birth (strict trait).
    pub birth_family_name: PersonName,
    /// All given names at birth, space separated (strict trait).
    pub birth_given_names: PersonName,
    /// First given name at birth (strict trait).
    pub first_given_name: PersonName,
    /// Family name in use.
    pub used_family_name: Option<PersonName>,
    /// Given name in use.
    pub used_given_name: Option<PersonName>,
    /// Birth date (strict trait).
    pub birth_date: BirthDate,
    /// Sex (strict trait).
    pub sex: Sex,
    /// INSEE code of the place of birth, `99xxx` for a foreign country (strict trait).
    pub birth_place_code: Option<String>,
    /// NIR / INS matricule, masked for home-sampling staff.
    pub nir: Option<NirView>,
    /// OID of the authority that issued the INS (NIR or NIA).
    pub ins_oid: Option<String>,
}

impl fmt::Debug for PatientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientIdentity")
            .field("birth_family_name", &self.birth_family_name)
            .field("birth_given_names", &self.birth_given_names)
            .field("first_given_name", &self.first_given_name)
            .field("used_family_name", &self.used_family_name)
            .field("used_given_name", &self.used_given_name)
            .field("birth_date", &self.birth_date)
            .field("sex", &self.sex)
            .field("birth_place_code", &redact_option(&self.birth_place_code))
            .field("nir", &self.nir)
            .field("ins_oid", &self.ins_oid)
            .finish()
    }
}

impl PatientIdentity {
    /// Field names of the strict INS traits, plus the INS itself.
    pub const STRICT_TRAITS: [&'static str; 8] = [
        "birth_family_name",
        "birth_given_names",
        "first_given_name",
        "birth_date",
        "sex",
        "birth_place_code",
        "nir",
        "ins_oid",
    ];

    /// The fields a tablet must not edit for an identity with this status.
    pub fn read_only_fields(status: IdentityStatus) -> Vec<String> {
        if status.traits_are_locked() {
            Self::STRICT_TRAITS.iter().map(|name| (*name).to_owned()).collect()
        } else {
            Vec::new()
        }
    }
}

/// How to reach the patient.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// Phone number.
    pub phone: Option<PhoneNumber>,
    /// Home address.
    pub address: Option<Address>,
}

/// A patient record as a tablet sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Patient {
    /// Patient id.
    pub id: Uuid,
    /// Row version, increased on every change.
    pub version: i64,
    /// INS status of the identity.
    pub identity_status: IdentityStatus,
    /// Identity traits.
    pub identity: PatientIdentity,
    /// Contact details.
    pub contact: Contact,
    /// Names of `identity` fields the tablet must show as read-only: the strict INS traits, once the
    /// identity is no longer provisional.
    pub read_only: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn patient_debug_shows_no_personal_value() {
        let patient = crate::fixtures::patient();
        let text = format!("{patient:?} {patient:#?}");
        for value in [
            "Lefebvre",
            "Amandine",
            "Rose",
            "Moreau",
            "Mandy",
            "1995",
            "99126",
            "295109912611193",
            "55443322",
            "Glycines",
            "13090",
            "Aixville",
        ] {
            assert!(!text.contains(value), "{value} leaked: {text}");
        }
    }

    #[test]
    fn nir_view_masks_for_home_samplers() {
        let nir = Nir::parse("295109912611193").expect("nir");
        let view = NirView::for_role(&nir, Role::HomeSampler);
        assert_eq!(view.value, "2 95 10 ** *** *** **");
        assert!(view.masked);
        let view = NirView::for_role(&nir, Role::Nurse);
        assert_eq!(view.value, "295109912611193");
        assert!(!format!("{view:?}").contains("2951"));
    }

    #[test]
    fn read_only_fields_follow_identity_status() {
        assert!(PatientIdentity::read_only_fields(IdentityStatus::Provisional).is_empty());
        let locked = PatientIdentity::read_only_fields(IdentityStatus::Validated);
        assert!(locked.contains(&"birth_date".to_owned()));
        assert_eq!(locked.len(), PatientIdentity::STRICT_TRAITS.len());
    }

    #[test]
    fn patient_round_trips() {
        let patient = crate::fixtures::patient();
        let json = serde_json::to_value(&patient).expect("json");
        assert_eq!(json["identity"]["birth_date"], "1995-10-21");
        assert_eq!(json["identity"]["sex"], "F");
        let back: Patient = serde_json::from_value(json).expect("back");
        assert_eq!(back, patient);
    }

    fn query(q: &str, page: Option<u32>, per_page: Option<u32>) -> PatientSearchQuery {
        PatientSearchQuery {
            q: q.into(),
            page,
            per_page,
        }
    }

    #[test]
    fn search_terms() {
        assert_eq!(
            SearchTerm::parse("  mar  tin "),
            Ok(SearchTerm::NamePrefix("mar tin".into()))
        );
        assert_eq!(
            SearchTerm::parse("1995-10-21"),
            Ok(SearchTerm::BirthDate(date!(1995 - 10 - 21)))
        );
        assert_eq!(
            SearchTerm::parse("21/10/1995"),
            Ok(SearchTerm::BirthDate(date!(1995 - 10 - 21)))
        );
        assert!(matches!(
            SearchTerm::parse("2 95 10 99 126 111 93"),
            Ok(SearchTerm::Nir(_))
        ));
        assert_eq!(SearchTerm::parse("Lé"), Err(SearchTermError::TooShort));
        assert_eq!(SearchTerm::parse("%_%"), Err(SearchTermError::TooShort));
        assert_eq!(SearchTerm::parse("31/02/1995"), Err(SearchTermError::InvalidDate));
        assert_eq!(SearchTerm::parse("   "), Err(SearchTermError::Empty));
        assert!(matches!(
            SearchTerm::parse("2951099"),
            Err(SearchTermError::InvalidNir(_))
        ));
        assert!(matches!(SearchTerm::parse("o'bri%_"), Ok(SearchTerm::NamePrefix(_))));
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_prefix_pattern("o_b%n\\"), "o\\_b\\%n\\\\%");
    }

    #[test]
    fn query_validation() {
        query("MART", None, None).validate().expect("valid");
        query("MART", Some(1000), Some(50)).validate().expect("bounds");
        let errors = query("MART", Some(0), Some(51)).validate().expect_err("bounds");
        assert!(errors.field_errors().contains_key("page"));
        assert!(errors.field_errors().contains_key("per_page"));
        let errors = query(&"a".repeat(65), None, None).validate().expect_err("long");
        assert!(errors.field_errors().contains_key("q"));
        let errors = query("DU", None, None).validate().expect_err("short");
        assert!(!format!("{errors:?}").contains("DU\""), "the term must not be echoed");
        assert_eq!(query("MART", None, None).per_page_or_default(), DEFAULT_PER_PAGE);
        assert!(!format!("{:?}", query("DUPONT", None, None)).contains("DUPONT"));
    }

    #[test]
    fn query_refuses_unknown_parameters() {
        let error = serde_json::from_str::<PatientSearchQuery>(r#"{"q":"MART","lab_id":"x"}"#);
        assert!(error.is_err());
    }
}
