//! The lab admin's web console (`/admin`): its page and assets, its own JSON routes (history,
//! pending pushes per tablet, a patient's access history, reconciliations) in process, and the page
//! itself driven in headless Chromium against the real binaries (`tests/browser/admin.mjs`): in
//! French, its default, then in English through its language switch.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use labedge_edge_gateway::console::history;
use labedge_tests::app::TestResponse;
use labedge_tests::edge_data::{self, collection, patient, prescription};
use labedge_tests::gateway::{AdminCookie, NURSE, TestGateway};
use labedge_tests::stack::{ADMIN_PASSWORD, Stack};
use labedge_tests::tablet;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes::{self, with_id};
use serde_json::Value;
use time::macros::date;
use uuid::Uuid;

// ------------------------------------------------------------------------------------------------
// Helpers.

async fn console_get(gw: &TestGateway, admin: &AdminCookie, path: &str) -> TestResponse {
    gw.console(admin, TestRequest::get().uri(path)).await
}

/// A lab with a patient, their prescription and the catalog, and a nurse logged in on a tablet:
/// (patient, prescription, device, access token).
async fn lab_with_a_nurse(gw: &TestGateway) -> (Uuid, Uuid, Uuid, String) {
    edge_data::insert_catalog(gw).await;
    let today = edge_data::local_today(gw).await;
    let someone = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    edge_data::upsert_patients(gw, std::slice::from_ref(&someone)).await;
    let rx = prescription(gw.lab_id, someone.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(gw, std::slice::from_ref(&rx)).await;
    let (device, tokens) = gw.nurse_tablet().await;
    (
        someone.id,
        rx.prescription.id,
        device.id,
        tokens.access_token.expose_secret().to_owned(),
    )
}

/// A collection written on the tablet: committed at the gateway, waiting in the outbox (no relay
/// runs in process).
async fn write_collection(gw: &TestGateway, token: &str, patient: Uuid, prescription: Uuid) {
    gw.app
        .send(
            TestRequest::post()
                .uri(routes::COLLECTIONS)
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("idempotency-key", Uuid::now_v7().to_string()))
                .set_json(collection(patient, prescription, &["EDTA"])),
        )
        .await
        .expect(201);
}

