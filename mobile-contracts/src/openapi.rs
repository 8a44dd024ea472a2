//! The OpenAPI 3.1 document of the tablet API, generated from the contract types.
//!
//! The functions below are stubs that only carry `#[utoipa::path]` attributes: the real handlers live
//! in the gateway, which serves [`document_json`] at `GET /openapi.json`. Every 4xx/5xx answer is
//! documented with a [`Problem`] body and the codes it may carry.
//!
//! Each route lists its answers in full, the 401/429/500/503 lines every route shares included: the
//! attribute takes literal tuples (no `macro_rules!` expands inside it), and a shared `IntoResponses`
//! type would take out of sight which codes a route answers with and why, which is what a tablet
//! developer reads this file for. The committed `openapi.json` is the same text either way.

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    Address, Appointment, AppointmentKind, AppointmentList, AppointmentPatch, AppointmentStatus, BirthDate,
    CollectionReceipt, CollectionVoid, Contact, DatabaseRole, DateQuery, DeviceRef, DocumentMediaType, DocumentReceipt,
    EnrollRequest, EnrollResponse, ErrorCode, FieldError, Health, IdentityCheckMethod, IdentityDocument,
    IdentityStatus, LabRef, LoginRequest, LogoutRequest, Me, Mutation, MutationOp, MutationOutcome, MutationResult,
    NewAppointment, NewCollection, NewPaperPrescription, NewPatient, NirView, PaperPrescriptionReceipt,
    PaperPrescriptionStatus, Patient, PatientIdentity, PatientPage, PatientSearchQuery, PatientSummary, PersonName,
    PhoneNumber, PinChangeRequest, PinResetRequest, PrescribedExam, Prescriber, Prescription, PrescriptionList,
    PrescriptionStatus, PrescriptionSummary, Problem, Readiness, ReadinessCheck, RefreshRequest, RelayState, Removal,
    Reschedule, Role, Round, RoundVisit, Secret, Sex, Slot, SlotList, SlotQuery, SyncEntity, SyncPullQuery,
    SyncPullResponse, SyncPushRequest, SyncPushResponse, TokenResponse, TokenType, Tube, TubeBarcode, TubePlanEntry,
    VoidReceipt,
};

/// Name of the bearer-token security scheme in the document.
pub const BEARER_SCHEME: &str = "bearer_jwt";

