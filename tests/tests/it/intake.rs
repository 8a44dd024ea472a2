//! The cloud's mutation intake (issue 5): applied at most once whichever route a mutation came by,
//! a verdict per item, collections in bulk with bad ones rejected alone, appointment changes checked
//! against their version and the status transitions, another lab refused.

use actix_web::test::TestRequest;
use diesel_async::RunQueryDsl;
use labedge_protocol::relay::{AckOutcome, KnownMutations, MutationAcks, RelayedMutation, RelayedOp};
use labedge_tests::app::TestApp;
use labedge_tests::cloud::{TestCloud, Visit, relayed, relayed_collection};
use mobile_contracts::problem::ErrorCode;
use uuid::Uuid;

struct Lab {
    cloud: TestCloud,
    app: TestApp,
    code: String,
    visits: Vec<Visit>,
}

async fn lab() -> Lab {
    let (cloud, summary) = TestCloud::seeded(150, 2).await;
    let code = summary.proximity_labs().next().unwrap().code.clone();
    let visits: Vec<Visit> = diesel::sql_query(format!(
        "SELECT l.id AS lab, a.id AS appointment, a.patient_id AS patient, a.prescription_id AS prescription, s.id AS staff, a.version \
         FROM appointments a JOIN labs l ON l.id = a.lab_id JOIN staff s ON s.lab_id = l.id AND s.role = 'nurse' \
         WHERE l.code = '{code}' AND a.status = 'scheduled' AND a.prescription_id IS NOT NULL ORDER BY a.id LIMIT 20"
    ))
    .load(&mut cloud.db.conn().await)
    .await
    .unwrap();
    let app = cloud.gateway_app(&code).await;
    Lab {
        cloud,
        app,
        code,
        visits,
    }
}

fn appointment_change(visit: &Visit, if_version: i64, status: &str) -> RelayedMutation {
    relayed(
        visit.staff,
        serde_json::json!({
            "kind": "appointment.update", "appointment_id": visit.appointment, "if_version": if_version,
            "patch": {"status": status}
        }),
    )
}

