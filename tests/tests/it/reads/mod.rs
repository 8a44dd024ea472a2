//! Tablet reads at the gateway (patients, prescriptions and tube plans, rounds, appointments), their
//! audit and hash chain, the cache, and the delta pull, against real PostgreSQL and Redis.

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

mod audit;
mod http;
mod patients;
mod prescriptions;
mod pull;
mod rounds;
mod search;

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
    (device.id, tokens.access_token.expose_secret().to_owned())
}

/// The home sampler's access token on a tablet of their own.
async fn sampler(gw: &TestGateway) -> (Uuid, String) {
    let device = gw.enroll(None).await;
    let tokens = gw.login(&device, HOME_SAMPLER.0, HOME_SAMPLER.1).await;
    (device.id, tokens.access_token.expose_secret().to_owned())
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
