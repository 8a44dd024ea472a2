//! Group commit: collections waiting at the same moment share one transaction, and each still gets
//! the answer it would have had alone.

use futures_util::future::join_all;

use super::*;

/// The transactions that wrote `ids` (rows written by one transaction share its `xmin`).
async fn transactions(gw: &TestGateway, ids: &[Uuid]) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query("SELECT count(DISTINCT xmin::text) AS n FROM collections WHERE id = ANY ($1)")
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
        .get_result(&mut gw.db.conn().await)
        .await
        .unwrap();
    count.n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_collections_share_commits_and_each_gets_its_own_answer() {
    let lab = lab().await;
    let gw = &lab.gw;
    let before = stored(gw).await;
    let good: Vec<NewCollection> = (0..30)
        .map(|_| collection(lab.patient, lab.prescription, &["EDTA"]))
        .collect();
    let unknown_type: Vec<NewCollection> = (0..4)
        .map(|_| collection(lab.patient, lab.prescription, &["EDTA", "NOPE"]))
        .collect();
    let unknown_patient: Vec<NewCollection> = (0..4)
        .map(|_| collection(Uuid::now_v7(), lab.prescription, &["EDTA"]))
        .collect();
    // Two collections with the same barcode: one is recorded, the other is refused.
    let twin = collection(lab.other_patient, lab.other_prescription, &["SST"]);
    let mut twin_again = collection(lab.patient, lab.prescription, &["SST"]);
    twin_again.tubes[0].barcode = twin.tubes[0].barcode.clone();

    let mut all: Vec<&NewCollection> = Vec::new();
    // Interleaved, so that refused items sit between accepted ones in whatever groups form.
    for i in 0..30 {
        all.push(&good[i]);
        if i < 4 {
            all.push(&unknown_type[i]);
            all.push(&unknown_patient[i]);
        }
        if i == 10 {
            all.push(&twin);
        }
        if i == 11 {
            all.push(&twin_again);
        }
    }
    // The same write twice under one key, sent at the same moment (a tablet's retry racing its
    // first attempt): whichever groups they land in, it is recorded once.
    let retried = collection(lab.patient, lab.prescription, &["EDTA"]);
    all.push(&retried);
    all.push(&retried);
    let mut keys: Vec<String> = all.iter().map(|_| key()).collect();
    let retry_key = keys[keys.len() - 2].clone();
    *keys.last_mut().unwrap() = retry_key;
    let responses = join_all(
        all.iter()
            .zip(&keys)
            .map(|(body, key)| post_collection(&gw.app, &lab.nurse, Some(key), *body)),
    )
    .await;
    let mut twins = Vec::new();
    let mut retries = Vec::new();
    for (body, response) in all.iter().zip(&responses) {
        if body.id == retried.id {
            retries.push(response);
        } else if unknown_type.iter().any(|c| c.id == body.id) {
            assert_eq!(response.status, 422, "{:?}", response.problem());
            assert_problem(response, ErrorCode::ValidationFailed, Some("/tubes/1/tube_type"));
        } else if unknown_patient.iter().any(|c| c.id == body.id) {
            assert_eq!(response.status, 422, "{:?}", response.problem());
            assert_problem(response, ErrorCode::ValidationFailed, Some("/patient_id"));
        } else if body.id == twin.id || body.id == twin_again.id {
            twins.push(response.status.as_u16());
        } else {
            assert_eq!(response.status, 201, "{:?}", response.problem());
            let receipt: CollectionReceipt = response.json();
            assert_eq!(receipt.id, body.id);
        }
    }
    twins.sort_unstable();
    assert_eq!(
        twins,
        [201, 409],
        "one of the two collections with the same barcode is recorded"
    );
    let refused_twin = responses
        .iter()
        .zip(&all)
        .find(|(r, b)| (b.id == twin.id || b.id == twin_again.id) && r.status == 409)
        .map(|(r, _)| r)
        .unwrap();
    assert_problem(refused_twin, ErrorCode::Conflict, Some("/tubes"));
    // Both answered 201 (the second found the first's answer), or the second was told the first is
    // still being written (409, retry).
    assert_eq!(retries[0].status, 201, "{:?}", retries[0].problem());
    match retries[1].status.as_u16() {
        201 => assert_eq!(
            retries[1].json::<CollectionReceipt>(),
            retries[0].json::<CollectionReceipt>()
        ),
        409 => assert_problem(retries[1], ErrorCode::IdempotencyInFlight, None),
        other => panic!("a retry racing its first attempt got {other}"),
    }

    // Exactly the accepted ones are stored, each once, with all that goes with a write.
    let after = stored(gw).await;
    assert_eq!(after.collections, before.collections + 32);
    assert_eq!(after.tubes, before.tubes + 32);
    assert_eq!(after.outbox, before.outbox + 32);
    assert_eq!(after.idempotency, before.idempotency + 32);
    assert_eq!(after.audited_writes, before.audited_writes + 32);
    let outboxed: Vec<Uuid> = outbox_rows(gw)
        .await
        .iter()
        .filter_map(|row| match row.mutation().op {
            RelayedOp::CollectionCreate { collection } => Some(collection.id),
            _ => None,
        })
        .collect();
    for body in &good {
        assert_eq!(outboxed.iter().filter(|id| **id == body.id).count(), 1);
    }

    // They were committed in groups, not one transaction each: 30 requests sent at once, with at
    // most two groups being written at a time, cannot take 30 transactions.
    let ids: Vec<Uuid> = good.iter().map(|c| c.id).collect();
    let transactions = transactions(gw, &ids).await;
    assert!(
        transactions < 30,
        "30 collections sent at once were committed by {transactions} transactions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_s_collections_commit_together_and_a_refused_one_does_not_fail_its_neighbours() {
    let lab = lab().await;
    let gw = &lab.gw;
    let first: Vec<NewCollection> = (0..3)
        .map(|_| collection(lab.patient, lab.prescription, &["EDTA", "SST"]))
        .collect();
    let unknown_type = collection(lab.patient, lab.prescription, &["NOPE"]);
    let batch = SyncPushRequest {
        mutations: vec![
            mutation(MutationOp::CollectionCreate {
                collection: first[0].clone(),
            }),
            mutation(MutationOp::CollectionCreate {
                collection: unknown_type.clone(),
            }),
            mutation(MutationOp::CollectionCreate {
                collection: first[1].clone(),
            }),
            mutation(MutationOp::CollectionCreate {
                collection: first[2].clone(),
            }),
        ],
    };
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &batch).await.expect(200).json();
    let outcomes: Vec<_> = answer.results.iter().map(|r| (r.outcome, r.status)).collect();
    assert_eq!(
        outcomes,
        [
            (MutationOutcome::Applied, 201),
            (MutationOutcome::Rejected, 422),
            (MutationOutcome::Applied, 201),
            (MutationOutcome::Applied, 201),
        ]
    );
    assert_eq!(
        answer.results[1].problem.as_ref().unwrap().errors[0].pointer,
        "/tubes/0/tube_type"
    );
    let ids: Vec<Uuid> = first.iter().map(|c| c.id).collect();
    assert_eq!(transactions(gw, &ids).await, 1, "a push's collections are one group");

    // A statement that fails inside a group (a barcode already recorded) sends each item of the
    // group to be written alone: the others are still applied, in order, once.
    let before = stored(gw).await;
    let mut reused_barcode = collection(lab.patient, lab.prescription, &["EDTA"]);
    reused_barcode.tubes[0].barcode = first[0].tubes[0].barcode.clone();
    let (a, b) = (
        collection(lab.patient, lab.prescription, &["EDTA"]),
        collection(lab.patient, lab.prescription, &["EDTA"]),
    );
    let second = SyncPushRequest {
        mutations: vec![
            mutation(MutationOp::CollectionCreate { collection: a.clone() }),
            mutation(MutationOp::CollectionCreate {
                collection: reused_barcode.clone(),
            }),
            mutation(MutationOp::CollectionCreate { collection: b.clone() }),
        ],
    };
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &second).await.expect(200).json();
    let outcomes: Vec<_> = answer.results.iter().map(|r| (r.outcome, r.status)).collect();
    assert_eq!(
        outcomes,
        [
            (MutationOutcome::Applied, 201),
            (MutationOutcome::Rejected, 409),
            (MutationOutcome::Applied, 201),
        ]
    );
    assert_eq!(answer.results[1].problem.as_ref().unwrap().errors[0].pointer, "/tubes");
    let after = stored(gw).await;
    assert_eq!(after.collections, before.collections + 2);
    assert_eq!(after.outbox, before.outbox + 2);
    assert_eq!(after.idempotency, before.idempotency + 2);
    assert_eq!(after.audited_writes, before.audited_writes + 2);

    // The whole push again: every applied item is a duplicate, nothing is written twice.
    let again: SyncPushResponse = push(&gw.app, &lab.nurse, &second).await.expect(200).json();
    let outcomes: Vec<_> = again.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            MutationOutcome::Duplicate,
            MutationOutcome::Rejected,
            MutationOutcome::Duplicate,
        ]
    );
    assert_eq!(stored(gw).await, after);
}