// ------------------------------------------------------------------------------------------------
// The page.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_from_the_binary_with_a_strict_policy() {
    let gw = TestGateway::start().await;
    for path in ["/admin", "/admin/"] {
        let page = gw.from_admin_network(TestRequest::get().uri(path)).await.expect(200);
        assert_eq!(page.header("content-type").unwrap(), "text/html; charset=utf-8");
        let policy = page.header("content-security-policy").unwrap();
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(page.header("x-frame-options").unwrap(), "DENY");
        assert_eq!(page.header("x-content-type-options").unwrap(), "nosniff");
        let html = page.text();
        assert!(html.contains("id=\"login-form\""), "the login form is part of the page");
        assert!(html.contains("/admin/assets/console.js"));
        // French before any script runs; the switch to English is on the page.
        assert!(html.contains("<html lang=\"fr\">"), "French by default");
        assert!(html.contains(">Se connecter</button>"), "{html}");
        assert!(html.contains("data-lang=\"en\""), "a language switch");
        assert!(html.contains("/admin/assets/i18n.js"));
    }
    for (asset, content_type) in [
        ("console.js", "text/javascript; charset=utf-8"),
        ("i18n.js", "text/javascript; charset=utf-8"),
        ("charts.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
    ] {
        let response = gw
            .from_admin_network(TestRequest::get().uri(&format!("/admin/assets/{asset}")))
            .await
            .expect(200);
        assert_eq!(response.header("content-type").unwrap(), content_type, "{asset}");
        assert!(!response.body.is_empty());
    }
    let missing = gw
        .from_admin_network(TestRequest::get().uri("/admin/assets/../../Cargo.toml"))
        .await;
    assert_eq!(missing.status.as_u16(), 404);
    let missing = gw
        .from_admin_network(TestRequest::get().uri("/admin/assets/nothing.js"))
        .await
        .expect(404);
    assert_eq!(missing.problem().code, ErrorCode::NotFound);

    // The page is for the lab's network only, like every admin route.
    let from_a_tablet = gw.app.get("/admin").await.expect(403);
    assert_eq!(from_a_tablet.problem().code, ErrorCode::PeerNotAllowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_route_needs_an_admin_session() {
    let gw = TestGateway::start().await;
    let (patient, _, _, token) = lab_with_a_nurse(&gw).await;
    let routes = [
        "/admin/v1/history".to_owned(),
        "/admin/v1/devices/pending-pushes".to_owned(),
        format!("/admin/v1/patients/{patient}/access"),
        format!("/admin/v1/patients/{patient}/access?limit=0"),
        "/admin/v1/reconciliations".to_owned(),
    ];
    for path in &routes {
        let anonymous = gw.from_admin_network(TestRequest::get().uri(path)).await.expect(401);
        assert_eq!(anonymous.problem().code, ErrorCode::InvalidCredentials, "{path}");
        let with_a_tablet_token = gw
            .from_admin_network(
                TestRequest::get()
                    .uri(path)
                    .insert_header(("authorization", format!("Bearer {token}"))),
            )
            .await
            .expect(403);
        assert_eq!(with_a_tablet_token.problem().code, ErrorCode::Forbidden, "{path}");
        let forged = gw
            .from_admin_network(
                TestRequest::get()
                    .uri(path)
                    .insert_header(("cookie", "labedge_admin=forged")),
            )
            .await
            .expect(401);
        assert_eq!(forged.problem().code, ErrorCode::InvalidCredentials, "{path}");
    }
}

// ------------------------------------------------------------------------------------------------
// The lab's time zone, in which the page shows every date.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_gives_the_labs_time_zone_to_the_page() {
    let paris = TestGateway::start().await;
    let admin = paris.admin_login().await;
    let status: Value = console_get(&paris, &admin, "/admin/v1/status").await.expect(200).json();
    assert_eq!(status["timezone"], "Europe/Paris");

    let cayenne = TestGateway::start_with("TEST-LAB", |c| c.timezone = "America/Cayenne".into()).await;
    let admin = cayenne.admin_login().await;
    let status: Value = console_get(&cayenne, &admin, "/admin/v1/status")
        .await
        .expect(200)
        .json();
    assert_eq!(status["timezone"], "America/Cayenne");
}

/// The status carries the database's disk: its size, the free space of `console.database_disk`,
/// and no growth nor autonomy before an hour of samples; a path that cannot be read leaves the free
/// space unknown rather than failing the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_the_databases_disk() {
    let gw = TestGateway::start_with("TEST-LAB", |c| c.console.database_disk = "/".into()).await;
    let admin = gw.admin_login().await;
    let status: Value = console_get(&gw, &admin, "/admin/v1/status").await.expect(200).json();
    let storage = &status["storage"];
    assert!(storage["database_bytes"].as_i64().is_some_and(|b| b > 0), "{storage}");
    assert!(storage["free_bytes"].as_u64().is_some_and(|b| b > 0), "{storage}");
    assert!(storage["growth_bytes_per_day"].is_null() && storage["autonomy_days"].is_null());

    let elsewhere = TestGateway::start_with("TEST-LAB", |c| c.console.database_disk = "/no/such/disk".into()).await;
    let admin = elsewhere.admin_login().await;
    let status: Value = console_get(&elsewhere, &admin, "/admin/v1/status")
        .await
        .expect(200)
        .json();
    assert!(status["storage"]["free_bytes"].is_null(), "{status}");
}

// ------------------------------------------------------------------------------------------------
// Enrollment's QR code.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_code_comes_with_its_qr_code() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let code: Value = gw
        .console(&admin, TestRequest::post().uri("/admin/v1/enrollment-codes"))
        .await
        .expect(201)
        .json();
    let text = code["code"].as_str().unwrap();
    assert_eq!(text.len(), 8);
    let svg = code["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.ends_with("</svg>"));
    // The QR code is the code's own: another code, another picture.
    let other: Value = gw
        .console(&admin, TestRequest::post().uri("/admin/v1/enrollment-codes"))
        .await
        .expect(201)
        .json();
    assert_ne!(other["qr_svg"], code["qr_svg"]);
    assert_eq!(
        labedge_edge_gateway::console::qr::enrollment_uri(text, "TEST-LAB"),
        format!("labedge://enroll?code={text}&lab=TEST-LAB")
    );
}

