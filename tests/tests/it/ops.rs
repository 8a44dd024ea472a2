//! Health, readiness, metrics and errors of both services, in process.

use labedge_schema::db::Database;
use labedge_tests::app::TestApp;
use labedge_tests::db::TestDb;
use labedge_tests::fixtures::{api_config, gateway_config};
use labedge_tests::redis::TestRedis;
use mobile_contracts::ops::{DatabaseRole, Health, Readiness};
use mobile_contracts::problem::ErrorCode;

async fn cloud_app(db: &TestDb) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let state = labedge_api::startup::build_state(api_config(db.url(), dir.path())).unwrap();
    TestApp::new(labedge_api::startup::app(state)).await
}

async fn gateway_app(database_url: &str, redis: &TestRedis, pki: &tempfile::TempDir) -> TestApp {
    let mut config = gateway_config("TEST-LAB", database_url, redis.prefix(), pki.path());
    config.database.acquire_timeout_ms = 500;
    config.database.connect_timeout_ms = 500;
    let state = labedge_edge_gateway::startup::build_state(config).await.unwrap();
    let mut app = TestApp::new(labedge_edge_gateway::startup::app(state)).await;
    app.peer = "127.0.0.1:40000".parse().unwrap();
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_health_readiness_and_metrics() {
    let db = TestDb::migrated(Database::Cloud).await;
    let app = cloud_app(&db).await;

    let health: Health = app.get("/healthz").await.expect(200).json();
    assert_eq!((health.status.as_str(), health.service.as_str()), ("ok", "api"));

    let ready: Readiness = app.get("/readyz").await.expect(200).json();
    assert!(ready.ready);
    assert_eq!(ready.role, Some(DatabaseRole::Primary));

    // From this machine, where the supervision of the test configuration is.
    let metrics = app.from_peer("127.0.0.1:9090").get("/metrics").await.expect(200).text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("labedge_http_request_duration_seconds_count")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_problem_documents_with_a_request_id() {
    let db = TestDb::migrated(Database::Cloud).await;
    let app = cloud_app(&db).await;
    let response = app.get("/v1/nothing-here").await.expect(404);
    assert_eq!(response.problem().code, ErrorCode::NotFound);
    assert!(response.header("x-request-id").is_some_and(|id| id.len() >= 32));

    // A client's request id is kept only when it is a UUID (in its canonical form): anything else
    // would reach the logs and the audit records as the client wrote it.
    let send = |id: &'static str| {
        app.send(
            actix_web::test::TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-request-id", id)),
        )
    };
    let kept = send("0190C3A2-7B1E-7C4D-9A2B-3F4E5D6C7B8A").await.expect(200);
    assert_eq!(
        kept.header("x-request-id").as_deref(),
        Some("0190c3a2-7b1e-7c4d-9a2b-3f4e5d6c7b8a")
    );
    for malformed in [
        "<script>",
        "tablet-42.req-7",
        "DUPONT-Marie-1984",
        "1840675123456",
        "00000000-0000-0000-0000-000000000000",
        "",
    ] {
        let replaced = send(malformed).await.expect(200);
        let id = replaced.header("x-request-id").unwrap();
        assert_ne!(id, malformed);
        assert!(
            uuid::Uuid::try_parse(&id).is_ok(),
            "{malformed:?} replaced by a UUID: {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_is_ready_on_a_durable_database_and_serves_the_committed_contract() {
    let db = TestDb::migrated(Database::Edge).await;
    let redis = TestRedis::new();
    let pki = tempfile::tempdir().unwrap();
    let mut app = gateway_app(db.url(), &redis, &pki).await;

    let health: Health = app.get("/healthz").await.expect(200).json();
    assert_eq!(health.service, "edge-gateway");
    let ready: Readiness = app.get("/readyz").await.expect(200).json();
    assert!(ready.ready, "{ready:?}");
    assert!(ready.checks.iter().any(|c| c.name == "durability" && c.ok));

    app.peer = "10.8.0.10:50000".parse().unwrap();
    let served: serde_json::Value = app.get("/openapi.json").await.expect(200).json();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../mobile-contracts/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, committed, "the gateway serves the committed OpenAPI document");
    assert_eq!(served["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_without_its_database_is_not_ready_but_alive() {
    let redis = TestRedis::new();
    let pki = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let app = gateway_app("postgres://postgres@127.0.0.1:1/none", &redis, &pki).await;
    app.get("/healthz").await.expect(200);
    let ready: Readiness = app.get("/readyz").await.expect(503).json();
    assert!(!ready.ready);
    assert!(ready.checks.iter().any(|c| c.name == "database" && !c.ok));
}
