//! The Prometheus metrics of both services, scraped from the real binaries after real traffic: a
//! tablet enrolled, a bad PIN, reads served from PostgreSQL then from Redis, a write relayed to the
//! cloud, the gateway's status report, refused calls to the cloud. The text is parsed as the
//! exposition format; the series the dashboards and alerts use must be there with their labels and
//! values that moved, no label may carry an id, a NIR, a name or a token, and what is exported must
//! be what `docs/metrics.md` says (names, types, labels, label values). A second test keeps the doc
//! and the code's metric names equal.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use labedge_tests::prometheus::{Scrape, documented_label_values, documented_metrics, metric_names_in_code};
use labedge_tests::stack::Stack;
use labedge_tests::tablet;
use labedge_tests::tablet::ReadJson;
use mobile_contracts::routes::{self, with_id};
use uuid::Uuid;

const CENTRAL_TOKEN: &str = "central-it-token-for-the-metrics-test";
const WRONG_PIN: &str = "97531";

#[derive(diesel::QueryableByName)]
struct PatientIdentity {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    nir: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    birth_family_name: String,
}

async fn scrape(stack: &Stack, url: &str) -> (String, Scrape) {
    let text = stack.metrics_text(url).await;
    let parsed =
        Scrape::parse(&text).unwrap_or_else(|e| panic!("{url}/metrics is not the exposition format: {e}\n{text}"));
    (text, parsed)
}

