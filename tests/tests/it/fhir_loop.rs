//! The whole loop of issue 14, with FHIR tooling this project did not write: the LIS (fhirpy, every
//! answer checked against fhir.resources' R4 models: tests/fhir/lis.py) registers a Subscription
//! and posts a transaction Bundle → the lab's gateway has the patient, prescription and visit → a
//! tablet records a collection while the cloud is down → the cloud is back → the LIS's Subscription
//! receives the Specimens, and its search finds each exactly once. Real processes throughout (API,
//! gateway, Python).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_tests::edge_data::nir;
use labedge_tests::spawn::{output_text, run};
use labedge_tests::stack::Stack;
use labedge_tests::tablet;
use serde_json::{Value, json};
use time::macros::date;
use uuid::Uuid;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[derive(diesel::QueryableByName)]
struct Exam {
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Text)]
    tube_type: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lis_feeds_a_tablet_and_gets_its_specimens_back_through_an_outage() {
    let python = workspace().join("target/fhir-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run deploy/test.sh (ensure_test_tools installs tests/fhir/requirements.txt)",
        python.display()
    );
    let mut stack = Stack::builder().patients(20).start().await;
    let out = stack.dir.path().join("lis");
    let created = run(
        "api",
        &[
            "--config",
            &stack.api_config,
            "create-integration-client",
            "--name",
            "lis",
            "--scope",
            "system/*.*",
            "--out",
            out.to_str().unwrap(),
            "--endpoint-hostname",
            "localhost",
        ],
        &[],
    );
    assert!(created.status.success(), "{}", output_text(&created));
    let exam: Exam = diesel::sql_query("SELECT code, tube_type FROM exam_catalog WHERE active ORDER BY code LIMIT 1")
        .get_result(&mut AsyncPgConnection::establish(&stack.cloud_url).await.unwrap())
        .await
        .unwrap();
    let start = (time::OffsetDateTime::now_utc() + time::Duration::hours(2))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let file = |name: &str| out.join(name).display().to_string();
    let mut lis = Command::new(&python)
        .arg(workspace().join("tests/fhir/lis.py"))
        .args(["--base", &stack.api_url])
        .args([
            "--cert",
            &file("lis.pem"),
            "--key",
            &file("lis.key"),
            "--ca",
            &file("cloud-ca.pem"),
        ])
        .args([
            "--endpoint-cert",
            &file("lis-endpoint.pem"),
            "--endpoint-key",
            &file("lis-endpoint.key"),
        ])
        .args([
            "--lab",
            &stack.lab.id.to_string(),
            "--exam",
            &exam.code,
            "--login",
            "chloe.p",
        ])
        .args(["--start", &start, "--ins", &nir("F", date!(1948 - 02 - 03), 77)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let mut lines = BufReader::new(lis.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok);
    let Some(first) = first else {
        let status = lis.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut lis.stderr.take().unwrap(), &mut err).unwrap();
        panic!("the LIS stopped ({status}) before sending its Bundle:\n{err}");
    };
    let ids: Value = serde_json::from_str(&first).unwrap();
    let patient = ids["patient"].as_str().unwrap().to_owned();

    // The gateway hears of the Bundle through its change feed.
    let client = stack.client.clone();
    let gateway = stack.gateway_url.clone();
    let admin = stack.admin_session().await;
    let token = tablet::enroll_and_login(&client, &gateway, &admin, stack.lab.logins.nurse.as_deref().unwrap()).await;
    let posted = Instant::now();
    loop {
        let answer = client
            .get(format!("{gateway}/v1/patients/{patient}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            break;
        }
        assert!(
            posted.elapsed() < Duration::from_secs(60),
            "the patient never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "the LIS's patient readable on the tablet {:.1} s after the Bundle",
        posted.elapsed().as_secs_f64()
    );
    let prescription = ids["prescription"].as_str().unwrap();
    let plan = client
        .get(format!("{gateway}/v1/prescriptions/{prescription}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plan.status(), 200, "the prescription reached the gateway");

    // The cloud goes down; the tablet records the collection all the same.
    stack.api.signal("KILL");
    stack.api.wait_exit(Duration::from_secs(10)).await;
    let barcodes: Vec<String> = (0..2)
        .map(|_| format!("L{}", &Uuid::new_v4().simple().to_string()[..12].to_uppercase()))
        .collect();
    let collection = Uuid::now_v7();
    let body = json!({
        "id": collection, "patient_id": patient, "appointment_id": ids["appointment"], "prescription_id": prescription,
        "collected_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
        "identity_checked": true, "identity_check_method": "id_document",
        "comments": "prélèvement difficile, garrot 2 min",
        "tubes": barcodes.iter().map(|b| json!({"barcode": b, "tube_type": exam.tube_type})).collect::<Vec<_>>(),
    });
    let recorded = client
        .post(format!("{gateway}/v1/collections"))
        .bearer_auth(&token)
        .header("idempotency-key", Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = recorded.status();
    assert_eq!(status, 201, "{}", recorded.text().await.unwrap());

    // The cloud is back: the relay delivers, the Subscription notifies the LIS.
    stack.api = stack.spawn_api();
    let mut stdin = lis.stdin.take().unwrap();
    writeln!(stdin, "{}", json!({"barcodes": barcodes})).unwrap();
    let done = tokio::task::spawn_blocking(move || {
        let last = lines.next().and_then(Result::ok);
        let status = lis.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut lis.stderr.take().unwrap(), &mut err).unwrap();
        (last, status, err)
    });
    let (last, status, err) = tokio::time::timeout(Duration::from_secs(240), done)
        .await
        .expect("the LIS finished in time")
        .unwrap();
    assert!(
        status.success(),
        "the LIS failed ({status}):\n{err}\n--- api ---\n{}",
        stack.api.output()
    );
    let result: Value = serde_json::from_str(&last.unwrap()).unwrap();
    eprintln!("LIS: {result}");
    assert_eq!(result["ok"], true);
    assert!(result["resources_validated"].as_u64().unwrap() >= 10);
    assert!(result["distinct_deliveries"].as_u64().unwrap() >= 2);
}
