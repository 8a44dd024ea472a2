//! Paper prescriptions (issue 15): a photo or scan taken at the desk, stored at the gateway as a
//! provisional prescription with its document, refused clearly when the upload is not one, relayed
//! to the cloud in chunks exactly once (resuming after a cut without resending what was
//! acknowledged), and read by the LIS as a FHIR DocumentReference and its Binary; the cloud's intake
//! keeping each chunk once and refusing a document whose bytes do not match.

use actix_web::test::TestRequest;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::relay::{Pass, Relay};
use labedge_protocol::relay::{AckOutcome, CHUNK_BYTES, MutationAcks, RelayedMutation, RelayedOp};
use labedge_tests::app::{TestApp, TestResponse};
use labedge_tests::cloud::{TestCloud, Visit, relayed};
use labedge_tests::db::AUDIT_RECORDS;
use labedge_tests::edge_data::{self, patient};
use labedge_tests::gateway::{HOME_SAMPLER, NURSE, TestGateway};
use labedge_tests::multipart::{self, Part};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes;
use mobile_contracts::{DocumentMediaType, PaperPrescriptionReceipt, PaperPrescriptionStatus, Patient};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::macros::date;
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(db: &labedge_tests::db::TestDb, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(&mut db.conn().await)
        .await
        .unwrap()
        .n
}

#[derive(diesel::QueryableByName)]
struct Kind {
    #[diesel(sql_type = Text)]
    kind: String,
}

async fn outbox_kinds(gw: &TestGateway) -> Vec<String> {
    diesel::sql_query("SELECT kind FROM outbox ORDER BY seq")
        .load::<Kind>(&mut gw.db.conn().await)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kind)
        .collect()
}

async fn token(gw: &TestGateway, (login, pin): (&str, &str)) -> String {
    let device = gw.enroll(None).await;
    gw.login(&device, login, pin)
        .await
        .access_token
        .expose_secret()
        .to_owned()
}

fn prescription(patient: Uuid) -> Value {
    json!({"id": Uuid::now_v7(), "patient_id": patient, "issued_on": "2026-12-01",
        "prescriber_name": "Dr Claire Morel", "prescriber_rpps": "10003456789", "notes": "fasting, before 9"})
}

/// `POST /v1/prescriptions` with `parts`, under a new Idempotency-Key unless `key` is given.
async fn upload(app: &TestApp, token: &str, parts: &[Part<'_>], key: Option<&str>) -> TestResponse {
    let key = key.map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
    let request = TestRequest::post()
        .uri(routes::PRESCRIPTIONS)
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("idempotency-key", key))
        .insert_header(("content-type", multipart::content_type()))
        .set_payload(multipart::body(parts));
    app.send(request).await
}