// ------------------------------------------------------------------------------------------------
// History.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_holds_requests_backlog_and_sync_lag_per_sample() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let empty: Value = console_get(&gw, &admin, "/admin/v1/history").await.expect(200).json();
    assert_eq!(empty["interval_s"], 30);
    assert_eq!(empty["retention_s"], 6 * 3600);
    assert_eq!(
        empty["samples"].as_array().unwrap().len(),
        0,
        "the sampler does not run in process"
    );

    let first = history::sample_now(&gw.state).await;
    assert_eq!(first.backlog, Some(0));
    assert_eq!(first.sync_lag, None, "no pull yet");

    // Tablet traffic and a write waiting for the cloud; the feed 20 changes behind.
    let (patient, rx, _, token) = lab_with_a_nurse(&gw).await;
    write_collection(&gw, &token, patient, rx).await;
    gw.app
        .get_authed(&with_id(routes::PATIENT, patient), &token)
        .await
        .expect(200);
    {
        let mut sync = gw.state.sync_status.write().unwrap();
        sync.head = Some(120);
        sync.position = Some(100);
    }
    let second = history::sample_now(&gw.state).await;
    assert_eq!(second.backlog, Some(1));
    assert!(second.oldest_pending_s.is_some());
    assert_eq!(second.sync_lag, Some(20));
    // Enroll, login, write, read: four tablet requests at least (the console's own are not counted).
    assert!(second.requests >= 4, "{second:?}");

    let view: Value = console_get(&gw, &admin, "/admin/v1/history").await.expect(200).json();
    let samples = view["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[1]["backlog"], 1);
    assert_eq!(samples[1]["sync_lag"], 20);
    assert_eq!(samples[1]["mode"], "degraded", "no upstream answered in process");
    assert!(samples[0]["at"].as_str().unwrap() <= samples[1]["at"].as_str().unwrap());
}

// ------------------------------------------------------------------------------------------------
// Tablets' pending pushes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pushes_are_counted_per_tablet() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let none: Vec<Value> = console_get(&gw, &admin, "/admin/v1/devices/pending-pushes")
        .await
        .expect(200)
        .json();
    assert!(none.is_empty());

    let (patient, rx, device, token) = lab_with_a_nurse(&gw).await;
    write_collection(&gw, &token, patient, rx).await;
    write_collection(&gw, &token, patient, rx).await;
    let other = gw.enroll(None).await;
    let other_token = gw.login(&other, NURSE.0, NURSE.1).await;
    write_collection(&gw, other_token.access_token.expose_secret(), patient, rx).await;
    // An entry already acknowledged by the cloud is not pending.
    gw.db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE outbox SET sent_at = now(), outcome = 'applied' \
             WHERE seq = (SELECT min(seq) FROM outbox WHERE payload->>'device_id' = '{device}')"
        ))
        .await
        .unwrap();
    write_collection(&gw, &token, patient, rx).await;

    let pending: Vec<Value> = console_get(&gw, &admin, "/admin/v1/devices/pending-pushes")
        .await
        .expect(200)
        .json();
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert_eq!(pending[0]["device_id"], device.to_string(), "most first");
    assert_eq!(pending[0]["pending"], 2);
    assert_eq!(pending[1]["device_id"], other.id.to_string());
    assert_eq!(pending[1]["pending"], 1);
    assert!(pending[0]["oldest_at"].as_str().is_some());
}

