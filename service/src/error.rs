//! The one error type of both services' handlers (`api::ApiError` and `edge_gateway::ApiError` are
//! this type): not-found → 404, named constraints → 409/422 by constraint name (never by message
//! text), pool exhaustion or an unreachable database → 503 with `Retry-After`, the rest → an opaque
//! 500, logged once with its cause chain.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use mobile_contracts::problem::{ErrorCode, FieldError, Problem};

use super::http::{ProblemError, problem_response};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// A handler's failure.
pub enum ApiError {
    /// A problem already shaped for the client.
    Problem(ProblemError),
    /// A database error.
    Database(DieselError),
    /// No database connection could be had in time.
    Unavailable(String),
    /// Anything else: answered as an opaque 500.
    Internal(anyhow::Error),
}

impl ApiError {
    /// A problem with this code and its default status.
    pub fn code(code: ErrorCode) -> Self {
        Self::Problem(ProblemError::new(code))
    }
    /// A problem with a detail sentence (never personal data).
    pub fn detail(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Problem(ProblemError::new(code).detail(detail))
    }
    /// 404.
    pub fn not_found() -> Self {
        Self::code(ErrorCode::NotFound)
    }
    /// The problem document this error answers with.
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::Problem(p) => (*p.problem).clone(),
            ApiError::Database(e) => database_problem(e),
            ApiError::Unavailable(_) => {
                Problem::new(ErrorCode::ServiceUnavailable).with_detail("the database is unavailable; retry shortly")
            }
            ApiError::Internal(_) => Problem::new(ErrorCode::Internal),
        }
    }
}

/// Maps a database error to its problem. Constraint names come from the migrations in `schema/`.
fn database_problem(error: &DieselError) -> Problem {
    match error {
        DieselError::NotFound => Problem::new(ErrorCode::NotFound),
        DieselError::DatabaseError(kind, info) => {
            let constraint = info.constraint_name().unwrap_or("");
            match (kind, constraint_field(constraint)) {
                (DatabaseErrorKind::UniqueViolation, Some((pointer, message))) => Problem::new(ErrorCode::Conflict)
                    .with_detail(message)
                    .with_errors(vec![FieldError {
                        pointer: pointer.into(),
                        code: "taken".into(),
                        message: message.into(),
                    }]),
                (DatabaseErrorKind::UniqueViolation, None) => Problem::new(ErrorCode::Conflict),
                (
                    DatabaseErrorKind::CheckViolation | DatabaseErrorKind::ForeignKeyViolation,
                    Some((pointer, message)),
                ) => Problem::new(ErrorCode::ValidationFailed).with_errors(vec![FieldError {
                    pointer: pointer.into(),
                    code: "invalid".into(),
                    message: message.into(),
                }]),
                (DatabaseErrorKind::ReadOnlyTransaction, _) => {
                    Problem::new(ErrorCode::ServiceUnavailable).with_detail("the database is read-only; retry shortly")
                }
                // A connection cut mid-transaction (a restart, a failover) surfaces as one that can no
                // longer send; a serialization failure is worth a retry too.
                (DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
                    Problem::new(ErrorCode::ServiceUnavailable)
                        .with_detail("the database connection was lost; retry shortly")
                }
                (DatabaseErrorKind::SerializationFailure, _) => {
                    Problem::new(ErrorCode::ServiceUnavailable).with_detail("a concurrent change got in the way; retry")
                }
                (DatabaseErrorKind::Unknown, _) if is_connection_loss(info.message()) => {
                    Problem::new(ErrorCode::ServiceUnavailable)
                        .with_detail("the database connection was lost; retry shortly")
                }
                _ => Problem::new(ErrorCode::Internal),
            }
        }
        _ => Problem::new(ErrorCode::Internal),
    }
}

/// Messages of a server that goes away under a session (SQLSTATE 57P01 to 57P03, or the client
/// library's own), for errors diesel reports without a kind.
fn is_connection_loss(message: &str) -> bool {
    [
        "terminating connection",
        "connection closed",
        "the database system is shutting down",
        "server closed the connection",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// The field and the sentence of each named constraint a client can run into.
fn constraint_field(constraint: &str) -> Option<(&'static str, &'static str)> {
    Some(match constraint {
        "collection_tubes_barcode_key" => ("/tubes", "a tube barcode is already recorded"),
        "collections_checked_has_method" => ("/identity_check_method", "required when identity_checked is true"),
        "staff_lab_login_key" => ("/login", "this login is already taken in this lab"),
        "labs_code_key" | "labs_code_format" => ("/code", "lab codes are unique, 2 to 16 of A-Z, 0-9 and '-'"),
        "patients_nir_format" => ("/nir", "not a NIR"),
        _ => return None,
    })
}

impl From<ProblemError> for ApiError {
    fn from(p: ProblemError) -> Self {
        Self::Problem(p)
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::Problem(p.into())
    }
}

impl From<DieselError> for ApiError {
    fn from(e: DieselError) -> Self {
        Self::Database(e)
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(diesel_async::pooled_connection::PoolError::QueryError(q)) => Self::Database(q),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Problem(p) => write!(f, "{p:?}"),
            ApiError::Database(e) => write!(f, "Database({e:?})"),
            ApiError::Unavailable(e) => write!(f, "Unavailable({e})"),
            ApiError::Internal(e) => write!(f, "Internal({e:#})"),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_problem().title)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.to_problem().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.to_problem();
        // Logged here, once, where the failure is turned into an answer.
        match self {
            ApiError::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            ApiError::Database(e) if problem.status >= 500 => {
                tracing::error!(error = %e, "database error");
            }
            ApiError::Unavailable(e) => tracing::warn!(error = %e, "database unavailable"),
            _ => {}
        }
        let mut response = problem_response(&problem);
        if let ApiError::Problem(p) = self {
            for (name, value) in &p.headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
        if problem.status == 503 && !response.headers().contains_key(header::RETRY_AFTER) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
