//! Delta pull.

use std::sync::Arc;

use labedge_edge_gateway::relay::{Pass, Relay};
use labedge_tests::fake_upstream::Behaviour;

use super::*;

async fn pull(gw: &TestGateway, token: &str, cursor: Option<&str>) -> SyncPullResponse {
    let path = match cursor {
        Some(cursor) => format!("{}?cursor={}", routes::SYNC_PULL, enc(cursor)),
        None => routes::SYNC_PULL.to_owned(),
    };
    get(gw, &path, token).await.expect(200).json()
}

fn removed(page: &SyncPullResponse, entity: SyncEntity) -> Vec<Uuid> {
    page.removals
        .iter()
        .filter(|r| r.entity == entity)
        .map(|r| r.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_pull_sends_the_scope_then_what_changed_and_what_left() {
    let gw = TestGateway::start().await;
    let data = round_data(&gw, 3).await;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let (_, token) = sampler(&gw).await;

    // First pull: the whole scope (today's round and tomorrow's 00:30 visit), reset.
    let first = pull(&gw, &token, None).await;
    assert!(first.reset && !first.has_more);
    assert_eq!(first.appointments.len(), 4);
    assert_eq!(first.patients.len(), 4, "three round patients and the 00:30 visit's");
    assert!(
        first
            .patients
            .iter()
            .all(|p| p.identity.nir.as_ref().is_none_or(|n| n.masked))
    );
    // Booked prescriptions, and both open prescriptions of the patient booked without one;
    // none for the 00:30 visit's patient, who has none.
    assert_eq!(first.prescriptions.len(), 1 + 2 + 1);
    assert!(first.removals.is_empty());

    // Nothing changed: nothing comes, the cursor stays.
    let quiet = pull(&gw, &token, Some(&first.cursor)).await;
    assert!(!quiet.reset && quiet.appointments.is_empty() && quiet.patients.is_empty());
    assert_eq!(quiet.cursor, first.cursor);

    // A patient of the scope changes: only they come.
    let changed = PatientRow {
        phone: Some("+33611111111".into()),
        version: 2,
        ..data.patients[1].clone()
    };
    edge_data::upsert_patients(&gw, std::slice::from_ref(&changed)).await;
    // A patient out of scope changes: at most a removal the tablet ignores.
    let outsider = patient("Dehors", "Zoé", date!(1999 - 09 - 09));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&outsider)).await;
    let second = pull(&gw, &token, Some(&first.cursor)).await;
    assert!(!second.reset);
    assert_eq!(second.patients.len(), 1);
    assert_eq!(second.patients[0].id, changed.id);
    assert_eq!(
        second.patients[0].contact.phone.as_ref().unwrap().as_str(),
        "+33611111111"
    );
    assert!(second.appointments.is_empty() && second.prescriptions.is_empty());
    assert_eq!(removed(&second, SyncEntity::Patient), [outsider.id]);

    // An appointment reassigned to someone else leaves: it, its patient (no other visit of theirs
    // in scope) and their prescriptions come as removals.
    let leaving = AppointmentRow {
        assigned_staff_id: Some(gw.staff_id(NURSE.0)),
        version: 2,
        ..data.visits[2].clone()
    };
    edge_data::upsert_appointments(&gw, std::slice::from_ref(&leaving)).await;
    let third = pull(&gw, &token, Some(&second.cursor)).await;
    assert_eq!(removed(&third, SyncEntity::Appointment), [leaving.id]);
    assert_eq!(removed(&third, SyncEntity::Patient), [leaving.patient_id]);
    let mut their_prescriptions: Vec<Uuid> = data
        .prescriptions
        .iter()
        .filter(|p| p.prescription.patient_id == leaving.patient_id)
        .map(|p| p.prescription.id)
        .collect();
    their_prescriptions.sort();
    assert_eq!(removed(&third, SyncEntity::Prescription), their_prescriptions);
    assert!(third.appointments.is_empty() && third.patients.is_empty());

    // An appointment assigned to them arrives with its patient and prescription.
    let newcomer = patient("Nouvelle", "Inès", date!(2001 - 02 - 03));
    edge_data::upsert_patients(&gw, std::slice::from_ref(&newcomer)).await;
    let their_rx = prescription(gw.lab_id, newcomer.id, data.today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&their_rx)).await;
    let at = edge_data::local_time(&gw, data.today.next_day().unwrap(), 11, 0).await;
    let arriving = home_visit(gw.lab_id, newcomer.id, me, at, 2);
    edge_data::upsert_appointments(&gw, std::slice::from_ref(&arriving)).await;
    let fourth = pull(&gw, &token, Some(&third.cursor)).await;
    assert_eq!(
        fourth.appointments.iter().map(|a| a.id).collect::<Vec<_>>(),
        [arriving.id]
    );
    assert_eq!(fourth.patients.iter().map(|p| p.id).collect::<Vec<_>>(), [newcomer.id]);
    assert_eq!(
        fourth.prescriptions.iter().map(|p| p.id).collect::<Vec<_>>(),
        [their_rx.prescription.id]
    );
    assert_eq!(fourth.prescriptions[0].tube_plan[0].tube_type, "EDTA");
    assert!(fourth.removals.is_empty());

    // Every sent patient, prescription and appointment was audited as a pull.
    let audited = audit_rows(&gw).await;
    assert!(audited.iter().filter(|r| r.action == "sync.pull").count() >= 4 + 4 + 4 + 1 + 3);

    // Another staff member's cursor on this device starts over; a malformed cursor is a 422.
    let (_, nurse_token) = nurse(&gw).await;
    assert!(pull(&gw, &nurse_token, Some(&fourth.cursor)).await.reset);
    for bad in ["nonsense", "1AAAA", "2", "2AAAA", &format!("{}x", fourth.cursor)] {
        let problem = get(&gw, &format!("{}?cursor={}", routes::SYNC_PULL, enc(bad)), &token)
            .await
            .expect(422)
            .problem();
        assert_eq!(problem.errors[0].pointer, "/cursor", "{bad}");
    }
    let long = get(
        &gw,
        &format!("{}?cursor={}", routes::SYNC_PULL, "A".repeat(129)),
        &token,
    )
    .await
    .expect(422)
    .problem();
    assert_eq!(long.errors[0].pointer, "/cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_pull_pages_long_change_runs() {
    let gw = TestGateway::start().await;
    round_data(&gw, 1).await;
    let (_, token) = sampler(&gw).await;
    let first = pull(&gw, &token, None).await;
    // 600 patients out of scope arrive at once: 600 change_log entries.
    let crowd: Vec<PatientRow> = (0..600)
        .map(|i| patient(&format!("Foule{i}"), "X", date!(1980 - 01 - 01)))
        .collect();
    edge_data::upsert_patients(&gw, &crowd).await;
    let page1 = pull(&gw, &token, Some(&first.cursor)).await;
    assert!(page1.has_more);
    assert_eq!(page1.removals.len(), 500);
    let page2 = pull(&gw, &token, Some(&page1.cursor)).await;
    assert!(!page2.has_more);
    assert_eq!(page2.removals.len(), 100);
    let mut all: Vec<Uuid> = page1.removals.iter().chain(&page2.removals).map(|r| r.id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 600, "every change once");
}