fn parts<'a>(body: &Value, file: Vec<u8>) -> Vec<Part<'a>> {
    vec![
        Part::json("prescription", body),
        Part::file("file", "ordonnance.jpg", "image/jpeg", file),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paper_prescription_is_stored_provisional_with_its_document_and_queued_in_chunks() {
    let gw = TestGateway::start().await;
    let known = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&known)).await;
    let nurse = token(&gw, NURSE).await;
    let file = multipart::jpeg(600 * 1024);
    let body = prescription(known.id);
    let key = Uuid::now_v7().to_string();

    let receipt: PaperPrescriptionReceipt = upload(&gw.app, &nurse, &parts(&body, file.clone()), Some(&key))
        .await
        .expect(201)
        .json();
    assert_eq!(receipt.id.to_string(), body["id"].as_str().unwrap());
    assert_eq!(receipt.patient_id, known.id);
    assert_eq!(receipt.status, PaperPrescriptionStatus::Provisional);
    assert_eq!(receipt.document.media_type, DocumentMediaType::Jpeg);
    assert_eq!(receipt.document.size_bytes as usize, file.len());
    assert_eq!(receipt.document.sha256, hex::encode(Sha256::digest(&file)));
    // The prescription, then three chunks of 256 KiB at most, in order under one record key.
    assert_eq!(
        outbox_kinds(&gw).await,
        [
            "prescription.create",
            "document.chunk",
            "document.chunk",
            "document.chunk"
        ]
    );
    let keys = format!(
        "SELECT count(DISTINCT entity_key) AS n FROM outbox WHERE entity_key = 'prescription:{}'",
        receipt.id
    );
    assert_eq!(count(&gw.db, &keys).await, 1);
    let stored = format!(
        "SELECT count(*) AS n FROM prescription_documents d JOIN paper_prescriptions p ON p.id = d.prescription_id \
         WHERE d.id = '{}' AND p.status = 'provisional' AND d.size_bytes = {} AND d.media_type = 'image/jpeg' \
         AND d.sha256 = sha256(d.content)",
        receipt.document.id,
        file.len()
    );
    assert_eq!(count(&gw.db, &stored).await, 1);
    let audited = format!(
        "SELECT count(*) AS n FROM {AUDIT_RECORDS} WHERE action = 'prescription.paper_create' AND patient_id = '{}'",
        known.id
    );
    assert_eq!(count(&gw.db, &audited).await, 1);

    // The same key and upload: the first answer again, nothing queued twice.
    let replay = upload(&gw.app, &nurse, &parts(&body, file.clone()), Some(&key))
        .await
        .expect(201);
    assert_eq!(replay.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(replay.json::<PaperPrescriptionReceipt>(), receipt);
    assert_eq!(outbox_kinds(&gw).await.len(), 4);
    // The same key with another file is another request: refused, not replayed.
    let other = upload(&gw.app, &nurse, &parts(&body, multipart::pdf(2048)), Some(&key)).await;
    assert_eq!(other.status.as_u16(), 422, "{}", other.text());
    // The same id under another key: the id is taken.
    let again = upload(&gw.app, &nurse, &parts(&body, file), None).await;
    assert_eq!(again.status.as_u16(), 409, "{}", again.text());

    // A walk-in registered at the desk a minute ago is a patient of the gateway too.
    let walk_in = json!({"id": Uuid::now_v7(), "birth_family_name": "Ferreira", "birth_given_names": "Ana",
        "birth_date": "1988-08-08", "sex": "F", "birth_place_code": "13055"});
    let registered: Patient = gw
        .app
        .send(
            TestRequest::post()
                .uri(routes::PATIENTS)
                .insert_header(("authorization", format!("Bearer {nurse}")))
                .insert_header(("idempotency-key", Uuid::now_v7().to_string()))
                .set_json(&walk_in),
        )
        .await
        .expect(201)
        .json();
    let pdf: PaperPrescriptionReceipt = upload(
        &gw.app,
        &nurse,
        &[
            Part::json(
                "prescription",
                &json!({"id": Uuid::now_v7(), "patient_id": registered.id, "issued_on": "2026-12-05"}),
            ),
            // The declared type and name say JPEG; the bytes are a PDF, and the bytes decide.
            Part::file("file", "photo.jpg", "image/jpeg", multipart::pdf(10_000)),
        ],
        None,
    )
    .await
    .expect(201)
    .json();
    assert_eq!(pdf.document.media_type, DocumentMediaType::Pdf);
}

/// A refused upload: what it is, its parts, the status, the code and the pointer the problem names.
type Case<'a> = (&'a str, Vec<Part<'a>>, u16, ErrorCode, Option<&'a str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_with_a_clear_problem_and_store_nothing() {
    let gw = TestGateway::start().await;
    let known = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&known)).await;
    let nurse = token(&gw, NURSE).await;
    let sampler = token(&gw, HOME_SAMPLER).await;
    let body = prescription(known.id);
    let jpeg = || multipart::jpeg(4096);

    let json_part = Part::json("prescription", &body);
    let file_part = Part::file("file", "ordonnance.jpg", "image/jpeg", jpeg());
    let mut bad_rpps = body.clone();
    bad_rpps["prescriber_rpps"] = json!("12AB");
    let mut unknown_patient = body.clone();
    unknown_patient["patient_id"] = json!(Uuid::now_v7());
    let mut extra_field = body.clone();
    extra_field["lab_id"] = json!(Uuid::now_v7());
    let too_big = multipart::jpeg(mobile_contracts::MAX_DOCUMENT_BYTES + 1);
    let cases: Vec<Case<'_>> = vec![
        (
            "no file",
            vec![json_part.clone()],
            400,
            ErrorCode::BadRequest,
            Some("/file"),
        ),
        (
            "no prescription",
            vec![file_part.clone()],
            400,
            ErrorCode::BadRequest,
            Some("/prescription"),
        ),
        (
            "two files",
            vec![json_part.clone(), file_part.clone(), file_part.clone()],
            400,
            ErrorCode::BadRequest,
            None,
        ),
        (
            "an unknown part",
            vec![json_part.clone(), file_part.clone(), Part::json("extra", &json!({}))],
            400,
            ErrorCode::BadRequest,
            None,
        ),
        (
            "text renamed .pdf",
            vec![
                json_part.clone(),
                Part::file(
                    "file",
                    "ordonnance.pdf",
                    "application/pdf",
                    b"just some text, not a PDF".to_vec(),
                ),
            ],
            415,
            ErrorCode::UnsupportedMediaType,
            Some("/file"),
        ),
        (
            "an empty file",
            vec![
                json_part.clone(),
                Part::file("file", "empty.jpg", "image/jpeg", Vec::new()),
            ],
            422,
            ErrorCode::ValidationFailed,
            Some("/file"),
        ),
        (
            "too big",
            vec![json_part.clone(), Part::file("file", "big.jpg", "image/jpeg", too_big)],
            413,
            ErrorCode::PayloadTooLarge,
            None,
        ),
        (
            "bad JSON part",
            vec![
                Part {
                    name: "prescription",
                    file_name: None,
                    content_type: Some("application/json"),
                    bytes: b"{\"id\": ".to_vec(),
                },
                file_part.clone(),
            ],
            400,
            ErrorCode::MalformedJson,
            None,
        ),
        (
            "a field the gateway owns",
            vec![Part::json("prescription", &extra_field), file_part.clone()],
            400,
            ErrorCode::MalformedJson,
            None,
        ),
        (
            "a malformed RPPS",
            vec![Part::json("prescription", &bad_rpps), file_part.clone()],
            422,
            ErrorCode::ValidationFailed,
            Some("/prescriber_rpps"),
        ),
        (
            "a patient the gateway does not hold",
            vec![Part::json("prescription", &unknown_patient), file_part.clone()],
            422,
            ErrorCode::ValidationFailed,
            Some("/patient_id"),
        ),
    ];
    for (case, parts, status, code, pointer) in cases {
        let r = upload(&gw.app, &nurse, &parts, None).await;
        assert_eq!(r.status.as_u16(), status, "{case}: {}", r.text());
        let problem = r.problem();
        assert_eq!(problem.code, code, "{case}");
        if let Some(pointer) = pointer {
            assert!(
                problem.errors.iter().any(|e| e.pointer == pointer),
                "{case}: {:?}",
                problem.errors
            );
        }
        assert!(!r.text().contains("Morel"), "{case}: the answer repeats what was sent");
    }

    // Not multipart at all; no Idempotency-Key; another role.
    let json_body = TestRequest::post()
        .uri(routes::PRESCRIPTIONS)
        .insert_header(("authorization", format!("Bearer {nurse}")))
        .insert_header(("idempotency-key", Uuid::now_v7().to_string()))
        .set_json(&body);
    let r = gw.app.send(json_body).await.expect(415);
    assert_eq!(r.problem().code, ErrorCode::UnsupportedMediaType);
    let no_key = TestRequest::post()
        .uri(routes::PRESCRIPTIONS)
        .insert_header(("authorization", format!("Bearer {nurse}")))
        .insert_header(("content-type", multipart::content_type()))
        .set_payload(multipart::body(&[json_part.clone(), file_part.clone()]));
    let r = gw.app.send(no_key).await.expect(400);
    assert_eq!(r.problem().code, ErrorCode::IdempotencyKeyMissing);
    let r = upload(&gw.app, &sampler, &[json_part, file_part], None)
        .await
        .expect(403);
    assert_eq!(r.problem().code, ErrorCode::Forbidden);

    for table in ["paper_prescriptions", "prescription_documents", "outbox"] {
        assert_eq!(
            count(&gw.db, &format!("SELECT count(*) AS n FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

async fn pass(relay: &Relay) -> Pass {
    relay.pass().await.expect("a relay pass")
}

async fn drain(relay: &Relay) {
    let mut last = None;
    for _ in 0..20 {
        match relay.pass().await {
            Ok(Pass::Idle) => return,
            Ok(_) => {}
            Err(e) => last = Some(e.to_string()),
        }
    }
    panic!("the outbox did not drain (last error: {last:?})");
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_made_with_the_cloud_down_is_relayed_once_resumes_after_a_cut_and_reaches_the_lis() {
    let (cloud, summary) = TestCloud::seeded(60, 1).await;
    let lab = summary.proximity_labs().next().unwrap().clone();
    let (gw, upstreams) = cloud.bootstrapped_gateway(&lab.code).await;
    let admin = gw.admin_login_as(&lab.logins.lab_admin, "labedge-admin").await;
    let device = gw.enroll_with(&admin, None).await;
    let nurse = gw.login(&device, lab.logins.nurse.as_deref().unwrap(), "1234").await;
    let nurse = nurse.access_token.expose_secret().to_owned();
    let relay = Relay::new(gw.state.clone(), upstreams.clone());
    let patient: Id = diesel::sql_query("SELECT id FROM patients ORDER BY id LIMIT 1")
        .get_result(&mut gw.db.conn().await)
        .await
        .unwrap();
    // A patient the cloud knows as another lab's only, slipped into this gateway's table.
    let foreign: Id = diesel::sql_query(
        "SELECT p.id FROM patients p WHERE p.registered_lab_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM prescriptions r WHERE r.patient_id = p.id AND r.lab_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = p.id AND a.lab_id = $1) \
         ORDER BY p.id LIMIT 1",
    )
    .bind::<diesel::sql_types::Uuid, _>(lab.id)
    .get_result(&mut cloud.db.conn().await)
    .await
    .unwrap();
    let mut intruder = edge_data::patient("Autre", "Labo", date!(1970 - 01 - 01));
    intruder.id = foreign.id;
    edge_data::upsert_patients(&gw, &[intruder]).await;
    cloud.stop().await;

    // The cloud is down: a 4 MiB scan (16 chunks) is taken all the same.
    let scan = multipart::pdf(4 * 1024 * 1024 - 1000);
    let body = prescription(patient.id);
    let receipt: PaperPrescriptionReceipt = upload(
        &gw.app,
        &nurse,
        &[
            Part::json("prescription", &body),
            Part::file("file", "scan.pdf", "application/pdf", scan.clone()),
        ],
        None,
    )
    .await
    .expect(201)
    .json();
    assert!(relay.pass().await.is_err(), "the cloud is down");
    assert_eq!(outbox_kinds(&gw).await.len(), 17);

    // The cloud comes back: one pass takes the prescription and the chunks one batch may carry.
    cloud.restart().await;
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await; // the circuit's first rest
    let Pass::Sent(first) = pass(&relay).await else {
        panic!("nothing sent")
    };
    assert!(
        (2..17).contains(&first),
        "a batch carries part of the document: {first}"
    );
    let chunks = format!(
        "SELECT count(*) AS n FROM prescription_document_chunks WHERE document_id = '{}'",
        receipt.document.id
    );
    assert_eq!(count(&cloud.db, &chunks).await, first as i64 - 1);
    let (lis, _) = cloud
        .integration_client("lis", "system/DocumentReference.read system/Binary.read")
        .await;
    let fhir = |path: String| {
        let lis = lis.clone();
        let url = format!("{}/fhir/R4{path}", cloud.url());
        async move { lis.get(url).send().await.unwrap() }
    };
    let incomplete = fhir(format!("/DocumentReference/{}", receipt.document.id)).await;
    assert_eq!(incomplete.status().as_u16(), 404, "an incomplete document is not shown");

    // A cut: the cloud goes away in the middle, then comes back; the relay resumes where it was.
    cloud.stop().await;
    assert!(relay.pass().await.is_err());
    cloud.restart().await;
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    drain(&relay).await;
    let outcomes = "SELECT count(*) AS n FROM outbox WHERE outcome = 'applied'";
    assert_eq!(
        count(&gw.db, outcomes).await,
        17,
        "every entry applied once, none resent"
    );
    let applied = format!(
        "SELECT count(*) AS n FROM applied_mutations WHERE lab_id = '{}' AND kind IN ('prescription.create', 'document.chunk')",
        lab.id
    );
    assert_eq!(count(&cloud.db, &applied).await, 17);
    assert_eq!(
        count(&cloud.db, &chunks).await,
        0,
        "the chunks are dropped once assembled"
    );
    let complete = format!(
        "SELECT count(*) AS n FROM prescription_documents d JOIN paper_prescriptions p ON p.id = d.prescription_id \
         WHERE d.id = '{}' AND d.completed_at IS NOT NULL AND sha256(d.content) = '\\x{}'::bytea \
         AND p.status = 'provisional' AND p.lab_id = '{}' AND p.prescriber_rpps = '10003456789'",
        receipt.document.id, receipt.document.sha256, lab.id
    );
    assert_eq!(count(&cloud.db, &complete).await, 1);

    // Acknowledgements lost: everything is sent again, and nothing is doubled.
    gw.db
        .conn()
        .await
        .batch_execute("UPDATE outbox SET sent_at = NULL, outcome = NULL")
        .await
        .unwrap();
    drain(&relay).await;
    assert_eq!(count(&cloud.db, &applied).await, 17);
    assert_eq!(
        count(&cloud.db, "SELECT count(*) AS n FROM prescription_documents").await,
        1
    );

    // The LIS finds it by patient, and the Binary's bytes are the upload's.
    let search = fhir(format!("/DocumentReference?patient={}", patient.id)).await;
    assert_eq!(search.status().as_u16(), 200);
    let bundle: Value = search.json().await.unwrap();
    assert_eq!(bundle["total"], 1, "{bundle}");
    let reference = &bundle["entry"][0]["resource"];
    assert_eq!(reference["id"], receipt.document.id.to_string());
    assert_eq!(reference["subject"]["reference"], format!("Patient/{}", patient.id));
    assert_eq!(reference["docStatus"], "preliminary");
    let attachment = &reference["content"][0]["attachment"];
    assert_eq!(attachment["contentType"], "application/pdf");
    assert_eq!(attachment["size"], scan.len());
    assert_eq!(attachment["url"], format!("Binary/{}", receipt.document.id));
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &scan);
    use base64::Engine as _;
    assert_eq!(
        attachment["hash"],
        base64::engine::general_purpose::STANDARD.encode(sha1.as_ref())
    );
    assert_eq!(reference["extension"][0]["valueString"], receipt.document.sha256);
    let since = fhir("/DocumentReference?_lastUpdated=gt2000-01-01T00:00:00Z".into()).await;
    let since: Value = since.json().await.unwrap();
    assert_eq!(since["total"], 1);
    let by_id: Value = fhir(format!("/DocumentReference?_id={}", receipt.document.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_id["total"], 1);
    let none: Value = fhir(format!(
        "/DocumentReference?_id={}&patient={}",
        receipt.document.id,
        Uuid::now_v7()
    ))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(none["total"], 0);
    let unbounded = fhir("/DocumentReference".into()).await;
    assert_eq!(unbounded.status().as_u16(), 400, "a search needs a criterion");
    let raw = fhir(format!("/Binary/{}", receipt.document.id)).await;
    assert_eq!(raw.status().as_u16(), 200);
    assert_eq!(raw.headers()["content-type"], "application/pdf");
    assert_eq!(raw.headers()["x-content-type-options"], "nosniff");
    assert_eq!(raw.bytes().await.unwrap().as_ref(), scan.as_slice());
    let as_fhir = lis
        .get(format!("{}/fhir/R4/Binary/{}", cloud.url(), receipt.document.id))
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    let binary: Value = as_fhir.json().await.unwrap();
    assert_eq!(binary["resourceType"], "Binary");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(binary["data"].as_str().unwrap())
            .unwrap(),
        scan
    );
    // Reads are audited with the patient, like the other FHIR reads.
    let audited = format!(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'fhir.read' AND patient_id = '{}' \
         AND resource LIKE 'Binary/%'",
        patient.id
    );
    assert!(count(&cloud.db, &audited).await >= 2);
    // A client without the scope is refused.
    let (other, _) = cloud.integration_client("billing", "system/Patient.read").await;
    let refused = other
        .get(format!("{}/fhir/R4/Binary/{}", cloud.url(), receipt.document.id))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    // Another lab's patient: the gateway took it (it held the row); the cloud refuses it, and the
    // document's chunks with it (they name a document the cloud never announced): dead letters for
    // the lab admin, nothing stored in the cloud.
    let foreign_rx: PaperPrescriptionReceipt = upload(
        &gw.app,
        &nurse,
        &parts(&prescription(foreign.id), multipart::jpeg(300 * 1024)),
        None,
    )
    .await
    .expect(201)
    .json();
    drain(&relay).await;
    let refused = format!(
        "SELECT count(*) AS n FROM dead_letters WHERE entity_key = 'prescription:{}' \
         AND kind = 'prescription.create' AND reason LIKE 'patient_out_of_scope%'",
        foreign_rx.id
    );
    assert_eq!(count(&gw.db, &refused).await, 1);
    let chunks_refused = format!(
        "SELECT count(*) AS n FROM dead_letters WHERE entity_key = 'prescription:{}' AND kind = 'document.chunk'",
        foreign_rx.id
    );
    assert_eq!(count(&gw.db, &chunks_refused).await, 2);
    let stored_chunks = format!(
        "SELECT count(*) AS n FROM prescription_document_chunks WHERE document_id = '{}'",
        foreign_rx.document.id
    );
    assert_eq!(count(&cloud.db, &stored_chunks).await, 0);
    let nothing = format!(
        "SELECT count(*) AS n FROM paper_prescriptions WHERE id = '{}'",
        foreign_rx.id
    );
    assert_eq!(count(&cloud.db, &nothing).await, 0);
}

/// A `prescription.create` for `patient` announcing `bytes` (or, with `claimed`, other bytes' hash).
fn announce(staff: Uuid, patient: Uuid, document: Uuid, bytes: &[u8], claimed: Option<&[u8]>) -> RelayedMutation {
    relayed(
        staff,
        json!({"kind": "prescription.create", "prescription": {
            "id": Uuid::now_v7(), "patient_id": patient, "prescriber_name": null, "prescriber_rpps": null,
            "issued_on": "2026-12-01", "notes": null,
            "document": {"id": document, "media_type": "image/jpeg", "size_bytes": bytes.len(),
                "sha256": hex::encode(Sha256::digest(claimed.unwrap_or(bytes))),
                "chunk_count": bytes.len().div_ceil(CHUNK_BYTES)}
        }}),
    )
}

fn chunk_of(staff: Uuid, announced: &RelayedMutation, bytes: &[u8], index: usize) -> RelayedMutation {
    use base64::Engine as _;
    let RelayedOp::PaperPrescriptionCreate { prescription } = &announced.op else {
        panic!("not an announcement")
    };
    let end = ((index + 1) * CHUNK_BYTES).min(bytes.len());
    let data = bytes.get(index * CHUNK_BYTES..end).unwrap_or_default();
    relayed(
        staff,
        json!({"kind": "document.chunk", "prescription_id": prescription.id, "document_id": prescription.document.id,
            "index": index, "data": base64::engine::general_purpose::STANDARD.encode(data)}),
    )
}

async fn relay_batch(app: &TestApp, code: &str, mutations: &[RelayedMutation]) -> Vec<(AckOutcome, Option<String>)> {
    let acks: MutationAcks = app
        .send(
            TestRequest::post()
                .uri(&format!("/v1/labs/{code}/mutations"))
                .set_json(json!({ "mutations": mutations })),
        )
        .await
        .expect(200)
        .json();
    acks.results.into_iter().map(|a| (a.outcome, a.reason)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_keeps_each_chunk_once_and_refuses_a_document_that_does_not_match() {
    let (cloud, summary) = TestCloud::seeded(60, 2).await;
    let mut labs = summary.proximity_labs();
    let (mine, theirs) = (labs.next().unwrap().code.clone(), labs.next().unwrap().code.clone());
    let visit: Visit = diesel::sql_query(format!(
        "SELECT l.id AS lab, a.id AS appointment, a.patient_id AS patient, a.prescription_id AS prescription, s.id AS staff, a.version \
         FROM appointments a JOIN labs l ON l.id = a.lab_id JOIN staff s ON s.lab_id = l.id AND s.role = 'nurse' \
         WHERE l.code = '{mine}' AND a.prescription_id IS NOT NULL ORDER BY a.id LIMIT 1"
    ))
    .get_result(&mut cloud.db.conn().await)
    .await
    .unwrap();
    let app = cloud.gateway_app(&mine).await;
    let staff = visit.staff;
    let bytes = multipart::jpeg(300 * 1024);
    let document = Uuid::now_v7();
    let create = announce(staff, visit.patient, document, &bytes, None);
    let whole = format!(
        "SELECT count(*) AS n FROM prescription_documents WHERE id = '{document}' AND completed_at IS NOT NULL"
    );

    // Out of order, then the second chunk again under another mutation id: stored once.
    let second = chunk_of(staff, &create, &bytes, 1);
    let verdicts = relay_batch(&app, &mine, &[create.clone(), second.clone()]).await;
    assert_eq!(
        verdicts.iter().map(|v| v.0).collect::<Vec<_>>(),
        [AckOutcome::Applied; 2]
    );
    assert_eq!(count(&cloud.db, &whole).await, 0, "incomplete");
    let again = chunk_of(staff, &create, &bytes, 1);
    let first = chunk_of(staff, &create, &bytes, 0);
    let verdicts = relay_batch(&app, &mine, &[again, first]).await;
    assert_eq!(verdicts[0].0, AckOutcome::Duplicate, "{verdicts:?}");
    assert_eq!(verdicts[1].0, AckOutcome::Applied, "{verdicts:?}");
    assert_eq!(count(&cloud.db, &whole).await, 1, "complete once the last chunk is in");
    // A chunk arriving after the document is whole is a duplicate too; the first delivery of a
    // mutation is answered the same when it comes again.
    let late = relay_batch(&app, &mine, &[chunk_of(staff, &create, &bytes, 0), second]).await;
    assert_eq!(late.iter().map(|v| v.0).collect::<Vec<_>>(), [AckOutcome::Duplicate; 2]);

    // Bytes that do not make the announced SHA-256: the last chunk is refused, nothing is shown.
    let forged = Uuid::now_v7();
    let lying = announce(staff, visit.patient, forged, &bytes, Some(b"other bytes"));
    let mut batch = vec![lying.clone()];
    batch.extend((0..2).map(|i| chunk_of(staff, &lying, &bytes, i)));
    let verdicts = relay_batch(&app, &mine, &batch).await;
    assert_eq!(verdicts[1].0, AckOutcome::Applied);
    assert_eq!(verdicts[2].0, AckOutcome::Rejected);
    assert!(
        verdicts[2].1.as_deref().unwrap().starts_with("document_mismatch"),
        "{verdicts:?}"
    );
    let shown =
        format!("SELECT count(*) AS n FROM prescription_documents WHERE id = '{forged}' AND content IS NOT NULL");
    assert_eq!(count(&cloud.db, &shown).await, 0);

    // A chunk of the wrong length, an index past the end: refused.
    let third = Uuid::now_v7();
    let short = announce(staff, visit.patient, third, &bytes, None);
    let cut = chunk_of(staff, &short, &bytes[..1000], 0);
    let beyond = chunk_of(staff, &short, &bytes, 7);
    let verdicts = relay_batch(&app, &mine, &[short, cut, beyond]).await;
    assert_eq!(verdicts[0].0, AckOutcome::Applied);
    assert!(verdicts[1].1.as_deref().unwrap().contains("length"), "{verdicts:?}");
    assert!(verdicts[2].1.as_deref().unwrap().contains("index"), "{verdicts:?}");

    // Another lab's gateway can neither add to this lab's document nor announce for its patient.
    let other = cloud.gateway_app(&theirs).await;
    let their_staff: Id = diesel::sql_query(format!(
        "SELECT s.id FROM staff s JOIN labs l ON l.id = s.lab_id WHERE l.code = '{theirs}' AND s.role = 'nurse' LIMIT 1"
    ))
    .get_result(&mut cloud.db.conn().await)
    .await
    .unwrap();
    let intruding = chunk_of(their_staff.id, &create, &bytes, 0);
    let foreign_patient = announce(their_staff.id, visit.patient, Uuid::now_v7(), &bytes, None);
    let verdicts = relay_batch(&other, &theirs, &[intruding, foreign_patient]).await;
    assert!(
        verdicts[0].1.as_deref().unwrap().starts_with("foreign_lab_reference"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[1].1.as_deref().unwrap().starts_with("patient_out_of_scope"),
        "{verdicts:?}"
    );
}
