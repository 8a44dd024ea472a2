//! What the gateway logs, as the SIEM receives it: JSON lines with stable fields, the security events
//! tagged for routing, and no personal data or secret, even at `debug` level. The test captures the
//! lines of the very layer the services install (`labedge_service::telemetry::layer`, with
//! the production filter built from `log.filter = "debug"`), on the test's thread, while tablets
//! search, read, write and fail at the in-process gateway.

use std::io;
use std::sync::{Arc, Mutex, Once};

use actix_web::http::Method;
use actix_web::test::TestRequest;
use labedge_service::config::{LogConfig, LogFormat};
use labedge_service::telemetry::{self, ServiceFields};
use labedge_tests::app::TestResponse;
use labedge_tests::edge_data::{self, collection, patient, prescription, qualified};
use labedge_tests::gateway::{ADMIN_PASSWORD, NURSE, TABLET_PEER, TestGateway};
use mobile_contracts::routes::{self, with_id};
use mobile_contracts::{EnrollRequest, EnrollResponse, RefreshRequest, Secret, TokenResponse};
use serde_json::{Value, json};
use time::macros::date;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use uuid::Uuid;

const FAMILY: &str = "Vaillancourt";
const GIVEN: &str = "Ombeline";
const WRONG_PIN: &str = "80417263";

/// The lines written by the subscriber, shared with the writer it makes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    /// Every line, parsed: each must be one JSON object.
    fn lines(&self) -> Vec<(String, Value)> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).expect("UTF-8 logs");
        text.lines()
            .map(|line| {
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                (line.to_owned(), value)
            })
            .collect()
    }
}

/// Captures what this thread logs, as a gateway of lab `TEST-LAB` configured with `log.filter =
/// "debug"` would write it. The `log` crate's records (tokio-postgres) are forwarded as `init` does.
fn capture() -> (Buffer, tracing::subscriber::DefaultGuard) {
    static LOG_BRIDGE: Once = Once::new();
    LOG_BRIDGE.call_once(|| {
        let _ = tracing_log::LogTracer::init();
    });
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let config = LogConfig {
        format: LogFormat::Json,
        filter: "debug".into(),
    };
    let fields = ServiceFields {
        service: "edge-gateway",
        lab: Some("TEST-LAB".into()),
    };
    let layer =
        telemetry::layer(fields, LogFormat::Json, move || writer.clone()).with_filter(telemetry::filter(&config));
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (buffer, guard)
}

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

fn bearer(request: TestRequest, token: &str) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {token}")))
}

/// Whether `needle` appears in `line` as a word of its own (not inside a longer run of letters and
/// digits: a four-digit PIN may well appear inside a UUID or a duration).
fn contains_word(line: &str, needle: &str) -> bool {
    line.match_indices(needle).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + needle.len()..].chars().next();
        let joined = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        !joined(before) && !joined(after)
    })
}

/// A line's value of a field as text (numbers included).
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    line.get(name).and_then(Value::as_str)
}

