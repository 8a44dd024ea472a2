//! Durability: no database, no 2xx.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_unreachable_writes_get_503_with_retry_after() {
    let lab = lab().await;
    let gw = &lab.gw;
    let before = stored(gw).await;
    // The same gateway with a pool that reaches no PostgreSQL. The token is still checked: by the
    // in-memory key ring, and for revocation by the shared checker (Redis first).
    let mut dead = gw.state.clone();
    let mut db = labedge_service::config::DatabaseConfig::new("postgres://postgres@127.0.0.1:1/none");
    db.acquire_timeout_ms = 300;
    db.connect_timeout_ms = 300;
    dead.pool = labedge_schema::db::build_pool(&db.pool_settings()).unwrap();
    // Collections are written by the group writer, which holds its own handle on the pool.
    dead.collections = labedge_edge_gateway::writes::CollectionWriter::start(dead.pool.clone());
    dead.bookings = labedge_edge_gateway::writes::BookingWriter::start(dead.pool.clone());
    dead.appointment_changes = labedge_edge_gateway::writes::ChangeWriter::start(dead.pool.clone());
    let app = TestApp::new(labedge_edge_gateway::startup::app(dead)).await;

    let body = collection(lab.patient, lab.prescription, &["EDTA"]);
    let responses = [
        post_collection(&app, &lab.nurse, Some(&key()), &body).await,
        patch_appointment(
            &app,
            &lab.nurse,
            lab.visit,
            Some("\"1\""),
            Some(&key()),
            &status(AppointmentStatus::CheckedIn),
        )
        .await,
        push(
            &app,
            &lab.nurse,
            &SyncPushRequest {
                mutations: vec![mutation(MutationOp::CollectionCreate {
                    collection: body.clone(),
                })],
            },
        )
        .await,
    ];
    for response in responses {
        let response = response.expect(503);
        let problem = response.problem();
        assert_eq!(problem.code, ErrorCode::ServiceUnavailable);
        assert!(
            !problem.detail.unwrap_or_default().contains("credentials"),
            "the write failed, not the authentication"
        );
        assert!(response.header("retry-after").is_some());
    }
    assert_eq!(stored(gw).await, before);
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // The tablet's retry, once the database is back, is recorded once.
    let key = key();
    post_collection(&gw.app, &lab.nurse, Some(&key), &body)
        .await
        .expect(201);
    assert_eq!(stored(gw).await.collections, before.collections + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_read_only_writes_get_503_and_nothing_is_stored() {
    let lab = lab().await;
    let gw = &lab.gw;
    let before = stored(gw).await;
    // This connection was opened read-write and stays so: it turns the database back at the end.
    let mut admin = gw.db.conn().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            gw.db.name()
        ))
        .await
        .unwrap();
    // A gateway whose connections are all new, hence read-only.
    let config = (*gw.state.config).clone();
    let state = labedge_edge_gateway::startup::build_state(config.clone())
        .await
        .unwrap();
    let app = TestApp::new(labedge_edge_gateway::startup::app(state)).await;

    let body = collection(lab.patient, lab.prescription, &["EDTA", "SST"]);
    let key = key();
    let responses = [
        post_collection(&app, &lab.nurse, Some(&key), &body).await,
        patch_appointment(
            &app,
            &lab.nurse,
            lab.visit,
            Some("\"1\""),
            Some(&self::key()),
            &status(AppointmentStatus::CheckedIn),
        )
        .await,
        push(
            &app,
            &lab.nurse,
            &SyncPushRequest {
                mutations: vec![mutation(change(lab.visit, 1, AppointmentStatus::CheckedIn))],
            },
        )
        .await,
    ];
    for response in responses {
        let response = response.expect(503);
        let problem = response.problem();
        assert_eq!(problem.code, ErrorCode::ServiceUnavailable);
        assert!(response.header("retry-after").is_some());
    }
    assert_eq!(stored(gw).await, before);
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));

    // Writable again: the tablet's retry with the same key is recorded, once.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            gw.db.name()
        ))
        .await
        .unwrap();
    let state = labedge_edge_gateway::startup::build_state(config).await.unwrap();
    let app = TestApp::new(labedge_edge_gateway::startup::app(state)).await;
    post_collection(&app, &lab.nurse, Some(&key), &body).await.expect(201);
    assert_eq!(stored(gw).await.collections, before.collections + 1);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// PostgreSQL going away while a write is inside its transaction (a restart, a failover: every
/// backend gets `admin_shutdown`) is the database being down: 503 + `Retry-After`, as the error
/// mapping promises for "an unreachable database", not an opaque 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_connection_is_cut_mid_transaction_gets_503_not_500() {
    let lab = lab().await;
    let gw = &lab.gw;
    let before = stored(gw).await;
    // Another transaction holds the appointment's row, so the change waits inside its transaction.
    let mut holder = gw.db.conn().await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM appointments WHERE id = '{}' FOR UPDATE",
            lab.visit
        ))
        .await
        .unwrap();
    let checked_in = status(AppointmentStatus::CheckedIn);
    let key = key();
    let write = patch_appointment(&gw.app, &lab.nurse, lab.visit, Some("\"1\""), Some(&key), &checked_in);
    // Then its backend is terminated, as a shutting-down server does.
    let cut = async {
        let mut watcher = gw.db.conn().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let cut: Count = diesel::sql_query(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .get_result(&mut watcher)
            .await
            .unwrap();
            if cut.n > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the write never waited on the row"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let (response, ()) = tokio::join!(write, cut);
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(stored(gw).await, before, "nothing stored");
    assert_eq!(appointment_state(gw, lab.visit).await, ("scheduled".into(), 1));
    let response = response.expect(503);
    assert_problem(&response, ErrorCode::ServiceUnavailable, None);
    assert!(response.header("retry-after").is_some());
}
