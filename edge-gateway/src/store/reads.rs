//! The queries the reads and the delta pull share, and the mapping of stored rows to contract types.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{appointments, exam_catalog, patients, prescribed_exams, prescriptions, tube_types};
use labedge_schema::runtime::error::ApiError;
use labedge_schema::sync::{AppointmentRow, PatientRow, PrescriptionRow};
use mobile_contracts::{
    Address, Appointment, BirthDate, Contact, ExamWithTube, Nir, NirView, Patient, PatientIdentity, PatientSummary,
    PersonName, PhoneNumber, PrescribedExam, Prescriber, Prescription, Role, tube_plan,
};
use serde::de::{DeserializeOwned, IntoDeserializer};
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// The replicated patient columns, in [`PatientRow`]'s field order (the search keys left out).
pub type PatientColumns = (
    patients::id,
    patients::nir,
    patients::ins_oid,
    patients::identity_status,
    patients::birth_family_name,
    patients::birth_given_names,
    patients::first_given_name,
    patients::used_family_name,
    patients::used_given_name,
    patients::birth_date,
    patients::sex,
    patients::birth_place_code,
    patients::phone,
    patients::address_line,
    patients::postal_code,
    patients::city,
    patients::version,
);

/// See [`PatientColumns`].
pub const PATIENT_COLUMNS: PatientColumns = (
    patients::id,
    patients::nir,
    patients::ins_oid,
    patients::identity_status,
    patients::birth_family_name,
    patients::birth_given_names,
    patients::first_given_name,
    patients::used_family_name,
    patients::used_given_name,
    patients::birth_date,
    patients::sex,
    patients::birth_place_code,
    patients::phone,
    patients::address_line,
    patients::postal_code,
    patients::city,
    patients::version,
);

/// The prescription columns, in [`PrescriptionRow`]'s field order.
pub type PrescriptionColumns = (
    prescriptions::id,
    prescriptions::patient_id,
    prescriptions::lab_id,
    prescriptions::prescriber_name,
    prescriptions::prescriber_rpps,
    prescriptions::issued_on,
    prescriptions::fasting,
    prescriptions::status,
    prescriptions::notes,
    prescriptions::version,
);

/// See [`PrescriptionColumns`].
pub const PRESCRIPTION_COLUMNS: PrescriptionColumns = (
    prescriptions::id,
    prescriptions::patient_id,
    prescriptions::lab_id,
    prescriptions::prescriber_name,
    prescriptions::prescriber_rpps,
    prescriptions::issued_on,
    prescriptions::fasting,
    prescriptions::status,
    prescriptions::notes,
    prescriptions::version,
);

/// The appointment columns, in [`AppointmentRow`]'s field order.
pub type AppointmentColumns = (
    appointments::id,
    appointments::lab_id,
    appointments::patient_id,
    appointments::prescription_id,
    appointments::kind,
    appointments::scheduled_at,
    appointments::duration_min,
    appointments::address_line,
    appointments::postal_code,
    appointments::city,
    appointments::access_notes,
    appointments::assigned_staff_id,
    appointments::round_position,
    appointments::status,
    appointments::status_reason,
    appointments::version,
);

/// See [`AppointmentColumns`].
pub const APPOINTMENT_COLUMNS: AppointmentColumns = (
    appointments::id,
    appointments::lab_id,
    appointments::patient_id,
    appointments::prescription_id,
    appointments::kind,
    appointments::scheduled_at,
    appointments::duration_min,
    appointments::address_line,
    appointments::postal_code,
    appointments::city,
    appointments::access_notes,
    appointments::assigned_staff_id,
    appointments::round_position,
    appointments::status,
    appointments::status_reason,
    appointments::version,
);

/// Patients by id (in no particular order). Takes the connection shared, so that it can be
/// pipelined with other queries (`&*conn` from a `&mut`).
pub async fn load_patients(mut conn: &AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<PatientRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    patients::table
        .filter(patients::id.eq_any(ids))
        .select(PATIENT_COLUMNS)
        .load(&mut conn)
        .await
}

