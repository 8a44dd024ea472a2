//! `POST /v1/prescriptions`: a paper prescription with its photo or scan, as `multipart/form-data`.
//!
//! The body is read as a stream, part by part, and never held beyond what is kept: the JSON part up
//! to [`MAX_JSON_PART`], the file up to [`MAX_DOCUMENT_BYTES`] (413 the moment it goes over, without
//! reading the rest). The caller's role and the `Idempotency-Key` are checked before the body is
//! read. The file's type is read from its first bytes ([`DocumentMediaType::sniff`]): a declared
//! `Content-Type` or a file name says nothing of what the bytes are.

use actix_multipart::{Multipart, MultipartError};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use labedge_service::error::ApiError;
use labedge_service::http::{ProblemError, RequestId};
use mobile_contracts::problem::{ErrorCode, FieldError, Problem};
use mobile_contracts::{DocumentMediaType, FILE_PART, MAX_DOCUMENT_BYTES, NewPaperPrescription, PRESCRIPTION_PART};
use validator::Validate as _;

use super::writes::{IdempotencyKey, answer};
use crate::auth::Principal;
use crate::state::AppState;
use crate::writes::paper_prescriptions::{self, Upload};

/// The largest `prescription` part: a few hundred bytes in practice.
pub const MAX_JSON_PART: usize = 16 * 1024;

/// Above this `Content-Length` the body cannot be a valid upload (the file's limit and room for the
/// JSON part and the part headers): refused before a byte of it is read.
const MAX_BODY_BYTES: u64 = (MAX_DOCUMENT_BYTES + MAX_JSON_PART + 8 * 1024) as u64;

/// Records a paper prescription; 201 with its status and its document's id, size, type and SHA-256.
pub(super) async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    key: IdempotencyKey,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    paper_prescriptions::authorise(&principal)?;
    let upload = read_upload(&req, payload).await?;
    let answered = paper_prescriptions::record(&state, &principal, &key.0, upload, &RequestId::of(&req)).await?;
    Ok(answer(StatusCode::CREATED, answered, None))
}

fn malformed_upload(detail: &'static str) -> ProblemError {
    ProblemError::new(ErrorCode::BadRequest).detail(detail)
}

fn too_large() -> ProblemError {
    ProblemError::new(ErrorCode::PayloadTooLarge).detail("the file is over 10 MiB")
}

/// A multipart error as the problem it is: not multipart at all is a 415, a broken body a 400.
fn multipart_problem(error: &MultipartError) -> ProblemError {
    match error {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible => ProblemError::new(ErrorCode::UnsupportedMediaType)
            .detail("the body must be multipart/form-data with the parts `prescription` and `file`"),
        _ => malformed_upload("the multipart body is malformed or incomplete"),
    }
}

/// Reads the two parts, each once, nothing else.
async fn read_upload(req: &HttpRequest, payload: web::Payload) -> Result<Upload, ProblemError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut multipart = Multipart::new(req.headers(), payload.into_inner());
    let (mut json, mut file): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| multipart_problem(&e))?;
        let (slot, limit, oversize) = match field.name() {
            Some(PRESCRIPTION_PART) => (
                &mut json,
                MAX_JSON_PART,
                malformed_upload("the `prescription` part is over 16 KiB"),
            ),
            Some(FILE_PART) => (&mut file, MAX_DOCUMENT_BYTES, too_large()),
            _ => {
                return Err(malformed_upload(
                    "unexpected part: send exactly `prescription` (JSON) and `file`",
                ));
            }
        };
        if slot.is_some() {
            return Err(malformed_upload(
                "a part is repeated: send one `prescription` and one `file`",
            ));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| multipart_problem(&e))?;
            if bytes.len() + chunk.len() > limit {
                return Err(oversize);
            }
            bytes.extend_from_slice(&chunk);
        }
        *slot = Some(bytes);
    }
    let json = json.ok_or_else(|| part_missing("prescription"))?;
    let bytes = file.ok_or_else(|| part_missing("file"))?;
    let prescription: NewPaperPrescription =
        serde_json::from_slice(&json).map_err(|e| ProblemError::from(Problem::from_json_error(&e)))?;
    prescription
        .validate()
        .map_err(|e| ProblemError::from(Problem::from_validation(&e)))?;
    if bytes.is_empty() {
        return Err(
            ProblemError::new(ErrorCode::ValidationFailed).errors(vec![FieldError::new(
                "/file",
                "empty",
                "the file is empty",
            )]),
        );
    }
    let media_type = DocumentMediaType::sniff(&bytes).ok_or_else(|| {
        ProblemError::new(ErrorCode::UnsupportedMediaType)
            .detail("the file is not a JPEG, PNG or PDF (its type is read from its bytes)")
            .errors(vec![FieldError::new("/file", "media_type", "JPEG, PNG or PDF only")])
    })?;
    Ok(Upload {
        prescription,
        bytes,
        media_type,
    })
}

fn part_missing(name: &str) -> ProblemError {
    ProblemError::new(ErrorCode::BadRequest)
        .detail(format!("the `{name}` part is missing"))
        .errors(vec![FieldError::new(format!("/{name}"), "required", "missing")])
}
