//! Tablet reads at the gateway (patients, prescriptions and tube plans, rounds, appointments), their
//! audit and hash chain, the cache, and the delta pull, against real PostgreSQL and Redis.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::audit::{AuditRecord, GENESIS_HASH, record_hash, verify_chain};
use labedge_edge_gateway::cache::keys;
use labedge_schema::edge::schema::audit_log;
use labedge_schema::sync::{AppointmentRow, PatientRow, PrescriptionRecord};
use labedge_tests::app::TestResponse;
use labedge_tests::edge_data::{self, home_visit, lab_visit, patient, prescription, qualified};
use labedge_tests::gateway::{HOME_SAMPLER, NURSE, TestGateway};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes::{self, with_id};
use mobile_contracts::{
    AppointmentList, IdentityStatus, Patient, PatientIdentity, PatientPage, Prescription, PrescriptionList,
    PrescriptionStatus, Round, SyncEntity, SyncPullResponse,
};
use time::macros::date;
use uuid::Uuid;

// ------------------------------------------------------------------------------------------------
// Helpers.

/// Percent-encodes a query value.
fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn search(q: &str) -> String {
    format!("{}?q={}", routes::PATIENTS, enc(q))
}

/// A nurse's access token on a tablet of their own.
async fn nurse(gw: &TestGateway) -> (Uuid, String) {
    let (device, tokens) = gw.nurse_tablet().await;
    (device.id, tokens.access_token.expose().to_owned())
}

/// The home sampler's access token on a tablet of their own.
async fn sampler(gw: &TestGateway) -> (Uuid, String) {
    let device = gw.enroll(None).await;
    let tokens = gw.login(&device, HOME_SAMPLER.0, HOME_SAMPLER.1).await;
    (device.id, tokens.access_token.expose().to_owned())
}

async fn get(gw: &TestGateway, path: &str, token: &str) -> TestResponse {
    gw.app.get_authed(path, token).await
}

async fn names(gw: &TestGateway, q: &str, token: &str) -> Vec<String> {
    let page: PatientPage = get(gw, &search(q), token).await.expect(200).json();
    page.items
        .iter()
        .map(|p| p.birth_family_name.as_str().to_owned())
        .collect()
}

/// Polls every future to completion, concurrently, on the current task (the in-process app is not
/// `Send`, so it cannot be spawned).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[derive(Debug, Queryable)]
struct AuditRow {
    staff_id: Option<Uuid>,
    device_id: Option<Uuid>,
    action: String,
    patient_id: Option<Uuid>,
    resource: Option<String>,
    request_id: Option<String>,
}

/// The read cache's keys (patients, prescriptions, lists) under the gateway's prefix.
fn cache_keys(gw: &TestGateway) -> Vec<String> {
    let prefix = gw.redis.prefix();
    gw.redis
        .keys()
        .into_iter()
        .filter(|k| {
            ["patient:", "prescription:", "patient-prescriptions:"]
                .iter()
                .any(|p| k.starts_with(&format!("{prefix}{p}")))
        })
        .collect()
}

fn redis_get(key: &str) -> String {
    let client = redis::Client::open(labedge_tests::redis::server_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut conn).unwrap()
}

async fn audit_rows(gw: &TestGateway) -> Vec<AuditRow> {
    audit_log::table
        .order(audit_log::seq)
        .select((
            audit_log::staff_id,
            audit_log::device_id,
            audit_log::action,
            audit_log::patient_id,
            audit_log::resource,
            audit_log::request_id,
        ))
        .load(&mut gw.db.conn().await)
        .await
        .unwrap()
}

/// A lab with patients of every kind of name, qualified or not.
struct People {
    lefevre: PatientRow,
    dalmeida: PatientRow,
    married: PatientRow,
    martins: Vec<PatientRow>,
}

async fn people(gw: &TestGateway) -> People {
    let lefevre = qualified(patient("Lefèvre", "Amandine", date!(1984 - 06 - 30)), 11);
    let dalmeida = patient("D'Almeida-Lefèvre", "João", date!(1990 - 01 - 02));
    let married = PatientRow {
        used_family_name: Some("Lefort".into()),
        ..patient("Bernard", "Lucie", date!(1975 - 11 - 05))
    };
    let martins: Vec<PatientRow> = (0..7)
        .map(|i| qualified(patient("Martin", &format!("Prénom{i}"), date!(1960 - 01 - 01)), 100 + i))
        .collect();
    let mut all = vec![lefevre.clone(), dalmeida.clone(), married.clone()];
    all.extend(martins.iter().cloned());
    edge_data::upsert_patients(gw, &all).await;
    People {
        lefevre,
        dalmeida,
        married,
        martins,
    }
}