/// One patient.
pub async fn load_patient(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<PatientRow>> {
    patients::table
        .find(id)
        .select(PATIENT_COLUMNS)
        .first(conn)
        .await
        .optional()
}

/// Whether `patient` has an appointment of `lab` assigned to `staff`: the home sampler's scope.
pub async fn assigned_to(conn: &mut AsyncPgConnection, lab: Uuid, staff: Uuid, patient: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        appointments::table
            .filter(appointments::patient_id.eq(patient))
            .filter(appointments::assigned_staff_id.eq(staff))
            .filter(appointments::lab_id.eq(lab)),
    ))
    .get_result(conn)
    .await
}

diesel::define_sql_function! {
    /// PostgreSQL's `timezone(zone, timestamp)`, i.e. `local AT TIME ZONE zone`: the instant of a
    /// wall-clock time in `zone`, by the zone's rules (daylight saving included). A function rather
    /// than SQL text, so that the queries using it stay prepared-statement cacheable.
    #[sql_name = "timezone"]
    fn local_to_instant(zone: diesel::sql_types::Text, local: diesel::sql_types::Timestamp) -> diesel::sql_types::Timestamptz;
}

diesel::define_sql_function! {
    /// `timezone(zone, timestamptz)`: the wall-clock time of an instant in `zone`.
    #[sql_name = "timezone"]
    fn instant_to_local(zone: diesel::sql_types::Text, instant: diesel::sql_types::Timestamptz) -> diesel::sql_types::Timestamp;
}

/// The local midnights that start `day` and end `days` days later: bounds of a local period, to be
/// turned into instants by [`local_to_instant`] in the query itself.
pub fn local_period(day: Date, days: i64) -> (PrimitiveDateTime, PrimitiveDateTime) {
    let from = day.midnight();
    (from, from + time::Duration::days(days))
}

/// Today in `timezone`, as PostgreSQL reckons it.
pub async fn local_today(mut conn: &AsyncPgConnection, timezone: &str) -> QueryResult<Date> {
    diesel::select(instant_to_local(timezone, OffsetDateTime::now_utc()))
        .get_result::<PrimitiveDateTime>(&mut conn)
        .await
        .map(|local| local.date())
}

/// One exam line of a prescription, with its catalog entry and tube type when the catalog has them.
type ExamLine = (
    Uuid,
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<bool>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<i16>,
);

/// A prescription as loaded: its lab, the contract view, and its exams with their tubes (what a
/// visit's combined tube plan is computed from).
#[derive(Clone, Debug)]
pub struct LoadedPrescription {
    /// The prescription's lab.
    pub lab_id: Uuid,
    /// The prescription with its exams and tube plan.
    pub prescription: Prescription,
    /// Its exams joined with their tube types (exams missing from the catalog left out).
    pub tubes: Vec<ExamWithTube>,
}

/// Prescriptions by id, with their exams and tube plans; in no particular order. Two pipelined
/// queries whatever the number of prescriptions.
pub async fn load_prescriptions(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<LoadedPrescription>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The two queries are pipelined on the connection: one round trip's wait, not two.
    let (mut first, mut second) = (&*conn, &*conn);
    let rows = prescriptions::table
        .filter(prescriptions::id.eq_any(ids))
        .select(PRESCRIPTION_COLUMNS)
        .load::<PrescriptionRow>(&mut first);
    let lines = prescribed_exams::table
        .left_join(exam_catalog::table.on(exam_catalog::code.eq(prescribed_exams::exam_code)))
        .left_join(tube_types::table.on(tube_types::code.eq(exam_catalog::tube_type)))
        .filter(prescribed_exams::prescription_id.eq_any(ids))
        .order((prescribed_exams::prescription_id, prescribed_exams::exam_code))
        .select((
            prescribed_exams::prescription_id,
            prescribed_exams::exam_code,
            exam_catalog::label.nullable(),
            exam_catalog::tube_type.nullable(),
            exam_catalog::volume_ul.nullable(),
            exam_catalog::fasting.nullable(),
            tube_types::label.nullable(),
            tube_types::cap_color.nullable(),
            tube_types::additive.nullable(),
            tube_types::capacity_ul.nullable(),
            tube_types::draw_order.nullable(),
        ))
        .load::<ExamLine>(&mut second);
    let (rows, lines) = tokio::try_join!(rows, lines)?;
    let mut by_prescription: HashMap<Uuid, Vec<&ExamLine>> = HashMap::new();
    for line in &lines {
        by_prescription.entry(line.0).or_default().push(line);
    }
    rows.into_iter()
        .map(|row| {
            let exams = by_prescription.remove(&row.id).unwrap_or_default();
            let lab_id = row.lab_id;
            let (prescription, tubes) = render_prescription(row, &exams)?;
            Ok(LoadedPrescription {
                lab_id,
                prescription,
                tubes,
            })
        })
        .collect()
}

