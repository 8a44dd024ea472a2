//! The FHIR R4 interface of the cloud API (issue 14), over mutual TLS against a real cloud: the
//! resources in and out, versions and conditional requests, Bundles all or nothing, bad input as
//! OperationOutcomes naming the element, who may call, and the change feed carrying what the LIS
//! sent to the lab's gateway. The loop with a public FHIR client library is `fhir_loop`.

use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_api::demo::SeedArgs;
use labedge_tests::cloud::TestCloud;
use labedge_tests::edge_data::nir;
use reqwest::Method;
use serde_json::{Value, json};
use time::macros::date;
use uuid::Uuid;

const LOGIN: &str = "https://labedge.labanalyse.fr/fhir/sid/staff-login";
const ROLE: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/staff-role";
const EXAM: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/exam";
const VISIT: &str = "https://labedge.labanalyse.fr/fhir/CodeSystem/visit-kind";
const RPPS: &str = "urn:oid:1.2.250.1.71.4.2.1";
const INS_NIR: &str = "urn:oid:1.2.250.1.213.1.4.8";
const ORDERS: &str = "https://lis.example.fr/orders";

struct Lis {
    cloud: TestCloud,
    http: reqwest::Client,
    lab_id: Uuid,
    lab_code: String,
    other_lab: Uuid,
    exam: String,
}

#[derive(diesel::QueryableByName)]
struct Code {
    #[diesel(sql_type = Text)]
    code: String,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn lis(scopes: &str) -> Lis {
    let cloud = TestCloud::start().await;
    let summary = cloud
        .seed(&SeedArgs {
            patients: 20,
            proximity_labs: 2,
            ..SeedArgs::default()
        })
        .await;
    let mut labs = summary.labs.iter().filter(|l| l.kind == "proximity");
    let (lab, other) = (labs.next().unwrap(), labs.next().unwrap());
    let (http, _) = cloud.integration_client("lis", scopes).await;
    let exam: Code = diesel::sql_query("SELECT code FROM exam_catalog WHERE active ORDER BY code LIMIT 1")
        .get_result(&mut cloud.db.conn().await)
        .await
        .unwrap();
    Lis {
        http,
        lab_id: lab.id,
        lab_code: lab.code.clone(),
        other_lab: other.id,
        exam: exam.code,
        cloud,
    }
}

impl Lis {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        send(&self.http, &self.cloud.url(), method, path, body, headers).await
    }

