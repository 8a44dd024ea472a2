//! The lab's own day at the edge (issue 15): booking in free slots, walk-in patients, corrections,
//! against a gateway on real PostgreSQL and Redis; and the whole set written with the cloud out of
//! reach, then relayed exactly once, with a slot the LIS took meanwhile shown in the conflict queue.

use actix_web::test::TestRequest;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::relay::Relay;
use labedge_tests::app::{TestApp, TestResponse};
use labedge_tests::cloud::TestCloud;
use labedge_tests::db::AUDIT_RECORDS;
use labedge_tests::edge_data::{self, patient, prescription};
use labedge_tests::gateway::{HOME_SAMPLER, NURSE, TestGateway};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes::{self, with_id};
use mobile_contracts::{Appointment, AppointmentKind, Patient, SlotList, VoidReceipt};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::date;
use time::{Date, Duration, Month, OffsetDateTime, Weekday};
use uuid::Uuid;

/// Every day the same hours, so that the tests run any day: lab visits 08:00–09:00 in 15-minute
/// slots of `places` places, home visits 08:00–10:00 in 30-minute slots.
fn rules_sql(places: i32) -> String {
    rules_sql_with(places, ("08:00", "09:00"))
}

/// [`rules_sql`] with lab visits from `open` to `close`.
fn rules_sql_with(places: i32, (open, close): (&str, &str)) -> String {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let hours = |open: &str, close: &str| {
        let entries: Vec<String> = days
            .iter()
            .map(|d| format!("\"{d}\": [[\"{open}\", \"{close}\"]]"))
            .collect();
        format!("{{{}}}", entries.join(", "))
    };
    format!(
        "UPDATE labs SET slot_minutes = 15, lab_places = {places}, opening_hours = '{}', \
         home_slot_minutes = 30, home_hours = '{}'",
        hours(open, close),
        hours("08:00", "10:00")
    )
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

struct Desk {
    gw: TestGateway,
    nurse: String,
    sampler: String,
    tomorrow: Date,
    patient: Uuid,
    prescription: Uuid,
    other_prescription: Uuid,
}

async fn token(gw: &TestGateway, (login, pin): (&str, &str)) -> String {
    let device = gw.enroll(None).await;
    gw.login(&device, login, pin)
        .await
        .access_token
        .expose_secret()
        .to_owned()
}

async fn desk(places: i32) -> Desk {
    let gw = TestGateway::start().await;
    edge_data::insert_catalog(&gw).await;
    gw.db.conn().await.batch_execute(&rules_sql(places)).await.unwrap();
    let today = edge_data::local_today(&gw).await;
    let first = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    let second = patient("Martin", "Louise", date!(1960 - 01 - 01));
    edge_data::upsert_patients(&gw, &[first.clone(), second.clone()]).await;
    let rx = prescription(gw.lab_id, first.id, today, &["NFS"]);
    let other_rx = prescription(gw.lab_id, second.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, &[rx.clone(), other_rx.clone()]).await;
    let nurse = token(&gw, NURSE).await;
    let sampler = token(&gw, HOME_SAMPLER).await;
    Desk {
        tomorrow: today + Duration::days(1),
        patient: first.id,
        prescription: rx.prescription.id,
        other_prescription: other_rx.prescription.id,
        nurse,
        sampler,
        gw,
    }
}

async fn send(app: &TestApp, request: TestRequest, token: &str, if_match: Option<i64>) -> TestResponse {
    let mut request = request
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("idempotency-key", Uuid::now_v7().to_string()));
    if let Some(version) = if_match {
        request = request.insert_header(("if-match", format!("\"{version}\"")));
    }
    app.send(request).await
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> TestResponse {
    send(app, TestRequest::post().uri(path).set_json(body), token, None).await
}

async fn slots(app: &TestApp, token: &str, day: Date, kind: &str) -> SlotList {
    app.get_authed(&format!("{}?date={day}&kind={kind}", routes::SLOTS), token)
        .await
        .expect(200)
        .json()
}

fn booking(patient: Uuid, kind: &str, at: OffsetDateTime) -> Value {
    json!({"id": Uuid::now_v7(), "patient_id": patient, "kind": kind, "scheduled_at": rfc3339(at)})
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(gw: &TestGateway, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(&mut gw.db.conn().await)
        .await
        .unwrap()
        .n
}

async fn outbox_kinds(gw: &TestGateway) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Kind {
        #[diesel(sql_type = Text)]
        kind: String,
    }
    diesel::sql_query("SELECT kind FROM outbox ORDER BY seq")
        .load::<Kind>(&mut gw.db.conn().await)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kind)
        .collect()
}