/// The ids of the open prescriptions at `lab` of these patients, with their patients, newest
/// first. Takes the connection shared, so that it can be pipelined with other queries.
pub async fn open_prescriptions_of(
    mut conn: &AsyncPgConnection,
    lab: Uuid,
    patients: &[Uuid],
) -> QueryResult<Vec<(Uuid, Uuid)>> {
    if patients.is_empty() {
        return Ok(Vec::new());
    }
    prescriptions::table
        .filter(prescriptions::patient_id.eq_any(patients))
        .filter(prescriptions::lab_id.eq(lab))
        .filter(prescriptions::status.eq("open"))
        .order((prescriptions::issued_on.desc(), prescriptions::id))
        .select((prescriptions::id, prescriptions::patient_id))
        .load(&mut conn)
        .await
}

/// The prescriptions a visit samples: the appointment's own, else the patient's open prescriptions
/// at this lab (newest first). `open` is what [`open_prescriptions_of`] found for the patients.
pub fn visit_prescriptions(appointment: &AppointmentRow, open: &[(Uuid, Uuid)]) -> Vec<Uuid> {
    match appointment.prescription_id {
        Some(id) => vec![id],
        None => open
            .iter()
            .filter(|(_, patient)| *patient == appointment.patient_id)
            .map(|(id, _)| *id)
            .collect(),
    }
}

/// A stored text column holding one of a contract enum's wire names.
pub fn parse_enum<T: DeserializeOwned>(column: &'static str, value: &str) -> Result<T, ApiError> {
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(value))
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("{column} holds a value the contract does not know")))
}

fn nir_view(stored: Option<&str>, role: Role) -> Option<NirView> {
    let stored = stored?;
    Some(match Nir::parse(stored) {
        Ok(nir) => NirView::for_role(&nir, role),
        // The cloud checks NIRs; one that does not parse here is still shown to those who may see
        // it, and hidden whole from those who see masked NIRs.
        Err(_) if matches!(role, Role::HomeSampler) => NirView {
            value: "** ** ** ** *** *** **".into(),
            masked: true,
        },
        Err(_) => NirView {
            value: stored.to_owned(),
            masked: false,
        },
    })
}

fn address(line: Option<&str>, postal_code: Option<&str>, city: Option<&str>) -> Option<Address> {
    if line.is_none() && postal_code.is_none() && city.is_none() {
        return None;
    }
    Some(Address::new(
        line.unwrap_or_default(),
        postal_code.unwrap_or_default(),
        city.unwrap_or_default(),
    ))
}

/// A patient as `role` may see it.
pub fn render_patient(row: &PatientRow, role: Role) -> Result<Patient, ApiError> {
    let identity_status = parse_enum("patients.identity_status", &row.identity_status)?;
    Ok(Patient {
        id: row.id,
        version: row.version,
        identity_status,
        identity: PatientIdentity {
            birth_family_name: PersonName::new(row.birth_family_name.clone()),
            birth_given_names: PersonName::new(row.birth_given_names.clone()),
            first_given_name: PersonName::new(row.first_given_name.clone()),
            used_family_name: row.used_family_name.clone().map(PersonName::new),
            used_given_name: row.used_given_name.clone().map(PersonName::new),
            birth_date: BirthDate::new(row.birth_date),
            sex: parse_enum("patients.sex", &row.sex)?,
            birth_place_code: row.birth_place_code.clone(),
            nir: nir_view(row.nir.as_deref(), role),
            ins_oid: row.ins_oid.clone(),
        },
        contact: Contact {
            phone: row.phone.clone().map(PhoneNumber::new),
            address: address(
                row.address_line.as_deref(),
                row.postal_code.as_deref(),
                row.city.as_deref(),
            ),
        },
        read_only: PatientIdentity::read_only_fields(identity_status),
    })
}

