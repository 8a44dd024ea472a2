//! The one error format of the API: RFC 9457 `application/problem+json`, with a stable `code`.
//!
//! Tablets branch on [`ErrorCode`], never on `title` or `detail` (those are for humans and may be
//! reworded). Field-level problems come as [`FieldError`]s, each with a JSON pointer into the request
//! body. Nothing in a problem repeats a submitted value: a rejected NIR or PIN must not travel back
//! through proxies and logs.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use validator::{ValidationError, ValidationErrors, ValidationErrorsKind};

use crate::i18n::{Lang, translate};

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of [`Problem::type`](Problem): the code is appended (`urn:labedge:problem:not_found`).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:labedge:problem:";

/// Stable machine-readable error codes the tablets match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ErrorCode {
    /// The request is wrong in a way no finer code describes (bad query string, bad header).
    BadRequest,
    /// The body is not JSON, or not the JSON of this route (unknown field, wrong type).
    MalformedJson,
    /// The body parsed but broke a rule; see `errors[]`.
    ValidationFailed,
    /// The body exceeds the route's size limit.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The access token is missing, malformed, expired or revoked: refresh or log in again.
    InvalidToken,
    /// Login, PIN, device secret or refresh token is wrong (one code for all, on purpose).
    InvalidCredentials,
    /// The caller's role or lab does not allow this.
    Forbidden,
    /// The caller's network address is outside the lab's VPN ranges.
    PeerNotAllowed,
    /// The device was revoked by a lab admin: it must be enrolled again.
    DeviceRevoked,
    /// No such resource in the caller's lab scope.
    NotFound,
    /// The route exists but not with this HTTP method.
    MethodNotAllowed,
    /// The request clashes with the current state (e.g. a collection id already used for other data).
    Conflict,
    /// A write route needs an `Idempotency-Key` header.
    IdempotencyKeyMissing,
    /// The `Idempotency-Key` was already used with a different request body.
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is still being processed: retry later.
    IdempotencyInFlight,
    /// The appointment status change is not allowed from its current status.
    InvalidTransition,
    /// The route needs an `If-Match` header with the version the tablet saw.
    PreconditionRequired,
    /// The `If-Match` version is not the current one: reload, then retry.
    VersionMismatch,
    /// The slot has no free place left: `next_slots` lists the next free ones.
    SlotUnavailable,
    /// Probable duplicates of the patient exist: `candidates` lists them; send again with their ids in
    /// `confirmed_distinct_from` once checked.
    PossibleDuplicate,
    /// The enrollment code is unknown, used or expired.
    EnrollmentCodeInvalid,
    /// The device has been offline longer than its grace period allows: log in again online.
    OfflineGraceExpired,
    /// Too many failed logins for this account or device: wait before trying again.
    LockedOut,
    /// Too many requests: slow down (see `Retry-After`).
    RateLimited,
    /// A dependency is down or the gateway is shutting down: retry later (see `Retry-After`).
    ServiceUnavailable,
    /// An unexpected server error; `request_id` helps the support find it in the logs.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order; the snapshot test pins this list.
    pub const ALL: [Self; 27] = [
        Self::BadRequest,
        Self::MalformedJson,
        Self::ValidationFailed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::InvalidToken,
        Self::InvalidCredentials,
        Self::Forbidden,
        Self::PeerNotAllowed,
        Self::DeviceRevoked,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::IdempotencyKeyMissing,
        Self::IdempotencyKeyReused,
        Self::IdempotencyInFlight,
        Self::InvalidTransition,
        Self::PreconditionRequired,
        Self::VersionMismatch,
        Self::SlotUnavailable,
        Self::PossibleDuplicate,
        Self::EnrollmentCodeInvalid,
        Self::OfflineGraceExpired,
        Self::LockedOut,
        Self::RateLimited,
        Self::ServiceUnavailable,
        Self::Internal,
    ];

    /// The wire name, e.g. `validation_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MalformedJson => "malformed_json",
            Self::ValidationFailed => "validation_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidToken => "invalid_token",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden => "forbidden",
            Self::PeerNotAllowed => "peer_not_allowed",
            Self::DeviceRevoked => "device_revoked",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::IdempotencyKeyMissing => "idempotency_key_missing",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyInFlight => "idempotency_in_flight",
            Self::InvalidTransition => "invalid_transition",
            Self::PreconditionRequired => "precondition_required",
            Self::VersionMismatch => "version_mismatch",
            Self::SlotUnavailable => "slot_unavailable",
            Self::PossibleDuplicate => "possible_duplicate",
            Self::EnrollmentCodeInvalid => "enrollment_code_invalid",
            Self::OfflineGraceExpired => "offline_grace_expired",
            Self::LockedOut => "locked_out",
            Self::RateLimited => "rate_limited",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status a problem with this code has unless the server says otherwise.
    pub fn default_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::MalformedJson | Self::IdempotencyKeyMissing | Self::EnrollmentCodeInvalid => 400,
            Self::InvalidToken | Self::InvalidCredentials | Self::OfflineGraceExpired => 401,
            Self::Forbidden | Self::PeerNotAllowed | Self::DeviceRevoked => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict
            | Self::IdempotencyInFlight
            | Self::InvalidTransition
            | Self::SlotUnavailable
            | Self::PossibleDuplicate => 409,
            Self::VersionMismatch => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed | Self::IdempotencyKeyReused => 422,
            Self::PreconditionRequired => 428,
            Self::LockedOut | Self::RateLimited => 429,
            Self::Internal => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    /// A short English title, the same for every occurrence of the code (RFC 9457 §3.1.4); the
    /// French one is [`title_in`](Self::title_in).
    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request",
            Self::MalformedJson => "Malformed JSON body",
            Self::ValidationFailed => "Validation failed",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::InvalidToken => "Invalid or expired access token",
            Self::InvalidCredentials => "Invalid credentials",
            Self::Forbidden => "Forbidden",
            Self::PeerNotAllowed => "Network address not allowed",
            Self::DeviceRevoked => "Device revoked",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict with the current state",
            Self::IdempotencyKeyMissing => "Idempotency-Key header missing",
            Self::IdempotencyKeyReused => "Idempotency key reused for a different request",
            Self::IdempotencyInFlight => "Request with this idempotency key still in progress",
            Self::InvalidTransition => "Status change not allowed",
            Self::PreconditionRequired => "If-Match header required",
            Self::VersionMismatch => "Version mismatch",
            Self::SlotUnavailable => "Slot unavailable",
            Self::PossibleDuplicate => "Possible duplicate patient",
            Self::EnrollmentCodeInvalid => "Enrollment code invalid or expired",
            Self::OfflineGraceExpired => "Offline grace period expired",
            Self::LockedOut => "Too many failed attempts",
            Self::RateLimited => "Too many requests",
            Self::ServiceUnavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }

    /// The title in `lang` (French titles are as constant per code as the English ones).
    pub fn title_in(self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.title(),
            Lang::Fr => self.title_fr(),
        }
    }

    /// The French title.
    fn title_fr(self) -> &'static str {
        match self {
            Self::BadRequest => "Requête incorrecte",
            Self::MalformedJson => "Corps JSON mal formé",
            Self::ValidationFailed => "Échec de la validation",
            Self::PayloadTooLarge => "Corps de requête trop volumineux",
            Self::UnsupportedMediaType => "Type de média non pris en charge",
            Self::InvalidToken => "Jeton d'accès invalide ou expiré",
            Self::InvalidCredentials => "Identifiants invalides",
            Self::Forbidden => "Accès refusé",
            Self::PeerNotAllowed => "Adresse réseau non autorisée",
            Self::DeviceRevoked => "Tablette révoquée",
            Self::NotFound => "Introuvable",
            Self::MethodNotAllowed => "Méthode non autorisée",
            Self::Conflict => "Conflit avec l'état actuel",
            Self::IdempotencyKeyMissing => "En-tête Idempotency-Key manquant",
            Self::IdempotencyKeyReused => "Clé d'idempotence réutilisée pour une autre requête",
            Self::IdempotencyInFlight => "Requête avec cette clé d'idempotence encore en cours",
            Self::InvalidTransition => "Changement de statut non autorisé",
            Self::PreconditionRequired => "En-tête If-Match requis",
            Self::VersionMismatch => "Version périmée",
            Self::SlotUnavailable => "Créneau complet",
            Self::PossibleDuplicate => "Doublon de patient possible",
            Self::EnrollmentCodeInvalid => "Code d'enrôlement invalide ou expiré",
            Self::OfflineGraceExpired => "Délai de grâce hors ligne dépassé",
            Self::LockedOut => "Trop de tentatives échouées",
            Self::RateLimited => "Trop de requêtes",
            Self::ServiceUnavailable => "Service indisponible",
            Self::Internal => "Erreur interne",
        }
    }

    /// The problem `type` URI of this code.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_TYPE_PREFIX}{}", self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bad field of a request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON pointer (RFC 6901) into the request body, e.g. `/tubes/0/barcode`; `""` for the whole body.
    #[cfg_attr(feature = "openapi", schema(examples("/tubes/0/barcode")))]
    pub pointer: String,
    /// Machine code of the rule, e.g. `length`, `range`, `tube_barcode`, `duplicate_barcode`.
    pub code: String,
    /// Explanation for developers, in the language the request asked for (English by default);
    /// never contains the submitted value.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(pointer: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document, the body of every 4xx and 5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `urn:labedge:problem:<code>`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(examples("urn:labedge:problem:validation_failed")))]
    pub r#type: String,
    /// Short summary, constant per code.
    pub title: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// What went wrong in this occurrence, for humans; never holds personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path or another URI of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The stable code to branch on.
    pub code: ErrorCode,
    /// One entry per failed rule, for `validation_failed`; absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The id of the request in the server logs, to quote to the support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For `slot_unavailable`: the next free slots of the same kind (up to 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_slots: Vec<crate::booking::Slot>,
    /// For `possible_duplicate`: the probable duplicates, for the nurse to check (the caller may see
    /// these patients; the read is audited).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<crate::patients::PatientSummary>,
}

