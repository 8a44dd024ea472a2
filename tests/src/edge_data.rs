//! Patients, prescriptions (with their exams), the exam catalog and appointments written into a
//! gateway's edge database the way the sync writes them: the shared row types' upserts
//! (`labedge_schema::sync`), one transaction per call, then the same Redis evictions as the sync
//! worker (a patient's row and prescription list, a prescription, every tube plan after a catalog
//! change).

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::cache::keys;
use labedge_schema::sync::{AppointmentRow, ExamRow, PatientRow, PrescriptionRecord, PrescriptionRow, TubeTypeRow};
use mobile_contracts::Nir;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::gateway::TestGateway;

/// A valid NIR (key included) for a patient of this sex and birth date; `serial` tells patients
/// apart (1 to 999).
pub fn nir(sex: &str, birth: Date, serial: u16) -> String {
    let sex_digit = if sex == "M" { 1 } else { 2 };
    let first13 = format!(
        "{sex_digit}{:02}{:02}75056{:03}",
        birth.year() % 100,
        u8::from(birth.month()),
        serial % 1000
    );
    let key = Nir::compute_key(&first13).expect("13 digits");
    let nir = format!("{first13}{key:02}");
    Nir::parse(&nir).expect("a valid NIR");
    nir
}

/// The tube types of the standard catalog, in order of draw: `CIT` (citrate, 2.7 mL), `SST` (gel,
/// 3.5 mL), `EDTA` (4 mL), `FLUO` (fluoride, 2 mL).
pub fn tube_types() -> Vec<TubeTypeRow> {
    [
        (
            "CIT",
            "Citrate 2,7 mL",
            "light_blue",
            Some("sodium citrate 3.2%"),
            2_700,
            1,
        ),
        (
            "SST",
            "Gel séparateur 3,5 mL",
            "gold",
            Some("clot activator + gel"),
            3_500,
            2,
        ),
        ("EDTA", "EDTA 4 mL", "lavender", Some("K2-EDTA"), 4_000, 3),
        ("FLUO", "Fluorure 2 mL", "grey", Some("sodium fluoride"), 2_000, 4),
    ]
    .into_iter()
    .map(|(code, label, cap, additive, capacity, order)| TubeTypeRow {
        code: code.into(),
        label: label.into(),
        cap_color: cap.into(),
        additive: additive.map(Into::into),
        capacity_ul: capacity,
        draw_order: order,
        version: 1,
    })
    .collect()
}

/// The exams of the standard catalog: `TP` (CIT), `BIOCH` and `IONO` (SST, `IONO` fasting), `NFS`
/// and `HBA1C` (EDTA), `GLY` (FLUO, fasting).
pub fn exams() -> Vec<ExamRow> {
    [
        ("TP", "Taux de prothrombine", "CIT", 2_700, false),
        ("BIOCH", "Bilan biochimique", "SST", 3_000, false),
        ("IONO", "Ionogramme", "SST", 1_000, true),
        ("NFS", "Numération formule sanguine", "EDTA", 1_000, false),
        ("HBA1C", "Hémoglobine glyquée", "EDTA", 2_000, false),
        ("GLY", "Glycémie à jeun", "FLUO", 500, true),
    ]
    .into_iter()
    .map(|(code, label, tube, volume, fasting)| ExamRow {
        code: code.into(),
        label: label.into(),
        tube_type: tube.into(),
        volume_ul: volume,
        fasting,
        active: true,
        version: 1,
    })
    .collect()
}

/// A provisional patient born on `birth`, female, with a phone and an address and no NIR.
pub fn patient(birth_family_name: &str, first_given_name: &str, birth: Date) -> PatientRow {
    PatientRow {
        id: Uuid::now_v7(),
        nir: None,
        ins_oid: None,
        identity_status: "provisional".into(),
        birth_family_name: birth_family_name.into(),
        birth_given_names: first_given_name.into(),
        first_given_name: first_given_name.into(),
        used_family_name: None,
        used_given_name: None,
        birth_date: birth,
        sex: "F".into(),
        birth_place_code: Some("75056".into()),
        phone: Some("+33612345678".into()),
        address_line: Some("12 rue des Lilas".into()),
        postal_code: Some("75011".into()),
        city: Some("Paris".into()),
        version: 1,
        merged_into: None,
    }
}