fn assert_code(response: &TestResponse, code: ErrorCode, pointer: Option<&str>) {
    let problem = response.problem();
    assert_eq!(problem.code, code, "{problem:?}");
    if let Some(pointer) = pointer {
        assert!(
            problem.errors.iter().any(|e| e.pointer == pointer),
            "{pointer}: {problem:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_take_free_slots_of_the_lab_rules_and_refuse_the_rest() {
    let d = desk(1).await;
    let (app, nurse) = (&d.gw.app, d.nurse.as_str());
    let at = |h: u8, m: u8| edge_data::local_time(&d.gw, d.tomorrow, h, m);

    let lab_slots = slots(app, nurse, d.tomorrow, "lab").await;
    assert_eq!(
        (lab_slots.slot_minutes, lab_slots.items.len()),
        (15, 4),
        "08:00 to 09:00 by 15"
    );
    assert_eq!(lab_slots.items[0].start, at(8, 0).await);
    assert!(lab_slots.items.iter().all(|s| (s.capacity, s.free) == (1, 1)));
    // Bad queries and callers.
    for query in [
        "?date=2026-13-01&kind=lab",
        "?date=2026-12-07",
        "?date=2026-12-07&kind=car",
        "",
    ] {
        let response = app.get_authed(&format!("{}{query}", routes::SLOTS), nurse).await;
        assert!(
            matches!(response.status.as_u16(), 400 | 422),
            "{query}: {}",
            response.status
        );
    }
    app.get(&format!("{}?date={}&kind=lab", routes::SLOTS, d.tomorrow))
        .await
        .expect(401);

    let before = count(&d.gw, "SELECT count(*) AS n FROM appointments").await;
    // A home sampler does not book.
    let response = post(
        app,
        routes::APPOINTMENTS,
        &d.sampler,
        &booking(d.patient, "lab", at(8, 0).await),
    )
    .await;
    assert_code(&response.expect(403), ErrorCode::Forbidden, None);
    // Not a slot start, in the past, an unknown patient, another patient's prescription, a lab
    // visit with an address, a nil id: 422 naming the field.
    for (body, pointer) in [
        (booking(d.patient, "lab", at(8, 5).await), "/scheduled_at"),
        (booking(d.patient, "lab", at(19, 0).await), "/scheduled_at"),
        (
            booking(d.patient, "lab", OffsetDateTime::now_utc() - Duration::days(2)),
            "/scheduled_at",
        ),
        (booking(Uuid::now_v7(), "lab", at(8, 0).await), "/patient_id"),
    ] {
        let response = post(app, routes::APPOINTMENTS, nurse, &body).await.expect(422);
        assert_code(&response, ErrorCode::ValidationFailed, Some(pointer));
    }
    let mut wrong_rx = booking(d.patient, "lab", at(8, 0).await);
    wrong_rx["prescription_id"] = json!(d.other_prescription);
    let response = post(app, routes::APPOINTMENTS, nurse, &wrong_rx).await.expect(422);
    assert_code(&response, ErrorCode::ValidationFailed, Some("/prescription_id"));
    let mut with_address = booking(d.patient, "lab", at(8, 0).await);
    with_address["address"] = json!({"line": "1 rue A", "postal_code": "75001", "city": "Paris"});
    let response = post(app, routes::APPOINTMENTS, nurse, &with_address).await.expect(422);
    assert_code(&response, ErrorCode::ValidationFailed, Some("/address"));
    let mut nil = booking(d.patient, "lab", at(8, 0).await);
    nil["id"] = json!(Uuid::nil());
    let response = post(app, routes::APPOINTMENTS, nurse, &nil).await.expect(422);
    assert_code(&response, ErrorCode::ValidationFailed, Some("/id"));
    assert_eq!(
        count(&d.gw, "SELECT count(*) AS n FROM appointments").await,
        before,
        "nothing stored"
    );
    assert!(outbox_kinds(&d.gw).await.is_empty());

    // The booking: 201, version 1 in ETag, queued for the cloud, audited; the slot is now full.
    let mut body = booking(d.patient, "lab", at(8, 0).await);
    body["prescription_id"] = json!(d.prescription);
    let response = post(app, routes::APPOINTMENTS, nurse, &body).await.expect(201);
    assert_eq!(response.header("etag").as_deref(), Some("\"1\""));
    let booked: Appointment = response.json();
    assert_eq!(
        (booked.kind, booked.version, booked.duration_min),
        (AppointmentKind::Lab, 1, 15)
    );
    assert_eq!(outbox_kinds(&d.gw).await, ["appointment.create"]);
    assert_eq!(
        count(
            &d.gw,
            &format!("SELECT count(*) AS n FROM {AUDIT_RECORDS} WHERE action = 'appointment.create'")
        )
        .await,
        1
    );
    assert_eq!(slots(app, nurse, d.tomorrow, "lab").await.items[0].free, 0);
    // The same booking again under another key (its answer was lost): the same appointment, once.
    let again = post(app, routes::APPOINTMENTS, nurse, &body).await.expect(201);
    assert_eq!(again.json::<Appointment>().id, booked.id);
    assert_eq!(outbox_kinds(&d.gw).await.len(), 1);
    // Another patient in the full slot: 409 with the next free slots.
    let other = patient("Petit", "Jean", date!(1970 - 02 - 02));
    edge_data::upsert_patients(&d.gw, std::slice::from_ref(&other)).await;
    let response = post(
        app,
        routes::APPOINTMENTS,
        nurse,
        &booking(other.id, "lab", at(8, 0).await),
    )
    .await
    .expect(409);
    let problem = response.problem();
    assert_eq!(problem.code, ErrorCode::SlotUnavailable);
    let offered: Vec<OffsetDateTime> = problem.next_slots.iter().map(|s| s.start).collect();
    assert_eq!(offered[..3], [at(8, 15).await, at(8, 30).await, at(8, 45).await]);

    // Reschedule: If-Match required and checked, then 200 at version 2; the old slot frees.
    let path = with_id(routes::APPOINTMENT_RESCHEDULE, booked.id);
    let to = json!({"scheduled_at": rfc3339(at(8, 30).await)});
    let response = send(app, TestRequest::post().uri(&path).set_json(&to), nurse, None).await;
    assert_code(&response.expect(428), ErrorCode::PreconditionRequired, None);
    let response = send(app, TestRequest::post().uri(&path).set_json(&to), nurse, Some(5)).await;
    assert_code(&response.expect(412), ErrorCode::VersionMismatch, None);
    let response = send(app, TestRequest::post().uri(&path).set_json(&to), nurse, Some(1)).await;
    let moved: Appointment = response.expect(200).json();
    assert_eq!((moved.scheduled_at, moved.version), (at(8, 30).await, 2));
    let day = slots(app, nurse, d.tomorrow, "lab").await;
    assert_eq!(day.items.iter().map(|s| s.free).collect::<Vec<_>>(), [1, 1, 0, 1]);
    // Cancelled with its version: the slot frees.
    let cancel = TestRequest::patch()
        .uri(&with_id(routes::APPOINTMENT, booked.id))
        .set_json(json!({"status": "cancelled", "reason": "patient called"}));
    send(app, cancel, nurse, Some(2)).await.expect(200);
    assert!(
        slots(app, nurse, d.tomorrow, "lab")
            .await
            .items
            .iter()
            .all(|s| s.free == 1)
    );
    assert_eq!(
        outbox_kinds(&d.gw).await,
        ["appointment.create", "appointment.reschedule", "appointment.update"]
    );

    // A home visit goes to the lab's home sampler, at the patient's address; a second one in the same
    // slot has no sampler left.
    let home = post(
        app,
        routes::APPOINTMENTS,
        nurse,
        &booking(d.patient, "home", at(9, 0).await),
    )
    .await
    .expect(201)
    .json::<Appointment>();
    assert_eq!(home.assigned_staff_id, Some(d.gw.staff_id(HOME_SAMPLER.0)));
    assert_eq!(home.address.as_ref().map(|a| a.city.as_str()), Some("Paris"));
    let response = post(
        app,
        routes::APPOINTMENTS,
        nurse,
        &booking(other.id, "home", at(9, 0).await),
    )
    .await;
    assert_code(&response.expect(409), ErrorCode::SlotUnavailable, None);
    let home_day = slots(app, nurse, d.tomorrow, "home").await;
    assert_eq!(home_day.items.iter().map(|s| s.free).collect::<Vec<_>>(), [1, 1, 0, 1]);
    // The sampler sees it in their round of the day.
    let round: Value = app
        .get_authed(&format!("{}?date={}", routes::ROUNDS, d.tomorrow), &d.sampler)
        .await
        .expect(200)
        .json();
    assert!(round.to_string().contains(&home.id.to_string()), "{round}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tablets_booking_the_last_place_at_once_exactly_one_wins() {
    let d = desk(1).await;
    let start = edge_data::local_time(&d.gw, d.tomorrow, 8, 15).await;
    let others: Vec<_> = (0..6)
        .map(|i| patient("Durand", "Paul", date!(1950 - 01 - 01) + Duration::days(i)))
        .collect();
    edge_data::upsert_patients(&d.gw, &others).await;
    let second_nurse = token(&d.gw, NURSE).await;
    let tokens = [d.nurse.as_str(), second_nurse.as_str()];
    let attempts = others.iter().enumerate().map(|(i, p)| {
        let body = booking(p.id, "lab", start);
        let token = tokens[i % 2];
        let app = &d.gw.app;
        async move { post(app, routes::APPOINTMENTS, token, &body).await }
    });
    let responses = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 5, "{statuses:?}");
    for response in responses.iter().filter(|r| r.status.as_u16() == 409) {
        let problem = response.problem();
        assert_eq!(problem.code, ErrorCode::SlotUnavailable);
        assert!(!problem.next_slots.is_empty() && problem.next_slots.iter().all(|s| s.start != start));
    }
    let booked = count(
        &d.gw,
        &format!(
            "SELECT count(*) AS n FROM appointments WHERE scheduled_at = '{}'",
            rfc3339(start)
        ),
    )
    .await;
    assert_eq!(booked, 1);
}

/// Lab visits sent at one moment are booked in groups (one transaction for many, `writes::lab_bookings`)
/// and each still gets the answer it would have had alone: a slot's places go to exactly as many
/// bookings as it has, in one group or across two, the others get 409 with next free slots that
/// count the group's own bookings; refused bookings write nothing and do not fail their neighbours;
/// a retry racing its first attempt is booked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_visits_booked_at_one_moment_share_commits_and_each_gets_its_own_answer() {
    let d = desk(2).await;
    let (app, gw) = (&d.gw.app, &d.gw);
    let eight = edge_data::local_time(gw, d.tomorrow, 8, 0).await;
    let slot = |i: i64| eight + Duration::minutes(15 * i);
    let patients: Vec<_> = (0..24)
        .map(|i| patient("Petit", "Marc", date!(1940 - 01 - 01) + Duration::days(i)))
        .collect();
    edge_data::upsert_patients(gw, &patients).await;
    let before = count(gw, "SELECT count(*) AS n FROM outbox").await;
    // Five for the 08:00 slot's two places; the two places of 08:15 and 08:30, one of 08:45 (its
    // other goes to a retried booking); refusals between them.
    let mut bodies: Vec<(Value, &str)> = Vec::new();
    for (i, p) in patients.iter().take(5).enumerate() {
        bodies.push((booking(p.id, "lab", slot(0)), "eight"));
        if i == 1 {
            bodies.push((booking(Uuid::now_v7(), "lab", slot(1)), "unknown patient"));
        }
        if i == 3 {
            bodies.push((booking(d.patient, "lab", slot(0) + Duration::minutes(7)), "not a slot"));
        }
    }
    for (i, p) in patients.iter().skip(5).take(5).enumerate() {
        bodies.push((booking(p.id, "lab", slot(1 + i64::try_from(i % 3).unwrap())), "free"));
    }
    let mut foreign = booking(d.patient, "lab", slot(3));
    foreign["prescription_id"] = json!(d.other_prescription);
    bodies.push((foreign, "foreign prescription"));
    let retried = booking(patients[20].id, "lab", slot(3));
    bodies.push((retried.clone(), "retried"));
    bodies.push((retried.clone(), "retried"));
    let retry_key = Uuid::now_v7().to_string();
    let requests = bodies.iter().map(|(body, what)| {
        let key = if *what == "retried" {
            retry_key.clone()
        } else {
            Uuid::now_v7().to_string()
        };
        let request = TestRequest::post()
            .uri(routes::APPOINTMENTS)
            .set_json(body)
            .insert_header(("authorization", format!("Bearer {}", d.nurse)))
            .insert_header(("idempotency-key", key));
        app.send(request)
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut at_eight = Vec::new();
    let mut retries = Vec::new();
    let mut booked_ids = Vec::new();
    for ((body, what), response) in bodies.iter().zip(&responses) {
        match *what {
            "eight" => at_eight.push(response),
            "retried" => retries.push(response),
            "unknown patient" => assert_code(response, ErrorCode::ValidationFailed, Some("/patient_id")),
            "not a slot" => assert_code(response, ErrorCode::ValidationFailed, Some("/scheduled_at")),
            "foreign prescription" => assert_code(response, ErrorCode::ValidationFailed, Some("/prescription_id")),
            _ => {
                assert_eq!(response.status, 201, "{what}: {:?}", response.problem());
                let appointment: Appointment = response.json();
                assert_eq!(appointment.id.to_string(), body["id"].as_str().unwrap());
                booked_ids.push(appointment.id);
            }
        }
    }
    let won: Vec<_> = at_eight.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        won.len(),
        2,
        "{:?}",
        at_eight.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    booked_ids.extend(won.iter().map(|r| r.json::<Appointment>().id));
    for refused in at_eight.iter().filter(|r| r.status != 201) {
        assert_code(refused, ErrorCode::SlotUnavailable, Some("/scheduled_at"));
        let next = &refused.problem().next_slots;
        assert!(
            !next.is_empty() && next.iter().all(|s| s.start != slot(0) && s.free > 0),
            "{next:?}"
        );
    }
    assert_eq!(retries[0].status, 201, "{:?}", retries[0].problem());
    match retries[1].status.as_u16() {
        201 => assert_eq!(retries[1].json::<Appointment>(), retries[0].json::<Appointment>()),
        409 => assert_code(retries[1], ErrorCode::IdempotencyInFlight, None),
        other => panic!("a retry racing its first attempt got {other}"),
    }
    booked_ids.push(retries[0].json::<Appointment>().id);

    // Exactly the booked ones are stored, each once, with their outbox entries; each slot holds
    // its two places and no more.
    assert_eq!(booked_ids.len(), 8);
    let ids = booked_ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        count(
            gw,
            &format!("SELECT count(*) AS n FROM appointments WHERE id IN ({ids})")
        )
        .await,
        8
    );
    assert_eq!(count(gw, "SELECT count(*) AS n FROM outbox").await, before + 8);
    for i in 0..4 {
        let sql = format!(
            "SELECT count(*) AS n FROM appointments WHERE scheduled_at = '{}'",
            rfc3339(slot(i))
        );
        assert_eq!(count(gw, &sql).await, 2, "slot {i}");
    }
    let list = slots(app, &d.nurse, d.tomorrow, "lab").await;
    assert!(list.items.iter().all(|s| s.free == 0), "{list:?}");
    // Committed in groups: 8 bookings sent at once, at most two groups written at a time.
    let transactions = count(
        gw,
        &format!("SELECT count(DISTINCT xmin::text) AS n FROM appointments WHERE id IN ({ids})"),
    )
    .await;
    assert!(
        transactions < 8,
        "8 bookings sent at once took {transactions} transactions"
    );
}

/// The desk books only within the lab's appointment window, where the gateway holds every
/// appointment: beyond it a slot's places cannot be counted, and a booking relayed there would be
/// taken back by the cloud's feed as out of scope. The slots of a day beyond are refused naming the
/// date, a booking or a move there naming its start, and a full slot's next free slots stop at the
/// window's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_books_only_within_the_labs_appointment_window() {
    let d = desk(1).await;
    let (app, gw, nurse) = (&d.gw.app, &d.gw, d.nurse.as_str());
    // The window ends with tomorrow, as a feed page would say.
    let day_after = d.tomorrow + Duration::days(1);
    let ends = edge_data::local_time(gw, day_after, 0, 0).await;
    gw.state.window.set(ends);

    let tomorrow = slots(app, nurse, d.tomorrow, "lab").await;
    assert_eq!(tomorrow.items.len(), 4);
    let beyond = app
        .get_authed(&format!("{}?date={day_after}&kind=lab", routes::SLOTS), nurse)
        .await;
    assert_eq!(beyond.status, 422);
    assert_code(&beyond, ErrorCode::ValidationFailed, Some("/date"));

    let later = edge_data::local_time(gw, day_after, 8, 0).await;
    for kind in ["lab", "home"] {
        let mut body = booking(d.patient, kind, later);
        if kind == "home" {
            body["address"] = json!({"line": "3 rue des Lilas", "postal_code": "69003", "city": "Lyon"});
        }
        let refused = post(app, routes::APPOINTMENTS, nurse, &body).await;
        assert_eq!(refused.status, 422, "{kind}");
        assert_code(&refused, ErrorCode::ValidationFailed, Some("/scheduled_at"));
    }
    let last = edge_data::local_time(gw, d.tomorrow, 8, 45).await;
    let booked: Appointment = post(app, routes::APPOINTMENTS, nurse, &booking(d.patient, "lab", last))
        .await
        .expect(201)
        .json();
    let moved = send(
        app,
        TestRequest::post()
            .uri(&with_id(routes::APPOINTMENT_RESCHEDULE, booked.id))
            .set_json(json!({"scheduled_at": rfc3339(later)})),
        nurse,
        Some(booked.version),
    )
    .await;
    assert_code(&moved, ErrorCode::ValidationFailed, Some("/scheduled_at"));

    // 08:00 full too: the free slots offered are the window's last two, none beyond its end.
    let others: Vec<_> = ["Roux", "Blanc"]
        .iter()
        .map(|name| patient(name, "Emma", date!(1990 - 05 - 05)))
        .collect();
    edge_data::upsert_patients(gw, &others).await;
    let eight = edge_data::local_time(gw, d.tomorrow, 8, 0).await;
    post(app, routes::APPOINTMENTS, nurse, &booking(others[0].id, "lab", eight))
        .await
        .expect(201);
    let full = post(app, routes::APPOINTMENTS, nurse, &booking(others[1].id, "lab", eight)).await;
    assert_code(&full, ErrorCode::SlotUnavailable, Some("/scheduled_at"));
    let offered: Vec<_> = full.problem().next_slots.iter().map(|s| s.start).collect();
    assert_eq!(
        offered,
        [eight + Duration::minutes(15), eight + Duration::minutes(30)],
        "the window's free slots, none beyond it"
    );
    let stored = count(gw, "SELECT count(*) AS n FROM appointments").await;
    assert_eq!(stored, 2, "nothing beyond the window was stored");
}

/// The gateway computes the slots' grid itself (jiff, the system's tz database) while reads and tests
/// reckon local times in PostgreSQL: on the nights the clocks change, both must agree on every slot,
/// and a slot lasts its minutes of real time (a 01:00–04:00 range is two hours long in March).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_follow_the_labs_clock_on_the_nights_it_changes() {
    let d = desk(2).await;
    let rules = rules_sql_with(2, ("01:00", "04:00"));
    d.gw.db.conn().await.batch_execute(&rules).await.unwrap();
    let year = d.tomorrow.year() + 1;
    let last_sunday = |month: Month| {
        let mut day = Date::from_calendar_date(year, month, 31).unwrap();
        while day.weekday() != Weekday::Sunday {
            day = day.previous_day().unwrap();
        }
        day
    };
    let days = [
        (last_sunday(Month::March), Some(2)),
        (last_sunday(Month::October), Some(4)),
        (d.tomorrow, None),
    ];
    for (day, night_hours) in days {
        let opens = edge_data::local_time(&d.gw, day, 1, 0).await;
        let closes = edge_data::local_time(&d.gw, day, 4, 0).await;
        let hours = (closes - opens).whole_hours();
        if let Some(expected) = night_hours {
            assert_eq!(hours, expected, "{day}: PostgreSQL's own reckoning of the night");
        }
        let expected: Vec<OffsetDateTime> = (0..hours * 4).map(|i| opens + Duration::minutes(15 * i)).collect();
        let list = slots(&d.gw.app, &d.nurse, day, "lab").await;
        let starts: Vec<OffsetDateTime> = list.items.iter().map(|s| s.start).collect();
        assert_eq!(starts, expected, "{day}");
        assert!(
            list.items
                .iter()
                .all(|s| s.end - s.start == Duration::minutes(15) && s.free == 2)
        );
    }
}

