//! The cloud intake and another lab's rows (issue 12, item 2): a gateway's credential names its lab,
//! and every reference in its mutations must be of that lab. Lab A's gateway naming lab B's
//! prescription, patient, appointment, staff member or device gets that item `rejected` with a reason
//! code and nothing is stored, while the rest of its batch applies; tube barcodes and mutation ids are
//! per lab, so that A can neither take B's upcoming labels nor read B's outcomes; and the database
//! refuses the same rows when the intake's code is bypassed.

use actix_web::test::TestRequest;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_api::intake::Reason;
use labedge_protocol::relay::{AckOutcome, MutationAcks, RelayedMutation, RelayedOp};
use labedge_tests::app::TestApp;
use labedge_tests::cloud::{TestCloud, Visit, relayed, relayed_collection};
use uuid::Uuid;

/// One lab's gateway: its code, an app presenting its credential, and some of its scheduled visits.
struct Gateway {
    code: String,
    app: TestApp,
    visits: Vec<Visit>,
}

struct Labs {
    cloud: TestCloud,
    a: Gateway,
    b: Gateway,
}

async fn visits(conn: &mut AsyncPgConnection, code: &str) -> Vec<Visit> {
    diesel::sql_query(format!(
        "SELECT l.id AS lab, a.id AS appointment, a.patient_id AS patient, a.prescription_id AS prescription, \
                s.id AS staff, a.version \
         FROM appointments a JOIN labs l ON l.id = a.lab_id \
         JOIN LATERAL (SELECT id FROM staff WHERE lab_id = l.id AND role = 'nurse' ORDER BY id LIMIT 1) s ON true \
         WHERE l.code = '{code}' AND a.status = 'scheduled' AND a.prescription_id IS NOT NULL ORDER BY a.id LIMIT 10"
    ))
    .load(conn)
    .await
    .unwrap()
}

/// Two proximity labs, each with its gateway credential, and no patient seen by both.
async fn labs() -> Labs {
    let (cloud, summary) = TestCloud::seeded(150, 2).await;
    let codes: Vec<String> = summary.proximity_labs().map(|l| l.code.clone()).collect();
    let app = cloud.app().await;
    let mut conn = cloud.db.conn().await;
    let mut gateways = Vec::new();
    for code in &codes[..2] {
        let mut gateway_app = app.clone_without_certificate();
        gateway_app.certificate = Some(cloud.credential(code).await.der);
        gateways.push(Gateway {
            code: code.clone(),
            app: gateway_app,
            visits: visits(&mut conn, code).await,
        });
    }
    let b = gateways.pop().unwrap();
    let a = gateways.pop().unwrap();
    assert!(a.visits.len() >= 8 && b.visits.len() >= 8, "enough visits in both labs");
    for va in &a.visits {
        assert!(b.visits.iter().all(|vb| vb.patient != va.patient), "no shared patient");
    }
    drop(conn);
    Labs { cloud, a, b }
}

/// `mutation` with its collection changed by `change`.
fn with(mut mutation: RelayedMutation, change: impl FnOnce(&mut mobile_contracts::NewCollection)) -> RelayedMutation {
    if let RelayedOp::CollectionCreate { collection } = &mut mutation.op {
        change(collection);
    }
    mutation
}

fn collection_id(mutation: &RelayedMutation) -> Uuid {
    match &mutation.op {
        RelayedOp::CollectionCreate { collection } => collection.id,
        _ => panic!("not a collection"),
    }
}

fn appointment_change(visit: &Visit, staff: Uuid, status: &str) -> RelayedMutation {
    relayed(
        staff,
        serde_json::json!({
            "kind": "appointment.update", "appointment_id": visit.appointment, "if_version": visit.version,
            "patch": {"status": status}
        }),
    )
}