/// The change log takes its order without a lock (migration `…_change_log_order_by_transaction`):
/// a transaction that took its id first and commits last is held back while it runs, never left
/// behind a cursor a tablet already holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_commits_late_is_never_left_behind_a_tablets_cursor() {
    let gw = TestGateway::start().await;
    let data = round_data(&gw, 2).await;
    let (_, token) = sampler(&gw).await;
    let first = pull(&gw, &token, None).await;
    let (early, late) = (&data.patients[0], &data.patients[1]);

    // `early` changes in a transaction that stays open; `late` changes after it and commits.
    let mut open = gw.db.conn().await;
    open.batch_execute(&format!(
        "BEGIN; UPDATE patients SET version = version + 1 WHERE id = '{}'",
        early.id
    ))
    .await
    .unwrap();
    let changed = PatientRow {
        version: late.version + 1,
        ..late.clone()
    };
    edge_data::upsert_patients(&gw, std::slice::from_ref(&changed)).await;

    // While the first runs, the second is not handed out: a tablet that took it would hold a
    // cursor past the first's entry, which commits after.
    let held = pull(&gw, &token, Some(&first.cursor)).await;
    assert!(held.patients.is_empty(), "{:?}", held.patients);
    assert_eq!(held.cursor, first.cursor);

    open.batch_execute("COMMIT").await.unwrap();
    let both = pull(&gw, &token, Some(&held.cursor)).await;
    let mut ids: Vec<Uuid> = both.patients.iter().map(|p| p.id).collect();
    ids.sort();
    let mut expected = vec![early.id, late.id];
    expected.sort();
    assert_eq!(ids, expected, "both changes, the one that committed late included");
    let after = pull(&gw, &token, Some(&both.cursor)).await;
    assert!(
        after.patients.is_empty() && after.appointments.is_empty(),
        "each change once"
    );
}

/// A relay pass waiting on a slow cloud holds no transaction id (an advisory lock, not row locks),
/// so the tablets' pulls are not held back meanwhile; a second pass at the same time stands aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_pass_waiting_on_a_slow_cloud_does_not_hold_back_the_tablets() {
    let (fake, setup) = crate::relay::towards_a_fake(10_000).await;
    let gw = &setup.gw;
    let data = round_data(gw, 2).await;
    let (_, token) = sampler(gw).await;
    let first = pull(gw, &token, None).await;

    crate::relay::queue(gw, None).await;
    fake.set(Behaviour::Slow(Duration::from_secs(3)));
    let relay = Arc::new(Relay::new(gw.state.clone(), setup.upstreams.clone()));
    let passing = tokio::spawn({
        let relay = Arc::clone(&relay);
        async move { relay.pass().await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.state.lock().unwrap().received.is_empty() {
        assert!(Instant::now() < deadline, "the batch never reached the fake");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(relay.pass().await.unwrap(), Pass::Busy, "one pass at a time");

    let changed = PatientRow {
        version: data.patients[0].version + 1,
        ..data.patients[0].clone()
    };
    edge_data::upsert_patients(gw, std::slice::from_ref(&changed)).await;
    let second = pull(gw, &token, Some(&first.cursor)).await;
    assert_eq!(second.patients.iter().map(|p| p.id).collect::<Vec<_>>(), [changed.id]);
    assert!(
        !passing.is_finished(),
        "the pull did not wait for the relay's HTTP call"
    );

    assert_eq!(passing.await.unwrap().unwrap(), Pass::Sent(1));
    assert_eq!(fake.applied(), (1, false));
    fake.stop().await;
}