async fn send(lab: &Lab, mutations: &[RelayedMutation]) -> Vec<(AckOutcome, Option<String>, Option<i64>)> {
    let acks: MutationAcks = lab
        .app
        .send(
            TestRequest::post()
                .uri(&format!("/v1/labs/{}/mutations", lab.code))
                .set_json(serde_json::json!({ "mutations": mutations })),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(acks.results.len(), mutations.len(), "one verdict per mutation");
    for (ack, mutation) in acks.results.iter().zip(mutations) {
        assert_eq!(ack.mutation_id, mutation.mutation_id, "in the batch's order");
    }
    acks.results
        .into_iter()
        .map(|a| (a.outcome, a.reason, a.current_version))
        .collect()
}

async fn count(lab: &Lab, sql: &str) -> i64 {
    labedge_tests::db::count(&mut lab.cloud.db.conn().await, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_is_applied_once_whichever_route_it_came_by() {
    let lab = lab().await;
    let batch: Vec<RelayedMutation> = lab.visits[..5]
        .iter()
        .enumerate()
        .map(|(i, v)| relayed_collection(v, &format!("ONCE{i:08}")))
        .collect();
    assert!(send(&lab, &batch).await.iter().all(|(o, ..)| *o == AckOutcome::Applied));
    // The same batch again (a lost acknowledgement, or the other upstream): duplicates.
    assert!(
        send(&lab, &batch)
            .await
            .iter()
            .all(|(o, ..)| *o == AckOutcome::Duplicate)
    );
    // The same collection relayed under another mutation id: still one collection.
    let mut again = batch[0].clone();
    again.mutation_id = Uuid::now_v7();
    assert_eq!(send(&lab, &[again]).await[0].0, AckOutcome::Duplicate);
    // A mutation twice in one batch counts once.
    let twice = relayed_collection(&lab.visits[6], "TWICE0001");
    let verdicts = send(&lab, &[twice.clone(), twice]).await;
    assert_eq!(
        (verdicts[0].0, verdicts[1].0),
        (AckOutcome::Applied, AckOutcome::Duplicate)
    );
    assert_eq!(count(&lab, "SELECT count(*) AS n FROM collections").await, 6);
    assert_eq!(count(&lab, "SELECT count(*) AS n FROM collection_tubes").await, 6);
    assert_eq!(
        count(
            &lab,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'collection.create'"
        )
        .await,
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_collections_are_rejected_alone_and_the_rest_of_the_batch_applies() {
    let lab = lab().await;
    send(&lab, &[relayed_collection(&lab.visits[0], "TAKEN0001")]).await;
    let mut unknown_patient = relayed_collection(&lab.visits[2], "FRESH0002");
    if let RelayedOp::CollectionCreate { collection } = &mut unknown_patient.op {
        collection.patient_id = Uuid::now_v7();
    }
    let batch = vec![
        relayed_collection(&lab.visits[1], "FRESH0001"),
        relayed_collection(&lab.visits[3], "TAKEN0001"),
        unknown_patient,
        relayed_collection(&lab.visits[4], "FRESH0003"),
    ];
    let verdicts = send(&lab, &batch).await;
    assert_eq!(verdicts[0].0, AckOutcome::Applied);
    assert_eq!(verdicts[1].0, AckOutcome::Rejected);
    assert!(
        verdicts[1].1.as_deref().unwrap().starts_with("duplicate_barcode"),
        "{:?}",
        verdicts[1]
    );
    assert_eq!(verdicts[2].0, AckOutcome::Rejected);
    assert!(
        verdicts[2].1.as_deref().unwrap().starts_with("patient_out_of_scope"),
        "{:?}",
        verdicts[2]
    );
    assert_eq!(verdicts[3].0, AckOutcome::Applied);
    assert_eq!(count(&lab, "SELECT count(*) AS n FROM collections").await, 3);
    // A rejection is remembered: the same mutation again gets the same verdict.
    assert_eq!(send(&lab, &batch[1..2]).await[0].0, AckOutcome::Rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointment_changes_are_checked_against_their_version_and_the_transitions() {
    let lab = lab().await;
    let visit = &lab.visits[0];
    let verdicts = send(&lab, &[appointment_change(visit, visit.version, "checked_in")]).await;
    assert_eq!(verdicts[0].0, AckOutcome::Applied);
    // Made on the old version: a conflict, with the current version.
    let stale = send(&lab, &[appointment_change(visit, visit.version, "cancelled")]).await;
    assert_eq!(
        (stale[0].0, stale[0].2),
        (AckOutcome::Conflict, Some(visit.version + 1))
    );
    // Against the current version but not an allowed transition: rejected.
    let back = send(&lab, &[appointment_change(visit, visit.version + 1, "scheduled")]).await;
    assert_eq!(back[0].0, AckOutcome::Rejected);
    assert!(back[0].1.as_deref().unwrap().starts_with("invalid_transition"));
    assert_eq!(
        count(
            &lab,
            &format!(
                "SELECT count(*) AS n FROM appointments WHERE id = '{}' AND status = 'checked_in' AND version = {}",
                visit.appointment,
                visit.version + 1
            )
        )
        .await,
        1
    );
    // The change reaches the feed (the other gateways and this one hear of the new version).
    assert!(
        count(
            &lab,
            &format!(
                "SELECT count(*) AS n FROM change_log WHERE entity = 'appointment' AND entity_id = '{}'",
                visit.appointment
            )
        )
        .await
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_labs_mutations_and_oversized_batches_are_refused() {
    let lab = lab().await;
    let refused = lab
        .app
        .send(
            TestRequest::post()
                .uri("/v1/labs/CENTRAL/mutations")
                .set_json(serde_json::json!({"mutations": []})),
        )
        .await
        .expect(403);
    assert_eq!(refused.problem().code, ErrorCode::Forbidden);
    lab.app
        .clone_without_certificate()
        .send(
            TestRequest::post()
                .uri(&format!("/v1/labs/{}/mutations", lab.code))
                .set_json(serde_json::json!({"mutations": []})),
        )
        .await
        .expect(401);
    let many: Vec<RelayedMutation> = (0..5_001)
        .map(|i| relayed_collection(&lab.visits[0], &format!("MANY{i:06}")))
        .collect();
    let oversized = lab
        .app
        .send(
            TestRequest::post()
                .uri(&format!("/v1/labs/{}/mutations", lab.code))
                .set_json(serde_json::json!({"mutations": many})),
        )
        .await
        .expect(422);
    assert_eq!(oversized.problem().errors[0].pointer, "/mutations");
    lab.app
        .send(
            TestRequest::post()
                .uri(&format!("/v1/labs/{}/mutations", lab.code))
                .insert_header(("content-type", "application/json"))
                .set_payload("{not json"),
        )
        .await
        .expect(400);
    assert_eq!(count(&lab, "SELECT count(*) AS n FROM collections").await, 0);
}

#[derive(diesel::QueryableByName)]
struct Code {
    #[diesel(sql_type = diesel::sql_types::Text)]
    code: String,
}

/// `POST /v1/labs/{lab}/mutations/known` (issue 17, item 5): which of the ids the cloud holds for
/// the asking lab, never another lab's; the lab's own path only; at most 1,000 ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_says_which_mutations_it_holds_for_the_asking_lab_only() {
    let lab = lab().await;
    let batch: Vec<RelayedMutation> = lab.visits[..3]
        .iter()
        .enumerate()
        .map(|(i, v)| relayed_collection(v, &format!("KNOWN{i:04}")))
        .collect();
    send(&lab, &batch).await;
    let mut ids: Vec<Uuid> = batch.iter().map(|m| m.mutation_id).collect();
    let never_sent = Uuid::now_v7();
    ids.push(never_sent);
    let known_path = format!("/v1/labs/{}/mutations/known", lab.code);
    async fn ask(app: &TestApp, path: &str, ids: &[Uuid]) -> labedge_tests::app::TestResponse {
        app.send(
            TestRequest::post()
                .uri(path)
                .set_json(serde_json::json!({ "ids": ids })),
        )
        .await
    }
    let answer: KnownMutations = ask(&lab.app, &known_path, &ids).await.expect(200).json();
    let mut known = answer.known;
    known.sort();
    let mut sent: Vec<Uuid> = batch.iter().map(|m| m.mutation_id).collect();
    sent.sort();
    assert_eq!(known, sent, "the three applied, not the one never sent");

    // Another lab asking about the same ids, on its own path: none is its own.
    let other: Code = diesel::sql_query(format!(
        "SELECT code FROM labs WHERE code NOT IN ('{}', 'CENTRAL') ORDER BY code LIMIT 1",
        lab.code
    ))
    .get_result(&mut lab.cloud.db.conn().await)
    .await
    .unwrap();
    let other_app = lab.cloud.gateway_app(&other.code).await;
    let theirs: KnownMutations = ask(&other_app, &format!("/v1/labs/{}/mutations/known", other.code), &ids)
        .await
        .expect(200)
        .json();
    assert!(theirs.known.is_empty(), "{:?}", theirs.known);
    // On this lab's path, or without a certificate: refused.
    let forbidden = ask(&other_app, &known_path, &ids).await.expect(403);
    assert_eq!(forbidden.problem().code, ErrorCode::Forbidden);
    ask(&lab.app.clone_without_certificate(), &known_path, &ids)
        .await
        .expect(401);
    // Too many ids, or a field it does not know: 422 naming it.
    let many: Vec<Uuid> = (0..1_001).map(|_| Uuid::now_v7()).collect();
    let too_many = ask(&lab.app, &known_path, &many).await.expect(422).problem();
    assert_eq!(too_many.errors[0].pointer, "/ids");
    let stray = lab
        .app
        .send(
            TestRequest::post()
                .uri(&known_path)
                .set_json(serde_json::json!({ "ids": [], "lab_id": never_sent })),
        )
        .await
        .expect(422)
        .problem();
    assert_eq!(stray.errors[0].pointer, "/lab_id");
}