/// The document, built from the annotations of this module.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "LabEdge edge gateway — tablet API",
        version = env!("CARGO_PKG_VERSION"),
        description = "API of a LabEdge lab gateway, as used by the nurses' and home samplers' tablets \
over the lab VPN.\n\n\
Errors are RFC 9457 `application/problem+json` documents (`Problem`); branch on their `code`, which \
is stable. Validation errors (422 `validation_failed`) list one JSON pointer per bad field in \
`errors[]`. A problem's `title`, `detail` and field `message`s are in French or English as the request's `Accept-Language` asks (English by default), and the answer says which in `Content-Language`; its `type`, `code`, `status` and pointers are the same in both. Request bodies refuse unknown fields. Timestamps are RFC 3339 with an offset, dates \
`YYYY-MM-DD`. Every answer carries an `X-Request-Id` header to quote to the support.\n\n\
Writes are idempotent: `POST /v1/collections` takes an `Idempotency-Key` (use the collection id), \
`PATCH /v1/appointments/{id}` an `If-Match` with the version read, and queued offline work goes \
through `POST /v1/sync/push` with one id per mutation.",
        license(name = "UNLICENSED")
    ),
    paths(
        enroll, login, refresh, logout, me, change_pin, reset_pin, search_patients, get_patient, list_patient_prescriptions,
        get_prescription, get_round, list_appointments, update_appointment, create_collection,
        sync_push, sync_pull, list_slots, book_appointment, reschedule_appointment, register_patient,
        void_collection, create_paper_prescription, healthz, readyz, metrics, openapi_json
    ),
    components(schemas(
        Address, Appointment, AppointmentKind, AppointmentList, AppointmentPatch, AppointmentStatus,
        BirthDate, CollectionReceipt, Contact, DatabaseRole, DateQuery, DeviceRef, EnrollRequest,
        EnrollResponse, ErrorCode, FieldError, Health, IdentityCheckMethod, IdentityStatus, LabRef,
        LoginRequest, LogoutRequest, Me, Mutation, MutationOp, MutationOutcome, MutationResult,
        NewCollection, NirView, Patient, PatientIdentity, PatientPage, PatientSearchQuery,
        PatientSummary, PersonName, PhoneNumber, PinChangeRequest, PinResetRequest, PrescribedExam, Prescriber, Prescription,
        PrescriptionList, PrescriptionStatus, PrescriptionSummary, Problem, Readiness,
        ReadinessCheck, RefreshRequest, RelayState, Removal, Role, Round, RoundVisit, Secret, Sex,
        SyncEntity, SyncPullQuery, SyncPullResponse, SyncPushRequest, SyncPushResponse,
        TokenResponse, TokenType, Tube, TubeBarcode, TubePlanEntry, Slot, SlotList, SlotQuery,
        NewAppointment, Reschedule, NewPatient, IdentityDocument, CollectionVoid, VoidReceipt,
        NewPaperPrescription, PaperPrescriptionForm, PaperPrescriptionReceipt, PaperPrescriptionStatus,
        DocumentReceipt, DocumentMediaType
    )),
    modifiers(&BearerJwt, &ClosedUnions),
    tags(
        (name = "devices", description = "Enrollment of tablets"),
        (name = "auth", description = "Staff sessions on an enrolled tablet"),
        (name = "patients", description = "Patient lookup in the lab's scope"),
        (name = "prescriptions", description = "Prescriptions, exams and tube plans"),
        (name = "rounds", description = "Home-sampling rounds"),
        (name = "appointments", description = "Lab and home appointments"),
        (name = "collections", description = "Sample collections"),
        (name = "sync", description = "Offline push and delta pull"),
        (name = "ops", description = "Health, readiness, metrics and this document")
    )
)]
pub struct ApiDoc;

/// Adds the bearer JWT scheme that authenticated operations refer to.
#[derive(Debug)]
struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "Access token from `/v1/auth/login` or `/v1/auth/refresh`, bound to staff, device and lab.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
    }
}

/// Marks the variants of the tagged enums that refuse unknown fields (`#[serde(tag = "kind",
/// deny_unknown_fields)]`) with `additionalProperties: false`, as utoipa leaves them open: without
/// it the document lets a client send `{"kind": "collection.create", "collection": …, "extra": 1}`,
/// which the gateway refuses (found by schemathesis, issue 9).
#[derive(Debug)]
struct ClosedUnions;

/// Component schemas whose `oneOf` variants are closed objects.
const CLOSED_UNIONS: [&str; 1] = ["MutationOp"];

