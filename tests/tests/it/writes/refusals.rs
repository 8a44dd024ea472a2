//! Bad input: refused with the field named, never a 5xx, nothing stored.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_collections_are_refused_naming_the_field_and_leave_nothing_behind() {
    let lab = lab().await;
    let gw = &lab.gw;
    let recorded = collection(lab.patient, lab.prescription, &["EDTA", "SST"]);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &recorded)
        .await
        .expect(201);
    let baseline = stored(gw).await;
    let good = || collection(lab.patient, lab.prescription, &["EDTA"]);

    let mut cases: Vec<(&str, NewCollection, u16, ErrorCode, &str)> = Vec::new();
    let mut body = good();
    body.patient_id = Uuid::now_v7();
    cases.push(("unknown patient", body, 422, ErrorCode::ValidationFailed, "/patient_id"));
    let mut body = good();
    body.prescription_id = lab.other_prescription;
    cases.push((
        "another patient's prescription",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/prescription_id",
    ));
    let mut body = good();
    body.prescription_id = Uuid::now_v7();
    cases.push((
        "unknown prescription",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/prescription_id",
    ));
    let mut body = good();
    body.appointment_id = Some(lab.other_visit);
    cases.push((
        "another patient's appointment",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/appointment_id",
    ));
    let mut body = good();
    body.tubes[0].tube_type = "HEPARINE".into();
    cases.push((
        "unknown tube type",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/tubes/0/tube_type",
    ));
    let body = collection(lab.patient, lab.prescription, &["EDTA", "HEPARINE"]);
    cases.push((
        "unknown second tube type",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/tubes/1/tube_type",
    ));
    let mut body = good();
    body.collected_at = OffsetDateTime::now_utc() + Duration::minutes(10);
    cases.push((
        "collected in the future",
        body,
        422,
        ErrorCode::ValidationFailed,
        "/collected_at",
    ));
    let mut body = good();
    body.tubes.push(recorded.tubes[1].clone());
    cases.push(("a barcode already recorded", body, 409, ErrorCode::Conflict, "/tubes"));
    let mut body = good();
    body.id = recorded.id;
    cases.push((
        "a collection id already recorded",
        body,
        409,
        ErrorCode::Conflict,
        "/id",
    ));

    for (case, body, code, error, pointer) in cases {
        let response = post_collection(&gw.app, &lab.nurse, Some(&key()), &body).await;
        assert_eq!(response.status.as_u16(), code, "{case}: {}", response.text());
        let problem = response.problem();
        assert_eq!(problem.code, error, "{case}: {problem:?}");
        let pointers: Vec<_> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, [pointer], "{case}");
        assert_eq!(stored(gw).await, baseline, "{case}: nothing stored");
    }

    // Fields the gateway owns cannot be sent (mass assignment).
    for (field, value) in [
        ("lab_id", json!(Uuid::now_v7())),
        ("collected_by", json!(Uuid::now_v7())),
        ("device_id", json!(Uuid::now_v7())),
        ("recorded_at", json!("2025-03-14T09:00:00Z")),
    ] {
        let mut body = serde_json::to_value(good()).unwrap();
        body[field] = value;
        let response = post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
            .await
            .expect(422);
        let problem = response.problem();
        assert_eq!(problem.code, ErrorCode::ValidationFailed, "{field}");
        assert_eq!(problem.errors[0].pointer, format!("/{field}"), "{field}");
        assert_eq!(problem.errors[0].code, "unknown_field", "{field}");
        assert_eq!(stored(gw).await, baseline, "{field}: nothing stored");
    }

    // A home sampler records only for the patients of their own appointments.
    let sampler = tablet(gw, HOME_SAMPLER).await;
    let refused = post_collection(&gw.app, &sampler, Some(&key()), &good())
        .await
        .expect(422);
    assert_problem(&refused, ErrorCode::ValidationFailed, Some("/patient_id"));
    assert_eq!(stored(gw).await, baseline, "home sampler: nothing stored");

    // Five minutes of tolerance for a tablet clock that runs ahead.
    let mut ahead = good();
    ahead.collected_at = OffsetDateTime::now_utc() + Duration::minutes(2);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &ahead)
        .await
        .expect(201);
    // Collections made hours ago while offline are fine.
    let mut late = good();
    late.collected_at = OffsetDateTime::now_utc() - Duration::hours(9);
    post_collection(&gw.app, &lab.nurse, Some(&key()), &late)
        .await
        .expect(201);
    assert_eq!(stored(gw).await.collections, baseline.collections + 2);
}
