//! API fuzzing from the contract (issue 9, item 6): schemathesis (pinned in
//! `tests/fuzz/requirements.txt`, installed by `deploy/lib/services.sh` into
//! `target/schemathesis-venv`) against the real gateway binary, from the committed
//! `mobile-contracts/openapi.json`, with a valid tablet token, every check on: 0 failures.
//! 100 examples per operation in CI, 1,000 in the long run (`deploy/test.sh --long`).
//!
//! `POST /v1/auth/logout` is left out: it would end the session whose token the run uses (its
//! contract is checked by `auth::a_tablet_enrolls_a_nurse_logs_in_and_out`).
//!
//! No check is disabled. The one configured exception, in `tests/fuzz/schemathesis.toml`: a few
//! operations refuse some schema-valid requests for reasons a JSON schema cannot state (the data is
//! not the caller's or does not exist, a NIR key, a signed cursor, a signable CSR, one barcode twice,
//! a stale `If-Match`); for those operations only, `positive_data_acceptance` also accepts the status
//! the contract documents for that refusal (422; 400 and 422 for enrollment; 412 for an appointment
//! change), and `missing_required_header` accepts 428 for a missing `If-Match`. Everything else a
//! schema-valid request gets must be 2xx/3xx/401/403/404/409/429, never a 5xx, every status and
//! response body must match the contract, and an undeclared method must get 405 with `Allow`. The rule
//! and its table are in docs/api-design.md ("Fuzzing the contract"). About 90 s in CI on 2 cores.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use labedge_tests::real_gateway::RealGateway;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_running_gateway() {
    let st = workspace().join("target/schemathesis-venv/bin/st");
    assert!(
        st.is_file(),
        "{} is missing: run deploy/test.sh (ensure_test_tools installs it) or \
         python3 -m venv target/schemathesis-venv && target/schemathesis-venv/bin/pip install -r tests/fuzz/requirements.txt",
        st.display()
    );
    let real = RealGateway::start("TEST-LAB", 2, |_| {}).await;
    let (_, tokens) = real.gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    let examples = if labedge_tests::long_run() { 1_000 } else { 100 };
    let schema = workspace().join("mobile-contracts/openapi.json");
    let reports = real.dir.path().join("schemathesis");
    let started = Instant::now();
    let config = workspace().join("tests/fuzz/schemathesis.toml");
    let st_args = [
        "--config-file".to_owned(),
        config.display().to_string(),
        "run".into(),
        schema.display().to_string(),
        "--url".into(),
        real.url.clone(),
        "--header".into(),
        format!("Authorization: Bearer {token}"),
        "--checks".into(),
        "all".into(),
        "--max-examples".into(),
        examples.to_string(),
        "--workers".into(),
        "2".into(),
        "--exclude-path".into(),
        "/v1/auth/logout".into(),
        "--seed".into(),
        "9".into(),
        "--no-color".into(),
        "--report-dir".into(),
        reports.display().to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || Command::new(st).args(&st_args).output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{text}");
    eprintln!(
        "fuzzing: schemathesis, {examples} examples per operation, {:.0} s, exit {:?}",
        started.elapsed().as_secs_f64(),
        output.status.code()
    );
    // The gateway survived it: still alive and answering.
    let alive = reqwest::get(format!("{}/healthz", real.url)).await.unwrap();
    assert_eq!(alive.status().as_u16(), 200);
    assert!(output.status.success(), "schemathesis found failures (see above)");
}