/// Scrapes until `done` holds (at most `timeout`); returns the last scrape.
async fn scrape_until(
    stack: &Stack,
    url: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let started = Instant::now();
    loop {
        let (text, parsed) = scrape(stack, url).await;
        if done(&parsed) {
            return parsed;
        }
        assert!(
            started.elapsed() < timeout,
            "{what} never showed in {url}/metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_export_the_documented_series_after_real_traffic() {
    let stack = Stack::builder().central_token(CENTRAL_TOKEN).start().await;
    let (client, gw, api) = (&stack.client, stack.gateway_url.as_str(), stack.api_url.as_str());

    // A tablet is enrolled; a nurse mistypes her PIN once, then signs in.
    let admin = stack.admin_session().await;
    let code: serde_json::Value = client
        .post(format!("{gw}/admin/v1/enrollment-codes"))
        .header("cookie", &admin.0)
        .header("x-csrf-token", &admin.1)
        .read_json()
        .await;
    let enrolled: serde_json::Value = client
        .post(format!("{gw}{}", routes::ENROLL))
        .json(&serde_json::json!({"code": code["code"], "label": "Tablette metrics"}))
        .read_json()
        .await;
    let device_secret = enrolled["device_secret"].as_str().unwrap().to_owned();
    let nurse = stack.lab.logins.nurse.clone().unwrap();
    let login = |pin: &str| {
        client.post(format!("{gw}{}", routes::LOGIN)).json(&serde_json::json!({
            "device_id": enrolled["device_id"], "device_secret": device_secret, "login": nurse, "pin": pin
        }))
    };
    let (_, before) = scrape(&stack, gw).await;
    let bad_pin = [("action", "login"), ("outcome", "failure"), ("reason", "bad_pin")];
    assert_eq!(before.sum("labedge_security_events_total", &bad_pin), 0.0);
    assert_eq!(login(WRONG_PIN).send().await.unwrap().status().as_u16(), 401);
    let tokens: serde_json::Value = login("1234").read_json().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap_or_default().to_owned();

    // A patient read twice: from PostgreSQL (a cache miss), then from Redis (a hit).
    let visits = tablet::visits_at(&stack.edge_url).await;
    let visit = visits[0].clone();
    let patient_path = with_id(routes::PATIENT, visit.patient);
    let read = || client.get(format!("{gw}{patient_path}")).bearer_auth(&token).send();
    assert_eq!(read().await.unwrap().status().as_u16(), 200);
    let (_, after_first) = scrape(&stack, gw).await;
    let hits = |s: &Scrape| s.sum("labedge_cache_hits_total", &[("entry", "patient")]);
    let misses = |s: &Scrape| s.sum("labedge_cache_misses_total", &[("entry", "patient")]);
    assert!(misses(&after_first) >= 1.0, "the first read misses the cache");
    assert_eq!(hits(&after_first), 0.0, "nothing was cached before the first read");
    assert_eq!(read().await.unwrap().status().as_u16(), 200);
    let (_, after_second) = scrape(&stack, gw).await;
    assert_eq!(
        hits(&after_second),
        hits(&after_first) + 1.0,
        "the second read is a cache hit"
    );
    assert_eq!(misses(&after_second), misses(&after_first), "and no new miss");

    // A collection, written at the gateway and relayed to the cloud.
    let (_, key, body) = tablet::collection_for(&visit);
    let written = client
        .post(format!("{gw}{}", routes::COLLECTIONS))
        .bearer_auth(&token)
        .header("idempotency-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        written.status().as_u16(),
        201,
        "{}",
        written.text().await.unwrap_or_default()
    );

    // Refused calls to the cloud: /central without a token, a gateway route without a credential.
    let refused = client.get(format!("{api}/central/v1/gateways")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let refused = client
        .post(format!("{api}/v1/labs/{}/status", stack.lab.code))
        .json(&serde_json::json!({"state": "online", "backlog": 0}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());

    // The gateway: the relay sent the write, the outbox is empty again, the feed is followed.
    let gateway = scrape_until(&stack, gw, Duration::from_secs(30), "the relayed write", |s| {
        s.sum("labedge_relay_mutations_total", &[("outcome", "applied")]) >= 1.0
            && s.value("labedge_outbox_pending", &[]) == Some(0.0)
            && s.sum("labedge_status_reports_total", &[("result", "sent")]) >= 1.0
    })
    .await;
    assert_eq!(
        gateway.sum("labedge_security_events_total", &bad_pin),
        1.0,
        "one bad PIN, counted by its reason"
    );
    assert_eq!(
        gateway.sum(
            "labedge_security_events_total",
            &[("action", "login"), ("outcome", "success")]
        ),
        1.0
    );
    assert!(
        gateway.sum(
            "labedge_security_events_total",
            &[("action", "enroll"), ("outcome", "success")]
        ) >= 1.0
    );
    assert!(gateway.sum("labedge_relay_batches_total", &[("result", "sent")]) >= 1.0);
    assert_eq!(gateway.value("labedge_outbox_oldest_pending_seconds", &[]), Some(0.0));
    assert_eq!(gateway.value("labedge_dead_letters_open", &[]), Some(0.0));
    assert_eq!(
        gateway.value("labedge_upstream_state", &[("state", "online")]),
        Some(1.0)
    );
    assert_eq!(
        gateway.value("labedge_upstream_state", &[("state", "degraded")]),
        Some(0.0)
    );
    assert_eq!(
        gateway.value("labedge_upstream_state", &[("state", "failover")]),
        Some(0.0)
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let last_pull = gateway
        .value("labedge_sync_last_success_timestamp_seconds", &[])
        .expect("last pull");
    assert!(
        now - last_pull < 30.0,
        "the feed was pulled lately ({} s ago)",
        now - last_pull
    );
    assert!(gateway.value("labedge_sync_lag_positions", &[]).is_some());
    assert!(
        gateway
            .value("labedge_sync_bootstrap_seconds", &[])
            .is_some_and(|s| s > 0.0)
    );
    let expiry = gateway
        .value(
            "labedge_certificate_expiry_timestamp_seconds",
            &[("certificate", "upstream_client")],
        )
        .expect("the credential's expiry");
    assert!(
        expiry > now + 30.0 * 86_400.0,
        "the provisioned credential is valid for months"
    );
    assert!(
        gateway
            .value(
                "labedge_certificate_expiry_timestamp_seconds",
                &[("certificate", "server")]
            )
            .is_some_and(|v| v > now)
    );

    // Request durations by route pattern, method and status, never by raw path.
    let patient_reads = gateway
        .value(
            "labedge_http_request_duration_seconds_count",
            &[("route", routes::PATIENT), ("method", "GET"), ("status", "200")],
        )
        .expect("the patient reads, by route pattern");
    assert_eq!(patient_reads, 2.0);
    let inf = gateway
        .value(
            "labedge_http_request_duration_seconds_bucket",
            &[
                ("route", routes::PATIENT),
                ("method", "GET"),
                ("status", "200"),
                ("le", "+Inf"),
            ],
        )
        .expect("the +Inf bucket");
    assert_eq!(inf, patient_reads);
    assert_eq!(
        gateway.value(
            "labedge_http_request_duration_seconds_count",
            &[("route", routes::LOGIN), ("method", "POST"), ("status", "401")]
        ),
        Some(1.0),
        "the refused login has its own status"
    );
    assert!(
        gateway.value(
            "labedge_http_request_duration_seconds_count",
            &[("route", routes::COLLECTIONS), ("method", "POST"), ("status", "201")]
        ) == Some(1.0)
    );

    // The tablet gauges are read from the database every minute.
    let gateway = scrape_until(
        &stack,
        gw,
        Duration::from_secs(75),
        "the enrolled and active tablet",
        |s| {
            s.value("labedge_tablets_enrolled", &[]) == Some(1.0) && s.value("labedge_tablets_active", &[]) == Some(1.0)
        },
    )
    .await;

    // The cloud: the gateway's report, the refusals by reason, its own request durations.
    let cloud = scrape_until(&stack, api, Duration::from_secs(10), "the gateway's report", |s| {
        s.sum("labedge_gateway_reports_total", &[("state", "online")]) >= 1.0
    })
    .await;
    assert_eq!(
        cloud.sum(
            "labedge_security_events_total",
            &[
                ("action", "central_refused"),
                ("outcome", "failure"),
                ("reason", "missing_token")
            ]
        ),
        1.0
    );
    assert_eq!(
        cloud.sum(
            "labedge_security_events_total",
            &[
                ("action", "gateway_refused"),
                ("outcome", "failure"),
                ("reason", "no_certificate")
            ]
        ),
        1.0
    );
    assert!(
        cloud.sum(
            "labedge_http_request_duration_seconds_count",
            &[("route", "/v1/labs/{lab}/status"), ("status", "200")]
        ) >= 1.0,
        "the accepted report, by route pattern (no lab code)"
    );
    assert!(
        cloud.sum(
            "labedge_http_request_duration_seconds_count",
            &[("route", "/central/v1/gateways"), ("status", "401")]
        ) == 1.0
    );
    // The cloud's recorder is its own: no gateway series in it.
    for gateway_only in [
        "labedge_outbox_pending",
        "labedge_cache_hits_total",
        "labedge_tablets_enrolled",
    ] {
        assert!(
            !cloud.types.contains_key(gateway_only),
            "{gateway_only} in the cloud's metrics"
        );
    }
    assert!(!gateway.types.contains_key("labedge_gateway_reports_total"));

    // Bounded cardinality: nothing that identifies a patient, a person, a device or a session.
    let patient: PatientIdentity = diesel::sql_query("SELECT nir, birth_family_name FROM patients WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(visit.patient)
        .get_result(&mut stack.edge_conn().await)
        .await
        .unwrap();
    let (gateway_text, _) = scrape(&stack, gw).await;
    let (cloud_text, _) = scrape(&stack, api).await;
    let mut secrets = vec![
        token.clone(),
        device_secret.clone(),
        CENTRAL_TOKEN.to_owned(),
        visit.patient.to_string(),
        visit.appointment.to_string(),
        enrolled["device_id"].as_str().unwrap().to_owned(),
        patient.birth_family_name.clone(),
        nurse.clone(),
        WRONG_PIN.to_owned(),
        stack.lab.code.clone(),
    ];
    secrets.extend(patient.nir.clone());
    if !refresh_token.is_empty() {
        secrets.push(refresh_token);
    }
    for (service, text) in [("edge-gateway", &gateway_text), ("api", &cloud_text)] {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{service}'s metrics hold {secret:?}");
        }
    }
    for (service, scrape) in [("edge-gateway", &gateway), ("api", &cloud)] {
        for sample in &scrape.samples {
            for (label, value) in &sample.labels {
                assert!(
                    bounded(label, value),
                    "{service}: {}{{{label}={value:?}}} is not a bounded label value",
                    sample.name
                );
            }
        }
    }

    // What is exported is what the doc says: names, types, label names, closed label value sets.
    let documented = documented_metrics();
    let values = documented_label_values();
    for (service, scrape) in [("edge-gateway", &gateway), ("api", &cloud)] {
        for (family, labels) in scrape.label_names() {
            if !family.starts_with("labedge_") {
                continue;
            }
            let doc = documented
                .get(&family)
                .unwrap_or_else(|| panic!("{service} exports {family}, which docs/metrics.md does not document"));
            assert_eq!(scrape.types[&family], doc.kind, "{family}: the type in docs/metrics.md");
            assert_eq!(labels, doc.labels, "{family}: the labels in docs/metrics.md");
        }
        for sample in scrape.samples.iter().filter(|s| s.name.starts_with("labedge_")) {
            let family = scrape.family_of(&sample.name);
            for (label, value) in &sample.labels {
                if let Some(allowed) = values.get(&(family.clone(), label.clone())) {
                    assert!(
                        allowed.contains(value),
                        "{service}: {family}{{{label}={value:?}}} is not among the values docs/metrics.md lists"
                    );
                }
            }
        }
    }
}

/// Whether a label value is one of a bounded set: a route pattern, a fixed word, a status code, a
/// bucket bound — never an id, a NIR, a token or free text.
fn bounded(label: &str, value: &str) -> bool {
    let uuid_like = value.len() >= 32 && value.chars().filter(char::is_ascii_hexdigit).count() >= 32;
    let long_digits = value.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() >= 6);
    let token_like = value.starts_with("eyJ") || value.len() > 64;
    if uuid_like || token_like || Uuid::parse_str(value).is_ok() {
        return false;
    }
    match label {
        "le" | "quantile" => value == "+Inf" || value.parse::<f64>().is_ok(),
        "status" => value.len() == 3 && value.chars().all(|c| c.is_ascii_digit()),
        "method" => ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(&value),
        // A pattern's variable parts are placeholders: `{id}`, `{lab}`.
        "route" => value == "unmatched" || (value.starts_with('/') && !long_digits),
        _ => {
            !long_digits
                && value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
        }
    }
}

#[test]
fn the_doc_and_the_code_name_the_same_metrics() {
    let in_code = metric_names_in_code();
    let documented: BTreeSet<String> = documented_metrics().into_keys().collect();
    let undocumented: Vec<_> = in_code.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&in_code).collect();
    assert!(
        undocumented.is_empty(),
        "metrics in the code but not in docs/metrics.md: {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "metrics in docs/metrics.md that the code no longer exports: {stale:?}"
    );
    // Sanity: the scan finds what the issue asks for.
    for name in [
        "labedge_http_request_duration_seconds",
        "labedge_outbox_pending",
        "labedge_outbox_oldest_pending_seconds",
        "labedge_dead_letters_open",
        "labedge_relay_mutations_total",
        "labedge_upstream_state",
        "labedge_sync_lag_positions",
        "labedge_cache_hits_total",
        "labedge_cache_misses_total",
        "labedge_security_events_total",
        "labedge_tablets_enrolled",
        "labedge_tablets_active",
    ] {
        assert!(in_code.contains(name), "{name}");
    }
    // Every documented label value set belongs to a documented metric and label.
    let metrics = documented_metrics();
    for (metric, label) in documented_label_values().keys() {
        let doc = metrics
            .get(metric)
            .unwrap_or_else(|| panic!("the label table names {metric}, which is not documented"));
        assert!(doc.labels.contains(label), "{metric} has no label {label}");
    }
}
