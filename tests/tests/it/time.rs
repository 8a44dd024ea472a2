//! Clocks (issue 9, item 3): a tablet whose clock is a day off, a gateway whose clock is five minutes
//! off the cloud's, and the documented rule for future-dated collections (`docs/api-design.md`,
//! "Time"): `collected_at` more than five minutes ahead of the gateway's clock is refused with 422
//! `validation_failed` at `/collected_at`; a past date is accepted as it is (a tablet offline for a
//! day pushes collections made a day ago) down to two days before its prescription was issued, and
//! refused before that (issue 12: a collection dated 1900-01-01 was accepted). Tokens are issued and checked on the gateway's clock only.

use actix_web::test::TestRequest;
use diesel_async::RunQueryDsl;
use labedge_protocol::relay::{AckOutcome, MutationAcks, RelayedMutation};
use labedge_tests::app::TestResponse;
use labedge_tests::cloud::TestCloud;
use labedge_tests::edge_data::{self, patient, prescription};
use labedge_tests::gateway::{TestGateway, forge_token, token_part};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes;
use time::macros::date;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

async fn post(gw: &TestGateway, token: &str, body: &impl serde::Serialize) -> TestResponse {
    gw.app
        .send(
            TestRequest::post()
                .uri(routes::COLLECTIONS)
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("idempotency-key", Uuid::now_v7().to_string()))
                .set_json(body),
        )
        .await
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    collected_at: OffsetDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    recorded_at: OffsetDateTime,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_clock_a_day_off_dates_collections_by_the_documented_rule() {
    let gw = TestGateway::start().await;
    edge_data::insert_catalog(&gw).await;
    let today = edge_data::local_today(&gw).await;
    let p = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&p)).await;
    // Issued ten days ago: a collection pushed a week late is still after it.
    let rx = prescription(gw.lab_id, p.id, today - Duration::days(10), &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&rx)).await;
    let (_, tokens) = gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    let issued = (today - Duration::days(10)).midnight().assume_utc();
    let body = |offset: Duration| {
        let mut c = edge_data::collection(p.id, rx.prescription.id, &["EDTA"]);
        c.collected_at = OffsetDateTime::now_utc() + offset;
        c
    };

    // Ahead of the gateway's clock: within the five-minute tolerance, accepted; beyond it, refused.
    for (case, offset, expected) in [
        ("tablet 24 h ahead", Duration::hours(24), 422),
        ("tablet 1 h ahead", Duration::hours(1), 422),
        ("tablet 6 min ahead", Duration::minutes(6), 422),
        ("tablet 4 min ahead", Duration::minutes(4), 201),
        ("tablet on time", Duration::ZERO, 201),
        ("tablet 24 h behind", -Duration::hours(24), 201),
        ("tablet 7 days behind (pushed late)", -Duration::days(7), 201),
        // Before the prescription: within two days of its issue date (a tablet clock a day off, any
        // time zone), accepted; beyond, refused.
        (
            "a day before the prescription",
            issued - Duration::days(1) - OffsetDateTime::now_utc(),
            201,
        ),
        (
            "three days before the prescription",
            issued - Duration::days(3) - OffsetDateTime::now_utc(),
            422,
        ),
        (
            "dated 1900-01-01",
            date!(1900 - 01 - 01).midnight().assume_utc() - OffsetDateTime::now_utc(),
            422,
        ),
    ] {
        let sent = body(offset);
        let response = post(&gw, &token, &sent).await;
        assert_eq!(response.status.as_u16(), expected, "{case}: {}", response.text());
        if expected == 422 {
            let problem = response.problem();
            assert_eq!(problem.code, ErrorCode::ValidationFailed, "{case}");
            assert_eq!(problem.errors.len(), 1, "{case}");
            assert_eq!(problem.errors[0].pointer, "/collected_at", "{case}");
            let sent_text = sent
                .collected_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            assert!(!response.text().contains(&sent_text[..16]), "{case}: no value echoed");
        } else {
            // Stored as the tablet said, next to the gateway's own recording time.
            let stored: Stored = diesel::sql_query("SELECT collected_at, recorded_at FROM collections WHERE id = $1")
                .bind::<diesel::sql_types::Uuid, _>(sent.id)
                .get_result(&mut gw.db.conn().await)
                .await
                .unwrap();
            assert!(
                (stored.collected_at - sent.collected_at).abs() < Duration::milliseconds(1),
                "{case}"
            );
            assert!(
                (stored.recorded_at - OffsetDateTime::now_utc()).abs() < Duration::seconds(30),
                "{case}: recorded_at is the gateway's clock"
            );
        }
        eprintln!("time: collected_at {case} ({offset}) -> {}", response.status.as_u16());
    }
    // The rule compares instants: the same moment written in a +14:00 or -12:00 offset is fine.
    for hours in [14, -12] {
        let mut c = body(Duration::ZERO);
        c.collected_at = c.collected_at.to_offset(UtcOffset::from_hms(hours, 0, 0).unwrap());
        post(&gw, &token, &c).await.expect(201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_and_checked_on_the_gateways_clock_whatever_the_tablets_says() {
    let gw = TestGateway::start().await;
    let (_, tokens) = gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    // The token carries the gateway's times; the tablet is told a duration, not an instant.
    let claims = token_part(&token, 1);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!((iat - now).abs() <= 5, "iat {iat} is the gateway's now {now}");
    assert_eq!(
        exp - iat,
        i64::from(tokens.expires_in),
        "expires_in is relative: exp - iat"
    );
    // A tablet whose clock is a day ahead or behind (its Date header says so) is not affected.
    for (case, offset) in [
        ("tablet clock +24 h", Duration::hours(24)),
        ("tablet clock -24 h", -Duration::hours(24)),
    ] {
        let date = httpdate(OffsetDateTime::now_utc() + offset);
        let response = gw
            .app
            .send(
                TestRequest::get()
                    .uri(routes::ME)
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .insert_header(("date", date)),
            )
            .await;
        assert_eq!(response.status.as_u16(), 200, "{case}");
        eprintln!("time: token with {case} -> 200");
    }
    // A token the tablet would think valid on a clock a day behind, but that expired on the
    // gateway's clock, is refused: forged with the gateway's own key and exp 24 h ago.
    let header = token_part(&token, 0);
    let secret: Vec<u8> = gw.signing_secret(header["kid"].as_str().unwrap()).await;
    let day = 24 * 3600;
    let mut stale = claims.clone();
    stale["iat"] = (iat - day).into();
    stale["nbf"] = (iat - day).into();
    stale["exp"] = (exp - day).into();
    let mut early = claims.clone();
    early["iat"] = (iat + day).into();
    early["nbf"] = (iat + day).into();
    early["exp"] = (exp + day).into();
    for (case, forged) in [
        ("issued on a clock 24 h behind", forge_token(&header, &stale, &secret)),
        ("issued on a clock 24 h ahead", forge_token(&header, &early, &secret)),
    ] {
        let response = gw.app.get_authed(routes::ME, &forged).await;
        assert_eq!(response.status.as_u16(), 401, "{case}");
        assert_eq!(response.problem().code, ErrorCode::InvalidToken, "{case}");
        eprintln!("time: token {case} -> 401 invalid_token");
    }
    // The control: the same forging with the real times is accepted.
    gw.app
        .get_authed(routes::ME, &forge_token(&header, &claims, &secret))
        .await
        .expect(200);
}

fn httpdate(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(UtcOffset::UTC).format(&format).unwrap()
}

#[derive(diesel::QueryableByName)]
struct Visit {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    appointment: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    patient: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    prescription: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    staff: Uuid,
}

#[derive(diesel::QueryableByName)]
struct CloudStored {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    collected_at: OffsetDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    recorded_at: OffsetDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    received_at: OffsetDateTime,
}

/// The cloud takes a gateway's times as they are: `collected_at` (tablet clock) and `recorded_at`
/// (gateway clock) are stored verbatim, `received_at` is the cloud's own clock; a gateway five
/// minutes ahead or behind is neither refused nor "corrected".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_keeps_relayed_times_as_sent_with_the_gateway_five_minutes_off() {
    let (cloud, summary) = TestCloud::seeded(60, 1).await;
    let code = summary.proximity_labs().next().unwrap().code.clone();
    let visits: Vec<Visit> = diesel::sql_query(format!(
        "SELECT a.id AS appointment, a.patient_id AS patient, a.prescription_id AS prescription, s.id AS staff \
         FROM appointments a JOIN labs l ON l.id = a.lab_id JOIN staff s ON s.lab_id = l.id AND s.role = 'nurse' \
         WHERE l.code = '{code}' AND a.prescription_id IS NOT NULL ORDER BY a.id LIMIT 4"
    ))
    .load(&mut cloud.db.conn().await)
    .await
    .unwrap();
    assert!(visits.len() >= 2);
    let app = cloud.gateway_app(&code).await;

    for (case, skew, visit) in [
        ("gateway 5 min ahead", Duration::minutes(5), &visits[0]),
        ("gateway 5 min behind", -Duration::minutes(5), &visits[1]),
    ] {
        let gateway_now = OffsetDateTime::now_utc() + skew;
        // Collected "just now" on a tablet in step with its gateway.
        let collected_at = gateway_now - Duration::seconds(30);
        let collection_id = Uuid::now_v7();
        let mutation = RelayedMutation {
            mutation_id: Uuid::now_v7(),
            recorded_at: gateway_now,
            staff_id: Some(visit.staff),
            device_id: Some(Uuid::now_v7()),
            op: serde_json::from_value(serde_json::json!({
                "kind": "collection.create",
                "collection": {
                    "id": collection_id, "patient_id": visit.patient, "appointment_id": visit.appointment,
                    "prescription_id": visit.prescription,
                    "collected_at": collected_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
                    "identity_checked": true, "identity_check_method": "health_card",
                    "tubes": [{"barcode": edge_data::barcode(), "tube_type": "EDTA"}]
                }
            }))
            .unwrap(),
        };
        let acks: MutationAcks = app
            .send(
                TestRequest::post()
                    .uri(&format!("/v1/labs/{code}/mutations"))
                    .set_json(serde_json::json!({ "mutations": [mutation] })),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(
            acks.results[0].outcome,
            AckOutcome::Applied,
            "{case}: {:?}",
            acks.results[0]
        );
        let stored: CloudStored =
            diesel::sql_query("SELECT collected_at, recorded_at, received_at FROM collections WHERE id = $1")
                .bind::<diesel::sql_types::Uuid, _>(collection_id)
                .get_result(&mut cloud.db.conn().await)
                .await
                .unwrap();
        assert!(
            (stored.collected_at - collected_at).abs() < Duration::milliseconds(1),
            "{case}"
        );
        assert!(
            (stored.recorded_at - gateway_now).abs() < Duration::milliseconds(1),
            "{case}"
        );
        let received_vs_cloud = (stored.received_at - OffsetDateTime::now_utc()).abs();
        assert!(
            received_vs_cloud < Duration::seconds(30),
            "{case}: received_at is the cloud's clock"
        );
        eprintln!(
            "time: {case}: applied; recorded_at - received_at = {:.0} s (kept as sent)",
            (stored.recorded_at - stored.received_at).as_seconds_f64()
        );
    }
}
