//! Offline push.

use super::*;

/// Each mutation's (id, outcome, status), in the answer's order.
fn verdicts_of(answer: &SyncPushResponse) -> Vec<(Uuid, MutationOutcome, u16)> {
    answer
        .results
        .iter()
        .map(|r| (r.mutation_id, r.outcome, r.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_gives_one_verdict_per_item_and_the_same_push_again_finds_duplicates() {
    let lab = lab().await;
    let gw = &lab.gw;
    let good = collection(lab.patient, lab.prescription, &["EDTA", "SST"]);
    let unknown_patient = collection(Uuid::now_v7(), lab.prescription, &["EDTA"]);
    let batch = SyncPushRequest {
        mutations: vec![
            mutation(MutationOp::CollectionCreate {
                collection: good.clone(),
            }),
            mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn)),
            mutation(MutationOp::CollectionCreate {
                collection: unknown_patient.clone(),
            }),
            // Queued on the same version as the change before it: stale once that one is applied.
            mutation(change(lab.visit, 1, AppointmentStatus::Collected)),
        ],
    };
    let ids: Vec<Uuid> = batch.mutations.iter().map(|m| m.mutation_id).collect();

    let response = push(&gw.app, &lab.nurse, &batch).await.expect(200);
    assert_eq!(response.header("cache-control").as_deref(), Some("no-store"));
    let answer: SyncPushResponse = response.json();
    let verdicts = verdicts_of(&answer);
    assert_eq!(
        verdicts,
        [
            (ids[0], MutationOutcome::Applied, 201),
            (ids[1], MutationOutcome::Applied, 200),
            (ids[2], MutationOutcome::Rejected, 422),
            (ids[3], MutationOutcome::Conflict, 412),
        ]
    );
    assert!(answer.results[0].problem.is_none() && answer.results[1].problem.is_none());
    let rejected = answer.results[2].problem.as_ref().expect("why it was rejected");
    assert_eq!(rejected.code, ErrorCode::ValidationFailed);
    assert_eq!(rejected.errors[0].pointer, "/patient_id");
    let conflict = &answer.results[3];
    assert_eq!(conflict.problem.as_ref().unwrap().code, ErrorCode::VersionMismatch);
    assert_eq!(conflict.current_version, Some(2));

    // What was applied is stored, with its outbox entries; the rest is not.
    assert_eq!(appointment_state(gw, lab.visit).await, ("checked_in".into(), 2));
    let exists = |id: Uuid| async move {
        diesel::select(diesel::dsl::exists(collections::table.find(id)))
            .get_result::<bool>(&mut gw.db.conn().await)
            .await
            .unwrap()
    };
    assert!(exists(good.id).await);
    assert!(!exists(unknown_patient.id).await);
    let kinds: Vec<_> = outbox_rows(gw).await.into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["collection.create", "appointment.update"]);
    let after_first = stored(gw).await;
    assert_eq!(after_first.audited_writes, 2);

    // The same push again (the tablet missed the answer): duplicates for what was applied.
    let again: SyncPushResponse = push(&gw.app, &lab.nurse, &batch).await.expect(200).json();
    let verdicts = verdicts_of(&again);
    assert_eq!(
        verdicts,
        [
            (ids[0], MutationOutcome::Duplicate, 201),
            (ids[1], MutationOutcome::Duplicate, 200),
            (ids[2], MutationOutcome::Rejected, 422),
            (ids[3], MutationOutcome::Conflict, 412),
        ]
    );
    assert_eq!(again.results[3].current_version, Some(2));
    assert_eq!(stored(gw).await, after_first);

    // A mutation id is the idempotency key of its item: reused for another change, it is refused.
    let reused = SyncPushRequest {
        mutations: vec![Mutation {
            mutation_id: ids[1],
            ..mutation(change(lab.other_visit, 1, AppointmentStatus::CheckedIn))
        }],
    };
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &reused).await.expect(200).json();
    assert_eq!(answer.results[0].outcome, MutationOutcome::Rejected);
    assert_eq!(
        answer.results[0].problem.as_ref().unwrap().code,
        ErrorCode::IdempotencyKeyReused
    );
    assert_eq!(stored(gw).await, after_first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_holds_1_to_500_mutations() {
    let lab = lab().await;
    let gw = &lab.gw;
    let baseline = stored(gw).await;
    let batch = |n: usize| SyncPushRequest {
        mutations: (0..n)
            .map(|_| mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn)))
            .collect(),
    };

    for n in [0, 501] {
        let response = push(&gw.app, &lab.nurse, &batch(n)).await.expect(422);
        assert_problem(&response, ErrorCode::ValidationFailed, Some("/mutations"));
    }
    assert_eq!(stored(gw).await, baseline, "a refused batch applies nothing");
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // 500 is fine: the first is applied, the 499 others queued on the same version conflict.
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &batch(500)).await.expect(200).json();
    assert_eq!(answer.results.len(), 500);
    assert_eq!(answer.results[0].outcome, MutationOutcome::Applied);
    assert!(
        answer.results[1..]
            .iter()
            .all(|r| r.outcome == MutationOutcome::Conflict && r.current_version == Some(2))
    );
    assert_eq!(stored(gw).await.outbox, baseline.outbox + 1);
}