// ------------------------------------------------------------------------------------------------
// Search.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_are_found_by_name_prefix_birth_date_and_nir() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;

    // Name prefixes, case and accents folded, separators ignored; birth or used family name.
    assert_eq!(names(&gw, "lefe", &token).await, ["Lefèvre"]);
    assert_eq!(names(&gw, "LÉFÈV", &token).await, ["Lefèvre"]);
    assert_eq!(names(&gw, "d'alm", &token).await, ["D'Almeida-Lefèvre"]);
    assert_eq!(names(&gw, "D ALMEIDA-LEF", &token).await, ["D'Almeida-Lefèvre"]);
    assert_eq!(names(&gw, "Lefo", &token).await, ["Bernard"], "used family name");
    assert_eq!(names(&gw, "mart", &token).await.len(), 7);

    // Birth dates, both notations.
    for q in ["1984-06-30", "30/06/1984"] {
        let page: PatientPage = get(&gw, &search(q), &token).await.expect(200).json();
        assert_eq!(page.items.len(), 1, "{q}");
        assert_eq!(page.items[0].id, people.lefevre.id);
        assert_eq!(page.items[0].identity_status, IdentityStatus::Qualified);
    }

    // An exact NIR, spaces allowed; a NIR nobody has finds nobody.
    let nir = people.lefevre.nir.clone().unwrap();
    let spaced = format!("{} {} {} {}", &nir[..1], &nir[1..5], &nir[5..10], &nir[10..]);
    let page: PatientPage = get(&gw, &search(&spaced), &token).await.expect(200).json();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0].nir.as_ref().unwrap().value,
        nir,
        "a nurse sees the NIR in full"
    );
    let other = edge_data::nir("M", date!(1950 - 02 - 03), 999);
    let page: PatientPage = get(&gw, &search(&other), &token).await.expect(200).json();
    assert!(page.items.is_empty());
    let married: PatientPage = get(&gw, &search("bern"), &token).await.expect(200).json();
    assert_eq!(married.items[0].id, people.married.id);
    assert_eq!(married.items[0].used_family_name.as_ref().unwrap().as_str(), "Lefort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_and_injections_match_nobody() {
    let gw = TestGateway::start().await;
    people(&gw).await;
    let (_, token) = nurse(&gw).await;
    // Too few letters to be a name search: refused, naming the field, never a 5xx.
    for q in ["%", "_", "%%%", "___", "' OR 1=1--", "\\"] {
        let problem = get(&gw, &search(q), &token).await.expect(422).problem();
        assert_eq!(problem.code, ErrorCode::ValidationFailed, "{q}");
        assert_eq!(problem.errors[0].pointer, "/q", "{q}");
    }
    // Enough letters: the other characters are matched literally, so nobody has such a name.
    for q in ["mar%", "MAR_", "%mar", "_art", "x' OR 1=1--", "Mar' OR '1'='1", "mar\\"] {
        assert!(names(&gw, q, &token).await.is_empty(), "{q} matched someone");
    }
    assert_eq!(names(&gw, "mar", &token).await.len(), 7, "the data is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_pages_are_bounded_and_say_when_more_follow() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    let mut seen = Vec::new();
    for (page, more) in [(1, true), (2, true), (3, false)] {
        let answer: PatientPage = get(&gw, &format!("{}&page={page}&per_page=3", search("martin")), &token)
            .await
            .expect(200)
            .json();
        assert_eq!((answer.page, answer.per_page, answer.has_more), (page, 3, more));
        seen.extend(answer.items.iter().map(|p| p.first_given_name.as_str().to_owned()));
    }
    let expected: Vec<String> = people.martins.iter().map(|p| p.first_given_name.clone()).collect();
    assert_eq!(
        seen, expected,
        "by name, given name, birth date; no repeats across pages"
    );
    let far: PatientPage = get(&gw, &format!("{}&page=9", search("martin")), &token)
        .await
        .expect(200)
        .json();
    assert!(far.items.is_empty() && !far.has_more);

    for (query, pointer) in [
        (format!("{}&per_page=51", search("martin")), "/per_page"),
        (format!("{}&per_page=0", search("martin")), "/per_page"),
        (format!("{}&page=0", search("martin")), "/page"),
        (format!("{}&page=1001", search("martin")), "/page"),
        (routes::PATIENTS.to_owned(), "/q"),
        (search(&"a".repeat(65)), "/q"),
    ] {
        let problem = get(&gw, &query, &token).await.expect(422).problem();
        assert_eq!(problem.errors[0].pointer, pointer, "{query}");
    }
    // A parameter of the wrong type or unknown is refused, never a 5xx.
    for query in [
        format!("{}&per_page=lots", search("martin")),
        format!("{}&lab_id=x", search("martin")),
    ] {
        let response = get(&gw, &query, &token).await;
        assert!(
            matches!(response.status.as_u16(), 400 | 422),
            "{query}: {}",
            response.status
        );
        response.problem();
    }
    // Without a token: 401, whatever the query.
    gw.app.get(&search("%")).await.expect(401);
}

// ------------------------------------------------------------------------------------------------
// Patients and roles.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_carry_their_identity_status_and_read_only_traits() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;

    let qualified: Patient = get(&gw, &with_id(routes::PATIENT, people.lefevre.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(qualified.identity_status, IdentityStatus::Qualified);
    assert_eq!(qualified.read_only, PatientIdentity::STRICT_TRAITS.map(String::from));
    assert_eq!(qualified.identity.birth_family_name.as_str(), "Lefèvre");
    let nir = qualified.identity.nir.unwrap();
    assert_eq!(
        (nir.value.as_str(), nir.masked),
        (people.lefevre.nir.as_deref().unwrap(), false)
    );
    assert_eq!(qualified.identity.ins_oid.as_deref(), Some("1.2.250.1.213.1.4.8"));
    assert_eq!(qualified.contact.phone.unwrap().as_str(), "+33612345678");
    assert_eq!(qualified.contact.address.unwrap().city, "Paris");
    assert_eq!(qualified.version, 1);

    let provisional: Patient = get(&gw, &with_id(routes::PATIENT, people.married.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(provisional.identity_status, IdentityStatus::Provisional);
    assert!(
        provisional.read_only.is_empty(),
        "a provisional identity may be corrected"
    );
    assert_eq!(provisional.identity.used_family_name.unwrap().as_str(), "Lefort");
    assert!(provisional.identity.nir.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_sampler_sees_masked_nirs_and_only_the_patients_of_their_appointments() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let today = edge_data::local_today(&gw).await;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let mine = people.lefevre.clone();
    let theirs = people.martins[0].clone();
    let at = edge_data::local_time(&gw, today, 9, 0).await;
    edge_data::upsert_appointments(
        &gw,
        &[
            home_visit(gw.lab_id, mine.id, me, at, 1),
            home_visit(gw.lab_id, theirs.id, gw.staff_id(NURSE.0), at, 1),
        ],
    )
    .await;
    let my_prescription = prescription(gw.lab_id, mine.id, today, &["NFS"]);
    let their_prescription = prescription(gw.lab_id, theirs.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, &[my_prescription.clone(), their_prescription.clone()]).await;
    let (_, token) = sampler(&gw).await;

    let patient: Patient = get(&gw, &with_id(routes::PATIENT, mine.id), &token)
        .await
        .expect(200)
        .json();
    let nir = patient.identity.nir.unwrap();
    assert!(nir.masked);
    assert!(nir.value.contains("**"));
    assert!(!nir.value.contains(&mine.nir.as_ref().unwrap()[7..13]), "{}", nir.value);
    assert_eq!(patient.read_only.len(), PatientIdentity::STRICT_TRAITS.len());
    let list: PrescriptionList = get(&gw, &with_id(routes::PATIENT_PRESCRIPTIONS, mine.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(list.items.len(), 1);
    get(
        &gw,
        &with_id(routes::PRESCRIPTION, my_prescription.prescription.id),
        &token,
    )
    .await
    .expect(200);

    // Another sampler's patient does not exist for them, and neither do its prescriptions; the
    // nurse's cache fill does not open the door.
    let (_, nurse_token) = nurse(&gw).await;
    get(&gw, &with_id(routes::PATIENT, theirs.id), &nurse_token)
        .await
        .expect(200);
    for path in [
        with_id(routes::PATIENT, theirs.id),
        with_id(routes::PATIENT_PRESCRIPTIONS, theirs.id),
        with_id(routes::PRESCRIPTION, their_prescription.prescription.id),
        with_id(routes::PATIENT, people.dalmeida.id),
    ] {
        let problem = get(&gw, &path, &token).await.expect(404).problem();
        assert_eq!(problem.code, ErrorCode::NotFound, "{path}");
    }
    // Their search finds only their patients, NIR masked.
    let page: PatientPage = get(&gw, &search("lef"), &token).await.expect(200).json();
    assert_eq!(page.items.len(), 1);
    assert!(page.items[0].nir.as_ref().unwrap().masked);
    let page: PatientPage = get(&gw, &search("martin"), &token).await.expect(200).json();
    assert!(page.items.is_empty());
    // The nurse searches the whole lab.
    assert_eq!(names(&gw, "lef", &nurse_token).await, ["Bernard", "Lefèvre"]);
}

// ------------------------------------------------------------------------------------------------
// Prescriptions.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prescription_comes_with_its_tube_plan_grouped_by_tube_in_draw_order() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let who = people.lefevre.id;
    let full = prescription(
        gw.lab_id,
        who,
        date!(2026 - 03 - 10),
        &["NFS", "GLY", "HBA1C", "BIOCH", "IONO", "TP"],
    );
    let older = PrescriptionRecord {
        prescription: labedge_schema::sync::PrescriptionRow {
            status: "completed".into(),
            ..prescription(gw.lab_id, who, date!(2025 - 12 - 01), &["NFS"]).prescription
        },
        exams: vec!["NFS".into()],
    };
    let elsewhere = prescription(Uuid::now_v7(), who, date!(2026 - 03 - 12), &["NFS"]);
    edge_data::upsert_prescriptions(&gw, &[full.clone(), older.clone(), elsewhere.clone()]).await;
    let (_, token) = nurse(&gw).await;

    let answer: Prescription = get(&gw, &with_id(routes::PRESCRIPTION, full.prescription.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(answer.patient_id, who);
    assert_eq!(answer.prescriber.rpps, "10003456789");
    assert_eq!(answer.status, PrescriptionStatus::Open);
    assert!(answer.fasting_required, "GLY and IONO need fasting");
    assert_eq!(answer.exams.len(), 6);
    let glycemia = answer.exams.iter().find(|e| e.code == "GLY").unwrap();
    assert_eq!(
        (glycemia.tube_type.as_str(), glycemia.volume_ul, glycemia.fasting),
        ("FLUO", 500, true)
    );
    let plan: Vec<_> = answer
        .tube_plan
        .iter()
        .map(|t| {
            (
                t.tube_type.as_str(),
                t.draw_order,
                t.tube_count,
                t.total_volume_ul,
                t.fasting,
            )
        })
        .collect();
    assert_eq!(
        plan,
        [
            ("CIT", 1, 1, 2_700, false),
            ("SST", 2, 2, 4_000, true),
            ("EDTA", 3, 1, 3_000, false),
            ("FLUO", 4, 1, 500, true),
        ]
    );
    assert_eq!(answer.tube_plan[1].exam_codes, ["BIOCH", "IONO"]);
    assert_eq!(answer.tube_plan[2].cap_color, "lavender");
    assert_eq!(answer.tube_plan[2].additive.as_deref(), Some("K2-EDTA"));

    // The patient's prescriptions at this lab, newest first; another lab's is not there.
    let list: PrescriptionList = get(&gw, &with_id(routes::PATIENT_PRESCRIPTIONS, who), &token)
        .await
        .expect(200)
        .json();
    let listed: Vec<_> = list.items.iter().map(|p| (p.id, p.exam_count, p.status)).collect();
    assert_eq!(
        listed,
        [
            (full.prescription.id, 6, PrescriptionStatus::Open),
            (older.prescription.id, 1, PrescriptionStatus::Completed),
        ]
    );
    assert!(list.items[0].fasting_required && !list.items[1].fasting_required);
    get(&gw, &with_id(routes::PRESCRIPTION, elsewhere.prescription.id), &token)
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_ids_of_another_lab_are_not_found() {
    let gw = TestGateway::start().await;
    people(&gw).await;
    let other_lab_patient = patient("Ailleurs", "Anne", date!(1970 - 01 - 01));
    let elsewhere = prescription(Uuid::now_v7(), other_lab_patient.id, date!(2026 - 01 - 01), &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&elsewhere)).await;
    let (_, token) = nurse(&gw).await;
    for path in [
        // A patient of another lab: this gateway's database does not hold the row.
        with_id(routes::PATIENT, other_lab_patient.id),
        with_id(routes::PATIENT_PRESCRIPTIONS, other_lab_patient.id),
        with_id(routes::PATIENT, Uuid::now_v7()),
        with_id(routes::PRESCRIPTION, Uuid::now_v7()),
        // A prescription row of another lab.
        with_id(routes::PRESCRIPTION, elsewhere.prescription.id),
        "/v1/patients/not-a-uuid".to_owned(),
        "/v1/prescriptions/%27%20OR%201=1--".to_owned(),
    ] {
        let problem = get(&gw, &path, &token).await.expect(404).problem();
        assert_eq!(problem.code, ErrorCode::NotFound, "{path}");
    }
}

// ------------------------------------------------------------------------------------------------
// Rounds and appointments.

struct RoundData {
    today: time::Date,
    /// The sampler's visits of today, in round order.
    visits: Vec<AppointmentRow>,
    patients: Vec<PatientRow>,
    prescriptions: Vec<PrescriptionRecord>,
}

/// A home sampler's round of `count` visits today (inserted out of order), the nurse's lab visits,
/// another sampler's visits, and the sampler's visits of yesterday evening and tomorrow.
async fn round_data(gw: &TestGateway, count: i16) -> RoundData {
    edge_data::insert_catalog(gw).await;
    let today = edge_data::local_today(gw).await;
    let month_ago = today - time::Duration::days(30);
    let me = gw.staff_id(HOME_SAMPLER.0);
    let patients: Vec<PatientRow> = (0..count)
        .map(|i| {
            qualified(
                patient(&format!("Visite{i:02}"), "Jeanne", date!(1940 - 05 - 17)),
                u16::try_from(i).unwrap() + 1,
            )
        })
        .collect();
    edge_data::upsert_patients(gw, &patients).await;
    let mut prescriptions = Vec::new();
    let mut visits = Vec::new();
    for (i, p) in patients.iter().enumerate() {
        let position = i16::try_from(i).unwrap() + 1;
        // Later positions earlier in the day: the round's order is the position, not the time.
        let at = edge_data::local_time(gw, today, 18 - u8::try_from(i / 3).unwrap(), 0).await;
        let mut visit = home_visit(gw.lab_id, p.id, me, at, position);
        let booked = prescription(gw.lab_id, p.id, today, &["NFS", "GLY"]);
        if i % 2 == 0 {
            // Booked with its prescription: only that one is sampled.
            visit.prescription_id = Some(booked.prescription.id);
            prescriptions.push(prescription(gw.lab_id, p.id, month_ago, &["TP"]));
        } else {
            // No prescription at booking: the patient's open prescriptions are.
            prescriptions.push(prescription(gw.lab_id, p.id, month_ago, &["IONO"]));
        }
        prescriptions.push(booked);
        visits.push(visit);
    }
    let mut shuffled = visits.clone();
    shuffled.reverse();
    edge_data::upsert_appointments(gw, &shuffled).await;
    edge_data::upsert_prescriptions(gw, &prescriptions).await;

    let other = patient("Autre", "Paul", date!(1950 - 01 - 01));
    edge_data::upsert_patients(gw, std::slice::from_ref(&other)).await;
    let yesterday_evening = edge_data::local_time(gw, today.previous_day().unwrap(), 23, 30).await;
    let tomorrow_morning = edge_data::local_time(gw, today.next_day().unwrap(), 0, 30).await;
    let noon = edge_data::local_time(gw, today, 12, 0).await;
    edge_data::upsert_appointments(
        gw,
        &[
            home_visit(gw.lab_id, other.id, me, yesterday_evening, 1),
            home_visit(gw.lab_id, other.id, me, tomorrow_morning, 1),
            home_visit(gw.lab_id, other.id, gw.staff_id(NURSE.0), noon, 1),
            lab_visit(gw.lab_id, other.id, noon),
            // Another lab's appointment that happens to be in this database.
            home_visit(Uuid::now_v7(), other.id, me, noon, 99),
        ],
    )
    .await;
    RoundData {
        today,
        visits,
        patients,
        prescriptions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_of_a_home_sampler_comes_in_order_with_everything_needed_offline() {
    let gw = TestGateway::start().await;
    let data = round_data(&gw, 30).await;
    let (_, token) = sampler(&gw).await;
    let path = format!("{}?date={}", routes::ROUNDS, data.today);
    let round: Round = get(&gw, &path, &token).await.expect(200).json();
    assert_eq!(round.date, data.today);
    assert_eq!(round.staff_id, gw.staff_id(HOME_SAMPLER.0));
    assert_eq!(
        round.visits.len(),
        30,
        "only today's visits of this sampler at this lab"
    );
    for (i, visit) in round.visits.iter().enumerate() {
        let expected = &data.visits[i];
        assert_eq!(usize::from(visit.position), i + 1);
        assert_eq!(visit.appointment.id, expected.id);
        assert_eq!(visit.appointment.round_position, Some(u16::try_from(i + 1).unwrap()));
        assert_eq!(visit.patient.id, data.patients[i].id);
        assert!(visit.patient.identity.nir.as_ref().unwrap().masked);
        assert!(visit.patient.contact.phone.is_some());
        let address = visit.appointment.address.as_ref().unwrap();
        assert_eq!(address.line, format!("{} avenue des Tilleuls", i + 1));
        assert_eq!(
            visit.appointment.access_notes.as_deref(),
            Some("digicode 4521B, 2e étage")
        );
        let codes: Vec<Vec<&str>> = visit
            .prescriptions
            .iter()
            .map(|p| p.exams.iter().map(|e| e.code.as_str()).collect())
            .collect();
        let plan: Vec<(&str, u16)> = visit
            .tube_plan
            .iter()
            .map(|t| (t.tube_type.as_str(), t.tube_count))
            .collect();
        if i % 2 == 0 {
            assert_eq!(codes, [["GLY", "NFS"]], "the booked prescription only");
            assert_eq!(visit.prescriptions[0].id, expected.prescription_id.unwrap());
            assert_eq!(plan, [("EDTA", 1), ("FLUO", 1)]);
        } else {
            assert_eq!(codes.len(), 2, "every open prescription of the patient");
            assert_eq!(visit.prescriptions[0].issued_on, data.today, "newest first");
            assert_eq!(plan, [("SST", 1), ("EDTA", 1), ("FLUO", 1)]);
        }
    }
    // Everything the visits need was in that one answer.
    assert_eq!(data.prescriptions.len(), 60);

    // A nurse's round is their own home visits: one, at noon.
    let (_, nurse_token) = nurse(&gw).await;
    let theirs: Round = get(&gw, &path, &nurse_token).await.expect(200).json();
    assert_eq!(theirs.visits.len(), 1);
    assert!(!theirs.visits[0].patient.identity.nir.as_ref().is_some_and(|n| n.masked));

    // A malformed or missing date names the field.
    for bad in ["?date=14/03/2026", "?date=2026-02-30", ""] {
        let response = get(&gw, &format!("{}{bad}", routes::ROUNDS), &token).await;
        assert!(
            matches!(response.status.as_u16(), 400 | 422),
            "{bad}: {}",
            response.status
        );
        response.problem();
    }

    // Served well within budget: median of 20 reads of the 30-visit round (in process, debug build,
    // audit commit included).
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        get(&gw, &path, &token).await.expect(200);
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!(
        "round of 30 visits: median {:?}, max {:?} (in process, audit commit included)",
        times[10], times[19]
    );
    // A loose guard against query-per-visit regressions (30 visits would cost 30 round trips and
    // more); the figure itself is printed above.
    let budget = Duration::from_millis(if cfg!(debug_assertions) { 250 } else { 10 });
    assert!(times[10] < budget, "median {:?}", times[10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appointments_of_a_day_are_the_labs_for_nurses_and_their_own_for_home_samplers() {
    let gw = TestGateway::start().await;
    let data = round_data(&gw, 4).await;
    let path = format!("{}?date={}", routes::APPOINTMENTS, data.today);
    let (_, nurse_token) = nurse(&gw).await;
    let all: AppointmentList = get(&gw, &path, &nurse_token).await.expect(200).json();
    assert_eq!(all.date, data.today);
    // 4 round visits, the nurse's home visit and the lab visit; not yesterday's 23:30, not
    // tomorrow's 00:30 (local days), not the other lab's.
    assert_eq!(all.items.len(), 6);
    assert!(
        all.items.windows(2).all(|w| w[0].scheduled_at <= w[1].scheduled_at),
        "by time"
    );
    let (_, token) = sampler(&gw).await;
    let mine: AppointmentList = get(&gw, &path, &token).await.expect(200).json();
    assert_eq!(mine.items.len(), 4);
    assert!(
        mine.items
            .iter()
            .all(|a| a.assigned_staff_id == Some(gw.staff_id(HOME_SAMPLER.0)))
    );
    let tomorrow: AppointmentList = get(
        &gw,
        &format!("{}?date={}", routes::APPOINTMENTS, data.today.next_day().unwrap()),
        &token,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(tomorrow.items.len(), 1, "00:30 local tomorrow is tomorrow");
}

// ------------------------------------------------------------------------------------------------
// HTTP: ETag, gzip, cache, Redis down.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_carry_an_etag_answer_304_when_unchanged_and_compress() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    let path = with_id(routes::PATIENT, people.lefevre.id);
    let first = get(&gw, &path, &token).await.expect(200);
    let etag = first.header("etag").unwrap();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    assert_eq!(first.header("cache-control").as_deref(), Some("private, no-cache"));
    let request = |tag: &str| {
        TestRequest::get()
            .uri(&path)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("if-none-match", tag.to_owned()))
    };
    let audited = audit_rows(&gw).await.len();
    let unchanged = gw.app.send(request(&etag)).await.expect(304);
    assert_eq!(audit_rows(&gw).await.len(), audited + 1, "a 304 is a read too: audited");
    assert!(unchanged.body.is_empty());
    assert_eq!(unchanged.header("etag").as_deref(), Some(etag.as_str()));
    let strong = etag.trim_start_matches("W/").to_owned();
    gw.app.send(request(&format!("\"x\", {strong}"))).await.expect(304);
    gw.app.send(request("*")).await.expect(304);
    gw.app.send(request("\"something-else\"")).await.expect(200);

    // A change of the patient changes the tag.
    let changed = PatientRow {
        phone: Some("+33700000000".into()),
        version: 2,
        ..people.lefevre.clone()
    };
    edge_data::upsert_patients(&gw, &[changed]).await;
    let after = gw.app.send(request(&etag)).await.expect(200);
    assert_ne!(after.header("etag").unwrap(), etag);

    // The same patient seen by a home sampler is another representation, with another tag.
    let me = gw.staff_id(HOME_SAMPLER.0);
    let at = edge_data::local_time(&gw, edge_data::local_today(&gw).await, 10, 0).await;
    edge_data::upsert_appointments(&gw, &[home_visit(gw.lab_id, people.lefevre.id, me, at, 1)]).await;
    let (_, sampler_token) = sampler(&gw).await;
    let masked = get(&gw, &path, &sampler_token).await.expect(200);
    assert_ne!(masked.header("etag"), after.header("etag"));

    // gzip when the tablet accepts it.
    let compressed = gw
        .app
        .send(
            TestRequest::get()
                .uri(&search("martin"))
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("accept-encoding", "gzip")),
        )
        .await
        .expect(200);
    assert_eq!(compressed.header("content-encoding").as_deref(), Some("gzip"));
    assert!(compressed.header("etag").is_some());
    assert_eq!(&compressed.body[..2], &[0x1f, 0x8b], "a gzip stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_and_misses_answer_the_same_and_misses_fill_redis() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let who = people.lefevre.id;
    let rx = prescription(gw.lab_id, who, date!(2026 - 03 - 10), &["NFS", "TP"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&rx)).await;
    let (_, token) = nurse(&gw).await;
    let paths = [
        with_id(routes::PATIENT, who),
        with_id(routes::PATIENT_PRESCRIPTIONS, who),
        with_id(routes::PRESCRIPTION, rx.prescription.id),
    ];
    let key_of = |suffix: String| format!("{}{suffix}", gw.redis.prefix());
    let expected_keys = [
        key_of(keys::patient(who)),
        key_of(keys::patient_prescriptions(who)),
        key_of(keys::prescription(rx.prescription.id)),
    ];
    assert!(cache_keys(&gw).is_empty());

    let mut misses = Vec::new();
    for path in &paths {
        misses.push(get(&gw, path, &token).await.expect(200).body);
    }
    let mut stored = cache_keys(&gw);
    stored.sort();
    let mut wanted = expected_keys.to_vec();
    wanted.sort();
    assert_eq!(stored, wanted, "each miss filled its entry");

    // Hits answer byte for byte what the misses answered.
    for (path, miss) in paths.iter().zip(&misses) {
        assert_eq!(&get(&gw, path, &token).await.expect(200).body, miss, "{path}");
    }
    // A change the sync has not evicted yet (the row changed behind the cache's back) shows
    // that the answers come from Redis...
    gw.db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE patients SET phone = '+33699999999', version = 5 WHERE id = '{who}'"
        ))
        .await
        .unwrap();
    let hit: Patient = get(&gw, &paths[0], &token).await.expect(200).json();
    assert_eq!(hit.version, 1, "served from Redis");
    // ...and once Redis is emptied (as by a restart), PostgreSQL answers and fills it again.
    gw.state.redis.evict_prefix("").await;
    assert!(gw.redis.keys().is_empty());
    let miss: Patient = get(&gw, &paths[0], &token).await.expect(200).json();
    assert_eq!(
        (miss.version, miss.contact.phone.unwrap().as_str()),
        (5, "+33699999999")
    );
    assert_eq!(cache_keys(&gw), [expected_keys[0].clone()]);
    // The cache holds the stored row, not a rendering for one role: the NIR is whole in Redis,
    // and only the way out masks it.
    let stored: PatientRow = serde_json::from_str(&redis_get(&expected_keys[0])).unwrap();
    assert_eq!(stored.nir, people.lefevre.nir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_from_postgresql_when_redis_is_unreachable() {
    let gw = TestGateway::start_with("TEST-LAB", |c| {
        c.redis.url = labedge_service::config::SecretString::new("redis://127.0.0.1:1");
    })
    .await;
    assert!(gw.state.redis.connection().is_none());
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let rx = prescription(gw.lab_id, people.lefevre.id, date!(2026 - 03 - 10), &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&rx)).await;
    let (_, token) = nurse(&gw).await;
    for _ in 0..2 {
        let patient: Patient = get(&gw, &with_id(routes::PATIENT, people.lefevre.id), &token)
            .await
            .expect(200)
            .json();
        assert_eq!(patient.id, people.lefevre.id);
        get(&gw, &with_id(routes::PATIENT_PRESCRIPTIONS, people.lefevre.id), &token)
            .await
            .expect(200);
        get(&gw, &with_id(routes::PRESCRIPTION, rx.prescription.id), &token)
            .await
            .expect(200);
        assert_eq!(names(&gw, "lef", &token).await.len(), 2);
    }
}

// ------------------------------------------------------------------------------------------------
// Audit.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_patient_data_is_audited_cache_hits_included() {
    let gw = TestGateway::start().await;
    let data = round_data(&gw, 3).await;
    let (device, token) = sampler(&gw).await;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let who = data.patients[0].id;
    let rx = data.visits[0].prescription_id.unwrap();
    let with_request_id = |path: String, id: &str| {
        TestRequest::get()
            .uri(&path)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("x-request-id", id.to_owned()))
    };
    gw.app
        .send(with_request_id(
            with_id(routes::PATIENT, who),
            "0190c3a2-0000-7000-8000-000000000001",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            with_id(routes::PATIENT, who),
            "0190c3a2-0000-7000-8000-000000000002",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            with_id(routes::PRESCRIPTION, rx),
            "0190c3a2-0000-7000-8000-000000000003",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            with_id(routes::PATIENT_PRESCRIPTIONS, who),
            "0190c3a2-0000-7000-8000-000000000004",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            search("visite"),
            "0190c3a2-0000-7000-8000-000000000005",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            format!("{}?date={}", routes::ROUNDS, data.today),
            "0190c3a2-0000-7000-8000-000000000006",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            format!("{}?date={}", routes::APPOINTMENTS, data.today),
            "0190c3a2-0000-7000-8000-000000000007",
        ))
        .await
        .expect(200);
    // Refused reads read nothing: no audit row.
    get(&gw, &with_id(routes::PATIENT, Uuid::now_v7()), &token)
        .await
        .expect(404);

    let rows = audit_rows(&gw).await;
    assert!(
        rows.iter()
            .all(|r| r.staff_id == Some(me) && r.device_id == Some(device))
    );
    let of = |request: &str| -> Vec<(&str, Option<Uuid>, Option<&str>)> {
        rows.iter()
            .filter(|r| r.request_id.as_deref() == Some(request))
            .map(|r| (r.action.as_str(), r.patient_id, r.resource.as_deref()))
            .collect()
    };
    let patient_resource = format!("patient:{who}");
    for request in [
        "0190c3a2-0000-7000-8000-000000000001",
        "0190c3a2-0000-7000-8000-000000000002",
    ] {
        assert_eq!(
            of(request),
            [("patient.read", Some(who), Some(patient_resource.as_str()))],
            "{request}"
        );
    }
    let rx_resource = format!("prescription:{rx}");
    assert_eq!(
        of("0190c3a2-0000-7000-8000-000000000003"),
        [("prescription.read", Some(who), Some(rx_resource.as_str()))]
    );
    assert_eq!(of("0190c3a2-0000-7000-8000-000000000004")[0].0, "prescription.list");
    let search_rows = of("0190c3a2-0000-7000-8000-000000000005");
    assert_eq!(search_rows.len(), 3, "one row per patient of the page");
    assert!(search_rows.iter().all(|r| r.0 == "patient.search"));
    let round_rows = of("0190c3a2-0000-7000-8000-000000000006");
    assert_eq!(round_rows.len(), 3, "one row per visit");
    for (row, visit) in round_rows.iter().zip(&data.visits) {
        assert_eq!(row.0, "round.read");
        assert_eq!(row.1, Some(visit.patient_id));
        assert_eq!(row.2, Some(format!("appointment:{}", visit.id).as_str()));
    }
    assert_eq!(of("0190c3a2-0000-7000-8000-000000000007").len(), 3);
    assert!(
        of("0190c3a2-0000-7000-8000-000000000007")
            .iter()
            .all(|r| r.0 == "appointments.read")
    );
    assert_eq!(rows.len(), 2 + 1 + 1 + 3 + 3 + 3);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_reads_share_few_audit_commits() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    // Warm the cache: the reads below are the lean path (Redis hit, audit).
    let ids: Vec<Uuid> = people.martins.iter().map(|p| p.id).collect();
    for id in &ids {
        get(&gw, &with_id(routes::PATIENT, *id), &token).await.expect(200);
    }
    // The lean path, one read at a time: figures only (in process, any build).
    let mut times = Vec::new();
    for i in 0..100 {
        let started = Instant::now();
        get(&gw, &with_id(routes::PATIENT, ids[i % ids.len()]), &token)
            .await
            .expect(200);
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!("cached patient read: median {:?}, p90 {:?}", times[50], times[90]);
    let before = audit_rows(&gw).await.len();
    let reads = 60;
    let paths: Vec<String> = (0..reads)
        .map(|i| with_id(routes::PATIENT, ids[i % ids.len()]))
        .collect();
    let answers = join_all(paths.iter().map(|path| get(&gw, path, &token)).collect()).await;
    assert!(answers.iter().all(|a| a.status.as_u16() == 200));
    assert_eq!(audit_rows(&gw).await.len(), before + reads, "every read audited");
    // Rows written by one transaction share its `at` (`now()`, the transaction's start): count the
    // commits by it. (Their xmin would do until the chainer rewrites the rows with its own.)
    let commits: Count = diesel::sql_query(format!(
        "SELECT count(DISTINCT at)::bigint AS n FROM (SELECT at FROM audit_log ORDER BY seq OFFSET {before}) AS r"
    ))
    .get_result(&mut gw.db.conn().await)
    .await
    .unwrap();
    eprintln!("{reads} concurrent reads, {} audit commits", commits.n);
    // How many share a commit depends on scheduling: 2–3 commits on a quiet machine, up to 24 seen
    // with the whole suite running on 2 cores. Sharing is what is asserted: at least two reads a
    // commit on average, where one commit per read would be 60.
    assert!(
        commits.n * 2 <= reads as i64,
        "{reads} reads took {} commits",
        commits.n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_audit_cannot_be_written_answers_503() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    let path = with_id(routes::PATIENT, people.lefevre.id);
    get(&gw, &path, &token).await.expect(200);
    gw.db
        .conn()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit disk full'; END $$; \
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
        )
        .await
        .unwrap();
    let refused = get(&gw, &path, &token).await.expect(503);
    assert_eq!(refused.problem().code, ErrorCode::ServiceUnavailable);
    assert!(refused.header("retry-after").is_some());
    assert!(!refused.text().contains("Lefèvre"));
    gw.db
        .conn()
        .await
        .batch_execute("DROP TRIGGER refuse_audit ON audit_log")
        .await
        .unwrap();
    get(&gw, &path, &token).await.expect(200);
}

/// A chained row, its `prev_hash` and its `hash`.
type Chained = (AuditRecord, Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Queryable)]
struct StoredAudit {
    seq: i64,
    chain_seq: Option<i64>,
    at: time::OffsetDateTime,
    lab_id: Uuid,
    staff_id: Option<Uuid>,
    device_id: Option<Uuid>,
    action: String,
    patient_id: Option<Uuid>,
    resource: Option<String>,
    request_id: Option<String>,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chainer_links_audit_rows_with_hashes_that_recompute() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    for p in people.martins.iter().take(4) {
        get(&gw, &with_id(routes::PATIENT, p.id), &token).await.expect(200);
    }
    names(&gw, "martin", &token).await;
    let expected = 4 + 7;
    let started = Instant::now();
    let rows: Vec<Chained> = loop {
        let rows: Vec<StoredAudit> = audit_log::table
            .order(audit_log::seq)
            .select((
                audit_log::seq,
                audit_log::chain_seq,
                audit_log::at,
                audit_log::lab_id,
                audit_log::staff_id,
                audit_log::device_id,
                audit_log::action,
                audit_log::patient_id,
                audit_log::resource,
                audit_log::request_id,
                audit_log::prev_hash,
                audit_log::hash,
            ))
            .load(&mut gw.db.conn().await)
            .await
            .unwrap();
        if rows.len() == expected && rows.iter().all(|r| r.chain_seq.is_some()) {
            break rows
                .into_iter()
                .map(|r| {
                    let record = AuditRecord {
                        seq: r.seq,
                        chain_seq: r.chain_seq.unwrap(),
                        at: r.at,
                        lab_id: r.lab_id,
                        staff_id: r.staff_id,
                        device_id: r.device_id,
                        action: r.action,
                        patient_id: r.patient_id,
                        resource: r.resource,
                        request_id: r.request_id,
                    };
                    (record, r.prev_hash, r.hash)
                })
                .collect();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "rows not chained in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut rows = rows;
    rows.sort_by_key(|r| r.0.chain_seq);
    let mut prev = GENESIS_HASH.to_vec();
    for (i, (record, prev_hash, hash)) in rows.iter().enumerate() {
        assert_eq!(record.chain_seq, i64::try_from(i).unwrap() + 1, "no gaps");
        assert_eq!(
            prev_hash.as_deref(),
            Some(prev.as_slice()),
            "linked to the previous row"
        );
        let recomputed = record_hash(&prev, record);
        assert_eq!(hash.as_deref(), Some(recomputed.as_slice()), "the hash recomputes");
        prev = recomputed.to_vec();
    }
    assert_eq!(
        verify_chain(&mut gw.db.conn().await).await.unwrap(),
        Ok(expected as u64)
    );

    // The log refuses changes; a row changed behind the trigger's back breaks the chain.
    let mut conn = gw.db.conn().await;
    let refused = conn
        .batch_execute("UPDATE audit_log SET action = 'nothing' WHERE chain_seq = 3")
        .await;
    assert!(refused.is_err(), "append-only");
    conn.batch_execute(
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
         UPDATE audit_log SET patient_id = NULL WHERE chain_seq = 3; \
         ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;",
    )
    .await
    .unwrap();
    assert_eq!(
        verify_chain(&mut conn).await.unwrap(),
        Err(labedge_edge_gateway::audit::ChainBreak::Hash(3))
    );
}

// ------------------------------------------------------------------------------------------------
// Delta pull.

async fn pull(gw: &TestGateway, token: &str, cursor: Option<&str>) -> SyncPullResponse {
    let path = match cursor {
        Some(cursor) => format!("{}?cursor={}", routes::SYNC_PULL, enc(cursor)),
        None => routes::SYNC_PULL.to_owned(),
    };
    get(gw, &path, token).await.expect(200).json()
}

fn removed(page: &SyncPullResponse, entity: SyncEntity) -> Vec<Uuid> {
    page.removals
        .iter()
        .filter(|r| r.entity == entity)
        .map(|r| r.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_pull_sends_the_scope_then_what_changed_and_what_left() {
    let gw = TestGateway::start().await;
    let data = round_data(&gw, 3).await;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let (_, token) = sampler(&gw).await;

    // First pull: the whole scope (today's round and tomorrow's 00:30 visit), reset.
    let first = pull(&gw, &token, None).await;
    assert!(first.reset && !first.has_more);
    assert_eq!(first.appointments.len(), 4);
    assert_eq!(first.patients.len(), 4, "three round patients and the 00:30 visit's");
    assert!(
        first
            .patients
            .iter()
            .all(|p| p.identity.nir.as_ref().is_none_or(|n| n.masked))
    );
    // Booked prescriptions, and both open prescriptions of the patient booked without one;
    // none for the 00:30 visit's patient, who has none.
    assert_eq!(first.prescriptions.len(), 1 + 2 + 1);
    assert!(first.removals.is_empty());

    // Nothing changed: nothing comes, the cursor stays.
    let quiet = pull(&gw, &token, Some(&first.cursor)).await;
    assert!(!quiet.reset && quiet.appointments.is_empty() && quiet.patients.is_empty());
    assert_eq!(quiet.cursor, first.cursor);

    // A patient of the scope changes: only they come.
    let changed = PatientRow {
        phone: Some("+33611111111".into()),
        version: 2,
        ..data.patients[1].clone()
    };
    edge_data::upsert_patients(&gw, std::slice::from_ref(&changed)).await;
    // A patient out of scope changes: at most a removal the tablet ignores.
    let outsider = patient("Dehors", "Zoé", date!(1999 - 09 - 09));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&outsider)).await;
    let second = pull(&gw, &token, Some(&first.cursor)).await;
    assert!(!second.reset);
    assert_eq!(second.patients.len(), 1);
    assert_eq!(second.patients[0].id, changed.id);
    assert_eq!(
        second.patients[0].contact.phone.as_ref().unwrap().as_str(),
        "+33611111111"
    );
    assert!(second.appointments.is_empty() && second.prescriptions.is_empty());
    assert_eq!(removed(&second, SyncEntity::Patient), [outsider.id]);

    // An appointment reassigned to someone else leaves: it, its patient (no other visit of theirs
    // in scope) and their prescriptions come as removals.
    let leaving = AppointmentRow {
        assigned_staff_id: Some(gw.staff_id(NURSE.0)),
        version: 2,
        ..data.visits[2].clone()
    };
    edge_data::upsert_appointments(&gw, std::slice::from_ref(&leaving)).await;
    let third = pull(&gw, &token, Some(&second.cursor)).await;
    assert_eq!(removed(&third, SyncEntity::Appointment), [leaving.id]);
    assert_eq!(removed(&third, SyncEntity::Patient), [leaving.patient_id]);
    let mut their_prescriptions: Vec<Uuid> = data
        .prescriptions
        .iter()
        .filter(|p| p.prescription.patient_id == leaving.patient_id)
        .map(|p| p.prescription.id)
        .collect();
    their_prescriptions.sort();
    assert_eq!(removed(&third, SyncEntity::Prescription), their_prescriptions);
    assert!(third.appointments.is_empty() && third.patients.is_empty());

    // An appointment assigned to them arrives with its patient and prescription.
    let newcomer = patient("Nouvelle", "Inès", date!(2001 - 02 - 03));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&newcomer)).await;
    let their_rx = prescription(gw.lab_id, newcomer.id, data.today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&their_rx)).await;
    let at = edge_data::local_time(&gw, data.today.next_day().unwrap(), 11, 0).await;
    let arriving = home_visit(gw.lab_id, newcomer.id, me, at, 2);
    edge_data::upsert_appointments(&gw, std::slice::from_ref(&arriving)).await;
    let fourth = pull(&gw, &token, Some(&third.cursor)).await;
    assert_eq!(
        fourth.appointments.iter().map(|a| a.id).collect::<Vec<_>>(),
        [arriving.id]
    );
    assert_eq!(fourth.patients.iter().map(|p| p.id).collect::<Vec<_>>(), [newcomer.id]);
    assert_eq!(
        fourth.prescriptions.iter().map(|p| p.id).collect::<Vec<_>>(),
        [their_rx.prescription.id]
    );
    assert_eq!(fourth.prescriptions[0].tube_plan[0].tube_type, "EDTA");
    assert!(fourth.removals.is_empty());

    // Every sent patient, prescription and appointment was audited as a pull.
    let audited = audit_rows(&gw).await;
    assert!(audited.iter().filter(|r| r.action == "sync.pull").count() >= 4 + 4 + 4 + 1 + 3);

    // Another staff member's cursor on this device starts over; a malformed cursor is a 422.
    let (_, nurse_token) = nurse(&gw).await;
    assert!(pull(&gw, &nurse_token, Some(&fourth.cursor)).await.reset);
    for bad in ["nonsense", "1AAAA", "2", &format!("{}x", fourth.cursor)] {
        let problem = get(&gw, &format!("{}?cursor={}", routes::SYNC_PULL, enc(bad)), &token)
            .await
            .expect(422)
            .problem();
        assert_eq!(problem.errors[0].pointer, "/cursor", "{bad}");
    }
    let long = get(
        &gw,
        &format!("{}?cursor={}", routes::SYNC_PULL, "A".repeat(129)),
        &token,
    )
    .await
    .expect(422)
    .problem();
    assert_eq!(long.errors[0].pointer, "/cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_pull_pages_long_change_runs() {
    let gw = TestGateway::start().await;
    round_data(&gw, 1).await;
    let (_, token) = sampler(&gw).await;
    let first = pull(&gw, &token, None).await;
    // 600 patients out of scope arrive at once: 600 change_log entries.
    let crowd: Vec<PatientRow> = (0..600)
        .map(|i| patient(&format!("Foule{i}"), "X", date!(1980 - 01 - 01)))
        .collect();
    edge_data::upsert_patients(&gw, &crowd).await;
    let page1 = pull(&gw, &token, Some(&first.cursor)).await;
    assert!(page1.has_more);
    assert_eq!(page1.removals.len(), 500);
    let page2 = pull(&gw, &token, Some(&page1.cursor)).await;
    assert!(!page2.has_more);
    assert_eq!(page2.removals.len(), 100);
    let mut all: Vec<Uuid> = page1.removals.iter().chain(&page2.removals).map(|r| r.id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 600, "every change once");
}