impl Modify for ClosedUnions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in CLOSED_UNIONS {
            let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(name) else {
                panic!("{name} is not a oneOf component");
            };
            for item in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = item {
                    object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// The OpenAPI document (version 3.1).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with sorted keys and a trailing newline: byte-for-byte stable.
pub fn document_json() -> String {
    // Sorting here rather than trusting map types keeps the output identical even when another crate
    // of the build turns on serde_json's or utoipa's `preserve_order`.
    let value = serde_json::to_value(document()).expect("the OpenAPI model always serializes to JSON");
    let mut text = serde_json::to_string_pretty(&sorted(value)).expect("a serde_json::Value always serializes");
    text.push('\n');
    text
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(key, value)| (key, sorted(value))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[utoipa::path(
    post,
    path = "/v1/devices/enroll",
    tag = "devices",
    operation_id = "enroll_device",
    request_body = EnrollRequest,
    responses(
        (status = 201, description = "Device enrolled; the secret is shown only this once.", body = EnrollResponse),
        (status = 400, description = "`malformed_json`, or `enrollment_code_invalid` (unknown, used or expired code).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`peer_not_allowed`: not on the lab VPN.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: send `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many enrollment attempts.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn enroll() {}

#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in.", body = TokenResponse),
        (status = 400, description = "`malformed_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: wrong login, PIN or device secret (never says which).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`device_revoked` (enroll again) or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`locked_out` (too many failures for this account or device) or `rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn login() {}

#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    operation_id = "refresh_token",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair; the refresh token sent is now spent.", body = TokenResponse),
        (status = 400, description = "`malformed_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials` (unknown, spent or expired refresh token: log in again) or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn refresh() {}

#[utoipa::path(
    post,
    path = "/v1/auth/pin",
    tag = "auth",
    operation_id = "change_pin",
    request_body = PinChangeRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 204, description = "PIN changed; the session goes on. Log in with the new PIN from now on."),
        (status = 400, description = "`malformed_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a PIN of the wrong shape, the same PIN twice, or `current_pin` not the current PIN (`errors[0].code = \"wrong_pin\"`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`locked_out` (too many wrong current PINs for this account on this device, as for a login) or `rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn change_pin() {}

#[utoipa::path(
    post,
    path = "/v1/auth/pin/reset",
    tag = "auth",
    operation_id = "reset_pin",
    request_body = PinResetRequest,
    responses(
        (status = 204, description = "PIN set; the code is spent and the staff member's sessions have ended: log in with the new PIN."),
        (status = 400, description = "`malformed_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: wrong device secret, login or code, or a code used or expired (never says which).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`device_revoked` (enroll again) or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`locked_out` (too many failures for this account on this device, as for a login) or `rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn reset_pin() {}

#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    operation_id = "logout",
    request_body(content = Option<LogoutRequest>, description = "Optional: the refresh token to revoke too."),
    security(("bearer_jwt" = [])),
    responses(
        (status = 204, description = "Session ended (also when it already was)."),
        (status = 400, description = "`malformed_json`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn logout() {}

#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "auth",
    operation_id = "get_me",
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The session.", body = Me),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn me() {}

#[utoipa::path(
    get,
    path = "/v1/patients",
    tag = "patients",
    operation_id = "search_patients",
    params(PatientSearchQuery),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "Matching patients of the lab's scope (the search is audited).", body = PatientPage),
        (status = 400, description = "`bad_request`: the query string cannot be read (e.g. `page=abc`, unknown parameter).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `q` too short or not a name, date or NIR; `page`/`per_page` out of range.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn search_patients() {}

#[utoipa::path(
    get,
    path = "/v1/patients/{id}",
    tag = "patients",
    operation_id = "get_patient",
    params(("id" = uuid::Uuid, Path, description = "Patient id.")),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The patient (the read is audited).", body = Patient, headers(("ETag" = String, description = "`\"<version>\"` of the patient."))),
        (status = 400, description = "`bad_request`: `id` is not a UUID.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such patient in the lab's scope.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn get_patient() {}

#[utoipa::path(
    get,
    path = "/v1/patients/{id}/prescriptions",
    tag = "prescriptions",
    operation_id = "list_patient_prescriptions",
    params(("id" = uuid::Uuid, Path, description = "Patient id.")),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The patient's prescriptions, newest first.", body = PrescriptionList),
        (status = 400, description = "`bad_request`: `id` is not a UUID.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such patient in the lab's scope.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn list_patient_prescriptions() {}

#[utoipa::path(
    get,
    path = "/v1/prescriptions/{id}",
    tag = "prescriptions",
    operation_id = "get_prescription",
    params(("id" = uuid::Uuid, Path, description = "Prescription id.")),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The prescription with its exams and tube plan.", body = Prescription, headers(("ETag" = String, description = "`\"<version>\"` of the prescription."))),
        (status = 400, description = "`bad_request`: `id` is not a UUID.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such prescription in the lab's scope.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn get_prescription() {}

#[utoipa::path(
    get,
    path = "/v1/rounds",
    tag = "rounds",
    operation_id = "get_round",
    params(DateQuery),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The caller's round of that day (empty `visits` when there is none).", body = Round),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (role without rounds), `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `date` missing (code `required`) or not `YYYY-MM-DD` (code `invalid`), pointer `/date`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn get_round() {}

#[utoipa::path(
    get,
    path = "/v1/appointments",
    tag = "appointments",
    operation_id = "list_appointments",
    params(DateQuery),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The lab's appointments of that day.", body = AppointmentList),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `date` missing (code `required`) or not `YYYY-MM-DD` (code `invalid`), pointer `/date`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn list_appointments() {}

#[utoipa::path(
    patch,
    path = "/v1/appointments/{id}",
    tag = "appointments",
    operation_id = "update_appointment",
    params(
        ("id" = uuid::Uuid, Path, description = "Appointment id."),
        ("If-Match" = String, Header, description = "`\"<version>\"` of the appointment as last read (its `version`, quoted).", pattern = "^\"[0-9]{1,18}\"$", example = json!("\"4\"")),
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 128 visible ASCII characters (no space), a UUID made per write. The same key with the same body replays the first answer.", min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = json!("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c22"))
    ),
    request_body = AppointmentPatch,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The updated appointment, with its new version.", body = Appointment, headers(("ETag" = String, description = "`\"<version>\"` of the updated appointment."))),
        (status = 400, description = "`malformed_json`, `idempotency_key_missing`, or `bad_request` (`If-Match` or `Idempotency-Key` unreadable).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such appointment in the lab's scope.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition`: not allowed from the current status.", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`version_mismatch`: changed since read; reload and retry.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`.", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "`precondition_required`: `If-Match` missing.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn update_appointment() {}

#[utoipa::path(
    post,
    path = "/v1/collections",
    tag = "collections",
    operation_id = "create_collection",
    params(
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 128 visible ASCII characters (no space); use the collection id. The same key with the same body replays the first answer.", min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = json!("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c21"))
    ),
    request_body = NewCollection,
    security(("bearer_jwt" = [])),
    responses(
        (status = 201, description = "Stored at the gateway and queued for the cloud (also the answer to a replay).", body = CollectionReceipt),
        (status = 400, description = "`malformed_json` (including unknown fields such as `lab_id`), `idempotency_key_missing`, or `bad_request` (`Idempotency-Key` malformed).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the patient, prescription or appointment is not in the lab's scope.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict` (this collection id is already recorded with other data) or `idempotency_in_flight` (retry shortly).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, or `idempotency_key_reused` (same key, different body).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn create_collection() {}

#[utoipa::path(
    post,
    path = "/v1/sync/push",
    tag = "sync",
    operation_id = "sync_push",
    request_body = SyncPushRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "One result per mutation, in order; every outcome is final for that mutation.", body = SyncPushResponse),
        (status = 400, description = "`malformed_json`: nothing was applied.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`: nothing was applied; log in and push again.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: split the batch.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: nothing was applied; pointers start with `/mutations/<index>`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`: push the same batch again; applied mutations come back `duplicate`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn sync_push() {}

#[utoipa::path(
    get,
    path = "/v1/sync/pull",
    tag = "sync",
    operation_id = "sync_pull",
    params(SyncPullQuery),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "Changes in the caller's scope since `cursor`.", body = SyncPullResponse),
        (status = 400, description = "`bad_request`: the query string cannot be read.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: cursor too long, or not a cursor issued by this gateway (pull without one to start again).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn sync_pull() {}

#[utoipa::path(
    get,
    path = "/v1/slots",
    tag = "appointments",
    operation_id = "list_slots",
    params(SlotQuery),
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The day's slots not started yet, with their capacity and free places.", body = SlotList),
        (status = 400, description = "`bad_request`: the query string is unreadable.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (role), `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `date` or `kind` missing or invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn list_slots() {}

#[utoipa::path(
    post,
    path = "/v1/appointments",
    tag = "appointments",
    operation_id = "book_appointment",
    params(
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 128 visible ASCII characters (no space), a UUID made per write. The same key with the same body replays the first answer.", min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = json!("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c23"))
    ),
    request_body = NewAppointment,
    security(("bearer_jwt" = [])),
    responses(
        (status = 201, description = "Booked at the gateway and queued for the cloud (also the answer to a replay).", body = Appointment, headers(("ETag" = String, description = "`\"1\"`."))),
        (status = 400, description = "`malformed_json` (including unknown fields), `idempotency_key_missing`, or `bad_request` (a header unreadable).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (role), `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`slot_unavailable` (no free place: `next_slots` lists the next free ones), `conflict` (the id is another appointment's) or `idempotency_in_flight`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not a slot start, in the past, unknown patient, another patient's prescription, an address for a lab visit or none for a home visit.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn book_appointment() {}

#[utoipa::path(
    post,
    path = "/v1/appointments/{id}/reschedule",
    tag = "appointments",
    operation_id = "reschedule_appointment",
    params(
        ("id" = uuid::Uuid, Path, description = "Appointment id."),
        ("If-Match" = String, Header, description = "`\"<version>\"` of the appointment as last read.", pattern = "^\"[0-9]{1,18}\"$", example = json!("\"1\"")),
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 128 visible ASCII characters (no space), a UUID made per write. The same key with the same body replays the first answer.", min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = json!("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c23"))
    ),
    request_body = Reschedule,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The appointment in its new slot, with its new version.", body = Appointment, headers(("ETag" = String, description = "`\"<version>\"` of the moved appointment."))),
        (status = 400, description = "`malformed_json` (including unknown fields), `idempotency_key_missing`, or `bad_request` (a header unreadable).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (role), `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such appointment in the lab's scope.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`slot_unavailable` (with `next_slots`), `invalid_transition` (not scheduled any more) or `idempotency_in_flight`.", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`version_mismatch`: changed since read; reload and retry.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not a slot start, in the past, or the current start.", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "`precondition_required`: `If-Match` missing.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn reschedule_appointment() {}

#[utoipa::path(
    post,
    path = "/v1/patients",
    tag = "patients",
    operation_id = "register_patient",
    params(
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 128 visible ASCII characters (no space), a UUID made per write. The same key with the same body replays the first answer.", min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = json!("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c23"))
    ),
    request_body = NewPatient,
    security(("bearer_jwt" = [])),
    responses(
        (status = 201, description = "The walk-in patient, registered at the gateway and queued for the cloud.", body = Patient, headers(("ETag" = String, description = "`\"1\"`."))),
        (status = 400, description = "`malformed_json` (including unknown fields), `idempotency_key_missing`, or `bad_request` (a header unreadable).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (role), `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`possible_duplicate` (`candidates` lists the probable duplicates: check each, then send again with their ids in `confirmed_distinct_from`), `conflict` (the NIR or the id is another patient's) or `idempotency_in_flight`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a trait, the NIR (key, sex, year) or the contact is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn register_patient() {}

#[utoipa::path(
    post,
    path = "/v1/collections/{id}/void",
    tag = "collections",
    operation_id = "void_collection",
    params(
        ("id" = uuid::Uuid, Path, description = "Collection id."),
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 128 visible ASCII characters (no space), a UUID made per write. The same key with the same body replays the first answer.", min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = json!("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c23"))
    ),
    request_body = CollectionVoid,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "The void, stored at the gateway and queued for the cloud; the collection is kept.", body = VoidReceipt),
        (status = 400, description = "`malformed_json` (including unknown fields), `idempotency_key_missing`, or `bad_request` (a header unreadable).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (role), `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such collection, or a home sampler's colleague's.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: already voided; or `idempotency_in_flight`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the reason is missing or not 3 to 500 characters.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn void_collection() {}

/// The multipart body of `POST /v1/prescriptions` (documentation only: the gateway reads the parts
/// as a stream).
#[derive(Debug, utoipa::ToSchema)]
#[expect(dead_code, reason = "the shape of a multipart body for the OpenAPI document")]
pub struct PaperPrescriptionForm {
    /// The prescription, as JSON.
    prescription: NewPaperPrescription,
    /// The photo or scan: JPEG, PNG or PDF (read from its first bytes), 1 byte to 10 MiB.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

#[utoipa::path(
    post,
    path = "/v1/prescriptions",
    tag = "prescriptions",
    operation_id = "create_paper_prescription",
    params(
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 128 visible ASCII characters (no space), a UUID made per write. The same key with the same body and file replays the first answer.", min_length = 1, max_length = 128, pattern = "^[!-~]{1,128}$", example = json!("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c24"))
    ),
    request_body(content = PaperPrescriptionForm, content_type = "multipart/form-data", description = "Two parts: `prescription` (JSON) and `file` (the photo or scan)."),
    security(("bearer_jwt" = [])),
    responses(
        (status = 201, description = "Stored at the gateway, provisional, and queued for the cloud (also the answer to a replay).", body = PaperPrescriptionReceipt),
        (status = 400, description = "`malformed_json` (the `prescription` part), `idempotency_key_missing`, or `bad_request` (not multipart, a part missing, repeated or unknown, a header unreadable).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` or `offline_grace_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (role: nurse and lab admin only), `device_revoked` or `peer_not_allowed`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict` (the id is another prescription's) or `idempotency_in_flight`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the file is over 10 MiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body is not multipart/form-data, or the file is not a JPEG, PNG or PDF (read from its bytes).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an invalid field of `prescription`, an empty file, or a patient the gateway does not hold.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "`internal`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`.", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait.")))
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn create_paper_prescription() {}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    operation_id = "healthz",
    responses(
        (status = 200, description = "The process is up.", body = Health)
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn healthz() {}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "Not ready (database down, migrations pending, standby…); same body, for probes and load balancers.", body = Readiness)
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn readyz() {}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 403, description = "`peer_not_allowed`: metrics are for the monitoring network only.", body = Problem, content_type = "application/problem+json")
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn metrics() {}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "openapi_json",
    responses(
        (status = 200, description = "This document.", body = Object, content_type = "application/json")
    )
)]
#[expect(
    dead_code,
    reason = "a route's documentation for utoipa; the handler lives in the gateway"
)]
fn openapi_json() {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes;

    fn as_value() -> Value {
        serde_json::from_str(&document_json()).expect("valid JSON")
    }

    #[test]
    fn is_openapi_3_1_with_title_and_version() {
        let doc = as_value();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "LabEdge edge gateway — tablet API");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["components"]["securitySchemes"][BEARER_SCHEME]["scheme"], "bearer");
    }

    #[test]
    fn every_route_is_documented() {
        let doc = as_value();
        let paths = doc["paths"].as_object().expect("paths");
        for route in routes::ALL {
            assert!(paths.contains_key(route), "{route} missing from the document");
        }
        assert_eq!(
            paths.len(),
            routes::ALL.len(),
            "a documented path has no constant in routes"
        );
    }

    #[test]
    fn every_error_response_is_a_problem() {
        let doc = as_value();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let code: u16 = status.parse().expect("numeric status");
                    if code < 400 || (path == routes::READYZ && code == 503) {
                        continue;
                    }
                    let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/Problem", "{method} {path} {status}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "only {checked} error responses");
    }

    #[test]
    fn authenticated_routes_declare_bearer_security() {
        let doc = as_value();
        let public = [
            routes::ENROLL,
            routes::LOGIN,
            routes::REFRESH,
            routes::PIN_RESET,
            routes::HEALTHZ,
            routes::READYZ,
            routes::METRICS,
            routes::OPENAPI_JSON,
        ];
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let secured = operation
                    .get("security")
                    .is_some_and(|s| s[0].get(BEARER_SCHEME).is_some());
                assert_eq!(secured, !public.contains(&path.as_str()), "{method} {path}");
            }
        }
    }

    #[test]
    fn idempotency_and_if_match_headers_are_declared() {
        let doc = as_value();
        let header_names = |path: &str, method: &str| -> Vec<String> {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .filter(|p| p["in"] == "header")
                        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            header_names(routes::COLLECTIONS, "post"),
            [crate::headers::IDEMPOTENCY_KEY]
        );
        assert_eq!(
            header_names(routes::APPOINTMENT, "patch"),
            [crate::headers::IF_MATCH, crate::headers::IDEMPOTENCY_KEY]
        );
    }

    #[test]
    fn tagged_unions_refuse_unknown_fields_like_serde() {
        let doc = as_value();
        for name in CLOSED_UNIONS {
            for variant in doc["components"]["schemas"][name]["oneOf"].as_array().expect("oneOf") {
                assert_eq!(variant["additionalProperties"], false, "{name}");
            }
        }
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(document_json(), document_json());
        assert!(document_json().ends_with("}\n"));
    }
}