/// The slot list is kept in memory for a second at most (docs/performance.md, benchmark 9): a booking
/// made at this gateway shows in the very next list, and one written into the table by another way
/// than the gateway's writes and its sync (here straight into it) shows within the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_list_shows_a_booking_made_here_at_once_and_one_from_the_cloud_within_a_second() {
    let d = desk(2).await;
    let (app, nurse) = (&d.gw.app, d.nurse.as_str());
    let first = edge_data::local_time(&d.gw, d.tomorrow, 8, 0).await;
    let free_at_eight = async || slots(app, nurse, d.tomorrow, "lab").await.items[0].free;
    assert_eq!(free_at_eight().await, 2);

    let synced = edge_data::lab_visit(d.gw.lab_id, d.patient, first);
    edge_data::upsert_appointments(&d.gw, &[synced]).await;
    let started = std::time::Instant::now();
    while free_at_eight().await != 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "a booking from the cloud never showed in the slot list"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let other = patient("Bernard", "Jeanne", date!(1971 - 03 - 03));
    edge_data::upsert_patients(&d.gw, std::slice::from_ref(&other)).await;
    assert_eq!(free_at_eight().await, 1, "the list is in memory now");
    post(app, routes::APPOINTMENTS, nurse, &booking(other.id, "lab", first))
        .await
        .expect(201);
    assert_eq!(free_at_eight().await, 0, "a booking made here shows in the next list");
}