impl Problem {
    /// A problem with the code's type, title and default status, and nothing else.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            r#type: code.type_uri(),
            title: code.title().to_owned(),
            status: code.default_status(),
            detail: None,
            instance: None,
            code,
            errors: Vec::new(),
            request_id: None,
            next_slots: Vec::new(),
            candidates: Vec::new(),
        }
    }

    /// Adds an explanation; it must not contain personal data or submitted values.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Replaces the field errors.
    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Overrides the HTTP status (e.g. a `conflict` inside a sync result).
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets the instance URI (usually the request path, without its query string).
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the request id the server logged this request under.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The same problem for a reader of `lang`: `title`, `detail` and the field errors' `message` in
    /// that language (see [`crate::i18n`]); `type`, `code`, `status`, `instance`, `request_id` and
    /// the field errors' `pointer` and `code` unchanged, since clients branch on those.
    #[must_use]
    pub fn localized(mut self, lang: Lang) -> Self {
        if lang == Lang::En {
            return self;
        }
        self.title = self.code.title_in(lang).to_owned();
        if let Some(detail) = &self.detail {
            self.detail = Some(translate(detail, lang).into_owned());
        }
        for error in &mut self.errors {
            error.message = translate(&error.message, lang).into_owned();
        }
        self
    }

    /// A 422 `validation_failed` listing every failed rule with a JSON pointer, sorted.
    ///
    /// Walks nested structs and lists. validator puts the submitted value in each error's `params`
    /// under `"value"`; it is never read here, so no value can leak into the answer. Struct-level
    /// (`schema`) errors land on the struct's own pointer, extended by their `pointer` param when
    /// they name a more precise place (e.g. `/identity_check_method`).
    pub fn from_validation(errors: &ValidationErrors) -> Self {
        let mut list = Vec::new();
        collect_errors(errors, "", &mut list);
        // Numeric segments compare as numbers so `/tubes/2` comes before `/tubes/10`.
        list.sort_by_cached_key(|error| {
            let segments: Vec<(u64, String)> = error
                .pointer
                .split('/')
                .map(|segment| match segment.parse::<u64>() {
                    Ok(index) => (index, String::new()),
                    Err(_) => (u64::MAX, segment.to_owned()),
                })
                .collect();
            (segments, error.code.clone(), error.message.clone())
        });
        list.dedup();
        let detail = match list.len() {
            1 => "1 validation rule failed; see errors.".to_owned(),
            n => format!("{n} validation rules failed; see errors."),
        };
        Self::new(ErrorCode::ValidationFailed)
            .with_detail(detail)
            .with_errors(list)
    }

    /// A problem for a body that serde could not read, without echoing any of its values.
    ///
    /// Syntax errors become `malformed_json` (400). Data errors (wrong type, unknown or missing field,
    /// bad NIR or date) also give `malformed_json`, with the field name when serde names one: serde's
    /// own message is only repeated for unknown, missing and duplicate fields, whose text holds key
    /// names, never values.
    pub fn from_json_error(error: &serde_json::Error) -> Self {
        let position = format!("line {}, column {}", error.line(), error.column());
        let detail = match error.classify() {
            serde_json::error::Category::Data => {
                let message = error.to_string();
                let names_only = ["unknown field", "missing field", "duplicate field"]
                    .iter()
                    .any(|prefix| message.starts_with(prefix));
                if names_only {
                    message
                } else {
                    format!(
                        "The body does not match the schema of this route ({position}): a value has \
                         the wrong type or format."
                    )
                }
            }
            serde_json::error::Category::Eof => {
                format!("The body ends before the JSON document does ({position}).")
            }
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                format!("The body is not valid JSON ({position}).")
            }
        };
        Self::new(ErrorCode::MalformedJson).with_detail(detail)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.title, self.code, self.status)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Escapes a key for a JSON pointer segment (RFC 6901 §3).
