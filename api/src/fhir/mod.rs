//! The HL7 FHIR R4 interface to the lab information system (issue 14), at `/fhir/R4`.
//!
//! Inbound, the LIS creates and updates `Patient` (FR Core's INS), `Organization` (labs),
//! `Practitioner` and `PractitionerRole` (staff), `ServiceRequest` (prescriptions) and
//! `Appointment`; every accepted change is a row of the cloud's tables, so the change feed carries it
//! to the gateway of the lab concerned. Outbound, tablets' collections are `Specimen`s and
//! appointment status changes new `Appointment` versions, both read in commit-safe order with
//! `_cursor`; paper prescriptions photographed at the desks are `DocumentReference`s with their
//! bytes as `Binary` ([`document`]). Resources are typed rows read element by element ([`json`]): the generated FHIR model
//! crates either lack R4 (`fhir-sdk`: STU3, R4B, R5) or are experimental and 1.5 million lines to
//! compile (`fhirbolt`), for the eight types used here.

pub mod appointment;
pub mod bundle;
pub mod capability;
pub mod client;
pub mod document;
pub mod import;
pub mod interactions;
pub mod json;
pub mod organization;
pub mod outcome;
pub mod patient;
pub mod request;
pub mod resources;
pub mod routes;
pub mod specimen;
pub mod staff;
pub mod store;
pub mod subscription;

/// The FHIR JSON media type.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// A staff member's tablet login (Practitioner identifier).
pub const LOGIN_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/sid/staff-login";
/// A lab's code (Organization and Location identifier).
pub const LAB_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/sid/lab-code";
/// A tube's barcode (Specimen identifier, accession and container identifier).
pub const BARCODE_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/sid/tube-barcode";
/// RPPS, the French health professionals' directory number (ANS OID).
pub const RPPS_SYSTEM: &str = "urn:oid:1.2.250.1.71.4.2.1";
/// Staff roles: nurse, home_sampler, lab_admin.
pub const ROLE_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/staff-role";
/// The exam catalog's codes.
pub const EXAM_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/exam";
/// Tube types.
pub const TUBE_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/tube-type";
/// Visit kinds: lab, home.
pub const VISIT_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/visit-kind";
/// Lab kinds: central, proximity.
pub const LAB_KIND_SYSTEM: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/lab-kind";
/// ServiceRequest extension: the patient must fast (valueBoolean).
pub const FASTING_URL: &str = "https://labedge.labanalyse.fr/fhir/StructureDefinition/fasting";
/// Appointment extension: where a home visit takes place (valueAddress).
pub const ADDRESS_URL: &str = "https://labedge.labanalyse.fr/fhir/StructureDefinition/visit-address";
/// Appointment extension: the visit's rank in its sampler's round (valuePositiveInt).
pub const ROUND_URL: &str = "https://labedge.labanalyse.fr/fhir/StructureDefinition/round-position";
/// Specimen extension: how the sampler checked the patient's identity (valueCode).
pub const IDENTITY_CHECK_URL: &str = "https://labedge.labanalyse.fr/fhir/StructureDefinition/identity-check";

pub use routes::configure;
