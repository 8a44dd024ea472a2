//! Collections: one transaction, then the answer.

use super::*;

#[derive(Debug, QueryableByName)]
struct Transactions {
    #[diesel(sql_type = Nullable<Text>)]
    collection: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tubes: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    outbox: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    idempotency: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    audit_unchained: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    outbox_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    idempotency_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    audit_at: Option<OffsetDateTime>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_is_acknowledged_once_one_transaction_holds_it_with_its_outbox_key_and_audit() {
    let lab = lab().await;
    let gw = &lab.gw;
    let mut body = collection(lab.patient, lab.prescription, &["EDTA", "SST", "FLUO"]);
    body.appointment_id = Some(lab.visit);
    body.comments = Some("prélèvement difficile".into());
    let key = key();
    let before = OffsetDateTime::now_utc();

    let response = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(response.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        response.header("idempotent-replayed"),
        None,
        "a first write is no replay"
    );
    let receipt: CollectionReceipt = response.json();
    assert_eq!(receipt.id, body.id);
    assert_eq!(receipt.relay, RelayState::Queued);
    assert!(receipt.recorded_at >= before && receipt.recorded_at <= OffsetDateTime::now_utc());

    // The row, its tubes, its outbox entry and its idempotency record carry the same transaction id;
    // the audit row is stamped with the same transaction start (now()), and carries the same
    // transaction id too while it waits in `audit_pending` (the journal then moves it into the chain).
    let entity = format!("collection:{}", body.id);
    let tx: Transactions = diesel::sql_query(
        "SELECT (SELECT xmin::text FROM collections WHERE id = $1) AS collection, \
                (SELECT string_agg(DISTINCT xmin::text, ',') FROM collection_tubes WHERE collection_id = $1) AS tubes, \
                (SELECT xmin::text FROM outbox WHERE entity_key = $2) AS outbox, \
                (SELECT xmin::text FROM idempotency_keys WHERE device_id = $3 AND idempotency_key = $4) AS idempotency, \
                (SELECT xmin::text FROM audit_pending WHERE resource = $2) AS audit_unchained, \
                (SELECT created_at FROM outbox WHERE entity_key = $2) AS outbox_at, \
                (SELECT created_at FROM idempotency_keys WHERE device_id = $3 AND idempotency_key = $4) AS idempotency_at, \
                (SELECT at FROM audit_log WHERE resource = $2 UNION ALL SELECT at FROM audit_pending WHERE resource = $2) AS audit_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(body.id)
    .bind::<Text, _>(&entity)
    .bind::<diesel::sql_types::Uuid, _>(lab.nurse.device)
    .bind::<Text, _>(&key)
    .get_result(&mut gw.db.conn().await)
    .await
    .unwrap();
    let xid = tx.collection.clone().expect("the collection is stored");
    assert_eq!(tx.tubes.as_deref(), Some(xid.as_str()), "{tx:?}");
    assert_eq!(tx.outbox.as_deref(), Some(xid.as_str()), "{tx:?}");
    assert_eq!(tx.idempotency.as_deref(), Some(xid.as_str()), "{tx:?}");
    if let Some(audit) = &tx.audit_unchained {
        assert_eq!(audit, &xid, "{tx:?}");
    }
    let started = tx.outbox_at.expect("outbox entry");
    assert_eq!(tx.idempotency_at, Some(started), "{tx:?}");
    assert_eq!(tx.audit_at, Some(started), "{tx:?}");

    // The collection as recorded: who and which device come from the token.
    type CollectionRow = (
        Uuid,
        Uuid,
        Option<Uuid>,
        Uuid,
        Uuid,
        Uuid,
        bool,
        Option<String>,
        Option<String>,
        OffsetDateTime,
    );
    let row: CollectionRow = collections::table
        .find(body.id)
        .select((
            collections::lab_id,
            collections::patient_id,
            collections::appointment_id,
            collections::prescription_id,
            collections::collected_by,
            collections::device_id,
            collections::identity_checked,
            collections::identity_check_method,
            collections::comments,
            collections::recorded_at,
        ))
        .first(&mut gw.db.conn().await)
        .await
        .unwrap();
    let nurse = gw.staff_id(NURSE.0);
    assert_eq!(
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6),
        (
            gw.lab_id,
            lab.patient,
            Some(lab.visit),
            lab.prescription,
            nurse,
            lab.nurse.device,
            true
        )
    );
    assert_eq!(row.7.as_deref(), Some("health_card"));
    assert_eq!(row.8, body.comments);
    assert!((row.9 - receipt.recorded_at).abs() < Duration::milliseconds(1));
    let mut tubes: Vec<(String, String)> = collection_tubes::table
        .filter(collection_tubes::collection_id.eq(body.id))
        .select((collection_tubes::barcode, collection_tubes::tube_type))
        .load(&mut gw.db.conn().await)
        .await
        .unwrap();
    tubes.sort();
    let mut sent: Vec<(String, String)> = body
        .tubes
        .iter()
        .map(|t| (t.barcode.as_str().to_owned(), t.tube_type.clone()))
        .collect();
    sent.sort();
    assert_eq!(tubes, sent, "every tube");

    // Exactly one outbox entry: the tablet's collection, stamped with who and which device.
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(
        (
            entry.kind.as_str(),
            entry.lane,
            entry.entity_key.as_str(),
            entry.sent_at
        ),
        ("collection.create", 0, entity.as_str(), None)
    );
    let relayed = entry.mutation();
    assert_eq!(relayed.mutation_id, entry.mutation_id);
    assert_eq!(relayed.staff_id, Some(nurse));
    assert_eq!(relayed.device_id, Some(lab.nurse.device));
    assert_eq!(relayed.recorded_at, receipt.recorded_at);
    assert_eq!(
        relayed.op,
        RelayedOp::CollectionCreate {
            collection: body.clone()
        }
    );

    // Exactly one idempotency record, holding the answer given.
    let records: Vec<(Uuid, String, i16, serde_json::Value)> = idempotency_keys::table
        .select((
            idempotency_keys::device_id,
            idempotency_keys::idempotency_key,
            idempotency_keys::response_status,
            idempotency_keys::response_body,
        ))
        .load(&mut gw.db.conn().await)
        .await
        .unwrap();
    assert_eq!(
        records,
        [(
            lab.nurse.device,
            key.clone(),
            201,
            serde_json::from_slice(&response.body).unwrap()
        )]
    );

    // Exactly one audit record of the write, naming the patient.
    assert_eq!(
        audited_writes(gw).await,
        [AuditRow {
            staff_id: Some(nurse),
            device_id: Some(lab.nurse.device),
            action: "collection.create".into(),
            patient_id: Some(lab.patient),
            resource: Some(entity),
        }]
    );
    assert_eq!(
        stored(gw).await,
        Stored {
            collections: 1,
            tubes: 3,
            outbox: 1,
            idempotency: 1,
            audited_writes: 1
        }
    );
}
