//! Rows as they are inserted: one struct per table, with the number of bind parameters a row takes so
//! that multi-row inserts stay under PostgreSQL's limit.

use diesel::Insertable;
use labedge_schema::cloud::schema::{appointments, labs, patients, prescribed_exams, prescriptions, staff};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::catalog::{Exam, TubeType};

/// PostgreSQL's limit on bind parameters in one statement (a 16-bit count in the protocol).
pub const MAX_BINDS: usize = 65_535;

/// A table row type and how many values one row binds.
pub trait Row {
    /// Columns the struct inserts, each one bind parameter.
    const COLUMNS: usize;

    /// Rows per statement that stay under [`MAX_BINDS`].
    fn rows_per_statement() -> usize {
        MAX_BINDS / Self::COLUMNS
    }
}

/// A lab.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = labs)]
pub struct LabRow {
    /// Id.
    pub id: Uuid,
    /// Code (`CENTRAL`, `VILLEURBANNE`, …).
    pub code: String,
    /// Display name.
    pub name: String,
    /// `central` or `proximity`.
    pub kind: &'static str,
}

impl Row for LabRow {
    const COLUMNS: usize = 4;
}

/// A staff member (hashes are filled in after generation, which stays free of slow work).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = staff)]
pub struct StaffRow {
    /// Id.
    pub id: Uuid,
    /// Their lab.
    pub lab_id: Uuid,
    /// Login, unique in the lab.
    pub login: String,
    /// "Claire Martin".
    pub display_name: String,
    /// `nurse`, `home_sampler` or `lab_admin`.
    pub role: &'static str,
    /// argon2id hash of the PIN.
    pub pin_hash: String,
    /// argon2id hash of the console password (lab admins only).
    pub password_hash: Option<String>,
}

impl Row for StaffRow {
    const COLUMNS: usize = 7;
}

// The catalog's own types are its rows (`catalog::TubeType`, `catalog::Exam`): what the tablets show
// is what is inserted.
impl Row for TubeType {
    const COLUMNS: usize = 6;
}

impl Row for Exam {
    const COLUMNS: usize = 5;
}

/// A patient.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = patients)]
pub struct PatientRow {
    /// Id.
    pub id: Uuid,
    /// NIR (INS matricule), when known.
    pub nir: Option<String>,
    /// OID of the INS, when it came from the teleservice.
    pub ins_oid: Option<&'static str>,
    /// `provisional`, `recovered`, `validated` or `qualified`.
    pub identity_status: &'static str,
    /// Birth family name.
    pub birth_family_name: String,
    /// Birth given names, space-separated.
    pub birth_given_names: String,
    /// First birth given name.
    pub first_given_name: &'static str,
    /// Used family name (e.g. a spouse's).
    pub used_family_name: Option<String>,
    /// Used given name.
    pub used_given_name: Option<&'static str>,
    /// Birth date.
    pub birth_date: Date,
    /// `F` or `M`.
    pub sex: &'static str,
    /// INSEE code of the birth place.
    pub birth_place_code: Option<&'static str>,
    /// Phone number.
    pub phone: Option<String>,
    /// Street address.
    pub address_line: Option<String>,
    /// Postal code.
    pub postal_code: Option<&'static str>,
    /// City.
    pub city: Option<&'static str>,
}

impl Row for PatientRow {
    const COLUMNS: usize = 16;
}

/// A prescription.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = prescriptions)]
pub struct PrescriptionRow {
    /// Id.
    pub id: Uuid,
    /// Patient.
    pub patient_id: Uuid,
    /// Lab in charge of the sampling.
    pub lab_id: Uuid,
    /// "Dr …".
    pub prescriber_name: String,
    /// 11-digit RPPS number.
    pub prescriber_rpps: String,
    /// Date of the prescription.
    pub issued_on: Date,
    /// The prescriber's fasting instruction.
    pub fasting: bool,
    /// `open`, `sampled`, `completed` or `cancelled`.
    pub status: &'static str,
    /// Free-text notes.
    pub notes: Option<String>,
}

impl Row for PrescriptionRow {
    const COLUMNS: usize = 9;
}

/// An exam of a prescription.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = prescribed_exams)]
pub struct PrescribedExamRow {
    /// Prescription.
    pub prescription_id: Uuid,
    /// Exam code.
    pub exam_code: &'static str,
}

impl Row for PrescribedExamRow {
    const COLUMNS: usize = 2;
}

/// An appointment at the lab or at home.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = appointments)]
pub struct AppointmentRow {
    /// Id.
    pub id: Uuid,
    /// Lab.
    pub lab_id: Uuid,
    /// Patient.
    pub patient_id: Uuid,
    /// Prescription to sample.
    pub prescription_id: Option<Uuid>,
    /// `lab` or `home`.
    pub kind: &'static str,
    /// When.
    pub scheduled_at: OffsetDateTime,
    /// Expected duration in minutes.
    pub duration_min: i16,
    /// Address of a home visit.
    pub address_line: Option<String>,
    /// Postal code of a home visit.
    pub postal_code: Option<&'static str>,
    /// City of a home visit.
    pub city: Option<&'static str>,
    /// How to get in.
    pub access_notes: Option<String>,
    /// Nurse or home sampler in charge.
    pub assigned_staff_id: Option<Uuid>,
    /// Position in the home sampler's round.
    pub round_position: Option<i16>,
    /// `scheduled`, `collected`, `no_show`, `cancelled`.
    pub status: &'static str,
    /// Why it was cancelled or missed.
    pub status_reason: Option<&'static str>,
}

impl Row for AppointmentRow {
    const COLUMNS: usize = 15;
}