// ------------------------------------------------------------------------------------------------
// A patient's access history.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_access_history_says_who_from_which_tablet_newest_first() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let (patient, rx, device, token) = lab_with_a_nurse(&gw).await;
    gw.app
        .get_authed(&with_id(routes::PATIENT, patient), &token)
        .await
        .expect(200);
    write_collection(&gw, &token, patient, rx).await;
    let path = format!("/admin/v1/patients/{patient}/access");

    let records: Vec<Value> = console_get(&gw, &admin, &path).await.expect(200).json();
    assert!(records.len() >= 2, "{records:?}");
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"patient.read"), "{actions:?}");
    let read = records.iter().find(|r| r["action"] == "patient.read").unwrap();
    assert_eq!(read["staff_name"], "Nina Dupont");
    assert_eq!(read["staff_role"], "nurse");
    assert_eq!(read["device_id"], device.to_string());
    assert_eq!(read["device_label"], "Tablette test");
    let times: Vec<&str> = records.iter().map(|r| r["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // Reading the access history is itself recorded, under the admin's name.
    let again: Vec<Value> = console_get(&gw, &admin, &path).await.expect(200).json();
    assert_eq!(again.len(), records.len() + 1);
    assert_eq!(again[0]["action"], "patient.access_log.read");
    assert_eq!(again[0]["staff_name"], "Alice Bernard");
    assert_eq!(again[0]["device_id"], Value::Null);

    // Bounded, validated, and nothing for a patient nobody accessed.
    let one: Vec<Value> = console_get(&gw, &admin, &format!("{path}?limit=1"))
        .await
        .expect(200)
        .json();
    assert_eq!(one.len(), 1);
    for bad in ["limit=0", "limit=1001", "limit=many", "other=1"] {
        let refused = console_get(&gw, &admin, &format!("{path}?{bad}")).await;
        assert!(
            matches!(refused.status.as_u16(), 400 | 422),
            "{bad}: {}",
            refused.status
        );
        assert_eq!(
            refused.header("content-type").unwrap(),
            "application/problem+json",
            "{bad}"
        );
    }
    let nobody: Vec<Value> = console_get(&gw, &admin, &format!("/admin/v1/patients/{}/access", Uuid::now_v7()))
        .await
        .expect(200)
        .json();
    assert_eq!(nobody.len(), 0);
    let malformed = console_get(&gw, &admin, "/admin/v1/patients/not-an-id/access")
        .await
        .expect(404);
    assert_eq!(malformed.problem().code, ErrorCode::NotFound);
}

// ------------------------------------------------------------------------------------------------
// Reconciliations.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_reconciliations_are_listed_newest_first() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let none: Vec<Value> = console_get(&gw, &admin, "/admin/v1/reconciliations")
        .await
        .expect(200)
        .json();
    assert!(none.is_empty());
    gw.db
        .conn()
        .await
        .batch_execute(
            "INSERT INTO reconciliation_runs (started_at, finished_at, ok, tables, repaired_rows, error) VALUES \
             (now() - interval '2 days', now() - interval '2 days' + interval '40 seconds', true, '[]', 0, NULL), \
             (now() - interval '1 day', now() - interval '1 day' + interval '55 seconds', true, '[{\"table\": \"patients\"}]', 3, NULL), \
             (now() - interval '1 hour', now() - interval '1 hour' + interval '2 seconds', false, '[]', 0, 'the cloud did not answer')",
        )
        .await
        .unwrap();
    let runs: Vec<Value> = console_get(&gw, &admin, "/admin/v1/reconciliations")
        .await
        .expect(200)
        .json();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["ok"], false);
    assert_eq!(runs[0]["error"], "the cloud did not answer");
    assert_eq!(runs[1]["repaired_rows"], 3);
    assert_eq!(runs[1]["tables"][0]["table"], "patients");
    assert_eq!(runs[2]["error"], Value::Null);
}

// ------------------------------------------------------------------------------------------------
// The page in a real browser, against the real binaries.