/// `patient` with a qualified INS identity: NIR (`serial` tells patients apart) and its OID.
pub fn qualified(mut patient: PatientRow, serial: u16) -> PatientRow {
    patient.nir = Some(nir(&patient.sex, patient.birth_date, serial));
    patient.ins_oid = Some("1.2.250.1.213.1.4.8".into());
    patient.identity_status = "qualified".into();
    patient
}

/// An open prescription of `patient` at `lab` for these exam codes, issued on `issued_on`.
pub fn prescription(lab: Uuid, patient: Uuid, issued_on: Date, exams: &[&str]) -> PrescriptionRecord {
    PrescriptionRecord {
        prescription: PrescriptionRow {
            id: Uuid::now_v7(),
            patient_id: patient,
            lab_id: lab,
            prescriber_name: "Dr Claire Moreau".into(),
            prescriber_rpps: "10003456789".into(),
            issued_on,
            fasting: false,
            status: "open".into(),
            notes: None,
            version: 1,
        },
        exams: exams.iter().map(|code| (*code).to_owned()).collect(),
    }
}

/// A scheduled lab visit of `patient` at `lab`, unassigned.
pub fn lab_visit(lab: Uuid, patient: Uuid, at: OffsetDateTime) -> AppointmentRow {
    AppointmentRow {
        id: Uuid::now_v7(),
        lab_id: lab,
        patient_id: patient,
        prescription_id: None,
        kind: "lab".into(),
        scheduled_at: at,
        duration_min: 10,
        address_line: None,
        postal_code: None,
        city: None,
        access_notes: None,
        assigned_staff_id: None,
        round_position: None,
        status: "scheduled".into(),
        status_reason: None,
        version: 1,
    }
}

/// A scheduled home visit of `patient` assigned to `staff`, at `position` in their round.
pub fn home_visit(lab: Uuid, patient: Uuid, staff: Uuid, at: OffsetDateTime, position: i16) -> AppointmentRow {
    AppointmentRow {
        kind: "home".into(),
        duration_min: 20,
        address_line: Some(format!("{position} avenue des Tilleuls")),
        postal_code: Some("75012".into()),
        city: Some("Paris".into()),
        access_notes: Some("digicode 4521B, 2e étage".into()),
        assigned_staff_id: Some(staff),
        round_position: Some(position),
        ..lab_visit(lab, patient, at)
    }
}

/// A connection with a transaction open: the writes of one call commit together, as a sync page.
async fn begin(gw: &TestGateway) -> AsyncPgConnection {
    let mut conn = gw.db.conn().await;
    conn.batch_execute("BEGIN").await.expect("begin");
    conn
}

async fn commit(mut conn: AsyncPgConnection) {
    conn.batch_execute("COMMIT").await.expect("commit the edge rows");
}

/// Writes the standard catalog ([`tube_types`], [`exams`]); every cached tube plan is evicted.
pub async fn insert_catalog(gw: &TestGateway) {
    let mut conn = begin(gw).await;
    TubeTypeRow::upsert_edge(&mut conn, &tube_types())
        .await
        .expect("tube types");
    ExamRow::upsert_edge(&mut conn, &exams()).await.expect("exams");
    commit(conn).await;
    gw.state.redis.evict_prefix(keys::PRESCRIPTION_PREFIX).await;
    gw.state.redis.evict_prefix(keys::PATIENT_PRESCRIPTIONS_PREFIX).await;
}

