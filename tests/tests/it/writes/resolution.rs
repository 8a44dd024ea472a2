//! Conflicts and dead letters in the console.

use super::*;

async fn backlog(gw: &TestGateway, admin: &AdminCookie) -> (i64, i64, i64) {
    let status: serde_json::Value = gw
        .console(admin, TestRequest::get().uri("/admin/v1/status"))
        .await
        .expect(200)
        .json();
    let backlog = &status["backlog"];
    (
        backlog["pending"].as_i64().unwrap(),
        backlog["dead_letters"].as_i64().unwrap(),
        backlog["conflicts"].as_i64().unwrap(),
    )
}

/// What the relay does when the cloud answers "conflict" for an outbox entry.
async fn cloud_answered_conflict(gw: &TestGateway, entry: &OutboxRow, server_version: i64) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = gw.db.conn().await;
    conn.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query(
        "INSERT INTO conflicts (id, outbox_seq, mutation_id, entity_key, local_payload, server_version, server_state) \
         SELECT $1, seq, mutation_id, entity_key, payload, $2, $3 FROM outbox WHERE seq = $4",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<BigInt, _>(server_version)
    .bind::<Jsonb, _>(json!({"status": "cancelled", "version": server_version}))
    .bind::<BigInt, _>(entry.seq)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("UPDATE outbox SET sent_at = now(), upstream = 'cloud', outcome = 'conflict' WHERE seq = $1")
        .bind::<BigInt, _>(entry.seq)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    id
}

