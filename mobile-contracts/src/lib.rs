//! # mobile-contracts
//!
//! Every request and response a LabEdge tablet exchanges with its lab's edge gateway, the error
//! model, and the OpenAPI document generated from them. The gateway, the end-to-end tests and the
//! tablet team all build against this crate, so a change here is a change of the contract.
//!
//! It depends on no server crate (no actix, diesel, redis or tokio): only serde, validator, time,
//! uuid and thiserror, plus utoipa behind the `openapi` feature.
//!
//! ## What is where
//!
//! | module | holds |
//! |---|---|
//! | [`personal`] | [`PersonName`], [`BirthDate`], [`PhoneNumber`], [`Address`], [`Secret`]: `Debug` redacts them |
//! | [`nir`] | [`Nir`]: the French NIR / INS matricule, parsed and key-checked |
//! | [`problem`] | [`Problem`] (RFC 9457), [`ErrorCode`], [`FieldError`], [`Problem::from_validation`] |
//! | [`i18n`] | [`Lang`] and its `Accept-Language` negotiation, the French forms of problems' texts |
//! | [`common`] | [`LabRef`], [`Role`], [`IdentityStatus`], [`Sex`], [`AppointmentStatus`] and the other enums |
//! | [`devices`], [`auth`] | enrollment, login, refresh, logout, `GET /v1/me`, a PIN changed or reset with a code |
//! | [`patients`], [`prescriptions`], [`rounds`], [`appointments`] | reads, with [`tube_plan`] |
//! | [`collections`], [`sync`] | writes: [`NewCollection`], [`SyncPushRequest`], [`SyncPullResponse`] |
//! | [`booking`], [`walk_ins`] | the desk's writes: [`SlotList`], [`NewAppointment`], [`Reschedule`], [`NewPatient`] |
//! | [`paper_prescriptions`] | a paper prescription and its photo or scan: [`NewPaperPrescription`], [`PaperPrescriptionReceipt`] |
//! | [`ops`] | [`Health`], [`Readiness`] |
//! | [`routes`], [`headers`] | path and header constants shared by server and tests |
//! | `openapi` (feature `openapi`) | `document()`, `document_json()` |
//!
//! All types are also re-exported at the crate root.
//!
//! ## Rules of the contract
//!
//! - JSON field and enum names are `snake_case`; [`Sex`] uses the INS values `F`, `M`, `I`.
//! - Timestamps are RFC 3339 with an offset; calendar dates are `YYYY-MM-DD` ([`serde_date`]).
//! - Request bodies refuse unknown fields (`deny_unknown_fields`): who, which lab and which device
//!   always come from the access token, never from a body, so a `lab_id` or `collected_by` in a body
//!   is an error rather than silently ignored.
//! - Requests implement `validator::Validate`; a failed validation is answered with
//!   [`Problem::from_validation`]: 422 `validation_failed` with one JSON pointer per bad field. A body
//!   serde cannot read is answered with [`Problem::from_json_error`]: 400 `malformed_json`.
//! - Every 4xx/5xx body is a [`Problem`] (`application/problem+json`); tablets branch on its `code`.
//!   Its `title`, `detail` and field messages are in the language of the request's `Accept-Language`
//!   (French or English, English by default: [`Lang::negotiate`], [`Problem::localized`]).
//!   `GET /readyz` is the one exception: its 503 carries the same [`Readiness`] body as its 200.
//! - No submitted value and no personal data appears in a problem or in a `Debug` output.
//!
//! ## The OpenAPI document
//!
//! `openapi.json` at the root of this crate is generated from the code (OpenAPI 3.1) and committed,
//! for the tablet team. A test fails when it is stale; regenerate it with:
//!
//! ```text
//! UPDATE_OPENAPI=1 cargo test -p mobile-contracts --all-features --test openapi_fresh
//! ```
//!
//! The gateway serves the same document at `GET /openapi.json` (`openapi::document_json()`).

pub mod appointments;
pub mod auth;
pub mod booking;
pub mod collections;
pub mod common;
pub mod devices;
pub mod headers;
pub mod i18n;
pub mod nir;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod ops;
pub mod paper_prescriptions;
pub mod patients;
pub mod personal;
pub mod prescriptions;
pub mod problem;
pub mod rounds;
pub mod routes;
pub mod serde_date;
pub mod sync;
pub mod walk_ins;

mod rules;

#[cfg(test)]
mod fixtures;

pub use appointments::*;
pub use auth::*;
pub use booking::*;
pub use collections::*;
pub use common::*;
pub use devices::*;
pub use i18n::Lang;
pub use nir::*;
pub use ops::*;
pub use paper_prescriptions::*;
pub use patients::*;
pub use personal::*;
pub use prescriptions::*;
pub use problem::*;
pub use rounds::*;
pub use sync::*;
pub use walk_ins::*;