fn walk_in(family: &str, given: &str, birth: &str) -> Value {
    json!({
        "id": Uuid::now_v7(), "birth_family_name": family, "birth_given_names": given,
        "birth_date": birth, "sex": "F", "birth_place_code": "13055",
        "phone": "+33 6 12 34 56 78",
        "address": {"line": "3 place du Marché", "postal_code": "13001", "city": "Marseille"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_ins_are_offered_their_probable_duplicates_before_they_are_created() {
    let d = desk(1).await;
    let (app, nurse) = (&d.gw.app, d.nurse.as_str());
    let before = count(&d.gw, "SELECT count(*) AS n FROM patients").await;

    // Bad traits, the home sampler, a wrong NIR key: refused, nothing stored.
    let mut bad = walk_in("R2D2", "Amandine", "1984-06-30");
    bad["birth_place_code"] = json!("2C004");
    let response = post(app, routes::PATIENTS, nurse, &bad).await.expect(422);
    assert_code(&response, ErrorCode::ValidationFailed, Some("/birth_family_name"));
    assert_code(&response, ErrorCode::ValidationFailed, Some("/birth_place_code"));
    assert!(!response.text().contains("R2D2"), "no submitted value in the answer");
    let mut wrong_key = walk_in("Durand", "Anne", "1984-06-30");
    wrong_key["nir"] = json!("284069912611193");
    let response = post(app, routes::PATIENTS, nurse, &wrong_key).await.expect(422);
    assert_code(&response, ErrorCode::ValidationFailed, Some("/nir"));
    let response = post(
        app,
        routes::PATIENTS,
        &d.sampler,
        &walk_in("Durand", "Anne", "1984-06-30"),
    )
    .await;
    assert_code(&response.expect(403), ErrorCode::Forbidden, None);
    assert_eq!(count(&d.gw, "SELECT count(*) AS n FROM patients").await, before);

    // "LEFEBVRE" born the same day as "Lefèvre": offered as a probable duplicate, the offer audited.
    let mut body = walk_in("LEFEBVRE", "Amandine Rose", "1984-06-30");
    let response = post(app, routes::PATIENTS, nurse, &body).await.expect(409);
    let problem = response.problem();
    assert_eq!(problem.code, ErrorCode::PossibleDuplicate);
    assert_eq!(problem.candidates.iter().map(|c| c.id).collect::<Vec<_>>(), [d.patient]);
    assert_eq!(
        count(
            &d.gw,
            &format!("SELECT count(*) AS n FROM {AUDIT_RECORDS} WHERE action = 'patient.duplicate_offered'")
        )
        .await,
        1
    );
    assert_eq!(count(&d.gw, "SELECT count(*) AS n FROM patients").await, before);
    // Set aside by the nurse: created, provisional, queued, readable.
    body["confirmed_distinct_from"] = json!([d.patient]);
    let response = post(app, routes::PATIENTS, nurse, &body).await.expect(201);
    let created: Patient = response.json();
    assert_eq!(created.identity_status, mobile_contracts::IdentityStatus::Provisional);
    assert_eq!(created.identity.first_given_name.as_str(), "Amandine");
    assert_eq!(outbox_kinds(&d.gw).await, ["patient.create"]);
    app.get_authed(&with_id(routes::PATIENT, created.id), nurse)
        .await
        .expect(200);
    // A document checked: validated. A NIR already a patient's can never be set aside.
    let mut validated = walk_in("Nguyen", "Thi", "1992-03-04");
    validated["identity_document"] = json!("passport");
    validated["nir"] = json!(edge_data::nir("F", date!(1992 - 03 - 04), 7));
    let nguyen: Patient = post(app, routes::PATIENTS, nurse, &validated).await.expect(201).json();
    assert_eq!(nguyen.identity_status, mobile_contracts::IdentityStatus::Validated);
    let mut same_nir = walk_in("Autre", "Nom", "1992-03-04");
    same_nir["nir"] = validated["nir"].clone();
    same_nir["confirmed_distinct_from"] = json!([nguyen.id]);
    let response = post(app, routes::PATIENTS, nurse, &same_nir).await.expect(409);
    assert_code(&response, ErrorCode::Conflict, Some("/nir"));

    // The same walk-in entered on two tablets at once: one is created, the other is offered it.
    let second_nurse = token(&d.gw, NURSE).await;
    let (a, b) = (
        walk_in("Girard", "Léa", "2001-09-09"),
        walk_in("GIRARD", "Lea", "2001-09-09"),
    );
    let (first, second) = tokio::join!(
        post(app, routes::PATIENTS, nurse, &a),
        post(app, routes::PATIENTS, &second_nurse, &b)
    );
    let mut statuses = [first.status.as_u16(), second.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let (won, lost) = if first.status.as_u16() == 201 {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(
        lost.problem().candidates.iter().map(|c| c.id).collect::<Vec<_>>(),
        [won.json::<Patient>().id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_recorded_by_mistake_is_voided_with_a_reason_never_deleted() {
    let d = desk(1).await;
    let (app, nurse) = (&d.gw.app, d.nurse.as_str());
    let collection = edge_data::collection(d.patient, d.prescription, &["EDTA"]);
    post(
        app,
        routes::COLLECTIONS,
        nurse,
        &serde_json::to_value(&collection).unwrap(),
    )
    .await
    .expect(201);
    let path = with_id(routes::COLLECTION_VOID, collection.id);
    // No reason, a blank one, an unknown collection, a home sampler who did not record it.
    for body in [json!({}), json!({"reason": "  x  "}), json!({"reason": "ab"})] {
        let response = post(app, &path, nurse, &body).await;
        assert!(
            matches!(response.status.as_u16(), 400 | 422),
            "{body}: {}",
            response.status
        );
    }
    let unknown = with_id(routes::COLLECTION_VOID, Uuid::now_v7());
    post(app, &unknown, nurse, &json!({"reason": "wrong patient"}))
        .await
        .expect(404);
    post(app, &path, &d.sampler, &json!({"reason": "wrong patient"}))
        .await
        .expect(404);
    assert_eq!(count(&d.gw, "SELECT count(*) AS n FROM collection_voids").await, 0);

    let receipt: VoidReceipt = post(app, &path, nurse, &json!({"reason": "wrong patient labelled"}))
        .await
        .expect(200)
        .json();
    assert_eq!(receipt.collection_id, collection.id);
    let response = post(app, &path, nurse, &json!({"reason": "again"})).await.expect(409);
    assert_code(&response, ErrorCode::Conflict, None);
    assert_eq!(count(&d.gw, "SELECT count(*) AS n FROM collections").await, 1, "kept");
    assert_eq!(outbox_kinds(&d.gw).await, ["collection.create", "collection.void"]);
    assert_eq!(
        count(
            &d.gw,
            &format!("SELECT count(*) AS n FROM {AUDIT_RECORDS} WHERE action = 'collection.void'")
        )
        .await,
        1
    );

    // Offline, the same through a push; a replay of the mutation is a duplicate.
    let other = edge_data::collection(d.patient, d.prescription, &["EDTA"]);
    post(app, routes::COLLECTIONS, nurse, &serde_json::to_value(&other).unwrap())
        .await
        .expect(201);
    let mutation = json!({"mutation_id": Uuid::now_v7(),
        "queued_at": rfc3339(OffsetDateTime::now_utc() - Duration::hours(1)),
        "op": {"kind": "collection.void", "collection_id": other.id, "void": {"reason": "tube broken before labelling"}}});
    let push = json!({"mutations": [mutation.clone()]});
    let results: Value = post(app, routes::SYNC_PUSH, nurse, &push).await.expect(200).json();
    assert_eq!(results["results"][0]["outcome"], "applied", "{results}");
    let results: Value = post(app, routes::SYNC_PUSH, nurse, &push).await.expect(200).json();
    assert_eq!(results["results"][0]["outcome"], "duplicate", "{results}");
    let mut blank = mutation;
    blank["mutation_id"] = json!(Uuid::now_v7());
    blank["op"]["void"]["reason"] = json!("");
    let response = post(app, routes::SYNC_PUSH, nurse, &json!({"mutations": [blank]}))
        .await
        .expect(422);
    assert_code(
        &response,
        ErrorCode::ValidationFailed,
        Some("/mutations/0/op/void/reason"),
    );
    assert_eq!(count(&d.gw, "SELECT count(*) AS n FROM collection_voids").await, 2);
}

const VISIT: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/visit-kind";

async fn drain(relay: &Relay) {
    let mut last = None;
    for _ in 0..20 {
        match relay.pass().await {
            Ok(labedge_edge_gateway::relay::Pass::Idle) => return,
            Ok(_) => {}
            Err(e) => last = Some(e.to_string()),
        }
    }
    panic!("the outbox did not drain (last error: {last:?})");
}

async fn cloud_count(cloud: &TestCloud, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(&mut cloud.db.conn().await)
        .await
        .unwrap()
        .n
}

#[derive(diesel::QueryableByName)]
struct Visit {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    patient: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    prescription: Uuid,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_works_with_the_cloud_down_and_its_writes_reach_the_cloud_and_the_lis_exactly_once() {
    let (cloud, summary) = TestCloud::seeded(60, 1).await;
    let lab = summary.proximity_labs().next().unwrap().clone();
    cloud
        .db
        .conn()
        .await
        .batch_execute(&rules_sql_with(1, ("06:00", "21:00")))
        .await
        .unwrap();
    let (gw, upstreams) = cloud.bootstrapped_gateway(&lab.code).await;
    let admin = gw.admin_login_as(&lab.logins.lab_admin, "labedge-admin").await;
    let device = gw.enroll_with(&admin, None).await;
    let nurse = gw.login(&device, lab.logins.nurse.as_deref().unwrap(), "1234").await;
    let nurse = nurse.access_token.expose_secret().to_owned();
    let relay = Relay::new(gw.state.clone(), upstreams.clone());
    // Two slots of tomorrow that the seeded appointments left free.
    let tomorrow = edge_data::local_today(&gw).await + Duration::days(1);
    let free: Vec<OffsetDateTime> = slots(&gw.app, &nurse, tomorrow, "lab")
        .await
        .items
        .iter()
        .filter(|s| s.free == 1)
        .map(|s| s.start)
        .collect();
    let (eight, eight_fifteen) = (free[0], free[1]);
    cloud.stop().await;

    // The cloud is down: a walk-in, their booking moved once, a collection and its void.
    let mut body = walk_in("Ferreira", "Ana", "1988-08-08");
    let mut response = post(&gw.app, routes::PATIENTS, &nurse, &body).await;
    if response.status.as_u16() == 409 {
        let ids: Vec<Uuid> = response.problem().candidates.iter().map(|c| c.id).collect();
        body["confirmed_distinct_from"] = json!(ids);
        response = post(&gw.app, routes::PATIENTS, &nurse, &body).await;
    }
    let walk_in: Patient = response.expect(201).json();
    let booked: Appointment = post(
        &gw.app,
        routes::APPOINTMENTS,
        &nurse,
        &booking(walk_in.id, "lab", eight),
    )
    .await
    .expect(201)
    .json();
    let path = with_id(routes::APPOINTMENT_RESCHEDULE, booked.id);
    let to = json!({"scheduled_at": rfc3339(eight_fifteen)});
    send(&gw.app, TestRequest::post().uri(&path).set_json(&to), &nurse, Some(1))
        .await
        .expect(200);
    let visit: Visit = diesel::sql_query(
        "SELECT patient_id AS patient, prescription_id AS prescription FROM appointments \
         WHERE status = 'scheduled' AND prescription_id IS NOT NULL ORDER BY scheduled_at LIMIT 1",
    )
    .get_result(&mut gw.db.conn().await)
    .await
    .unwrap();
    let collection = edge_data::collection(visit.patient, visit.prescription, &["EDTA"]);
    post(
        &gw.app,
        routes::COLLECTIONS,
        &nurse,
        &serde_json::to_value(&collection).unwrap(),
    )
    .await
    .expect(201);
    let void = with_id(routes::COLLECTION_VOID, collection.id);
    post(
        &gw.app,
        &void,
        &nurse,
        &json!({"reason": "labelled for the wrong patient"}),
    )
    .await
    .expect(200);
    assert!(relay.pass().await.is_err(), "the cloud is down");
    let queued = outbox_kinds(&gw).await;
    assert_eq!(
        queued,
        [
            "patient.create",
            "appointment.create",
            "appointment.reschedule",
            "collection.create",
            "collection.void"
        ]
    );

    // The cloud comes back; before the gateway catches up, the LIS books 08:15 for another patient
    // through FHIR: the slot (one place) ends up taken on both sides.
    cloud.restart().await;
    let (lis, _) = cloud.integration_client("lis", "system/*.*").await;
    let other_patient = visit.patient;
    let appointment = json!({
        "resourceType": "Appointment", "status": "booked",
        "appointmentType": {"coding": [{"system": VISIT, "code": "lab"}]},
        "start": rfc3339(eight_fifteen), "minutesDuration": 15,
        "participant": [
            {"actor": {"reference": format!("Patient/{other_patient}")}, "status": "accepted"},
            {"actor": {"reference": format!("Location/{}", lab.id)}, "status": "accepted"}
        ]
    });
    let created = lis
        .post(format!("{}/fhir/R4/Appointment", cloud.url()))
        .header("content-type", "application/fhir+json")
        .body(appointment.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201, "{}", created.text().await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await; // the circuit's first rest
    drain(&relay).await;

    // Exactly once in the cloud, the walk-in in the lab's scope, the overbooking in the conflict queue.
    let applied = format!(
        "SELECT count(*) AS n FROM applied_mutations WHERE lab_id = '{}'",
        lab.id
    );
    assert_eq!(cloud_count(&cloud, &applied).await, 5);
    let patient_sql = format!(
        "SELECT count(*) AS n FROM patients WHERE id = '{}' AND registered_lab_id = '{}' \
         AND identity_status = 'provisional' AND identity_method = 'SM'",
        walk_in.id, lab.id
    );
    assert_eq!(cloud_count(&cloud, &patient_sql).await, 1);
    let moved = format!(
        "SELECT count(*) AS n FROM appointments WHERE id = '{}' AND version = 2 AND scheduled_at = '{}'",
        booked.id,
        rfc3339(eight_fifteen)
    );
    assert_eq!(cloud_count(&cloud, &moved).await, 1);
    let voided = format!(
        "SELECT count(*) AS n FROM collection_voids WHERE collection_id = '{}'",
        collection.id
    );
    assert_eq!(cloud_count(&cloud, &voided).await, 1);
    let conflicts: Vec<labedge_edge_gateway::conflicts::ConflictView> = gw
        .console(&admin, TestRequest::get().uri("/admin/v1/conflicts"))
        .await
        .expect(200)
        .json();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].entity_key, format!("appointment:{}", booked.id));

    // Acknowledgements lost on the way: everything is sent again and nothing is doubled.
    gw.db
        .conn()
        .await
        .batch_execute("UPDATE outbox SET sent_at = NULL, outcome = NULL")
        .await
        .unwrap();
    drain(&relay).await;
    assert_eq!(cloud_count(&cloud, &applied).await, 5);
    assert_eq!(cloud_count(&cloud, &voided).await, 1);
    let walk_ins = format!(
        "SELECT count(*) AS n FROM patients WHERE registered_lab_id = '{}'",
        lab.id
    );
    assert_eq!(cloud_count(&cloud, &walk_ins).await, 1);

    // The LIS sees the walk-in, the booking and the voided Specimen.
    let get = |path: String| {
        let lis = lis.clone();
        let url = format!("{}/fhir/R4{path}", cloud.url());
        async move {
            let response = lis.get(url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let patient = get(format!("/Patient/{}", walk_in.id)).await;
    assert_eq!(patient["name"][0]["family"], "Ferreira");
    let specimen = get(format!("/Specimen/{}-1", collection.id)).await;
    assert_eq!(specimen["status"], "entered-in-error");
    assert_eq!(specimen["meta"]["versionId"], "2");
    get(format!("/Appointment/{}", booked.id)).await;

    // The feed brings the lab's own writes back without removing the walk-in from the gateway.
    let status = std::sync::RwLock::new(labedge_edge_gateway::sync::SyncStatus::default());
    labedge_edge_gateway::sync::pull(&gw.state, &upstreams, &status)
        .await
        .unwrap();
    let kept = format!("SELECT count(*) AS n FROM patients WHERE id = '{}'", walk_in.id);
    assert_eq!(count(&gw, &kept).await, 1);
    gw.app
        .get_authed(&with_id(routes::PATIENT, walk_in.id), &nurse)
        .await
        .expect(200);

    // The secretary cancels both 08:15 visits in the cloud: the next sync page drops the slot list
    // the desk holds in memory, so the place shows free in the very next answer.
    let free_at = async |at: OffsetDateTime| {
        let list = slots(&gw.app, &nurse, tomorrow, "lab").await;
        list.items.iter().find(|s| s.start == at).map(|s| s.free)
    };
    assert_eq!(free_at(eight_fifteen).await, Some(0));
    cloud
        .db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE appointments SET status = 'cancelled', version = version + 1 \
             WHERE lab_id = '{}' AND scheduled_at = '{}'",
            lab.id,
            rfc3339(eight_fifteen)
        ))
        .await
        .unwrap();
    labedge_edge_gateway::sync::pull(&gw.state, &upstreams, &status)
        .await
        .unwrap();
    assert_eq!(free_at(eight_fifteen).await, Some(1));
}

async fn fhir(
    lis: &reqwest::Client,
    cloud: &TestCloud,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = lis.request(method, format!("{}/fhir/R4{path}", cloud.url()));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/fhir+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_in_merged_by_the_lis_leads_to_the_survivor_and_its_collections_follow() {
    let (cloud, summary) = TestCloud::seeded(40, 1).await;
    let lab = summary.proximity_labs().next().unwrap().clone();
    let (gw, upstreams) = cloud.bootstrapped_gateway(&lab.code).await;
    let admin = gw.admin_login_as(&lab.logins.lab_admin, "labedge-admin").await;
    let device = gw.enroll_with(&admin, None).await;
    let nurse = gw.login(&device, lab.logins.nurse.as_deref().unwrap(), "1234").await;
    let nurse = nurse.access_token.expose_secret().to_owned();
    let relay = Relay::new(gw.state.clone(), upstreams.clone());
    let status = std::sync::RwLock::new(labedge_edge_gateway::sync::SyncStatus::default());
    let pull = || labedge_edge_gateway::sync::pull(&gw.state, &upstreams, &status);
    let (lis, _) = cloud.integration_client("lis", "system/*.*").await;

    // A walk-in registered at the desk, relayed; the LIS then prescribes for them.
    let mut body = walk_in("Ferreira", "Ana", "1988-08-08");
    body["confirmed_distinct_from"] = json!([]);
    let mut response = post(&gw.app, routes::PATIENTS, &nurse, &body).await;
    if response.status.as_u16() == 409 {
        body["confirmed_distinct_from"] = json!(response.problem().candidates.iter().map(|c| c.id).collect::<Vec<_>>());
        response = post(&gw.app, routes::PATIENTS, &nurse, &body).await;
    }
    let walk_in: Patient = response.expect(201).json();
    drain(&relay).await;
    #[derive(diesel::QueryableByName)]
    struct Code {
        #[diesel(sql_type = Text)]
        code: String,
    }
    let exam: Code =
        diesel::sql_query("SELECT code FROM exam_catalog WHERE active AND tube_type = 'EDTA' ORDER BY code LIMIT 1")
            .get_result(&mut cloud.db.conn().await)
            .await
            .unwrap();
    let request = json!({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": format!("Patient/{}", walk_in.id)},
        "requester": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "10001234567"}, "display": "Dr Claire Petit"},
        "performer": [{"reference": format!("Organization/{}", lab.id)}],
        "orderDetail": [{"coding": [{"system": "https://labedge.labanalyse.fr/fhir/CodeSystem/exam", "code": exam.code}]}],
        "authoredOn": rfc3339(OffsetDateTime::now_utc())[..10],
    });
    let (created, answer) = fhir(&lis, &cloud, reqwest::Method::POST, "/ServiceRequest", Some(&request)).await;
    assert_eq!(created, 201, "{answer}");
    let prescription = Uuid::parse_str(answer["id"].as_str().unwrap()).unwrap();
    pull().await.unwrap();

    // Two collections for the walk-in: one relayed before the merge, one still queued when it comes.
    let first = edge_data::collection(walk_in.id, prescription, &["EDTA"]);
    post(
        &gw.app,
        routes::COLLECTIONS,
        &nurse,
        &serde_json::to_value(&first).unwrap(),
    )
    .await
    .expect(201);
    drain(&relay).await;
    let second = edge_data::collection(walk_in.id, prescription, &["EDTA"]);
    post(
        &gw.app,
        routes::COLLECTIONS,
        &nurse,
        &serde_json::to_value(&second).unwrap(),
    )
    .await
    .expect(201);

    // The LIS finds the walk-in is a known patient and merges it into them.
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let known: Id = diesel::sql_query(format!(
        "SELECT id FROM patients WHERE id <> '{}' AND merged_into IS NULL ORDER BY id LIMIT 1",
        walk_in.id
    ))
    .get_result(&mut gw.db.conn().await)
    .await
    .unwrap();
    let path = format!("/Patient/{}", walk_in.id);
    let (_, mut resource) = fhir(&lis, &cloud, reqwest::Method::GET, &path, None).await;
    resource.as_object_mut().unwrap().remove("meta");
    // Refused: a merge into itself, into nobody, an inactive patient without a survivor.
    for link in [
        json!([{"other": {"reference": path[1..]}, "type": "replaced-by"}]),
        json!([{"other": {"reference": format!("Patient/{}", Uuid::now_v7())}, "type": "replaced-by"}]),
        json!([{"other": {"reference": format!("Patient/{}", known.id)}, "type": "seealso"}]),
    ] {
        let mut bad = resource.clone();
        bad["active"] = json!(false);
        bad["link"] = link.clone();
        let (status, outcome) = fhir(&lis, &cloud, reqwest::Method::PUT, &path, Some(&bad)).await;
        assert!(matches!(status, 400 | 404 | 422), "{link}: {status} {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{link}");
    }
    let unmerged = format!(
        "SELECT count(*) AS n FROM patients WHERE id = '{}' AND merged_into IS NULL",
        walk_in.id
    );
    assert_eq!(cloud_count(&cloud, &unmerged).await, 1, "refused merges change nothing");
    let mut inactive = resource.clone();
    inactive["active"] = json!(false);
    let (status, _) = fhir(&lis, &cloud, reqwest::Method::PUT, &path, Some(&inactive)).await;
    assert!(
        matches!(status, 400 | 422),
        "an inactive patient names its survivor: {status}"
    );
    let mut merged = resource.clone();
    merged["active"] = json!(false);
    merged["link"] = json!([{"other": {"reference": format!("Patient/{}", known.id)}, "type": "replaced-by"}]);
    let (status, outcome) = fhir(&lis, &cloud, reqwest::Method::PUT, &path, Some(&merged)).await;
    assert_eq!(status, 200, "{outcome}");
    // The merge is not undone.
    let (status, _) = fhir(&lis, &cloud, reqwest::Method::PUT, &path, Some(&resource)).await;
    assert_eq!(status, 409);

    // In the cloud the first collection and the prescription follow at once; the queued collection,
    // relayed now under the old id, is applied to the survivor.
    drain(&relay).await;
    let moved = format!(
        "SELECT count(*) AS n FROM collections WHERE id IN ('{}', '{}') AND patient_id = '{}'",
        first.id, second.id, known.id
    );
    assert_eq!(cloud_count(&cloud, &moved).await, 2);
    let rx = format!(
        "SELECT count(*) AS n FROM prescriptions WHERE id = '{prescription}' AND patient_id = '{}'",
        known.id
    );
    assert_eq!(cloud_count(&cloud, &rx).await, 1);

    // At the gateway, once the feed brings the merge: reads of the old id lead to the survivor, the
    // search no longer lists the walk-in, the collections follow.
    pull().await.unwrap();
    let read: Patient = gw
        .app
        .get_authed(&with_id(routes::PATIENT, walk_in.id), &nurse)
        .await
        .expect(200)
        .json();
    assert_eq!(read.id, known.id);
    let page: Value = gw
        .app
        .get_authed(&format!("{}?q=1988-08-08", routes::PATIENTS), &nurse)
        .await
        .expect(200)
        .json();
    assert!(!page.to_string().contains(&walk_in.id.to_string()), "{page}");
    let local = format!(
        "SELECT count(*) AS n FROM collections WHERE patient_id = '{}' AND id IN ('{}', '{}')",
        known.id, first.id, second.id
    );
    assert_eq!(count(&gw, &local).await, 2);
    let (_, shown) = fhir(&lis, &cloud, reqwest::Method::GET, &path, None).await;
    assert_eq!(shown["active"], false);
    assert_eq!(shown["link"][0]["other"]["reference"], format!("Patient/{}", known.id));
}