/// Inserts or replaces patients; their cached rows and prescription lists are evicted.
pub async fn upsert_patients(gw: &TestGateway, rows: &[PatientRow]) {
    let mut conn = begin(gw).await;
    PatientRow::upsert_edge(&mut conn, rows).await.expect("patients");
    commit(conn).await;
    let evict: Vec<String> = rows
        .iter()
        .flat_map(|p| [keys::patient(p.id), keys::patient_prescriptions(p.id)])
        .collect();
    gw.state.redis.evict(&evict).await;
}

/// Inserts or replaces prescriptions and their exam lists; their cache entries are evicted.
pub async fn upsert_prescriptions(gw: &TestGateway, records: &[PrescriptionRecord]) {
    let mut conn = begin(gw).await;
    PrescriptionRecord::upsert_edge(&mut conn, records)
        .await
        .expect("prescriptions");
    commit(conn).await;
    let evict: Vec<String> = records
        .iter()
        .flat_map(|r| {
            [
                keys::prescription(r.prescription.id),
                keys::patient_prescriptions(r.prescription.patient_id),
            ]
        })
        .collect();
    gw.state.redis.evict(&evict).await;
}

/// Inserts or replaces appointments (nothing of them is cached).
pub async fn upsert_appointments(gw: &TestGateway, rows: &[AppointmentRow]) {
    let mut conn = begin(gw).await;
    AppointmentRow::upsert_edge(&mut conn, rows)
        .await
        .expect("appointments");
    commit(conn).await;
}

#[derive(diesel::QueryableByName)]
struct Instant {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    at: OffsetDateTime,
}

#[derive(diesel::QueryableByName)]
struct Day {
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: Date,
}

/// Today in the gateway's time zone (as PostgreSQL reckons it).
pub async fn local_today(gw: &TestGateway) -> Date {
    let day: Day = diesel::sql_query("SELECT (now() AT TIME ZONE $1)::date AS day")
        .bind::<diesel::sql_types::Text, _>(&gw.state.config.timezone)
        .get_result(&mut gw.db.conn().await)
        .await
        .expect("today");
    day.day
}

/// The instant of `hour:minute` on `day` in the gateway's time zone.
pub async fn local_time(gw: &TestGateway, day: Date, hour: u8, minute: u8) -> OffsetDateTime {
    let instant: Instant = diesel::sql_query("SELECT (($1::date + make_time($2, $3, 0)) AT TIME ZONE $4) AS at")
        .bind::<diesel::sql_types::Date, _>(day)
        .bind::<diesel::sql_types::Integer, _>(i32::from(hour))
        .bind::<diesel::sql_types::Integer, _>(i32::from(minute))
        .bind::<diesel::sql_types::Text, _>(&gw.state.config.timezone)
        .get_result(&mut gw.db.conn().await)
        .await
        .expect("local time");
    instant.at
}

/// A tube barcode no other test run uses: `LAB-` and 12 random hex digits, upper case.
pub fn barcode() -> String {
    format!("LAB-{}", &Uuid::new_v4().simple().to_string()[..12]).to_uppercase()
}

/// A collection of `patient` for `prescription` as a tablet sends it: drawn ten minutes ago, identity
/// checked with the health card, one tube per tube type code, each with a fresh [`barcode`].
pub fn collection(patient: Uuid, prescription: Uuid, tube_types: &[&str]) -> mobile_contracts::NewCollection {
    mobile_contracts::NewCollection {
        id: Uuid::now_v7(),
        patient_id: patient,
        appointment_id: None,
        prescription_id: prescription,
        collected_at: OffsetDateTime::now_utc() - time::Duration::minutes(10),
        identity_checked: true,
        identity_check_method: Some(mobile_contracts::IdentityCheckMethod::HealthCard),
        tubes: tube_types
            .iter()
            .map(|code| mobile_contracts::Tube {
                barcode: mobile_contracts::TubeBarcode::parse(&barcode()).expect("a valid barcode"),
                tube_type: (*code).to_owned(),
            })
            .collect(),
        comments: None,
    }
}