#[tokio::test(flavor = "current_thread")]
async fn gateway_logs_carry_security_events_and_no_personal_data_or_secret() {
    let (buffer, _guard) = capture();
    let gw = TestGateway::start().await;
    edge_data::insert_catalog(&gw).await;
    let today = edge_data::local_today(&gw).await;
    let person = qualified(patient(FAMILY, GIVEN, date!(1984 - 06 - 30)), 417);
    let nir = person.nir.clone().unwrap();
    edge_data::upsert_patients(&gw, std::slice::from_ref(&person)).await;
    let rx = prescription(gw.lab_id, person.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&rx)).await;

    // The lab admin enrolls a tablet.
    let admin = gw.admin_login().await;
    let code = gw.enrollment_code(&admin).await;
    let enrolled: EnrollResponse = gw
        .app
        .json(
            Method::POST,
            routes::ENROLL,
            &EnrollRequest {
                code: code.clone(),
                label: "Tablette prélèvements".into(),
                app_version: Some("1.0.0".into()),
                csr_pem: None,
            },
        )
        .await
        .expect(201)
        .json();
    let device = labedge_tests::gateway::Device {
        id: enrolled.device_id,
        secret: enrolled.device_secret.expose_secret().to_owned(),
        enrolled: enrolled.clone(),
    };

    // A wrong PIN, a login typed as the patient's name, then the right PIN.
    gw.try_login(&device, NURSE.0, WRONG_PIN).await.expect(401);
    gw.try_login(&device, &FAMILY.to_lowercase(), NURSE.1).await.expect(401);
    let tokens: TokenResponse = gw.login(&device, NURSE.0, NURSE.1).await;
    let access = tokens.access_token.expose_secret().to_owned();

    // Searches by name, NIR and birth date, and reads.
    for q in [&FAMILY[..5], FAMILY, &nir, "1984-06-30", "30/06/1984"] {
        let page: Value = gw
            .app
            .get_authed(&format!("{}?q={}", routes::PATIENTS, enc(q)), &access)
            .await
            .expect(200)
            .json();
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(1),
            "search {q:?} finds the patient"
        );
    }
    let too_long = FAMILY.repeat(6);
    gw.app
        .get_authed(&format!("{}?q={}", routes::PATIENTS, enc(&too_long)), &access)
        .await
        .expect(422);
    gw.app
        .get_authed(&with_id(routes::PATIENT, person.id), &access)
        .await
        .expect(200);
    gw.app
        .get_authed(&with_id(routes::PATIENT_PRESCRIPTIONS, person.id), &access)
        .await
        .expect(200);
    gw.app
        .get_authed(&with_id(routes::PRESCRIPTION, rx.prescription.id), &access)
        .await
        .expect(200);

    // A collection, then bodies refused with a name or a NIR in them.
    let body = collection(person.id, rx.prescription.id, &["EDTA"]);
    let post = |body: Value| {
        bearer(TestRequest::post().uri(routes::COLLECTIONS), &access)
            .insert_header(("idempotency-key", Uuid::now_v7().to_string()))
            .set_json(body)
    };
    gw.app
        .send(post(serde_json::to_value(&body).unwrap()))
        .await
        .expect(201);
    let mut unknown = serde_json::to_value(&body).unwrap();
    unknown["id"] = json!(Uuid::now_v7());
    unknown["patient_name"] = json!(format!("{FAMILY} {GIVEN}"));
    unknown["nir"] = json!(nir);
    let response: TestResponse = gw.app.send(post(unknown)).await.expect(422);
    assert!(!response.text().contains(FAMILY), "{}", response.text());
    let mut wrong_type = serde_json::to_value(&body).unwrap();
    wrong_type["id"] = json!(Uuid::now_v7());
    wrong_type["tubes"] = json!(format!("{FAMILY} {nir}"));
    gw.app.send(post(wrong_type)).await.expect(422);
    let mut long_comments = serde_json::to_value(&body).unwrap();
    long_comments["id"] = json!(Uuid::now_v7());
    long_comments["comments"] = json!(format!("{FAMILY} {GIVEN} {nir} ").repeat(40));
    gw.app.send(post(long_comments)).await.expect(422);
    gw.app
        .send(
            bearer(TestRequest::post().uri(routes::COLLECTIONS), &access)
                .insert_header(("idempotency-key", Uuid::now_v7().to_string()))
                .insert_header(("content-type", "application/json"))
                .set_payload(format!("{{\"comments\": \"{FAMILY} {nir}")),
        )
        .await
        .expect(400);

    // A forged token, a refresh, a logout.
    gw.app.get_authed(routes::ME, "not.a.token").await.expect(401);
    let refreshed: TokenResponse = gw
        .app
        .json(
            Method::POST,
            routes::REFRESH,
            &RefreshRequest {
                device_id: device.id,
                device_secret: Secret::new(device.secret.clone()),
                refresh_token: tokens.refresh_token.clone(),
            },
        )
        .await
        .expect(200)
        .json();

    let lines = buffer.lines();
    std::fs::write(
        "/tmp/labedge-logs-dump.txt",
        lines.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join("\n"),
    )
    .unwrap(); // DUMP
    assert!(lines.len() > 20, "the capture works: {} lines", lines.len());
    assert!(
        lines.iter().any(|(_, l)| field(l, "level") == Some("DEBUG")),
        "debug lines are emitted"
    );

    // Every line has the stable fields.
    for (text, line) in &lines {
        for name in ["timestamp", "level", "service", "target"] {
            assert!(line.get(name).is_some(), "`{name}` missing: {text}");
        }
        assert_eq!(field(line, "service"), Some("edge-gateway"), "{text}");
        assert_eq!(field(line, "lab"), Some("TEST-LAB"), "{text}");
        assert!(
            time::OffsetDateTime::parse(
                field(line, "timestamp").unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "{text}"
        );
    }

    // Nothing personal, nothing secret.
    let forbidden: Vec<(&str, String)> = vec![
        ("NIR", nir.clone()),
        ("NIR without its key", nir[..13].to_owned()),
        ("family name", FAMILY.to_owned()),
        ("search prefix", FAMILY[..5].to_owned()),
        ("given name", GIVEN.to_owned()),
        ("birth date", "1984-06-30".into()),
        ("birth date", "30/06/1984".into()),
        ("birth date", "30%2F06%2F1984".into()),
        ("phone", "612345678".into()),
        ("address", "rue des Lilas".into()),
        ("prescriber", "Moreau".into()),
        ("staff name or login", "dupont".into()),
        ("wrong PIN", WRONG_PIN.into()),
        ("device secret", device.secret.clone()),
        ("access token", access.clone()),
        ("access token signature", access.rsplit('.').next().unwrap().to_owned()),
        ("refresh token", tokens.refresh_token.expose_secret().to_owned()),
        ("new access token", refreshed.access_token.expose_secret().to_owned()),
        ("new refresh token", refreshed.refresh_token.expose_secret().to_owned()),
        ("enrollment code", code.clone()),
        ("admin password", ADMIN_PASSWORD.into()),
        ("admin session", admin.cookie.split_once('=').unwrap().1.to_owned()),
        ("CSRF token", admin.csrf.clone()),
    ];
    let mut leaks = Vec::new();
    for (text, _) in &lines {
        let lower = text.to_lowercase();
        for (what, value) in &forbidden {
            if lower.contains(&value.to_lowercase()) {
                leaks.push(format!("{what}: {text}"));
            }
        }
        // The right PIN is four digits: only as a word of its own.
        if contains_word(text, NURSE.1) {
            leaks.push(format!("PIN: {text}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "personal data or secrets in the logs:\n{}",
        leaks.join("\n")
    );

    // The requests are logged by route pattern, with their duration.
    assert!(
        lines
            .iter()
            .any(|(_, l)| field(l, "http.route") == Some("/v1/patients/{id}")
                && field(l, "http.method") == Some("GET")
                && l["http.status"] == 200
                && l["duration_ms"].is_number()
                && field(l, "request_id").is_some_and(|id| !id.is_empty())),
        "request lines"
    );

    // The security events, with their `event.*` fields.
    let security: Vec<&Value> = lines
        .iter()
        .map(|(_, l)| l)
        .filter(|l| field(l, "event.kind") == Some("security"))
        .collect();
    let find = |action: &str, outcome: &str| {
        security
            .iter()
            .copied()
            .filter(|l| field(l, "event.action") == Some(action) && field(l, "event.outcome") == Some(outcome))
            .collect::<Vec<&Value>>()
    };
    let failures = find("login", "failure");
    assert_eq!(failures.len(), 2, "two failed logins: {failures:?}");
    let device_id = device.id.to_string();
    let peer_ip = TABLET_PEER.split(':').next().unwrap();
    for event in &failures {
        assert_eq!(field(event, "target"), Some("security"));
        assert_eq!(field(event, "level"), Some("WARN"));
        assert_eq!(field(event, "event.category"), Some("authentication"));
        assert!(field(event, "event.reason").is_some_and(|r| !r.is_empty()), "{event}");
        assert_eq!(field(event, "device.id"), Some(device_id.as_str()), "{event}");
        assert_eq!(field(event, "source.ip"), Some(peer_ip), "{event}");
        assert!(field(event, "request_id").is_some_and(|id| !id.is_empty()), "{event}");
    }
    let success = find("login", "success");
    assert_eq!(success.len(), 1, "{success:?}");
    assert_eq!(
        field(success[0], "staff.id"),
        Some(gw.staff_id(NURSE.0).to_string().as_str())
    );
    assert_eq!(field(find("enroll", "success")[0], "event.category"), Some("iam"));
    assert_eq!(find("admin_login", "success").len(), 1);
    assert_eq!(find("refresh", "success").len(), 1);
    let refused = find("token_refused", "failure");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(field(refused[0], "event.reason").is_some_and(|r| !r.is_empty()));
}

#[test]
fn words_are_told_from_parts_of_longer_runs() {
    assert!(contains_word("pin 1234 typed", "1234"));
    assert!(contains_word("\"1234\"", "1234"));
    assert!(!contains_word("0198a1234b", "1234"));
    assert!(!contains_word("12345", "1234"));
}
