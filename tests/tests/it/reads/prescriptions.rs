//! Prescriptions.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prescription_comes_with_its_tube_plan_grouped_by_tube_in_draw_order() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let who = people.lefevre.id;
    let full = prescription(
        gw.lab_id,
        who,
        date!(2026 - 03 - 10),
        &["NFS", "GLY", "HBA1C", "BIOCH", "IONO", "TP"],
    );
    let older = PrescriptionRecord {
        prescription: labedge_schema::sync::PrescriptionRow {
            status: "completed".into(),
            ..prescription(gw.lab_id, who, date!(2025 - 12 - 01), &["NFS"]).prescription
        },
        exams: vec!["NFS".into()],
    };
    let elsewhere = prescription(Uuid::now_v7(), who, date!(2026 - 03 - 12), &["NFS"]);
    edge_data::upsert_prescriptions(&gw, &[full.clone(), older.clone(), elsewhere.clone()]).await;
    let (_, token) = nurse(&gw).await;

    let answer: Prescription = get(&gw, &with_id(routes::PRESCRIPTION, full.prescription.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(answer.patient_id, who);
    assert_eq!(answer.prescriber.rpps, "10003456789");
    assert_eq!(answer.status, PrescriptionStatus::Open);
    assert!(answer.fasting_required, "GLY and IONO need fasting");
    assert_eq!(answer.exams.len(), 6);
    let glycemia = answer.exams.iter().find(|e| e.code == "GLY").unwrap();
    assert_eq!(
        (glycemia.tube_type.as_str(), glycemia.volume_ul, glycemia.fasting),
        ("FLUO", 500, true)
    );
    let plan: Vec<_> = answer
        .tube_plan
        .iter()
        .map(|t| {
            (
                t.tube_type.as_str(),
                t.draw_order,
                t.tube_count,
                t.total_volume_ul,
                t.fasting,
            )
        })
        .collect();
    assert_eq!(
        plan,
        [
            ("CIT", 1, 1, 2_700, false),
            ("SST", 2, 2, 4_000, true),
            ("EDTA", 3, 1, 3_000, false),
            ("FLUO", 4, 1, 500, true),
        ]
    );
    assert_eq!(answer.tube_plan[1].exam_codes, ["BIOCH", "IONO"]);
    assert_eq!(answer.tube_plan[2].cap_color, "lavender");
    assert_eq!(answer.tube_plan[2].additive.as_deref(), Some("K2-EDTA"));

    // The patient's prescriptions at this lab, newest first; another lab's is not there.
    let list: PrescriptionList = get(&gw, &with_id(routes::PATIENT_PRESCRIPTIONS, who), &token)
        .await
        .expect(200)
        .json();
    let listed: Vec<_> = list.items.iter().map(|p| (p.id, p.exam_count, p.status)).collect();
    assert_eq!(
        listed,
        [
            (full.prescription.id, 6, PrescriptionStatus::Open),
            (older.prescription.id, 1, PrescriptionStatus::Completed),
        ]
    );
    assert!(list.items[0].fasting_required && !list.items[1].fasting_required);
    get(&gw, &with_id(routes::PRESCRIPTION, elsewhere.prescription.id), &token)
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_ids_of_another_lab_are_not_found() {
    let gw = TestGateway::start().await;
    people(&gw).await;
    let other_lab_patient = patient("Ailleurs", "Anne", date!(1970 - 01 - 01));
    let elsewhere = prescription(Uuid::now_v7(), other_lab_patient.id, date!(2026 - 01 - 01), &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&elsewhere)).await;
    let (_, token) = nurse(&gw).await;
    for path in [
        // A patient of another lab: this gateway's database does not hold the row.
        with_id(routes::PATIENT, other_lab_patient.id),
        with_id(routes::PATIENT_PRESCRIPTIONS, other_lab_patient.id),
        with_id(routes::PATIENT, Uuid::now_v7()),
        with_id(routes::PRESCRIPTION, Uuid::now_v7()),
        // A prescription row of another lab.
        with_id(routes::PRESCRIPTION, elsewhere.prescription.id),
        "/v1/patients/not-a-uuid".to_owned(),
        "/v1/prescriptions/%27%20OR%201=1--".to_owned(),
    ] {
        let problem = get(&gw, &path, &token).await.expect(404).problem();
        assert_eq!(problem.code, ErrorCode::NotFound, "{path}");
    }
}