/// Appointment status changes sent at one moment share commits too, and each gets the answer it
/// would have had alone: the version it saw checked, the transition checked, another lab's or an
/// unknown appointment 404; two changes of one appointment are judged one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appointment_changes_share_commits_and_each_gets_its_own_answer() {
    let lab = lab().await;
    let gw = &lab.gw;
    let at = OffsetDateTime::now_utc() + Duration::hours(1);
    let visits: Vec<AppointmentRow> = (0..20)
        .map(|i| lab_visit(gw.lab_id, lab.patient, at + Duration::minutes(i)))
        .collect();
    edge_data::upsert_appointments(gw, &visits).await;
    let before = stored(gw).await;
    let checked_in = status(AppointmentStatus::CheckedIn);
    // (appointment, If-Match, body, expected status)
    let mut sent: Vec<(Uuid, &str, serde_json::Value, u16)> = visits
        .iter()
        .map(|v| (v.id, "\"1\"", checked_in.clone(), 200))
        .collect();
    sent.insert(3, (visits[0].id, "\"7\"", checked_in.clone(), 412));
    sent.insert(8, (Uuid::now_v7(), "\"1\"", checked_in.clone(), 404));
    sent.insert(15, (visits[1].id, "\"1\"", status(AppointmentStatus::Scheduled), 409));
    let keys: Vec<String> = sent.iter().map(|_| key()).collect();
    let responses = join_all(sent.iter().zip(&keys).map(|((id, version, body, _), key)| {
        patch_appointment(&gw.app, &lab.nurse, *id, Some(version), Some(key), body)
    }))
    .await;
    for ((id, _, _, expected), response) in sent.iter().zip(&responses) {
        // visits[1]'s change to its own status is refused as no transition when judged first, and
        // on its version when judged after the check-in (version 2): never both applied.
        if *id == visits[1].id && *expected == 409 && response.status == 412 {
            continue;
        }
        assert_eq!(response.status, *expected, "{id}: {:?}", response.problem());
        if *expected == 200 {
            let answer: Appointment = response.json();
            assert_eq!(
                (answer.id, answer.version, answer.status),
                (*id, 2, AppointmentStatus::CheckedIn)
            );
        }
    }
    for visit in &visits {
        assert_eq!(appointment_state(gw, visit.id).await, ("checked_in".into(), 2));
    }
    let after = stored(gw).await;
    assert_eq!(after.outbox, before.outbox + 20);
    assert_eq!(after.idempotency, before.idempotency + 20);
    assert_eq!(after.audited_writes, before.audited_writes + 20);

    let ids: Vec<Uuid> = visits.iter().map(|v| v.id).collect();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count =
        diesel::sql_query("SELECT count(DISTINCT xmin::text) AS n FROM appointments WHERE id = ANY ($1)")
            .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&ids)
            .get_result(&mut gw.db.conn().await)
            .await
            .unwrap();
    assert!(
        count.n < 20,
        "20 changes sent at once were committed by {} transactions",
        count.n
    );
}