async fn send(gateway: &Gateway, mutations: &[RelayedMutation]) -> Vec<(AckOutcome, Option<String>)> {
    let acks: MutationAcks = gateway
        .app
        .send(
            TestRequest::post()
                .uri(&format!("/v1/labs/{}/mutations", gateway.code))
                .set_json(serde_json::json!({ "mutations": mutations })),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(acks.results.len(), mutations.len(), "one verdict per mutation");
    acks.results.into_iter().map(|a| (a.outcome, a.reason)).collect()
}

/// The reason code of a verdict: what comes before the colon.
fn code(verdict: &(AckOutcome, Option<String>)) -> Option<&str> {
    verdict.1.as_deref().map(|r| r.split(':').next().unwrap_or(r))
}

async fn count(cloud: &TestCloud, sql: &str) -> i64 {
    labedge_tests::db::count(&mut cloud.db.conn().await, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_naming_another_labs_rows_gets_those_items_rejected_and_the_rest_applied() {
    let Labs { cloud, a, b } = labs().await;
    let (va, vb) = (&a.visits, &b.visits);
    // A tablet of lab B that the cloud knows of.
    let b_device = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO devices (id, lab_id, label, status, enrolled_at) VALUES ('{b_device}', '{}', 'B tablet', 'active', now())",
        vb[0].lab
    ))
    .execute(&mut cloud.db.conn().await)
    .await
    .unwrap();

    let batch = vec![
        relayed_collection(&va[0], "SCOPEA0000"),
        // Lab B's prescription, for lab B's patient.
        with(relayed_collection(&va[1], "SCOPEA0001"), |c| {
            c.prescription_id = vb[1].prescription;
            c.patient_id = vb[1].patient;
            c.appointment_id = None;
        }),
        // Lab A's own prescription, but lab B's patient.
        with(relayed_collection(&va[2], "SCOPEA0002"), |c| {
            c.patient_id = vb[2].patient;
            c.appointment_id = None;
        }),
        // Lab B's appointment.
        with(relayed_collection(&va[3], "SCOPEA0003"), |c| {
            c.appointment_id = Some(vb[3].appointment)
        }),
        // Attributed to lab B's staff.
        RelayedMutation {
            staff_id: Some(vb[4].staff),
            ..relayed_collection(&va[4], "SCOPEA0004")
        },
        // From lab B's tablet.
        RelayedMutation {
            device_id: Some(b_device),
            ..relayed_collection(&va[5], "SCOPEA0005")
        },
        // A prescription that does not exist gets the same answer as another lab's (no oracle).
        with(relayed_collection(&va[6], "SCOPEA0006"), |c| {
            c.prescription_id = Uuid::now_v7()
        }),
        // Lab A's appointment, changed in the name of lab B's staff.
        appointment_change(&va[7], vb[0].staff, "checked_in"),
        // Lab B's appointment.
        appointment_change(&vb[7], va[0].staff, "checked_in"),
        relayed_collection(&va[8], "SCOPEA0008"),
    ];
    let verdicts = send(&a, &batch).await;
    let expected = [
        (AckOutcome::Applied, None),
        (AckOutcome::Rejected, Some("foreign_lab_reference")),
        (AckOutcome::Rejected, Some("patient_out_of_scope")),
        (AckOutcome::Rejected, Some("foreign_lab_reference")),
        (AckOutcome::Rejected, Some("foreign_lab_reference")),
        (AckOutcome::Rejected, Some("foreign_lab_reference")),
        (AckOutcome::Rejected, Some("foreign_lab_reference")),
        (AckOutcome::Rejected, Some("foreign_lab_reference")),
        (AckOutcome::Rejected, Some("not_found")),
        (AckOutcome::Applied, None),
    ];
    for (i, (verdict, (outcome, reason))) in verdicts.iter().zip(expected).enumerate() {
        assert_eq!((verdict.0, code(verdict)), (outcome, reason), "item {i}: {verdict:?}");
    }
    // Only the two good collections are stored, and nothing names anything of lab B.
    assert_eq!(count(&cloud, "SELECT count(*) AS n FROM collections").await, 2);
    assert_eq!(
        count(
            &cloud,
            &format!(
                "SELECT count(*) AS n FROM collections c WHERE c.lab_id = '{b}' \
                 OR c.prescription_id IN (SELECT id FROM prescriptions WHERE lab_id = '{b}') \
                 OR c.appointment_id IN (SELECT id FROM appointments WHERE lab_id = '{b}') \
                 OR c.collected_by IN (SELECT id FROM staff WHERE lab_id = '{b}') \
                 OR c.patient_id IN ('{p1}', '{p2}') OR c.device_id = '{b_device}'",
                b = vb[0].lab,
                p1 = vb[1].patient,
                p2 = vb[2].patient
            )
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &cloud,
            &format!(
                "SELECT count(*) AS n FROM appointments WHERE id IN ('{}', '{}') AND status = 'scheduled'",
                va[7].appointment, vb[7].appointment
            )
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &cloud,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'collection.create'"
        )
        .await,
        2
    );
    // A rejection is remembered for the lab that sent it.
    let again = send(&a, &batch[1..2]).await;
    assert_eq!(
        (again[0].0, code(&again[0])),
        (AckOutcome::Rejected, Some("foreign_lab_reference"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lab_cannot_take_another_labs_tube_barcodes() {
    let Labs { cloud, a, b } = labs().await;
    // Lab B has recorded one label; lab A uses it, and the next label B will use.
    assert_eq!(
        send(&b, &[relayed_collection(&b.visits[0], "BLAB00000001")]).await[0].0,
        AckOutcome::Applied
    );
    let taken_early = send(
        &a,
        &[
            relayed_collection(&a.visits[0], "BLAB00000001"),
            relayed_collection(&a.visits[1], "BLAB00000002"),
        ],
    )
    .await;
    // Lab A's labels are its own: applied, which says nothing about lab B's.
    assert!(
        taken_early.iter().all(|v| v.0 == AckOutcome::Applied),
        "{taken_early:?}"
    );
    // Lab B's real specimen with that label still lands.
    let real = send(&b, &[relayed_collection(&b.visits[1], "BLAB00000002")]).await;
    assert_eq!(real[0].0, AckOutcome::Applied, "{real:?}");
    // Within one lab a label is still recorded once.
    let twice = send(&b, &[relayed_collection(&b.visits[2], "BLAB00000002")]).await;
    assert_eq!(
        (twice[0].0, code(&twice[0])),
        (AckOutcome::Rejected, Some("duplicate_barcode"))
    );
    assert_eq!(
        count(
            &cloud,
            &format!(
                "SELECT count(*) AS n FROM collection_tubes t JOIN collections c ON c.id = t.collection_id \
                 WHERE c.lab_id = '{}' AND t.barcode LIKE 'BLAB%'",
                b.visits[0].lab
            )
        )
        .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_ids_and_collection_ids_of_another_lab_reveal_nothing_of_it() {
    let Labs { cloud, a, b } = labs().await;
    let b_applied = relayed_collection(&b.visits[0], "MUTB0000001");
    let b_rejected = with(relayed_collection(&b.visits[1], "MUTB0000002"), |c| {
        c.prescription_id = Uuid::now_v7()
    });
    let verdicts = send(&b, &[b_applied.clone(), b_rejected.clone()]).await;
    assert_eq!(
        (verdicts[0].0, verdicts[1].0),
        (AckOutcome::Applied, AckOutcome::Rejected)
    );

    // Lab A's own mutations under the same ids are lab A's: applied on their merits, not answered
    // with lab B's outcomes.
    let a_same_ids = vec![
        RelayedMutation {
            mutation_id: b_applied.mutation_id,
            ..relayed_collection(&a.visits[0], "MUTA0000001")
        },
        RelayedMutation {
            mutation_id: b_rejected.mutation_id,
            ..relayed_collection(&a.visits[1], "MUTA0000002")
        },
    ];
    let verdicts = send(&a, &a_same_ids).await;
    assert_eq!(
        verdicts,
        vec![(AckOutcome::Applied, None), (AckOutcome::Applied, None)],
        "lab B's outcomes leaked"
    );
    // Lab B still gets its own outcomes.
    let replay = send(&b, &[b_applied.clone(), b_rejected]).await;
    assert_eq!(
        (replay[0].0, replay[1].0),
        (AckOutcome::Duplicate, AckOutcome::Rejected)
    );

    // Lab A reusing lab B's collection id (with lab A's own references) is refused, and lab B's
    // collection is untouched.
    let stolen_id = with(relayed_collection(&a.visits[2], "MUTA0000003"), |c| {
        c.id = collection_id(&b_applied)
    });
    let verdict = send(&a, &[stolen_id]).await;
    assert_eq!(
        (verdict[0].0, code(&verdict[0])),
        (AckOutcome::Rejected, Some("collection_id_taken"))
    );
    assert_eq!(
        count(
            &cloud,
            &format!(
                "SELECT count(*) AS n FROM collections WHERE id = '{}' AND lab_id = '{}' AND patient_id = '{}'",
                collection_id(&b_applied),
                b.visits[0].lab,
                b.visits[0].patient
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &cloud,
            &format!(
                "SELECT count(*) AS n FROM applied_mutations WHERE mutation_id = '{}'",
                b_applied.mutation_id
            )
        )
        .await,
        2,
        "one record per lab"
    );
}

/// Runs `sql` directly (as if the intake's checks were gone) and returns the constraint that refused it.
async fn refused_by(conn: &mut AsyncPgConnection, sql: &str) -> String {
    match diesel::sql_query(sql).execute(conn).await {
        Err(DieselError::DatabaseError(kind, info)) => {
            assert!(
                matches!(
                    kind,
                    DatabaseErrorKind::ForeignKeyViolation | DatabaseErrorKind::UniqueViolation
                ),
                "{kind:?}: {}",
                info.message()
            );
            info.constraint_name().unwrap_or("none").to_owned()
        }
        other => panic!("accepted: {sql}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_itself_refuses_rows_that_name_another_labs_rows() {
    let Labs { cloud, a, b } = labs().await;
    let (va, vb) = (a.visits[0], b.visits[0]);
    let mut conn = cloud.db.conn().await;
    let b_device = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO devices (id, lab_id, label, status, enrolled_at) VALUES ('{b_device}', '{}', 'B tablet', 'active', now())",
        vb.lab
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let insert = |patient: Uuid, prescription: Uuid, appointment: Uuid, staff: Uuid, device: Uuid| {
        format!(
            "INSERT INTO collections (id, lab_id, patient_id, appointment_id, prescription_id, collected_at, \
             collected_by, device_id, identity_checked, recorded_at) \
             VALUES ('{}', '{}', '{patient}', '{appointment}', '{prescription}', now(), '{staff}', '{device}', false, now())",
            Uuid::now_v7(),
            va.lab
        )
    };
    let cases = [
        (
            "another lab's prescription",
            insert(vb.patient, vb.prescription, va.appointment, va.staff, Uuid::now_v7()),
            "collections_prescription_lab_fkey",
        ),
        (
            "another patient than the prescription's",
            insert(vb.patient, va.prescription, va.appointment, va.staff, Uuid::now_v7()),
            "collections_prescription_patient_fkey",
        ),
        (
            "another lab's appointment",
            insert(va.patient, va.prescription, vb.appointment, va.staff, Uuid::now_v7()),
            "collections_appointment_lab_fkey",
        ),
        (
            "another lab's staff",
            insert(va.patient, va.prescription, va.appointment, vb.staff, Uuid::now_v7()),
            "collections_collected_by_lab_fkey",
        ),
        (
            "another lab's device",
            insert(va.patient, va.prescription, va.appointment, va.staff, b_device),
            "collections_device_lab",
        ),
    ];
    for (what, sql, constraint) in cases {
        let name = refused_by(&mut conn, &sql).await;
        assert_eq!(name, constraint, "{what}");
        // The intake answers a refusal of the database with the same code as its own check.
        let expected = if what.contains("patient") {
            "patient_out_of_scope"
        } else {
            "foreign_lab_reference"
        };
        assert_eq!(Reason::of_constraint(&name).map(Reason::code), Some(expected), "{what}");
    }
    assert_eq!(count(&cloud, "SELECT count(*) AS n FROM collections").await, 0);

    // Barcodes are unique per lab: the same label in two labs is fine, twice in one lab is not.
    let own = |visit: &Visit, id: Uuid| {
        format!(
            "INSERT INTO collections (id, lab_id, patient_id, appointment_id, prescription_id, collected_at, \
             collected_by, device_id, identity_checked, recorded_at) \
             VALUES ('{id}', '{}', '{}', '{}', '{}', now(), '{}', gen_random_uuid(), false, now())",
            visit.lab, visit.patient, visit.appointment, visit.prescription, visit.staff
        )
    };
    let (ca, cb, ca2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for sql in [
        own(&va, ca),
        own(&vb, cb),
        own(&a.visits[1], ca2),
        format!(
            "INSERT INTO collection_tubes (collection_id, lab_id, barcode, tube_type) VALUES \
             ('{ca}', '{}', 'SAMELABEL01', 'EDTA'), ('{cb}', '{}', 'SAMELABEL01', 'EDTA')",
            va.lab, vb.lab
        ),
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    assert_eq!(
        refused_by(
            &mut conn,
            &format!(
                "INSERT INTO collection_tubes (collection_id, lab_id, barcode, tube_type) \
                 VALUES ('{ca2}', '{}', 'SAMELABEL01', 'EDTA')",
                va.lab
            )
        )
        .await,
        "collection_tubes_lab_barcode_key"
    );
    assert_eq!(
        Reason::of_constraint("collection_tubes_lab_barcode_key").map(Reason::code),
        Some("duplicate_barcode")
    );
    // A tube filed under another lab than its collection's.
    assert_eq!(
        refused_by(
            &mut conn,
            &format!(
                "INSERT INTO collection_tubes (collection_id, lab_id, barcode, tube_type) \
                 VALUES ('{ca2}', '{}', 'OTHERLABEL1', 'EDTA')",
                vb.lab
            )
        )
        .await,
        "collection_tubes_collection_lab_fkey"
    );
    // Mutation ids are per lab.
    let id = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO applied_mutations (mutation_id, lab_id, kind, outcome) \
         VALUES ('{id}', '{}', 'collection.create', 'applied'), ('{id}', '{}', 'collection.create', 'rejected')",
        va.lab, vb.lab
    ))
    .execute(&mut conn)
    .await
    .unwrap();
}