/// The workspace's `target` folder (the test executable is `target/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// Chromium to drive: `LABEDGE_CHROMIUM`, else Debian's.
fn chromium_path() -> PathBuf {
    std::env::var_os("LABEDGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails with the commands that install what the browser test needs, when something is missing.
fn browser_prerequisites(browser_dir: &Path) {
    const INSTALL: &str = "install them with:\n  \
        apt-get update && apt-get install -y nodejs npm chromium\n  \
        npm ci --prefix tests/browser";
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(node, "node is missing: {INSTALL}");
    let chromium = chromium_path();
    assert!(
        chromium.is_file(),
        "{} is missing (set LABEDGE_CHROMIUM to use another Chromium): {INSTALL}",
        chromium.display()
    );
    assert!(
        browser_dir.join("node_modules/playwright-core/package.json").is_file(),
        "{}/node_modules is missing: {INSTALL}",
        browser_dir.display()
    );
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// The width and height of a PNG, from its header.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_works_in_headless_chromium() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    browser_prerequisites(&browser_dir);

    // A seeded cloud, a provisioned gateway over HTTPS, both the real binaries; a chart point a
    // second, so that a few seconds of traffic draw lines. The lab's data has arrived once its admin
    // can log in (the stack waits for that) and the bootstrap has set its checkpoint.
    let stack = Stack::builder().patients(60).chart_interval_s(1).start().await;
    let (client, gw) = (stack.client.clone(), stack.gateway_url.clone());
    let started = Instant::now();
    while diesel::sql_query("SELECT count(*)::text AS value FROM sync_checkpoints")
        .get_result::<Text>(&mut stack.edge_conn().await)
        .await
        .unwrap()
        .value
        == "0"
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bootstrap did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A nurse's tablet at work for a few seconds, so that the page has data to show: reads of one
    // patient (their access history) and collections (requests and backlog on the charts).
    let admin = stack.admin_session().await;
    let nurse = stack.lab.logins.nurse.clone().expect("the demo lab has a nurse");
    let token = tablet::enroll_and_login(&client, &gw, &admin, &nurse).await;
    let visits = tablet::visits_at(&stack.edge_url).await;
    let patient = <[tablet::Visit]>::first(&visits)
        .expect("the demo lab has visits")
        .patient;
    let writer = tablet::Writer::start(client.clone(), gw.clone(), token.clone(), visits);
    for _ in 0..3 {
        let read = client
            .get(format!("{gw}/v1/patients/{patient}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let written = writer.stop().await;
    assert!(!written.is_empty(), "the tablet wrote collections");

    // The browser does the rest: login, enroll, revoke, status and charts, screenshot.
    let screenshot = target_dir().join("admin-console.png");
    let _ = std::fs::remove_file(&screenshot);
    let script = browser_dir.join("admin.mjs");
    let child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&gw)
        .arg(&stack.lab.logins.lab_admin)
        .arg(ADMIN_PASSWORD)
        .arg(&screenshot)
        .arg(patient.to_string())
        .arg(&nurse)
        .env("LABEDGE_CHROMIUM", chromium_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the browser script finishes within 3 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed ({}):\n{stdout}\n{stderr}\n--- gateway ---\n{}",
        output.status,
        stack.gateway.output()
    );
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result line from the script:\n{stdout}\n{stderr}"));
    assert_eq!(result["ok"], true, "{result}");

    // The page as the browser showed it: French (its default, in an English browser), then English
    // through the switch; the screenshot in French. Times in the lab's zone, not the browser's.
    let (french, english) = (&result["seen"]["fr"], &result["seen"]["en"]);
    assert_eq!(french["lang"], "fr", "{result}");
    assert_eq!(french["logout"], "Se déconnecter");
    assert_eq!(french["tablets"], "Tablettes");
    assert_eq!(french["staff"], "Personnel");
    assert_eq!(french["revoked"], "Révoquée");
    assert!(
        ["En ligne", "Secours", "Hors ligne"].contains(&french["mode"].as_str().unwrap()),
        "{french}"
    );
    assert_eq!(french["zone"], "Heures dans le fuseau du laboratoire (Europe/Paris).");
    assert_eq!(english["lang"], "en", "{result}");
    assert_eq!(english["logout"], "Sign out");
    assert_eq!(english["tablets"], "Tablets");
    assert_eq!(english["staff"], "Staff");
    assert_eq!(english["revoked"], "Revoked");
    assert!(
        ["Online", "Failover", "Offline"].contains(&english["mode"].as_str().unwrap()),
        "{english}"
    );
    assert_eq!(english["zone"], "Times in the lab's time zone (Europe/Paris).");
    assert_eq!(result["screenshot_lang"], "fr");

    // A full-page PNG of a real page.
    let png = std::fs::read(&screenshot).unwrap_or_else(|e| panic!("{}: {e}", screenshot.display()));
    let (width, height) = png_size(&png).expect("the screenshot is a PNG");
    assert!(width >= 1000 && height >= 900, "{width}×{height}");
    assert!(
        (20_000..30_000_000).contains(&png.len()),
        "a screenshot of a drawn page: {} bytes",
        png.len()
    );

    // The tablet the browser enrolled then revoked is revoked in the gateway's database.
    let device: Uuid = result["device_id"].as_str().unwrap().parse().unwrap();
    let status = diesel::sql_query("SELECT status AS value FROM devices WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(device)
        .get_result::<Text>(&mut stack.edge_conn().await)
        .await
        .unwrap();
    assert_eq!(status.value, "revoked");
    eprintln!(
        "console screenshot: {} ({width}×{height}, {} bytes)",
        screenshot.display(),
        png.len()
    );
}
