//! Patients and roles.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_carry_their_identity_status_and_read_only_traits() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;

    let qualified: Patient = get(&gw, &with_id(routes::PATIENT, people.lefevre.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(qualified.identity_status, IdentityStatus::Qualified);
    assert_eq!(qualified.read_only, PatientIdentity::STRICT_TRAITS.map(String::from));
    assert_eq!(qualified.identity.birth_family_name.as_str(), "Lefèvre");
    let nir = qualified.identity.nir.unwrap();
    assert_eq!(
        (nir.value.as_str(), nir.masked),
        (people.lefevre.nir.as_deref().unwrap(), false)
    );
    assert_eq!(qualified.identity.ins_oid.as_deref(), Some("1.2.250.1.213.1.4.8"));
    assert_eq!(qualified.contact.phone.unwrap().as_str(), "+33612345678");
    assert_eq!(qualified.contact.address.unwrap().city, "Paris");
    assert_eq!(qualified.version, 1);

    let provisional: Patient = get(&gw, &with_id(routes::PATIENT, people.married.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(provisional.identity_status, IdentityStatus::Provisional);
    assert!(
        provisional.read_only.is_empty(),
        "a provisional identity may be corrected"
    );
    assert_eq!(provisional.identity.used_family_name.unwrap().as_str(), "Lefort");
    assert!(provisional.identity.nir.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_sampler_sees_masked_nirs_and_only_the_patients_of_their_appointments() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let today = edge_data::local_today(&gw).await;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let mine = people.lefevre.clone();
    let theirs = people.martins[0].clone();
    let at = edge_data::local_time(&gw, today, 9, 0).await;
    edge_data::upsert_appointments(
        &gw,
        &[
            home_visit(gw.lab_id, mine.id, me, at, 1),
            home_visit(gw.lab_id, theirs.id, gw.staff_id(NURSE.0), at, 1),
        ],
    )
    .await;
    let my_prescription = prescription(gw.lab_id, mine.id, today, &["NFS"]);
    let their_prescription = prescription(gw.lab_id, theirs.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, &[my_prescription.clone(), their_prescription.clone()]).await;
    let (_, token) = sampler(&gw).await;

    let patient: Patient = get(&gw, &with_id(routes::PATIENT, mine.id), &token)
        .await
        .expect(200)
        .json();
    let nir = patient.identity.nir.unwrap();
    assert!(nir.masked);
    assert!(nir.value.contains("**"));
    assert!(!nir.value.contains(&mine.nir.as_ref().unwrap()[7..13]), "{}", nir.value);
    assert_eq!(patient.read_only.len(), PatientIdentity::STRICT_TRAITS.len());
    let list: PrescriptionList = get(&gw, &with_id(routes::PATIENT_PRESCRIPTIONS, mine.id), &token)
        .await
        .expect(200)
        .json();
    assert_eq!(list.items.len(), 1);
    get(
        &gw,
        &with_id(routes::PRESCRIPTION, my_prescription.prescription.id),
        &token,
    )
    .await
    .expect(200);

    // Another sampler's patient does not exist for them, and neither do its prescriptions; the
    // nurse's cache fill does not open the door.
    let (_, nurse_token) = nurse(&gw).await;
    get(&gw, &with_id(routes::PATIENT, theirs.id), &nurse_token)
        .await
        .expect(200);
    for path in [
        with_id(routes::PATIENT, theirs.id),
        with_id(routes::PATIENT_PRESCRIPTIONS, theirs.id),
        with_id(routes::PRESCRIPTION, their_prescription.prescription.id),
        with_id(routes::PATIENT, people.dalmeida.id),
    ] {
        let problem = get(&gw, &path, &token).await.expect(404).problem();
        assert_eq!(problem.code, ErrorCode::NotFound, "{path}");
    }
    // Their search finds only their patients, NIR masked.
    let page: PatientPage = get(&gw, &search("lef"), &token).await.expect(200).json();
    assert_eq!(page.items.len(), 1);
    assert!(page.items[0].nir.as_ref().unwrap().masked);
    let page: PatientPage = get(&gw, &search("martin"), &token).await.expect(200).json();
    assert!(page.items.is_empty());
    // The nurse searches the whole lab.
    assert_eq!(names(&gw, "lef", &nurse_token).await, ["Bernard", "Lefèvre"]);
}