/// A search hit as `role` may see it.
pub fn render_summary(row: &PatientRow, role: Role) -> Result<PatientSummary, ApiError> {
    Ok(PatientSummary {
        id: row.id,
        identity_status: parse_enum("patients.identity_status", &row.identity_status)?,
        birth_family_name: PersonName::new(row.birth_family_name.clone()),
        used_family_name: row.used_family_name.clone().map(PersonName::new),
        first_given_name: PersonName::new(row.first_given_name.clone()),
        birth_date: BirthDate::new(row.birth_date),
        sex: parse_enum("patients.sex", &row.sex)?,
        nir: nir_view(row.nir.as_deref(), role),
    })
}

/// An appointment as stored.
pub fn render_appointment(row: &AppointmentRow) -> Result<Appointment, ApiError> {
    Ok(Appointment {
        id: row.id,
        patient_id: row.patient_id,
        prescription_id: row.prescription_id,
        kind: parse_enum("appointments.kind", &row.kind)?,
        scheduled_at: row.scheduled_at,
        duration_min: u16::try_from(row.duration_min).unwrap_or(0),
        address: address(
            row.address_line.as_deref(),
            row.postal_code.as_deref(),
            row.city.as_deref(),
        ),
        access_notes: row.access_notes.clone(),
        assigned_staff_id: row.assigned_staff_id,
        round_position: row.round_position.and_then(|p| u16::try_from(p).ok()),
        status: parse_enum("appointments.status", &row.status)?,
        status_reason: row.status_reason.clone(),
        version: row.version,
    })
}

fn render_prescription(
    row: PrescriptionRow,
    lines: &[&ExamLine],
) -> Result<(Prescription, Vec<ExamWithTube>), ApiError> {
    let mut exams = Vec::with_capacity(lines.len());
    let mut with_tubes = Vec::with_capacity(lines.len());
    for &(_, code, label, tube_type, volume_ul, fasting, tube_label, cap_color, additive, capacity_ul, draw_order) in
        lines
    {
        let exam = PrescribedExam {
            code: code.clone(),
            label: label.clone().unwrap_or_else(|| code.clone()),
            tube_type: tube_type.clone().unwrap_or_default(),
            volume_ul: volume_ul.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            fasting: fasting.unwrap_or(false),
        };
        match (tube_label, cap_color) {
            (Some(tube_label), Some(cap_color)) => with_tubes.push(ExamWithTube {
                exam: exam.clone(),
                label: tube_label.clone(),
                cap_color: cap_color.clone(),
                additive: additive.clone(),
                capacity_ul: capacity_ul.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                draw_order: draw_order.and_then(|v| u16::try_from(v).ok()).unwrap_or(u16::MAX),
            }),
            // The cloud keeps the catalog whole; an exam or tube type missing here is shown but
            // left out of the tube plan (the sampler sees the exam and asks the lab).
            _ => tracing::warn!(
                prescription_id = %row.id,
                exam_code = %code,
                "exam or tube type missing from the catalog; left out of the tube plan"
            ),
        }
        exams.push(exam);
    }
    let fasting_required = row.fasting || exams.iter().any(|e| e.fasting);
    let prescription = Prescription {
        id: row.id,
        patient_id: row.patient_id,
        prescriber: Prescriber {
            name: row.prescriber_name,
            rpps: row.prescriber_rpps,
        },
        issued_on: row.issued_on,
        status: parse_enum("prescriptions.status", &row.status)?,
        fasting_required,
        notes: row.notes,
        tube_plan: tube_plan(&with_tubes),
        exams,
        version: row.version,
    };
    Ok((prescription, with_tubes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mobile_contracts::{AppointmentStatus, IdentityStatus};

    #[test]
    fn stored_enums_parse_by_wire_name() {
        assert_eq!(
            parse_enum::<IdentityStatus>("c", "qualified").ok(),
            Some(IdentityStatus::Qualified)
        );
        assert_eq!(
            parse_enum::<AppointmentStatus>("c", "checked_in").ok(),
            Some(AppointmentStatus::CheckedIn)
        );
        assert!(parse_enum::<AppointmentStatus>("c", "lost").is_err());
    }

    #[test]
    fn an_unparsable_nir_is_hidden_from_home_samplers() {
        let masked = nir_view(Some("123"), Role::HomeSampler).expect("view");
        assert!(masked.masked && !masked.value.contains("123"));
        let nurse = nir_view(Some("123"), Role::Nurse).expect("view");
        assert_eq!((nurse.value.as_str(), nurse.masked), ("123", false));
        assert_eq!(nir_view(None, Role::Nurse), None);
    }
}