/// What the relay does when the cloud rejects an outbox entry.
async fn cloud_rejected(gw: &TestGateway, entry: &OutboxRow) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = gw.db.conn().await;
    conn.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query(
        "INSERT INTO dead_letters (id, outbox_seq, mutation_id, lane, kind, entity_key, payload, reason, attempts) \
         SELECT $1, seq, mutation_id, lane, kind, entity_key, payload, 'prescription_closed', attempts + 1 \
         FROM outbox WHERE seq = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<BigInt, _>(entry.seq)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(
        "UPDATE outbox SET sent_at = now(), upstream = 'cloud', outcome = 'rejected', \
         last_error = 'prescription_closed' WHERE seq = $1",
    )
    .bind::<BigInt, _>(entry.seq)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_admin_resolves_conflicts_and_replays_or_discards_dead_letters() {
    let lab = lab().await;
    let gw = &lab.gw;
    // Two appointment changes and two collections, sent by the relay; the cloud answered conflict
    // for the changes and rejected the collections.
    let checked_in = status(AppointmentStatus::CheckedIn);
    for visit in [lab.visit, lab.other_visit] {
        patch_appointment(&gw.app, &lab.nurse, visit, Some("\"1\""), Some(&key()), &checked_in)
            .await
            .expect(200);
    }
    for _ in 0..2 {
        let body = collection(lab.patient, lab.prescription, &["EDTA"]);
        post_collection(&gw.app, &lab.nurse, Some(&key()), &body)
            .await
            .expect(201);
    }
    let sent = outbox_rows(gw).await;
    assert_eq!(sent.len(), 4);
    let reapplied = cloud_answered_conflict(gw, &sent[0], 5).await;
    let kept = cloud_answered_conflict(gw, &sent[1], 4).await;
    let replayed = cloud_rejected(gw, &sent[2]).await;
    let discarded = cloud_rejected(gw, &sent[3]).await;
    let admin = gw.admin_login().await;
    assert_eq!(
        backlog(gw, &admin).await,
        (0, 2, 2),
        "(pending, dead letters, conflicts)"
    );

    let conflicts: Vec<ConflictView> = gw
        .console(&admin, TestRequest::get().uri("/admin/v1/conflicts"))
        .await
        .expect(200)
        .json();
    assert_eq!(conflicts.len(), 2);
    let listed = conflicts.iter().find(|c| c.id == reapplied).unwrap();
    assert_eq!(listed.entity_key, sent[0].entity_key);
    assert_eq!(listed.local_payload, sent[0].payload);
    assert_eq!(listed.server_version, Some(5));
    assert!(
        conflicts
            .iter()
            .all(|c| c.resolved_at.is_none() && c.resolution.is_none())
    );
    let dead: Vec<DeadLetterView> = gw
        .console(&admin, TestRequest::get().uri("/admin/v1/dead-letters"))
        .await
        .expect(200)
        .json();
    assert_eq!(dead.len(), 2);
    let listed = dead.iter().find(|d| d.id == replayed).unwrap();
    assert_eq!(
        (
            listed.kind.as_str(),
            listed.entity_key.as_str(),
            listed.reason.as_str(),
            listed.attempts
        ),
        (
            "collection.create",
            sent[2].entity_key.as_str(),
            "prescription_closed",
            1
        )
    );
    assert_eq!(listed.payload, sent[2].payload);

    let resolve = |id: Uuid, resolution: &str| {
        TestRequest::post()
            .uri(&format!("/admin/v1/conflicts/{id}/resolve"))
            .set_json(json!({ "resolution": resolution }))
    };
    let dead_letter =
        |id: Uuid, action: &str| TestRequest::post().uri(&format!("/admin/v1/dead-letters/{id}/{action}"));

    // Without the CSRF header (or with another token): 403, nothing done.
    let forged = [
        gw.from_admin_network(resolve(reapplied, "reapply_local").insert_header(("cookie", admin.cookie.clone())))
            .await,
        gw.from_admin_network(
            resolve(reapplied, "reapply_local")
                .insert_header(("cookie", admin.cookie.clone()))
                .insert_header(("x-csrf-token", "not-the-token")),
        )
        .await,
        gw.from_admin_network(dead_letter(replayed, "replay").insert_header(("cookie", admin.cookie.clone())))
            .await,
    ];
    for response in forged {
        assert_problem(&response.expect(403), ErrorCode::Forbidden, None);
    }
    assert_eq!(backlog(gw, &admin).await, (0, 2, 2));

    // reapply_local: the tablet's change again, as a new mutation against the cloud's version.
    gw.console(&admin, resolve(reapplied, "reapply_local"))
        .await
        .expect(204);
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 5);
    let requeued = &entries[4];
    assert_eq!(requeued.sent_at, None);
    assert_eq!(
        (requeued.kind.as_str(), requeued.entity_key.as_str(), requeued.lane),
        ("appointment.update", sent[0].entity_key.as_str(), 0)
    );
    assert!(sent.iter().all(|s| s.mutation_id != requeued.mutation_id));
    let (original, again) = (sent[0].mutation(), requeued.mutation());
    assert_eq!(again.mutation_id, requeued.mutation_id);
    assert_eq!(
        (again.staff_id, again.device_id),
        (original.staff_id, original.device_id)
    );
    assert_eq!(
        again.op,
        RelayedOp::AppointmentUpdate {
            appointment_id: lab.visit,
            if_version: 5,
            patch: AppointmentPatch {
                status: AppointmentStatus::CheckedIn,
                reason: None
            },
        }
    );
    // keep_server: nothing to send.
    gw.console(&admin, resolve(kept, "keep_server")).await.expect(204);
    assert_eq!(outbox_rows(gw).await.len(), 5);
    let conflicts: Vec<ConflictView> = gw
        .console(&admin, TestRequest::get().uri("/admin/v1/conflicts"))
        .await
        .expect(200)
        .json();
    let resolution = |id: Uuid| {
        let c = conflicts.iter().find(|c| c.id == id).unwrap();
        assert!(c.resolved_at.is_some());
        c.resolution.clone()
    };
    assert_eq!(resolution(reapplied).as_deref(), Some("reapply_local"));
    assert_eq!(resolution(kept).as_deref(), Some("keep_server"));

    // Replay: the same write as a new mutation; discard: nothing to send.
    gw.console(&admin, dead_letter(replayed, "replay")).await.expect(204);
    let entries = outbox_rows(gw).await;
    assert_eq!(entries.len(), 6);
    let requeued = &entries[5];
    assert_eq!(requeued.sent_at, None);
    assert_eq!(
        (requeued.kind.as_str(), requeued.entity_key.as_str()),
        ("collection.create", sent[2].entity_key.as_str())
    );
    assert!(sent.iter().all(|s| s.mutation_id != requeued.mutation_id));
    assert_eq!(requeued.mutation().op, sent[2].mutation().op);
    gw.console(&admin, dead_letter(discarded, "discard")).await.expect(204);
    assert_eq!(outbox_rows(gw).await.len(), 6);
    let dead: Vec<DeadLetterView> = gw
        .console(&admin, TestRequest::get().uri("/admin/v1/dead-letters"))
        .await
        .expect(200)
        .json();
    let handled = |id: Uuid| {
        let d = dead.iter().find(|d| d.id == id).unwrap();
        (d.replayed_at.is_some(), d.discarded_at.is_some())
    };
    assert_eq!(handled(replayed), (true, false));
    assert_eq!(handled(discarded), (false, true));
    assert_eq!(backlog(gw, &admin).await, (2, 0, 0));

    // Handled once only: 409; unknown ids: 404.
    for request in [
        resolve(reapplied, "reapply_local"),
        resolve(reapplied, "keep_server"),
        resolve(kept, "reapply_local"),
        dead_letter(replayed, "replay"),
        dead_letter(replayed, "discard"),
        dead_letter(discarded, "replay"),
        dead_letter(discarded, "discard"),
    ] {
        assert_problem(
            &gw.console(&admin, request).await.expect(409),
            ErrorCode::Conflict,
            None,
        );
    }
    for request in [
        resolve(Uuid::now_v7(), "keep_server"),
        dead_letter(Uuid::now_v7(), "replay"),
        dead_letter(Uuid::now_v7(), "discard"),
    ] {
        assert_problem(
            &gw.console(&admin, request).await.expect(404),
            ErrorCode::NotFound,
            None,
        );
    }
    assert_eq!(outbox_rows(gw).await.len(), 6);
    assert_eq!(backlog(gw, &admin).await, (2, 0, 0));
}
