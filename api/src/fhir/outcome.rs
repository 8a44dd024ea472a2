//! FHIR errors: every failure answers an `OperationOutcome` whose issues name the element at fault by
//! its FHIRPath (`Patient.identifier[0].value`), never with personal data in the diagnostics.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use serde_json::{Value, json};

use super::FHIR_JSON;

/// One issue of an `OperationOutcome`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// `invalid`, `required`, `value`, `code-invalid`, `not-found`, `conflict`, `duplicate`,
    /// `forbidden`, `security`, `not-supported`, `too-costly`, `exception`, `transient`, `processing`.
    pub code: &'static str,
    /// What is wrong, for the integration team (never a patient's data).
    pub diagnostics: String,
    /// The element at fault (FHIRPath), when there is one.
    pub expression: Option<String>,
}

/// A FHIR interaction's failure: an HTTP status and the issues that explain it.
#[derive(Clone, Debug)]
pub struct FhirError {
    /// The answer's status (4xx for the client's faults; 5xx only for ours).
    pub status: StatusCode,
    /// At least one issue.
    pub issues: Vec<Issue>,
}

impl FhirError {
    /// One issue with this status.
    pub fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self {
            status,
            issues: vec![Issue {
                code,
                diagnostics: diagnostics.into(),
                expression: None,
            }],
        }
    }
    /// 422 on one element (`invalid` unless another code is given with [`Self::code`]).
    pub fn at(expression: impl Into<String>, diagnostics: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            issues: vec![Issue {
                code: "invalid",
                diagnostics: diagnostics.into(),
                expression: Some(expression.into()),
            }],
        }
    }
    /// A required element is missing.
    pub fn required(expression: impl Into<String>) -> Self {
        let expression = expression.into();
        Self::at(expression.clone(), format!("{expression} is required")).code("required")
    }
    /// 400: the request itself is malformed (not JSON, wrong shape).
    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "structure", diagnostics)
    }
    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{} is not known", what.into()),
        )
    }
    /// 409.
    pub fn conflict(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", diagnostics)
    }
    /// 412: `If-Match` names another version, or a conditional request matched several resources.
    pub fn precondition(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "conflict", diagnostics)
    }
    /// Changes the first issue's code.
    pub fn code(mut self, code: &'static str) -> Self {
        if let Some(first) = self.issues.first_mut() {
            first.code = code;
        }
        self
    }
    /// Prefixes every expression (an entry of a Bundle: `Bundle.entry[3].resource`).
    pub fn within(mut self, prefix: &str) -> Self {
        for issue in &mut self.issues {
            issue.expression = Some(match issue.expression.take() {
                // `Patient.name[0]` inside an entry becomes `Bundle.entry[3].resource.name[0]`.
                Some(e) => match e.split_once('.') {
                    Some((_, rest)) => format!("{prefix}.{rest}"),
                    None => prefix.to_owned(),
                },
                None => prefix.to_owned(),
            });
        }
        self
    }
    /// The `OperationOutcome` resource.
    pub fn outcome(&self) -> Value {
        outcome_of(self.status, &self.issues)
    }
}

/// An `OperationOutcome` of these issues (severity `error` from a 4xx or 5xx status).
pub fn outcome_of(status: StatusCode, issues: &[Issue]) -> Value {
    let severity = if status.is_success() { "information" } else { "error" };
    json!({
        "resourceType": "OperationOutcome",
        "issue": issues.iter().map(|i| {
            let mut issue = json!({"severity": severity, "code": i.code, "diagnostics": i.diagnostics});
            if let Some(e) = &i.expression {
                issue["expression"] = json!([e]);
            }
            issue
        }).collect::<Vec<_>>()
    })
}

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = self.issues.first();
        write!(
            f,
            "{} {}",
            self.status.as_u16(),
            first.map(|i| i.diagnostics.as_str()).unwrap_or("")
        )
    }
}

impl ResponseError for FhirError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "2"));
        }
        response.body(self.outcome().to_string())
    }
}

impl From<DieselError> for FhirError {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::NotFound => Self::not_found("the resource"),
            DieselError::DatabaseError(kind, info) => {
                let constraint = info.constraint_name().unwrap_or("");
                match kind {
                    DatabaseErrorKind::UniqueViolation => {
                        Self::conflict(constraint_message(constraint)).code("duplicate")
                    }
                    DatabaseErrorKind::ForeignKeyViolation | DatabaseErrorKind::CheckViolation => Self::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invariant",
                        constraint_message(constraint),
                    ),
                    DatabaseErrorKind::SerializationFailure => Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "transient",
                        "a concurrent change won; retry",
                    ),
                    DatabaseErrorKind::ReadOnlyTransaction => Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "transient",
                        "this instance's database is a standby; retry on the primary",
                    ),
                    _ => internal(&error),
                }
            }
            _ => internal(&error),
        }
    }
}

impl From<PoolError> for FhirError {
    fn from(error: PoolError) -> Self {
        tracing::warn!(error = %error, "fhir: no database connection");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "the database is unavailable; retry shortly",
        )
    }
}

fn internal(error: &DieselError) -> FhirError {
    tracing::error!(error = %error, "fhir: database error");
    FhirError::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal error")
}

/// What a constraint's violation means, in the interface's words (constraint names come from the
/// migrations: never the database's message, which may quote a value).
fn constraint_message(constraint: &str) -> String {
    match constraint {
        "patients_nir_key" => "another Patient already has this INS matricule".into(),
        "fhir_identifiers_pkey" => "another resource of this type already has this identifier".into(),
        "staff_lab_login_key" => "the lab already has a staff member with this login".into(),
        "staff_one_role_per_lab" => "the practitioner already has a role at this lab".into(),
        "" => "a constraint of the data model refused the change".into(),
        other => format!("refused by the data model's rule `{other}`"),
    }
}

impl FhirError {
    /// Changes the status.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}
