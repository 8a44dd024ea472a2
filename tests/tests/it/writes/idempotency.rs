//! Idempotency.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_collection_gets_the_stored_answer_and_a_reused_missing_or_malformed_key_is_refused() {
    let lab = lab().await;
    let gw = &lab.gw;
    let body = collection(lab.patient, lab.prescription, &["EDTA"]);
    let key = key();
    let first = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    let after_first = stored(gw).await;

    // The same key and body: the same status and body, marked as a replay; nothing written again.
    let replay = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(replay.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(replay.json::<serde_json::Value>(), first.json::<serde_json::Value>());
    assert_eq!(stored(gw).await, after_first);
    assert_eq!(after_first.collections, 1);
    assert_eq!(after_first.outbox, 1);

    // The same key with another body: 422, nothing written.
    let mut other = body.clone();
    other.comments = Some("autre chose".into());
    let reused = post_collection(&gw.app, &lab.nurse, Some(&key), &other)
        .await
        .expect(422);
    assert_problem(&reused, ErrorCode::IdempotencyKeyReused, None);
    let mut elsewhere = collection(lab.patient, lab.prescription, &["SST"]);
    elsewhere.id = Uuid::now_v7();
    let reused = post_collection(&gw.app, &lab.nurse, Some(&key), &elsewhere)
        .await
        .expect(422);
    assert_problem(&reused, ErrorCode::IdempotencyKeyReused, None);
    // Nor can the key be spent on another route.
    let reused = patch_appointment(
        &gw.app,
        &lab.nurse,
        lab.visit,
        Some("\"1\""),
        Some(&key),
        &status(AppointmentStatus::CheckedIn),
    )
    .await
    .expect(422);
    assert_problem(&reused, ErrorCode::IdempotencyKeyReused, None);
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // No key, an empty key, malformed keys: 400.
    let fresh = collection(lab.patient, lab.prescription, &["EDTA"]);
    let missing = post_collection(&gw.app, &lab.nurse, None, &fresh).await.expect(400);
    assert_problem(&missing, ErrorCode::IdempotencyKeyMissing, None);
    let empty = post_collection(&gw.app, &lab.nurse, Some(""), &fresh).await.expect(400);
    assert_problem(&empty, ErrorCode::IdempotencyKeyMissing, None);
    for bad in ["two words".to_owned(), "k".repeat(129), "tab\tinside".to_owned()] {
        let malformed = post_collection(&gw.app, &lab.nurse, Some(&bad), &fresh)
            .await
            .expect(400);
        assert_problem(&malformed, ErrorCode::BadRequest, None);
    }
    // Bytes that are not text at all: refused too (reported as no usable key).
    let request = authed(TestRequest::post().uri(routes::COLLECTIONS), &lab.nurse)
        .set_json(&fresh)
        .insert_header((
            "idempotency-key",
            actix_web::http::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        ));
    gw.app.send(request).await.expect(400).problem();
    assert_eq!(stored(gw).await, after_first);

    // A key is scoped to its device: another tablet's write with the same key is its own.
    let colleague = tablet(gw, NURSE).await;
    post_collection(&gw.app, &colleague, Some(&key), &fresh)
        .await
        .expect(201);
    assert_eq!(stored(gw).await.collections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_while_the_first_write_is_in_flight_gets_409_then_goes_through() {
    let lab = lab().await;
    let gw = &lab.gw;
    let body = collection(lab.patient, lab.prescription, &["EDTA"]);
    let key = key();
    let before = stored(gw).await;

    // Another connection holds the write's lock inside an open transaction, as the first of two
    // identical writes does while it is being recorded.
    let mut holder = gw.db.conn().await;
    holder.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(lock_key(lab.nurse.device, gw.staff_id(NURSE.0), &key))
        .execute(&mut holder)
        .await
        .unwrap();

    let busy = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(409);
    assert_problem(&busy, ErrorCode::IdempotencyInFlight, None);
    let retry_after: u64 = busy.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(stored(gw).await, before, "nothing written while in flight");
    // The lock is the key's: another key from the same tablet is not held back.
    let other = collection(lab.patient, lab.prescription, &["SST"]);
    post_collection(&gw.app, &lab.nurse, Some(&self::key()), &other)
        .await
        .expect(201);

    // Once the first transaction ends, the retry goes through.
    holder.batch_execute("COMMIT").await.unwrap();
    let done = post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(done.header("idempotent-replayed"), None);
    assert_eq!(done.json::<CollectionReceipt>().id, body.id);
    assert_eq!(stored(gw).await.collections, 2);
}

/// A tablet whose answer was lost queues the same collection again under a new key: it is recorded
/// once and the retry gets the first receipt; another device using the id gets 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_collection_under_a_new_key_is_recorded_once() {
    let lab = lab().await;
    let gw = &lab.gw;
    let body = edge_data::collection(lab.patient, lab.prescription, &["EDTA"]);
    let first: mobile_contracts::CollectionReceipt = post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
        .await
        .expect(201)
        .json();
    let again = post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
        .await
        .expect(201);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    let receipt: mobile_contracts::CollectionReceipt = again.json();
    assert_eq!((receipt.id, receipt.recorded_at), (first.id, first.recorded_at));
    let stored = stored(gw).await;
    assert_eq!((stored.collections, stored.outbox), (1, 1), "recorded and relayed once");
    let colleague = tablet(gw, NURSE).await;
    post_collection(&gw.app, &colleague, Some(&key()), &body)
        .await
        .expect(409);
}
