//! Appointment changes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointment_changes_follow_the_state_machine_against_the_version_seen() {
    let lab = lab().await;
    let gw = &lab.gw;
    let at = OffsetDateTime::now_utc();
    let done = AppointmentRow {
        status: "collected".into(),
        version: 3,
        ..lab_visit(gw.lab_id, lab.patient, at)
    };
    edge_data::upsert_appointments(gw, std::slice::from_ref(&done)).await;
    let nurse = &lab.nurse;
    let baseline = stored(gw).await;
    let checked_in = status(AppointmentStatus::CheckedIn);

    // No If-Match: 428.
    let response = patch_appointment(&gw.app, nurse, lab.visit, None, Some(&key()), &checked_in)
        .await
        .expect(428);
    assert_problem(&response, ErrorCode::PreconditionRequired, None);
    // A weak or listed tag names no one version: 400.
    for bad in ["W/\"1\"", "*", "\"1\", \"2\""] {
        let response = patch_appointment(&gw.app, nurse, lab.visit, Some(bad), Some(&key()), &checked_in)
            .await
            .expect(400);
        assert_problem(&response, ErrorCode::BadRequest, None);
    }
    // Another version: 412 with the current one.
    let response = patch_appointment(&gw.app, nurse, lab.visit, Some("\"7\""), Some(&key()), &checked_in)
        .await
        .expect(412);
    assert_problem(&response, ErrorCode::VersionMismatch, None);
    assert_eq!(response.header("etag").as_deref(), Some("\"1\""));
    // From a final status, nowhere: 409.
    for to in [
        AppointmentStatus::Scheduled,
        AppointmentStatus::CheckedIn,
        AppointmentStatus::Cancelled,
    ] {
        let response = patch_appointment(&gw.app, nurse, done.id, Some("\"3\""), Some(&key()), &status(to))
            .await
            .expect(409);
        assert_problem(&response, ErrorCode::InvalidTransition, None);
    }
    // Staying put is no transition either.
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key()),
        &status(AppointmentStatus::Scheduled),
    )
    .await
    .expect(409);
    assert_problem(&response, ErrorCode::InvalidTransition, None);
    // No such appointment: 404; a body out of the contract: 422.
    let response = patch_appointment(&gw.app, nurse, Uuid::now_v7(), Some("\"1\""), Some(&key()), &checked_in)
        .await
        .expect(404);
    assert_problem(&response, ErrorCode::NotFound, None);
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key()),
        &json!({"status": "checked_in", "version": 2}),
    )
    .await
    .expect(422);
    assert_problem(&response, ErrorCode::ValidationFailed, Some("/version"));
    assert_eq!(stored(gw).await, baseline, "refused changes store nothing");
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));
    assert_eq!(appointment_state(gw, done.id).await, ("collected".into(), 3));

    // scheduled → checked_in against version 1: 200, version 2, ETag, outbox entry, audit.
    let response = patch_appointment(&gw.app, nurse, lab.visit, Some("\"1\""), Some(&key()), &checked_in)
        .await
        .expect(200);
    assert_eq!(response.header("etag").as_deref(), Some("\"2\""));
    let appointment: Appointment = response.json();
    assert_eq!(
        (appointment.id, appointment.status, appointment.version),
        (lab.visit, AppointmentStatus::CheckedIn, 2)
    );
    assert_eq!(appointment_state(gw, lab.visit).await, ("checked_in".into(), 2));
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 1);
    let entity = format!("appointment:{}", lab.visit);
    assert_eq!(
        (
            entries[0].kind.as_str(),
            entries[0].lane,
            entries[0].entity_key.as_str()
        ),
        ("appointment.update", 0, entity.as_str())
    );
    let relayed = entries[0].mutation();
    assert_eq!(
        relayed.op,
        RelayedOp::AppointmentUpdate {
            appointment_id: lab.visit,
            if_version: 1,
            patch: AppointmentPatch {
                status: AppointmentStatus::CheckedIn,
                reason: None
            },
        }
    );
    assert_eq!(relayed.staff_id, Some(gw.staff_id(NURSE.0)));
    assert_eq!(relayed.device_id, Some(nurse.device));
    assert_eq!(
        audited_writes(gw).await,
        [AuditRow {
            staff_id: Some(gw.staff_id(NURSE.0)),
            device_id: Some(nurse.device),
            action: "appointment.update".into(),
            patient_id: Some(lab.patient),
            resource: Some(entity.clone()),
        }]
    );

    // Version 1 is now stale; version 2 moves on to collected, with a reason.
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key()),
        &status(AppointmentStatus::Collected),
    )
    .await
    .expect(412);
    assert_eq!(response.header("etag").as_deref(), Some("\"2\""));
    let response = patch_appointment(
        &gw.app,
        nurse,
        lab.visit,
        Some("2"),
        Some(&key()),
        &json!({"status": "collected", "reason": "bilan fait"}),
    )
    .await
    .expect(200);
    let appointment: Appointment = response.json();
    assert_eq!(
        (
            appointment.status,
            appointment.version,
            appointment.status_reason.as_deref()
        ),
        (AppointmentStatus::Collected, 3, Some("bilan fait"))
    );
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 2);
    match entries[1].mutation().op {
        RelayedOp::AppointmentUpdate { if_version, .. } => assert_eq!(if_version, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(audited_writes(gw).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_sampler_changes_and_records_only_for_their_own_appointments() {
    let lab = lab().await;
    let gw = &lab.gw;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let at = OffsetDateTime::now_utc();
    let mine = home_visit(gw.lab_id, lab.other_patient, me, at, 1);
    let nurses = home_visit(gw.lab_id, lab.patient, gw.staff_id(NURSE.0), at, 1);
    edge_data::upsert_appointments(gw, &[mine.clone(), nurses.clone()]).await;
    let sampler = tablet(gw, HOME_SAMPLER).await;
    let baseline = stored(gw).await;
    let collected = status(AppointmentStatus::Collected);

    // Not theirs: 404 whatever the version, so nothing about it leaks.
    for (id, version) in [(nurses.id, "\"1\""), (nurses.id, "\"9\""), (lab.visit, "\"1\"")] {
        let response = patch_appointment(&gw.app, &sampler, id, Some(version), Some(&key()), &collected)
            .await
            .expect(404);
        assert_problem(&response, ErrorCode::NotFound, None);
    }
    assert_eq!(stored(gw).await, baseline);
    assert_eq!(appointment_state(gw, nurses.id).await, ("scheduled".into(), 1));

    // Theirs: scheduled → collected (no check-in desk at home), and the collection of its patient.
    let response = patch_appointment(&gw.app, &sampler, mine.id, Some("\"1\""), Some(&key()), &collected)
        .await
        .expect(200);
    assert_eq!(response.json::<Appointment>().status, AppointmentStatus::Collected);
    let mut body = collection(lab.other_patient, lab.other_prescription, &["EDTA"]);
    body.appointment_id = Some(mine.id);
    post_collection(&gw.app, &sampler, Some(&key()), &body)
        .await
        .expect(201);
    let relayed: Vec<_> = outbox_rows(gw).await.iter().map(OutboxRow::mutation).collect();
    assert_eq!(relayed.len(), 2);
    assert!(
        relayed
            .iter()
            .all(|m| m.staff_id == Some(me) && m.device_id == Some(sampler.device))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_appointment_change_gets_the_stored_answer() {
    let lab = lab().await;
    let gw = &lab.gw;
    let nurse = &lab.nurse;
    let key = key();
    let checked_in = status(AppointmentStatus::CheckedIn);
    let first = patch_appointment(&gw.app, nurse, lab.visit, Some("\"1\""), Some(&key), &checked_in)
        .await
        .expect(200);
    let after_first = stored(gw).await;

    // The same change again (the tablet missed the answer): the stored answer, although version 1
    // is no longer current.
    let replay = patch_appointment(&gw.app, nurse, lab.visit, Some("\"1\""), Some(&key), &checked_in)
        .await
        .expect(200);
    assert_eq!(replay.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(replay.header("etag").as_deref(), Some("\"2\""));
    assert_eq!(replay.json::<serde_json::Value>(), first.json::<serde_json::Value>());
    assert_eq!(stored(gw).await, after_first);
    assert_eq!(appointment_state(gw, lab.visit).await, ("checked_in".into(), 2));

    // The same key for another change, or against another version: 422.
    let cancelled = status(AppointmentStatus::Cancelled);
    for (version, body) in [("\"1\"", &cancelled), ("\"2\"", &checked_in), ("\"2\"", &cancelled)] {
        let response = patch_appointment(&gw.app, nurse, lab.visit, Some(version), Some(&key), body)
            .await
            .expect(422);
        assert_problem(&response, ErrorCode::IdempotencyKeyReused, None);
    }
    // The same key on another appointment: 422 too.
    let response = patch_appointment(&gw.app, nurse, lab.other_visit, Some("\"1\""), Some(&key), &checked_in)
        .await
        .expect(422);
    assert_problem(&response, ErrorCode::IdempotencyKeyReused, None);
    // No key: 400.
    let response = patch_appointment(&gw.app, nurse, lab.visit, Some("\"2\""), None, &cancelled)
        .await
        .expect(400);
    assert_problem(&response, ErrorCode::IdempotencyKeyMissing, None);
    assert_eq!(stored(gw).await, after_first);
}
