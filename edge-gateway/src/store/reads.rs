//! The queries of the reads and of the delta pull: patients, prescriptions with their exams and
//! tubes, appointments of a period (the mapping of their rows to contract types is
//! [`crate::reads::render`]; who may see what is [`crate::reads`]'s).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{appointments, exam_catalog, patients, prescribed_exams, prescriptions, tube_types};
use labedge_schema::sync::{AppointmentRow, PatientRow, PrescriptionRow};
use labedge_service::error::ApiError;
use mobile_contracts::{ExamWithTube, Prescription};
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use crate::reads::render::render_prescription;

/// Patients by id (in no particular order). Takes the connection shared, so that it can be
/// pipelined with other queries (`&*conn` from a `&mut`).
pub async fn load_patients(mut conn: &AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<PatientRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    patients::table
        .filter(patients::id.eq_any(ids))
        .select(PatientRow::EDGE_COLUMNS)
        .load(&mut conn)
        .await
}

/// One patient.
pub async fn load_patient(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<PatientRow>> {
    patients::table
        .find(id)
        .select(PatientRow::EDGE_COLUMNS)
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
pub(crate) type ExamLine = (
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
        .select(PrescriptionRow::EDGE_COLUMNS)
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

/// The appointments of `lab` in the `days` local days from `first` in `timezone`, by time: those
/// assigned to `staff`, or everyone's when `everyone`. One query text for both, so that it stays
/// one cached prepared statement.
pub async fn appointments_in_period(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    (staff, everyone): (Uuid, bool),
    timezone: &str,
    (first, days): (Date, i64),
) -> QueryResult<Vec<AppointmentRow>> {
    let (from, to) = local_period(first, days);
    appointments::table
        .filter(appointments::lab_id.eq(lab))
        .filter(appointments::scheduled_at.ge(local_to_instant(timezone, from)))
        .filter(appointments::scheduled_at.lt(local_to_instant(timezone, to)))
        .filter(
            appointments::assigned_staff_id
                .eq(staff)
                .nullable()
                .or(everyone.into_sql::<Bool>().nullable()),
        )
        .order((appointments::scheduled_at, appointments::id))
        .select(AppointmentRow::EDGE_COLUMNS)
        .load(conn)
        .await
}

/// The home visits of `lab` assigned to `staff` on the local day `day` in `timezone`, in round
/// order (`round_position`, then time).
pub async fn home_visits(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    staff: Uuid,
    timezone: &str,
    day: Date,
) -> QueryResult<Vec<AppointmentRow>> {
    let (from, to) = local_period(day, 1);
    appointments::table
        .filter(appointments::lab_id.eq(lab))
        .filter(appointments::assigned_staff_id.eq(staff))
        .filter(appointments::kind.eq("home"))
        .filter(appointments::scheduled_at.ge(local_to_instant(timezone, from)))
        .filter(appointments::scheduled_at.lt(local_to_instant(timezone, to)))
        .order((
            appointments::round_position.asc().nulls_last(),
            appointments::scheduled_at,
            appointments::id,
        ))
        .select(AppointmentRow::EDGE_COLUMNS)
        .load(conn)
        .await
}

/// The patients of these appointments.
pub async fn patients_of_appointments(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    appointments::table
        .filter(appointments::id.eq_any(ids))
        .select(appointments::patient_id)
        .load(conn)
        .await
}

/// What a patient search matches.
#[derive(Clone, Debug)]
pub enum PatientFilter {
    /// The birth or used family name's search key, by a `LIKE` pattern escaped with `\`.
    FamilyKeyLike(String),
    /// The birth date.
    BirthDate(Date),
    /// The NIR.
    Nir(String),
}

/// Whose patients a search may find.
#[derive(Clone, Copy, Debug)]
pub enum PatientScope {
    /// Every patient of the gateway (its lab's only).
    All,
    /// Those named by an appointment of the lab assigned to the staff member.
    AssignedTo {
        /// The lab.
        lab: Uuid,
        /// The staff member.
        staff: Uuid,
    },
}

/// A page of the patients `filter` matches in `scope`, by name, birth date and id; and whether more
/// follow.
pub async fn search_patients(
    conn: &mut AsyncPgConnection,
    filter: PatientFilter,
    scope: PatientScope,
    page: u32,
    per_page: u32,
) -> QueryResult<(Vec<PatientRow>, bool)> {
    // A patient merged into another is found as the survivor, never twice.
    let mut query = patients::table
        .select(PatientRow::EDGE_COLUMNS)
        .filter(patients::merged_into.is_null())
        .into_boxed();
    query = match filter {
        PatientFilter::FamilyKeyLike(pattern) => query.filter(
            patients::birth_family_key
                .like(pattern.clone())
                .escape('\\')
                .or(patients::used_family_key.like(pattern).escape('\\')),
        ),
        PatientFilter::BirthDate(date) => query.filter(patients::birth_date.eq(date)),
        PatientFilter::Nir(nir) => query.filter(patients::nir.eq(nir)),
    };
    if let PatientScope::AssignedTo { lab, staff } = scope {
        query = query.filter(
            patients::id.eq_any(
                appointments::table
                    .filter(appointments::assigned_staff_id.eq(staff))
                    .filter(appointments::lab_id.eq(lab))
                    .select(appointments::patient_id),
            ),
        );
    }
    let limit = i64::from(per_page);
    let mut rows: Vec<PatientRow> = query
        .order((
            patients::birth_family_name,
            patients::first_given_name,
            patients::birth_date,
            patients::id,
        ))
        .limit(limit + 1)
        .offset(i64::from(page.saturating_sub(1)) * limit)
        .load(conn)
        .await?;
    let has_more = rows.len() > per_page as usize;
    rows.truncate(per_page as usize);
    Ok((rows, has_more))
}

/// The ids of the prescriptions of `patients` at `lab`.
pub async fn prescription_ids_of(conn: &mut AsyncPgConnection, lab: Uuid, patients: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    prescriptions::table
        .filter(prescriptions::patient_id.eq_any(patients))
        .filter(prescriptions::lab_id.eq(lab))
        .select(prescriptions::id)
        .load(conn)
        .await
}
