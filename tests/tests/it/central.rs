//! The central IT team's view of every lab's gateway, end to end with the real binaries: the
//! gateway's sync worker reports its state to the cloud under its credential; `GET
//! /central/v1/gateways` (JSON) and the `/central` page (in headless Chromium) show the lab's
//! gateway with its state, feed lag, backlog and last contact; a backlog made at the lab shows in
//! the next report; and without the central IT token, or with another, the view is refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labedge_tests::stack::Stack;
use labedge_tests::tablet;
use mobile_contracts::routes;
use serde_json::Value;

const TOKEN: &str = "central-it-token-for-the-central-test";

/// The lab's entry of `GET /central/v1/gateways`, once `ready` holds for it (at most `timeout`).
async fn lab_entry(stack: &Stack, timeout: Duration, what: &str, ready: impl Fn(&Value) -> bool) -> (Value, Value) {
    let started = Instant::now();
    loop {
        let response = stack
            .client
            .get(format!("{}/central/v1/gateways", stack.api_url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers().get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let overview: Value = response.json().await.unwrap();
        let entry = overview["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["lab"] == stack.lab.code.as_str())
            .unwrap_or_else(|| panic!("the lab is not in the view: {overview}"))
            .clone();
        if ready(&entry) {
            return (overview, entry);
        }
        assert!(
            started.elapsed() < timeout,
            "{what} never showed in the central view: {entry}\ngateway:\n{}",
            stack.gateway.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rfc3339(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(value.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateways_report_reaches_the_central_view_as_json_and_as_a_page_and_needs_the_token() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    browser_prerequisites(&browser_dir);
    // Without its relay the gateway keeps the lab's writes: the backlog the view must show.
    let mut stack = Stack::builder()
        .central_token(TOKEN)
        .gateway_env("LABEDGE_GATEWAY_RELAY__ENABLED", "false")
        .start()
        .await;
    let api = stack.api_url.clone();

    // Without the token, or with another, the view is refused.
    for authorization in [None, Some("Bearer not-the-token"), Some("Basic Y2VudHJhbDp4")] {
        let mut request = stack.client.get(format!("{api}/central/v1/gateways"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{authorization:?}");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{authorization:?}: {challenge}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_token", "{problem}");
        assert!(
            !problem.to_string().contains(&stack.lab.code),
            "a refusal shows no lab: {problem}"
        );
    }

    // The first report follows the bootstrap: the lab is online, in contact, nothing waiting.
    let (overview, first) = lab_entry(&stack, Duration::from_secs(30), "the first report", |g| {
        g["reported_state"] == "online"
    })
    .await;
    assert_eq!(first["state"], "online", "{first}");
    assert_eq!(first["silent"], false);
    assert_eq!(first["lab_name"], stack.lab.name.as_str());
    assert_eq!(first["backlog"], 0, "{first}");
    assert!(
        first["oldest_unsent_s"].is_null(),
        "an empty outbox has no oldest write: {first}"
    );
    let contact = rfc3339(&first["last_contact_at"]);
    let generated = rfc3339(&overview["generated_at"]);
    assert!(
        (generated - contact).whole_seconds() < 60,
        "contact {contact}, view {generated}"
    );
    assert!(
        first["last_contact_age_s"]
            .as_i64()
            .is_some_and(|a| (0..60).contains(&a)),
        "{first}"
    );
    assert!(first["cert_not_after"].is_string(), "the credential's end: {first}");
    assert_eq!(overview["silent_after_s"], 180);

    // The lab writes while its relay is off: a backlog.
    let admin = stack.admin_session().await;
    let nurse = stack.lab.logins.nurse.clone().unwrap();
    let token = tablet::enroll_and_login(&stack.client, &stack.gateway_url, &admin, &nurse).await;
    let visit = tablet::visits_at(&stack.edge_url).await[0].clone();
    for _ in 0..2 {
        let (_, key, body) = tablet::collection_for(&visit);
        let written = stack
            .client
            .post(format!("{}{}", stack.gateway_url, routes::COLLECTIONS))
            .bearer_auth(&token)
            .header("idempotency-key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(written.status().as_u16(), 201);
    }

    // A report goes at most once a minute; a restarted gateway reports after its first sync step,
    // which is now a pull of the feed: the view gets the backlog and the feed lag.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.restart_gateway().await;
    let (_, second) = lab_entry(&stack, Duration::from_secs(30), "the backlog", |g| g["backlog"] == 2).await;
    assert_eq!(second["state"], "online");
    assert_eq!(second["reported_state"], "online");
    assert!(
        second["oldest_unsent_s"].as_i64().is_some_and(|s| s >= 1),
        "the oldest write's age: {second}"
    );
    assert!(
        second["feed_lag_s"].as_i64().is_some_and(|s| (0..30).contains(&s)),
        "pulled just now: {second}"
    );
    assert!(
        rfc3339(&second["last_contact_at"]) > contact,
        "a later contact: {second}"
    );

    // The page: a shell without data or token, with a strict CSP...
    let page = stack.client.get(format!("{api}/central")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("connect-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(&stack.lab.code) && !html.contains(TOKEN),
        "the page itself holds no data"
    );
    for heading in ["State", "Feed lag", "Backlog", "Oldest unsent", "Last contact"] {
        assert!(html.contains(&format!(">{heading}</th>")), "column {heading}");
    }
    // ... which, in a browser given the token, shows the lab's gateway; another token is refused.
    let shown = central_page_in_chromium(&browser_dir, &api, &stack.lab.code).await;
    assert_eq!(shown["refused"], "This token was refused.", "{shown}");
    let row = shown["row"]
        .as_array()
        .unwrap_or_else(|| panic!("no row for the lab: {shown}"));
    let cells: Vec<&str> = row.iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(cells[0], stack.lab.code, "{cells:?}");
    assert_eq!(cells[1], "online", "state: {cells:?}");
    assert!(
        cells[2].ends_with(" s") || cells[2].ends_with(" min"),
        "feed lag: {cells:?}"
    );
    assert_eq!(cells[3], "2", "backlog: {cells:?}");
    assert!(
        cells[4].ends_with(" s") || cells[4].ends_with(" min"),
        "oldest unsent: {cells:?}"
    );
    assert!(cells[5].ends_with(" ago"), "last contact: {cells:?}");
    assert!(
        shown["summary"].as_str().unwrap().contains("1 online"),
        "the summary counts the lab: {shown}"
    );
}

/// Chromium to drive: `LABEDGE_CHROMIUM`, else Debian's.
fn chromium_path() -> PathBuf {
    std::env::var_os("LABEDGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails with the commands that install what the browser needs, when something is missing.
fn browser_prerequisites(browser_dir: &Path) {
    const INSTALL: &str = "install them with:\n  apt-get update && apt-get install -y nodejs npm chromium\n  npm ci --prefix tests/browser";
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(node, "node is missing: {INSTALL}");
    assert!(
        chromium_path().is_file(),
        "{} is missing: {INSTALL}",
        chromium_path().display()
    );
    assert!(
        browser_dir.join("node_modules/playwright-core/package.json").is_file(),
        "{}/node_modules is missing: {INSTALL}",
        browser_dir.display()
    );
}

/// Opens `/central` in headless Chromium, gives it a wrong token (the message it shows), then the
/// right one; returns what the page shows: `{"refused", "row": [cells of the lab's row], "summary"}`.
async fn central_page_in_chromium(browser_dir: &Path, api: &str, lab: &str) -> Value {
    // The test CA is not in Chromium's store: the certificate is checked by the Rust client above.
    const SCRIPT: &str = r##"
import { chromium } from "playwright-core";
const [url, token, lab] = [process.env.CENTRAL_URL, process.env.CENTRAL_TOKEN, process.env.CENTRAL_LAB];
const watchdog = setTimeout(() => { console.error("gave up after 60 s"); process.exit(3); }, 60_000);
const browser = await chromium.launch({
  executablePath: process.env.LABEDGE_CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  page.setDefaultTimeout(20_000);
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  // A refused token is a 401 the page expects; the browser's own favicon request has no answer.
  page.on("response", (r) => {
    const expected = (r.status() === 401 && r.url().endsWith("/central/v1/gateways")) || r.url().endsWith("/favicon.ico");
    if (r.status() >= 400 && !expected) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on("console", (m) => { if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) problems.push(m.text()); });
  await page.goto(url + "/central");
  await page.fill("#token", "not-the-token");
  await page.click("#login button[type=submit]");
  await page.waitForFunction(() => document.getElementById("login-error").textContent !== "");
  const refused = await page.textContent("#login-error");
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#rows tr");
  const rows = await page.$$eval("#rows tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
  const summary = await page.textContent("#summary");
  console.log(JSON.stringify({ refused, row: rows.find((r) => r[0] === lab) ?? null, summary, problems }));
} finally {
  clearTimeout(watchdog);
  await browser.close();
}
"##;
    let output = tokio::process::Command::new("node")
        .args(["--input-type=module", "-e", SCRIPT])
        .current_dir(browser_dir)
        .env("CENTRAL_URL", api)
        .env("CENTRAL_TOKEN", TOKEN)
        .env("CENTRAL_LAB", lab)
        .env("LABEDGE_CHROMIUM", chromium_path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("the browser finishes within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the browser's answer ({e}): {stdout}"));
    assert_eq!(
        shown["problems"],
        serde_json::json!([]),
        "the page ran without error: {shown}"
    );
    shown
}