    async fn count(&self, sql: &str) -> i64 {
        let count: Count = diesel::sql_query(sql)
            .get_result(&mut self.cloud.db.conn().await)
            .await
            .unwrap();
        count.n
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http.request(method, format!("{base}/fhir/R4{path}"));
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

fn patient(nir_value: &str, family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": INS_NIR, "value": nir_value}],
        "name": [{"use": "official", "family": family, "given": ["Jeanne", "Marie"]}],
        "gender": "female",
        "birthDate": "1961-04-12",
        "extension": [{
            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
            "extension": [
                {"url": "identityStatus", "valueCoding": {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status", "code": "QUAL"}},
                {"url": "methodCollection", "valueCoding": {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-method-collection", "code": "CV"}},
                {"url": "validationMode", "valueCoding": {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-mode-validation-identity", "code": "CN"}}
            ]
        }, {
            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-place",
            "valueAddress": {"district": "75056"}
        }]
    })
}

fn expression(outcome: &Value) -> String {
    outcome["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn female_nir(serial: u16) -> String {
    nir("F", date!(1961 - 04 - 12), serial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_is_created_read_versioned_and_found_by_its_ins() {
    let lis = lis("system/*.*").await;
    let ins = female_nir(901);
    let (status, headers, created) = lis
        .send(Method::POST, "/Patient", Some(&patient(&ins, "Durand")), &[])
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["etag"], "W/\"1\"");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/Patient/{id}/_history/1"))
    );
    assert_eq!(created["identifier"][0]["value"], ins.as_str());
    assert_eq!(created["name"][0]["given"], json!(["Jeanne", "Marie"]));

    let (status, _, read) = lis.send(Method::GET, &format!("/Patient/{id}"), None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(read["extension"][0]["extension"][0]["valueCoding"]["code"], "QUAL");
    assert_eq!(read["extension"][1]["valueAddress"]["district"], "75056");

    // Conditional create: the INS names the patient, nothing is created twice.
    let criteria = format!("identifier={INS_NIR}|{ins}");
    let (status, _, again) = lis
        .send(
            Method::POST,
            "/Patient",
            Some(&patient(&ins, "Durand")),
            &[("If-None-Exist", &criteria)],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], id.as_str());

    // Versions: If-Match with the current one wins, a stale one is refused and changes nothing.
    let mut renamed = patient(&ins, "Durand-Martin");
    renamed["id"] = json!(id);
    let (status, headers, _) = lis
        .send(
            Method::PUT,
            &format!("/Patient/{id}"),
            Some(&renamed),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["etag"], "W/\"2\"");
    let (status, _, outcome) = lis
        .send(
            Method::PUT,
            &format!("/Patient/{id}"),
            Some(&patient(&ins, "Other")),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(status, 412, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");

    // Conditional update by identifier.
    let (status, _, updated) = lis
        .send(
            Method::PUT,
            &format!("/Patient?identifier={INS_NIR}|{ins}"),
            Some(&patient(&ins, "Durand")),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["meta"]["versionId"], "3");

    let (status, _, found) = lis
        .send(Method::GET, &format!("/Patient?identifier={INS_NIR}|{ins}"), None, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["type"], "searchset");
    assert_eq!(found["entry"].as_array().unwrap().len(), 1);
    assert_eq!(found["entry"][0]["resource"]["name"][0]["family"], "Durand");

    // Every call is in the audit log under the client's name, with the patient.
    let audited = lis
        .count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE actor = 'integration:lis' AND patient_id = '{id}'"
        ))
        .await;
    assert!(audited >= 6, "{audited} audit records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_operation_outcome_naming_the_element_and_stores_nothing() {
    let lis = lis("system/*.*").await;
    let before = lis.count("SELECT count(*) AS n FROM patients").await;
    let good = female_nir(902);
    let mut wrong_key = good.clone();
    let key: u8 = wrong_key[13..].parse().unwrap();
    wrong_key.replace_range(13.., &format!("{:02}", (key + 1) % 98));

    let mut validated_without_document = patient(&good, "Durand");
    validated_without_document["extension"][0]["extension"] = json!([
        {"url": "identityStatus", "valueCoding": {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status", "code": "VALI"}}
    ]);
    let mut recovered_without_ins = patient(&good, "Durand");
    recovered_without_ins["identifier"] = json!([]);
    recovered_without_ins["extension"][0]["extension"] = json!([
        {"url": "identityStatus", "valueCoding": {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status", "code": "RECUP"}}
    ]);
    let mut unknown_element = patient(&good, "Durand");
    unknown_element["maritalStatus"] = json!({"text": "married"});
    let mut no_gender = patient(&good, "Durand");
    no_gender.as_object_mut().unwrap().remove("gender");
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "wrong NIR key",
            patient(&wrong_key, "Durand"),
            422,
            "Patient.identifier[0].value",
        ),
        (
            "wrong type",
            json!({"resourceType": "Observation"}),
            422,
            "Patient.resourceType",
        ),
        (
            "validated without document",
            validated_without_document,
            422,
            "validationMode",
        ),
        (
            "recovered without INS",
            recovered_without_ins,
            422,
            "Patient.identifier",
        ),
        ("unknown element", unknown_element, 422, "Patient.maritalStatus"),
        ("missing gender", no_gender, 422, "Patient.gender"),
    ];
    for (what, body, status, element) in cases {
        let (got, headers, outcome) = lis.send(Method::POST, "/Patient", Some(&body), &[]).await;
        assert_eq!(got, status, "{what}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{what}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+json")
        );
        assert!(
            expression(&outcome).contains(element),
            "{what}: {}",
            expression(&outcome)
        );
        assert!(
            !outcome.to_string().contains(&wrong_key),
            "{what}: the NIR is personal data"
        );
    }
    // Not JSON, JSON nested deeper than any resource, the wrong media type.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (body, content_type, status) in [
        ("{not json".to_owned(), "application/fhir+json", 400),
        (deep, "application/fhir+json", 400),
        (patient(&good, "Durand").to_string(), "text/plain", 415),
    ] {
        let response = lis
            .http
            .post(format!("{}/fhir/R4/Patient", lis.cloud.url()))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        let outcome: Value = response.json().await.unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    // A prescription of an exam the catalog does not know; a reference to nobody.
    let (_, _, created) = lis
        .send(Method::POST, "/Patient", Some(&patient(&good, "Durand")), &[])
        .await;
    let patient_id = created["id"].as_str().unwrap();
    let mut request = service_request(patient_id, &lis.lab_id.to_string(), "NOPE-42");
    let (status, _, outcome) = lis.send(Method::POST, "/ServiceRequest", Some(&request), &[]).await;
    assert_eq!(status, 422, "{outcome}");
    assert_eq!(expression(&outcome), "ServiceRequest.orderDetail[0].coding");
    request = service_request(&Uuid::now_v7().to_string(), &lis.lab_id.to_string(), &lis.exam);
    let (status, _, outcome) = lis.send(Method::POST, "/ServiceRequest", Some(&request), &[]).await;
    assert_eq!(status, 422, "{outcome}");
    assert_eq!(expression(&outcome), "ServiceRequest.subject.reference");
    // A Bundle of 10,000 entries is refused before anything is read into the database.
    let entries: Vec<Value> = (0..10_000)
        .map(|_| json!({"request": {"method": "GET", "url": format!("Patient/{patient_id}")}}))
        .collect();
    let (status, _, outcome) = lis
        .send(
            Method::POST,
            "",
            Some(&json!({"resourceType": "Bundle", "type": "batch", "entry": entries})),
            &[],
        )
        .await;
    assert_eq!(status, 413, "{outcome}");
    assert_eq!(lis.count("SELECT count(*) AS n FROM patients").await, before + 1);
    // Deleting is not a FHIR interaction this server offers.
    let (status, _, _) = lis
        .send(Method::DELETE, &format!("/Patient/{patient_id}"), None, &[])
        .await;
    assert_eq!(status, 405);
}

fn service_request(patient: &str, lab: &str, exam: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": ORDERS, "value": format!("ORD-{}", Uuid::now_v7().simple())}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": format!("Patient/{patient}")},
        "requester": {"identifier": {"system": RPPS, "value": "10001234567"}, "display": "Dr Claire Petit"},
        "performer": [{"reference": format!("Organization/{lab}")}],
        "orderDetail": [{"coding": [{"system": EXAM, "code": exam}]}],
        "authoredOn": "2026-12-01",
        "extension": [{"url": "https://labedge.labanalyse.fr/fhir/StructureDefinition/fasting", "valueBoolean": true}],
    })
}

/// The Bundle a LIS sends for a new visit: patient, staff member, prescription, appointment,
/// referring to each other by `urn:uuid:` fullUrls.
pub fn visit_bundle(ins: &str, lab: &str, exam: &str, login: &str, start: &str) -> Value {
    let (p, pr, role, sr, ap) = (
        format!("urn:uuid:{}", Uuid::new_v4()),
        format!("urn:uuid:{}", Uuid::new_v4()),
        format!("urn:uuid:{}", Uuid::new_v4()),
        format!("urn:uuid:{}", Uuid::new_v4()),
        format!("urn:uuid:{}", Uuid::new_v4()),
    );
    let mut request = service_request("x", lab, exam);
    request["subject"]["reference"] = json!(p);
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": p, "resource": patient(ins, "Lefebvre"),
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": format!("identifier={INS_NIR}|{ins}")}},
            {"fullUrl": pr, "resource": {"resourceType": "Practitioner", "identifier": [{"system": LOGIN, "value": login}],
                "name": [{"family": "Moreau", "given": ["Lucie"]}], "active": true},
             "request": {"method": "POST", "url": "Practitioner"}},
            {"fullUrl": role, "resource": {"resourceType": "PractitionerRole", "active": true,
                "practitioner": {"reference": pr}, "organization": {"reference": format!("Organization/{lab}")},
                "code": [{"coding": [{"system": ROLE, "code": "home_sampler"}]}]},
             "request": {"method": "POST", "url": "PractitionerRole"}},
            {"fullUrl": sr, "resource": request, "request": {"method": "POST", "url": "ServiceRequest"}},
            {"fullUrl": ap, "resource": {"resourceType": "Appointment", "status": "booked",
                "appointmentType": {"coding": [{"system": VISIT, "code": "home"}]},
                "start": start, "minutesDuration": 20,
                "participant": [
                    {"actor": {"reference": p}, "status": "accepted"},
                    {"actor": {"reference": format!("Location/{lab}")}, "status": "accepted"},
                    {"actor": {"reference": role}, "status": "accepted"}
                ],
                "basedOn": [{"reference": sr}],
                "extension": [{"url": "https://labedge.labanalyse.fr/fhir/StructureDefinition/visit-address",
                    "valueAddress": {"line": ["12 rue des Lilas"], "postalCode": "69003", "city": "Lyon"}}]},
             "request": {"method": "POST", "url": "Appointment"}}
        ]
    })
}

fn soon() -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(3);
    at.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_bundle_is_all_or_nothing_and_reaches_the_lab_feed() {
    let lis = lis("system/*.*").await;
    let tables = "SELECT (SELECT count(*) FROM patients) + (SELECT count(*) FROM practitioners) + \
                  (SELECT count(*) FROM staff) + (SELECT count(*) FROM prescriptions) + (SELECT count(*) FROM appointments) AS n";
    let before = lis.count(tables).await;
    let mut broken = visit_bundle(&female_nir(903), &lis.lab_id.to_string(), &lis.exam, "lucie.m", &soon());
    broken["entry"][4]["resource"]["status"] = json!("waitlist");
    let (status, _, outcome) = lis.send(Method::POST, "", Some(&broken), &[]).await;
    assert_eq!(status, 422, "{outcome}");
    assert_eq!(expression(&outcome), "Bundle.entry[4].resource.status");
    assert_eq!(
        lis.count(tables).await,
        before,
        "nothing of a failed transaction is applied"
    );

    let bundle = visit_bundle(&female_nir(903), &lis.lab_id.to_string(), &lis.exam, "lucie.m", &soon());
    let (status, _, response) = lis.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["type"], "transaction-response");
    let entries = response["entry"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["response"]["status"] == "201 Created"),
        "{response}"
    );
    assert_eq!(lis.count(tables).await, before + 5);
    let appointment = &entries[4]["resource"];
    let patient_ref = appointment["participant"][0]["actor"]["reference"].as_str().unwrap();
    assert_eq!(
        patient_ref,
        format!("Patient/{}", entries[0]["resource"]["id"].as_str().unwrap())
    );
    assert_eq!(
        appointment["basedOn"][0]["reference"],
        format!("ServiceRequest/{}", entries[3]["resource"]["id"].as_str().unwrap())
    );

    // The lab's change feed carries the patient, the staff member, the prescription and the
    // appointment to its gateway; the other lab's feed carries none of them.
    let ids: Vec<String> = entries
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    let config = labedge_api::config::FeedConfig::default();
    let mut conn = lis.cloud.db.conn().await;
    let page = labedge_api::feed::read_changes(&mut conn, &config, lis.lab_id, &lis.lab_code, 0, 100_000, None)
        .await
        .unwrap();
    let keys: Vec<&str> = page.changes.iter().map(|c| c.key.as_str()).collect();
    for (i, what) in [(0, "patient"), (2, "staff"), (3, "prescription"), (4, "appointment")] {
        assert!(keys.contains(&ids[i].as_str()), "the {what} reaches the lab's feed");
    }
    let other = labedge_api::feed::read_changes(&mut conn, &config, lis.other_lab, "OTHER", 0, 100_000, None)
        .await
        .unwrap();
    assert!(!other.changes.iter().any(|c| ids.contains(&c.key) && c.record.is_some()));

    // The same Bundle again: the patient is found by its INS, the rest is new (no identifier given
    // for them), and the staff login is taken at that lab: refused as a whole.
    let again = visit_bundle(&female_nir(903), &lis.lab_id.to_string(), &lis.exam, "lucie.m", &soon());
    let (status, _, outcome) = lis.send(Method::POST, "", Some(&again), &[]).await;
    assert_eq!(status, 409, "{outcome}");
    assert_eq!(lis.count(tables).await, before + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_entry_on_its_own() {
    let lis = lis("system/*.*").await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(&female_nir(904), "Roux"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": patient("123", "Roux"), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": format!("Organization/{}", lis.lab_id)}}
    ]});
    let (status, _, response) = lis.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(response["entry"][1]["response"]["status"], "422 Unprocessable Entity");
    assert_eq!(
        response["entry"][1]["response"]["outcome"]["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.identifier[0].value"
    );
    assert_eq!(
        response["entry"][2]["resource"]["identifier"][0]["value"],
        lis.lab_code.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_integration_clients_within_their_scopes_may_call() {
    let lis = lis("system/Patient.read system/Specimen.read").await;
    let base = lis.cloud.url();
    // No certificate; a gateway's certificate.
    let anonymous = lis.cloud.pki.client_for(None);
    let (status, _, outcome) = send(&anonymous, &base, Method::GET, "/Patient?identifier=a|b", None, &[]).await;
    assert_eq!(status, 401, "{outcome}");
    let gateway = lis.cloud.credential(&lis.lab_code).await;
    let as_gateway = lis.cloud.pki.client_for(Some((&gateway.cert, &gateway.key)));
    let (status, _, _) = send(&as_gateway, &base, Method::GET, "/Patient?identifier=a|b", None, &[]).await;
    assert_eq!(status, 401);
    // Read-only scopes: reading works, writing is refused.
    let (status, _, _) = lis.send(Method::GET, "/Patient?identifier=a|b", None, &[]).await;
    assert_eq!(status, 200);
    let (status, _, outcome) = lis
        .send(Method::POST, "/Patient", Some(&patient(&female_nir(905), "Blanc")), &[])
        .await;
    assert_eq!(status, 403, "{outcome}");
    let (status, _, _) = lis
        .send(Method::GET, &format!("/Organization/{}", lis.lab_id), None, &[])
        .await;
    assert_eq!(status, 403);
    // The CapabilityStatement is public and lists exactly the types served.
    let (status, _, capability) = send(&anonymous, &base, Method::GET, "/metadata", None, &[]).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = capability["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "ServiceRequest",
            "Appointment",
            "Organization",
            "Location",
            "Specimen",
            "Subscription",
            "DocumentReference",
            "Binary"
        ]
    );
    let (status, _, _) = lis.send(Method::GET, "/Observation?code=x", None, &[]).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_a_practitioner_deactivates_every_role_through_the_feed() {
    let lis = lis("system/*.*").await;
    let person = json!({"resourceType": "Practitioner", "identifier": [{"system": LOGIN, "value": "paul.r"}],
        "name": [{"text": "Paul Roche"}], "active": true});
    let (status, _, created) = lis.send(Method::POST, "/Practitioner", Some(&person), &[]).await;
    assert_eq!(status, 201, "{created}");
    let practitioner = created["id"].as_str().unwrap().to_owned();
    let mut roles = Vec::new();
    for lab in [lis.lab_id, lis.other_lab] {
        let role = json!({"resourceType": "PractitionerRole", "active": true,
            "practitioner": {"reference": format!("Practitioner/{practitioner}")},
            "organization": {"reference": format!("Organization/{lab}")},
            "code": [{"coding": [{"system": ROLE, "code": "nurse"}]}]});
        let (status, _, created) = lis.send(Method::POST, "/PractitionerRole", Some(&role), &[]).await;
        assert_eq!(status, 201, "{created}");
        roles.push(created["id"].as_str().unwrap().to_owned());
    }
    let (_, _, found) = lis
        .send(
            Method::GET,
            &format!("/PractitionerRole?practitioner={practitioner}"),
            None,
            &[],
        )
        .await;
    assert_eq!(found["entry"].as_array().unwrap().len(), 2);
    let head = lis.count("SELECT max(position) AS n FROM change_log").await;

    let mut inactive = person.clone();
    inactive["active"] = json!(false);
    let (status, _, _) = lis
        .send(
            Method::PUT,
            &format!("/Practitioner/{practitioner}"),
            Some(&inactive),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(status, 200);
    for (role, lab) in roles.iter().zip([lis.lab_id, lis.other_lab]) {
        let (_, _, read) = lis
            .send(Method::GET, &format!("/PractitionerRole/{role}"), None, &[])
            .await;
        assert_eq!(read["active"], false);
        let announced = lis
            .count(&format!(
                "SELECT count(*) AS n FROM change_log WHERE position > {head} AND entity = 'staff' \
                 AND entity_id = '{role}' AND lab_id = '{lab}'"
            ))
            .await;
        assert_eq!(announced, 1, "the lab's gateway hears of the deactivation");
    }
    // A role created by the LIS has no PIN until the lab sets one.
    let pin: Code = diesel::sql_query(format!("SELECT pin_hash AS code FROM staff WHERE id = '{}'", roles[0]))
        .get_result(&mut lis.cloud.db.conn().await)
        .await
        .unwrap();
    assert!(!pin.code.starts_with("$argon2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specimens_come_back_in_commit_order_and_a_late_commit_is_not_skipped() {
    let lis = lis("system/*.*").await;
    let (patient, prescription, staff) = visit_of(&lis).await;
    let (status, _, empty) = lis.send(Method::GET, "/Specimen?_cursor=0", None, &[]).await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["entry"].as_array().map_or(0, Vec::len), 0);

    // Collection A takes its place in the feed at commit, not at insert: B commits first and is
    // read first; A, committed later, is on the next page all the same.
    let mut late = lis.cloud.db.conn().await;
    late.batch_execute("BEGIN").await.unwrap();
    late.batch_execute(&collection_sql(
        &lis,
        patient,
        prescription,
        staff,
        "LATE-1",
        &["LATE-1A", "LATE-1B"],
    ))
    .await
    .unwrap();
    lis.cloud
        .db
        .conn()
        .await
        .batch_execute(&collection_sql(
            &lis,
            patient,
            prescription,
            staff,
            "EARLY-1",
            &["EARLY-1A"],
        ))
        .await
        .unwrap();
    let (_, _, first) = lis.send(Method::GET, "/Specimen?_cursor=0", None, &[]).await;
    let barcodes = |page: &Value| -> Vec<String> {
        page["entry"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|x| {
                        x["resource"]["accessionIdentifier"]["value"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(barcodes(&first), ["EARLY-1A"]);
    let next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("/fhir/R4")
        .to_owned();
    late.batch_execute("COMMIT").await.unwrap();
    let (_, _, second) = lis.send(Method::GET, &next, None, &[]).await;
    assert_eq!(barcodes(&second), ["LATE-1A", "LATE-1B"]);
    let specimen = &second["entry"][0]["resource"];
    assert_eq!(specimen["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(
        specimen["request"][0]["reference"],
        format!("ServiceRequest/{prescription}")
    );
    assert_eq!(
        specimen["collection"]["collector"]["reference"],
        format!("PractitionerRole/{staff}")
    );
    assert_eq!(specimen["container"][0]["identifier"][0]["value"], "LATE-1A");
    // Read by id, and nothing after the last page.
    let id = specimen["id"].as_str().unwrap();
    let (status, _, read) = lis.send(Method::GET, &format!("/Specimen/{id}"), None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(read["accessionIdentifier"]["value"], "LATE-1A");
    let next = second["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("/fhir/R4")
        .to_owned();
    let (_, _, third) = lis.send(Method::GET, &next, None, &[]).await;
    assert!(barcodes(&third).is_empty());
}

#[derive(diesel::QueryableByName)]
struct Visit {
    #[diesel(sql_type = SqlUuid)]
    patient: Uuid,
    #[diesel(sql_type = SqlUuid)]
    prescription: Uuid,
    #[diesel(sql_type = SqlUuid)]
    staff: Uuid,
}

async fn visit_of(lis: &Lis) -> (Uuid, Uuid, Uuid) {
    let visit: Visit = diesel::sql_query(format!(
        "SELECT p.patient_id AS patient, p.id AS prescription, s.id AS staff FROM prescriptions p \
         JOIN staff s ON s.lab_id = p.lab_id AND s.role = 'nurse' WHERE p.lab_id = '{}' LIMIT 1",
        lis.lab_id
    ))
    .get_result(&mut lis.cloud.db.conn().await)
    .await
    .unwrap();
    (visit.patient, visit.prescription, visit.staff)
}

fn collection_sql(lis: &Lis, patient: Uuid, prescription: Uuid, staff: Uuid, _name: &str, barcodes: &[&str]) -> String {
    let id = Uuid::now_v7();
    let mut sql = format!(
        "INSERT INTO collections (id, lab_id, patient_id, prescription_id, collected_at, collected_by, device_id, \
         identity_checked, identity_check_method, recorded_at) VALUES ('{id}', '{}', '{patient}', '{prescription}', \
         now(), '{staff}', gen_random_uuid(), true, 'id_document', now());",
        lis.lab_id
    );
    for barcode in barcodes {
        sql.push_str(&format!(
            "INSERT INTO collection_tubes (collection_id, barcode, tube_type, lab_id) \
             VALUES ('{id}', '{barcode}', (SELECT code FROM tube_types LIMIT 1), '{}');",
            lis.lab_id
        ));
    }
    sql
}

fn ndjson_patient(source_id: &str, serial: u16) -> String {
    let mut resource = patient(&female_nir(serial), "Import");
    resource["id"] = json!(source_id);
    resource.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_reports_rejects_is_idempotent_and_resumes() {
    use labedge_api::fhir::import::import_file;
    let lis = lis("system/*.*").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Patient.ndjson");
    let mut lines: Vec<String> = (1..=250).map(|i| ndjson_patient(&format!("src-{i}"), i)).collect();
    let mut wrong_key = female_nir(251);
    wrong_key.replace_range(13.., if &wrong_key[13..] == "01" { "02" } else { "01" });
    lines.insert(
        10,
        patient(&wrong_key, "Broken")
            .to_string()
            .replace("\"resourceType\"", "\"id\":\"src-x\",\"resourceType\""),
    );
    lines.insert(20, json!({"resourceType": "Observation", "id": "o1"}).to_string());
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let patients = "SELECT count(*) AS n FROM patients";
    let before = lis.count(patients).await;

    let mut conn = lis.cloud.db.conn().await;
    let state = import_file(&mut conn, &file, 100, true).await.unwrap();
    assert_eq!(
        (state.lines, state.written, state.unchanged, state.rejected),
        (252, 250, 0, 2)
    );
    assert_eq!(lis.count(patients).await, before + 250);
    let report = std::fs::read_to_string(dir.path().join("Patient.ndjson.rejected.ndjson")).unwrap();
    let rejected: Vec<Value> = report.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejected[0]["line"], 11);
    assert_eq!(rejected[0]["expression"], "Patient.identifier[0].value");
    assert_eq!(rejected[1]["line"], 21);
    assert!(!report.contains(&wrong_key), "the report holds no personal data");

    // Run again from scratch: nothing is written twice, no version moves, the feed hears nothing.
    let head = lis.count("SELECT max(position) AS n FROM change_log").await;
    std::fs::remove_file(dir.path().join("Patient.ndjson.import-state")).unwrap();
    let again = import_file(&mut conn, &file, 100, true).await.unwrap();
    assert_eq!((again.written, again.unchanged, again.rejected), (0, 250, 2));
    assert_eq!(lis.count(patients).await, before + 250);
    assert_eq!(lis.count("SELECT max(position) AS n FROM change_log").await, head);
    assert_eq!(
        lis.count("SELECT count(*) AS n FROM patients WHERE version > 1").await,
        0
    );
    // The same source id is the same patient: a change is a new version of it.
    let changed = dir.path().join("changed.ndjson");
    std::fs::write(&changed, ndjson_patient("src-7", 7).replace("Import", "Renamed") + "\n").unwrap();
    let state = import_file(&mut conn, &changed, 100, true).await.unwrap();
    assert_eq!(state.written, 1);
    assert_eq!(
        lis.count("SELECT count(*) AS n FROM patients WHERE version = 2 AND birth_family_name = 'Renamed'")
            .await,
        1
    );

    // Resumable: a run that stopped after its first batch goes on where it stopped.
    let partial = dir.path().join("More.ndjson");
    let more: Vec<String> = (300..400).map(|i| ndjson_patient(&format!("more-{i}"), i)).collect();
    std::fs::write(&partial, more[..40].join("\n") + "\n").unwrap();
    let first = import_file(&mut conn, &partial, 40, true).await.unwrap();
    assert_eq!(first.lines, 40);
    std::fs::write(&partial, more.join("\n") + "\n").unwrap();
    let resumed = import_file(&mut conn, &partial, 40, true).await.unwrap();
    assert_eq!((resumed.lines, resumed.written, resumed.unchanged), (100, 100, 0));
    assert_eq!(lis.count(patients).await, before + 350);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointment_status_changes_come_back_as_new_versions_in_commit_order() {
    let lis = lis("system/*.*").await;
    let bundle = visit_bundle(&female_nir(906), &lis.lab_id.to_string(), &lis.exam, "ines.v", &soon());
    let (status, _, response) = lis.send(Method::POST, "", Some(&bundle), &[]).await;
    assert_eq!(status, 200, "{response}");
    let appointment = response["entry"][4]["resource"]["id"].as_str().unwrap().to_owned();
    let head = lis.count("SELECT max(position) AS n FROM change_log").await;

    // A tablet checks the patient in: the intake updates the row as it applies the gateway's mutation.
    lis.cloud
        .db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE appointments SET status = 'checked_in', version = version + 1, updated_at = now() WHERE id = '{appointment}'"
        ))
        .await
        .unwrap();
    let (status, _, page) = lis
        .send(Method::GET, &format!("/Appointment?_cursor={head}"), None, &[])
        .await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["resource"]["id"], appointment.as_str());
    assert_eq!(entries[0]["resource"]["status"], "checked-in");
    assert_eq!(entries[0]["resource"]["meta"]["versionId"], "2");
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("/fhir/R4")
        .to_owned();
    let (_, _, after) = lis.send(Method::GET, &next, None, &[]).await;
    assert_eq!(after["entry"].as_array().map_or(0, Vec::len), 0, "each version once");
}