/// The push route answers per item: an item refused for a reason the database finds (a barcode
/// already recorded, a unique constraint) must be `rejected` on its own, like any other refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_collection_whose_barcode_is_already_recorded_is_rejected_alone() {
    let lab = lab().await;
    let gw = &lab.gw;
    let recorded = collection(lab.patient, lab.prescription, &["EDTA"]);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &recorded)
        .await
        .expect(201);
    // Offline, the tablet queued a new collection then scanned the same tube again for another one.
    let fine = collection(lab.patient, lab.prescription, &["SST"]);
    let mut same_tube = collection(lab.patient, lab.prescription, &["EDTA"]);
    same_tube.tubes = recorded.tubes.clone();
    let after = collection(lab.patient, lab.prescription, &["FLUO"]);
    let batch = SyncPushRequest {
        mutations: vec![
            mutation(MutationOp::CollectionCreate { collection: fine }),
            mutation(MutationOp::CollectionCreate { collection: same_tube }),
            mutation(MutationOp::CollectionCreate { collection: after }),
        ],
    };
    for _ in 0..2 {
        let response = push(&gw.app, &lab.nurse, &batch).await;
        let answer: SyncPushResponse = response.expect(200).json();
        let outcomes: Vec<_> = answer.results.iter().map(|r| (r.outcome, r.status)).collect();
        assert!(
            matches!(
                outcomes[..],
                [
                    (MutationOutcome::Applied | MutationOutcome::Duplicate, 201),
                    (MutationOutcome::Rejected, 409),
                    (MutationOutcome::Applied | MutationOutcome::Duplicate, 201),
                ]
            ),
            "{outcomes:?}"
        );
        let problem = answer.results[1].problem.as_ref().unwrap();
        assert_eq!(problem.code, ErrorCode::Conflict);
        assert_eq!(problem.errors[0].pointer, "/tubes");
    }
    assert_eq!(stored(gw).await.collections, 3);
}

/// `MutationResult::current_version` is documented as "for `conflict` (and after an applied
/// update)": a tablet that pushed a change needs the new version for its next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_appointment_change_in_a_push_reports_the_new_version() {
    let lab = lab().await;
    let gw = &lab.gw;
    let batch = SyncPushRequest {
        mutations: vec![mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn))],
    };
    let answer: SyncPushResponse = push(&gw.app, &lab.nurse, &batch).await.expect(200).json();
    assert_eq!(answer.results[0].outcome, MutationOutcome::Applied);
    assert_eq!(answer.results[0].current_version, Some(2));
    let again: SyncPushResponse = push(&gw.app, &lab.nurse, &batch).await.expect(200).json();
    assert_eq!(again.results[0].outcome, MutationOutcome::Duplicate);
    assert_eq!(again.results[0].current_version, Some(2));
}