fn pointer_segment(key: &str) -> Cow<'_, str> {
    if key.contains(['~', '/']) {
        Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(key)
    }
}

/// The field name validator uses for struct-level (`schema`) errors.
const STRUCT_LEVEL: &str = "__all__";

fn collect_errors(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let here = if field == STRUCT_LEVEL {
            prefix.to_owned()
        } else {
            format!("{prefix}/{}", pointer_segment(field))
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for error in list {
                    let pointer = match error.params.get("pointer").and_then(|p| p.as_str()) {
                        Some(relative) if relative.starts_with('/') => format!("{here}{relative}"),
                        _ => here.clone(),
                    };
                    out.push(FieldError {
                        pointer,
                        code: error.code.to_string(),
                        message: message_for(error),
                    });
                }
            }
            ValidationErrorsKind::Struct(inner) => collect_errors(inner, &here, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect_errors(inner, &format!("{here}/{index}"), out);
                }
            }
        }
    }
}

/// A message from the rule and its bounds only; `params["value"]` is deliberately never read.
fn message_for(error: &ValidationError) -> String {
    if let Some(message) = &error.message {
        return message.to_string();
    }
    let bound = |name: &str| error.params.get(name).map(ToString::to_string);
    match error.code.as_ref() {
        "length" => match (bound("min"), bound("max"), bound("equal")) {
            (_, _, Some(equal)) => format!("length must be exactly {equal}"),
            (Some(min), Some(max), _) => format!("length must be between {min} and {max}"),
            (Some(min), None, _) => format!("length must be at least {min}"),
            (None, Some(max), _) => format!("length must be at most {max}"),
            (None, None, None) => "length is out of bounds".to_owned(),
        },
        "range" => match (bound("min"), bound("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            (None, None) => "is out of range".to_owned(),
        },
        "required" => "is required".to_owned(),
        "non_control_character" => "must not contain control characters".to_owned(),
        "email" => "must be an e-mail address".to_owned(),
        "url" => "must be a URL".to_owned(),
        _ => "is invalid".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_codes_are_pinned() {
        let table: Vec<_> = ErrorCode::ALL
            .iter()
            .map(|code| {
                json!({
                    "code": code,
                    "status": code.default_status(),
                    "title": code.title(),
                    "title_fr": code.title_in(Lang::Fr),
                    "type": code.type_uri(),
                })
            })
            .collect();
        insta::assert_json_snapshot!("error_codes", table);
    }

    #[test]
    fn as_str_matches_serde_and_codes_are_unique() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).expect("code"), code.as_str());
            assert_eq!(code.to_string(), code.as_str());
            let back: ErrorCode = serde_json::from_value(json!(code.as_str())).expect("back");
            assert_eq!(back, code);
            assert!((400..600).contains(&code.default_status()));
        }
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn wire_shape_skips_empty_parts() {
        let problem = Problem::new(ErrorCode::NotFound);
        assert_eq!(
            serde_json::to_value(&problem).expect("problem"),
            json!({
                "type": "urn:labedge:problem:not_found",
                "title": "Not found",
                "status": 404,
                "code": "not_found",
            })
        );
        let full = Problem::new(ErrorCode::Conflict)
            .with_detail("already recorded")
            .with_status(409)
            .with_instance("/v1/collections")
            .with_request_id("req-1")
            .with_errors(vec![FieldError::new("/id", "conflict", "already used")]);
        let value = serde_json::to_value(&full).expect("full");
        assert_eq!(value["errors"][0]["pointer"], "/id");
        assert_eq!(value["request_id"], "req-1");
        assert_eq!(value["instance"], "/v1/collections");
        let back: Problem = serde_json::from_value(value).expect("round trip");
        assert_eq!(back, full);
        assert_eq!(
            full.to_string(),
            "Conflict with the current state (conflict, 409): already recorded"
        );
    }

    #[test]
    fn a_localized_problem_changes_only_its_human_texts() {
        let english = Problem::new(ErrorCode::ValidationFailed)
            .with_detail("the body does not match the contract")
            .with_instance("/v1/collections")
            .with_request_id("req-1")
            .with_errors(vec![
                FieldError::new("/tubes/0/barcode", "length", "length must be between 8 and 20"),
                FieldError::new("/lab_id", "unknown_field", "unknown field `lab_id`, expected `id`"),
            ]);
        assert_eq!(english.clone().localized(Lang::En), english);
        let french = english.clone().localized(Lang::Fr);
        assert_eq!(french.title, "Échec de la validation");
        assert_eq!(french.detail.as_deref(), Some("le corps ne respecte pas le contrat"));
        assert_eq!(french.errors[0].message, "la longueur doit être comprise entre 8 et 20");
        assert_eq!(french.errors[1].message, "champ inconnu `lab_id`, attendu : `id`");
        let wire = |p: &Problem| {
            (
                p.r#type.clone(),
                p.code,
                p.status,
                p.instance.clone(),
                p.request_id.clone(),
            )
        };
        assert_eq!(wire(&french), wire(&english));
        let fields = |p: &Problem| {
            p.errors
                .iter()
                .map(|e| (e.pointer.clone(), e.code.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(&french), fields(&english));
    }

    #[test]
    fn every_message_built_here_has_a_french_form() {
        let mut texts = Vec::new();
        for (code, params) in [
            ("length", &[("equal", 3)][..]),
            ("length", &[("min", 1), ("max", 3)]),
            ("length", &[("min", 1)]),
            ("length", &[("max", 3)]),
            ("length", &[]),
            ("range", &[("min", 1), ("max", 3)]),
            ("range", &[("min", 1)]),
            ("range", &[("max", 3)]),
            ("range", &[]),
            ("required", &[]),
            ("non_control_character", &[]),
            ("email", &[]),
            ("url", &[]),
            ("anything_else", &[]),
        ] {
            let mut error = ValidationError::new(code);
            for (name, value) in params {
                error.add_param(Cow::Borrowed(name), value);
            }
            texts.push(message_for(&error));
        }
        let mut one = ValidationErrors::new();
        one.add("a", ValidationError::new("required"));
        let mut two = one.clone();
        two.add("b", ValidationError::new("required"));
        for errors in [one, two] {
            texts.extend(Problem::from_validation(&errors).detail);
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only its deserialisation is tested")]
        struct Body {
            count: u32,
        }
        for body in [r#"{"count":"x"}"#, r#"{"count":1,"other":2}"#, "{nope", r#"{"count":"#] {
            let error = serde_json::from_str::<Body>(body).expect_err(body);
            texts.extend(Problem::from_json_error(&error).detail);
        }
        for text in texts {
            assert!(crate::i18n::french(&text).is_some(), "no French form for {text:?}");
        }
    }

    #[test]
    fn pointers_are_escaped() {
        assert_eq!(pointer_segment("a/b~c"), "a~1b~0c");
        assert_eq!(pointer_segment("plain"), "plain");
    }

    #[test]
    fn from_validation_walks_lists_and_never_reads_values() {
        let mut leaf = ValidationErrors::new();
        let mut error = ValidationError::new("length");
        error.add_param(Cow::from("min"), &8);
        error.add_param(Cow::from("max"), &20);
        error.add_param(Cow::from("value"), &"SECRET-VALUE-42");
        leaf.add("barcode", error);
        let mut root = ValidationErrors::new();
        root.merge_self("tubes", Err(list_of(3, leaf)));
        let mut top_level = ValidationError::new("identity_check_method_required");
        top_level.add_param(Cow::from("pointer"), &"/identity_check_method");
        root.add(STRUCT_LEVEL, top_level);

        let problem = Problem::from_validation(&root);
        assert_eq!(problem.status, 422);
        assert_eq!(problem.code, ErrorCode::ValidationFailed);
        let pointers: Vec<_> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/identity_check_method", "/tubes/3/barcode"]);
        let mut many = ValidationErrors::new();
        let mut items = std::collections::BTreeMap::new();
        for index in [10, 2] {
            let mut item = ValidationErrors::new();
            item.add("barcode", ValidationError::new("tube_barcode"));
            items.insert(index, Box::new(item));
        }
        many.errors_mut()
            .insert(Cow::Borrowed("tubes"), ValidationErrorsKind::List(items));
        let sorted: Vec<_> = Problem::from_validation(&many)
            .errors
            .into_iter()
            .map(|e| e.pointer)
            .collect();
        assert_eq!(sorted, ["/tubes/2/barcode", "/tubes/10/barcode"]);
        assert_eq!(problem.errors[1].message, "length must be between 8 and 20");
        let text = serde_json::to_string(&problem).expect("json");
        assert!(!text.contains("SECRET-VALUE-42"), "{text}");
    }

    fn list_of(index: usize, item: ValidationErrors) -> ValidationErrors {
        let mut items = std::collections::BTreeMap::new();
        items.insert(index, Box::new(item));
        let mut wrapper = ValidationErrors::new();
        wrapper
            .errors_mut()
            .insert(Cow::Borrowed("_tmp_validator"), ValidationErrorsKind::List(items));
        wrapper
    }

    #[test]
    fn json_errors_do_not_echo_values() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only its deserialisation is tested")]
        struct Body {
            count: u32,
        }
        let wrong_type = serde_json::from_str::<Body>(r#"{"count":"DUPONT"}"#).expect_err("type");
        let problem = Problem::from_json_error(&wrong_type);
        assert_eq!(problem.code, ErrorCode::MalformedJson);
        assert_eq!(problem.status, 400);
        assert!(!problem.detail.as_deref().unwrap_or_default().contains("DUPONT"));

        let unknown = serde_json::from_str::<Body>(r#"{"count":1,"lab_id":"x"}"#).expect_err("unknown");
        let detail = Problem::from_json_error(&unknown).detail.unwrap_or_default();
        assert!(detail.starts_with("unknown field `lab_id`"), "{detail}");

        let syntax = serde_json::from_str::<Body>("{nope").expect_err("syntax");
        let detail = Problem::from_json_error(&syntax).detail.unwrap_or_default();
        assert!(detail.starts_with("The body is not valid JSON"), "{detail}");
    }
}
