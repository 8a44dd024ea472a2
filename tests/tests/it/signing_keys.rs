//! Issue 12 item 6: certificate binding follows the device, the signing keys are sealed at rest, and a
//! leaked key is retired at once. Against real PostgreSQL and Redis.

use base64::Engine as _;
use labedge_tests::gateway::{NURSE, TestGateway, forge_token, token_part};
use mobile_contracts::problem::ErrorCode;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn assert_invalid_token(response: &labedge_tests::app::TestResponse, case: &str) {
    assert_eq!(response.status.as_u16(), 401, "{case}: {}", response.text());
    assert_eq!(response.problem().code, ErrorCode::InvalidToken, "{case}");
}

fn enrollment_csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_cnf_is_refused_for_a_certificate_bound_device() {
    let mut gw = TestGateway::start().await;
    let device = gw.enroll(Some(enrollment_csr())).await;
    let cert_pem = device.enrolled.client_certificate_pem.clone().unwrap();
    let der = labedge_service::tls::parse_certs(&cert_pem).unwrap().remove(0).to_vec();
    gw.app.certificate = Some(der.clone());
    let tokens = gw.login(&device, NURSE.0, NURSE.1).await;
    let good = tokens.access_token.expose_secret().to_owned();
    gw.app.get_authed("/v1/me", &good).await.expect(200);

    // The same claims without `cnf`, signed with the ring's own key: what a stale or forged token
    // of this device would look like. The device record says it is bound, so the token is refused,
    // with its certificate or without.
    let header = token_part(&good, 0);
    let mut claims = token_part(&good, 1);
    claims.as_object_mut().unwrap().remove("cnf");
    let secret = gw.signing_secret(header["kid"].as_str().unwrap()).await;
    assert_eq!(
        gw.app
            .get_authed("/v1/me", &forge_token(&header, &token_part(&good, 1), &secret))
            .await
            .status
            .as_u16(),
        200,
        "the forging signs as the gateway does"
    );
    let unbound = forge_token(&header, &claims, &secret);
    assert_invalid_token(
        &gw.app.get_authed("/v1/me", &unbound).await,
        "no cnf, over its certificate",
    );
    gw.app.certificate = None;
    assert_invalid_token(&gw.app.get_authed("/v1/me", &unbound).await, "no cnf, no certificate");
    // A cnf naming another certificate, presented with that certificate: the device record decides.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["other".into()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let mut rebound = claims.clone();
    rebound["cnf"] = serde_json::json!({"x5t#S256": B64.encode(<sha2::Sha256 as sha2::Digest>::digest(other.der()))});
    gw.app.certificate = Some(other.der().to_vec());
    assert_invalid_token(
        &gw.app
            .get_authed("/v1/me", &forge_token(&header, &rebound, &secret))
            .await,
        "cnf and connection agree on another certificate",
    );
    let metrics = labedge_service::metrics::install().render();
    assert!(
        metrics.lines().any(|l| l.starts_with("labedge_security_events_total")
            && l.contains("action=\"token_refused\"")
            && l.contains("reason=\"cnf_missing\"")),
        "the refusal is a security event with its reason"
    );
    // A device enrolled without a certificate keeps working without one.
    gw.app.certificate = None;
    let (_, plain) = gw.nurse_tablet().await;
    gw.app
        .get_authed("/v1/me", plain.access_token.expose_secret())
        .await
        .expect(200);
}

/// Every byte string a dump of `signing_keys` holds: each column's value, and every 32-byte window of
/// the binary ones (a key stored beside a nonce, say).
async fn dumped_byte_strings(gw: &TestGateway) -> Vec<Vec<u8>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let rows: Vec<Row> = diesel_async::RunQueryDsl::load(
        diesel::sql_query("SELECT row_to_json(k)::text AS row FROM signing_keys k"),
        &mut gw.db.conn().await,
    )
    .await
    .unwrap();
    assert!(!rows.is_empty());
    let mut out = Vec::new();
    for row in rows {
        let value: serde_json::Value = serde_json::from_str(&row.row).unwrap();
        for (_, column) in value.as_object().unwrap() {
            let Some(text) = column.as_str() else { continue };
            out.push(text.as_bytes().to_vec());
            if let Some(hex) = text.strip_prefix("\\x") {
                let bytes: Vec<u8> = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                for window in bytes.windows(32) {
                    out.push(window.to_vec());
                }
                out.push(bytes);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_signing_keys_cannot_mint_a_token() {
    let gw = TestGateway::start().await;
    let (_, tokens) = gw.nurse_tablet().await;
    let good = tokens.access_token.expose_secret().to_owned();
    gw.app.get_authed("/v1/me", &good).await.expect(200);
    let (header, claims) = (token_part(&good, 0), token_part(&good, 1));
    let candidates = dumped_byte_strings(&gw).await;
    for candidate in &candidates {
        assert_invalid_token(
            &gw.app
                .get_authed("/v1/me", &forge_token(&header, &claims, candidate))
                .await,
            "a token signed with bytes from the dump",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_written_in_plaintext_before_sealing_are_sealed_at_start() {
    let gw = TestGateway::start().await;
    let (_, tokens) = gw.nurse_tablet().await;
    let good = tokens.access_token.expose_secret().to_owned();
    // Two keys as the previous version stored them: one in use (the newest: it signs), one retired.
    let mut legacy = [0u8; 32];
    labedge_service::secrets::fill_random(&mut legacy);
    let mut old = [0u8; 32];
    labedge_service::secrets::fill_random(&mut old);
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(
            "INSERT INTO signing_keys (kid, secret, created_at, retired_at) VALUES \
             ('k-legacy', $1, now() + interval '1 second', NULL), \
             ('k-old', $2, now() - interval '2 days', now() - interval '1 day')",
        )
        .bind::<diesel::sql_types::Bytea, _>(legacy.to_vec())
        .bind::<diesel::sql_types::Bytea, _>(old.to_vec()),
        &mut gw.db.conn().await,
    )
    .await
    .unwrap();
    gw.state.keys.reload(&mut gw.db.conn().await).await.unwrap();

    // The plaintext is gone from the table; the key in use still verifies its tokens and signs.
    let dump = dumped_byte_strings(&gw).await;
    assert!(!dump.iter().any(|b| b == &legacy || b == &old), "no plaintext key left");
    let mut header = token_part(&good, 0);
    header["kid"] = "k-legacy".into();
    gw.app
        .get_authed("/v1/me", &forge_token(&header, &token_part(&good, 1), &legacy))
        .await
        .expect(200);
    assert_eq!(gw.state.keys.signing().unwrap().0, "k-legacy");
    assert_eq!(gw.signing_secret("k-legacy").await, legacy.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_a_leaked_key_refuses_its_tokens_on_the_next_request() {
    let gw = TestGateway::start().await;
    let (device, tokens) = gw.nurse_tablet().await;
    let leaked = tokens.access_token.expose_secret().to_owned();
    gw.app.get_authed("/v1/me", &leaked).await.expect(200);
    let kid = token_part(&leaked, 0)["kid"].as_str().unwrap().to_owned();

    // Retired from another connection, as `edge-gateway retire-signing-key` does from another process.
    let started = std::time::Instant::now();
    let outcome =
        labedge_edge_gateway::auth::keys::retire(&mut gw.db.conn().await, &gw.kek(), Some(std::slice::from_ref(&kid)))
            .await
            .unwrap();
    let committed = started.elapsed();
    assert_eq!(outcome.retired, vec![kid.clone()]);
    let new_signer = outcome.new_signer.expect("the retired key was the signing one");
    let refused_after = loop {
        let response = gw.app.get_authed("/v1/me", &leaked).await;
        if response.status.as_u16() == 401 {
            assert_eq!(response.problem().code, ErrorCode::InvalidToken);
            break started.elapsed();
        }
        assert_eq!(response.status.as_u16(), 200);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "refused within 2 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    eprintln!("retirement committed in {committed:?}; its tokens refused {refused_after:?} after the start");
    assert!(!gw.state.keys.kids().contains(&kid));

    // The key's material is erased; the session goes on: a refresh (not a JWT) gets a token of the
    // new key, and so does a new login.
    #[derive(diesel::QueryableByName)]
    struct Erased {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        erased: bool,
    }
    let row: Erased = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT secret IS NULL AND sealed_secret IS NULL AND retired_at IS NOT NULL AS erased \
             FROM signing_keys WHERE kid = $1",
        )
        .bind::<diesel::sql_types::Text, _>(&kid),
        &mut gw.db.conn().await,
    )
    .await
    .unwrap();
    assert!(row.erased, "a retired key's material is erased");
    let request = mobile_contracts::RefreshRequest {
        device_id: device.id,
        device_secret: mobile_contracts::Secret::new(device.secret.clone()),
        refresh_token: mobile_contracts::Secret::new(tokens.refresh_token.expose_secret()),
    };
    let refreshed: mobile_contracts::TokenResponse = gw
        .app
        .json(actix_web::http::Method::POST, "/v1/auth/refresh", &request)
        .await
        .expect(200)
        .json();
    assert_eq!(
        token_part(refreshed.access_token.expose_secret(), 0)["kid"],
        new_signer.as_str()
    );
    gw.app
        .get_authed("/v1/me", refreshed.access_token.expose_secret())
        .await
        .expect(200);
    let fresh = gw.login(&device, NURSE.0, NURSE.1).await;
    gw.app
        .get_authed("/v1/me", fresh.access_token.expose_secret())
        .await
        .expect(200);
}

/// The command itself, against a running `edge-gateway serve`: the leaked key's tokens are refused by
/// the other process within a bounded time, and the command tells which key signs now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retire_signing_key_command_reaches_a_running_gateway_at_once() {
    let real = labedge_tests::real_gateway::RealGateway::start("TEST-LAB", 1, |_| {}).await;
    let (device, tokens) = real.gw.nurse_tablet().await;
    let leaked = tokens.access_token.expose_secret().to_owned();
    let client = reqwest::Client::new();
    let me = |token: String| {
        let request = client.get(format!("{}/v1/me", real.url)).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me(leaked.clone()).await, 200);
    let kid = token_part(&leaked, 0)["kid"].as_str().unwrap().to_owned();
    let config = real.dir.path().join("edge-gateway.toml");
    let kek = real.gw.key_encryption_key();
    let env = [
        ("LABEDGE_GATEWAY_DATABASE__URL", real.gw.db.url()),
        ("LABEDGE_GATEWAY_AUTH__KEY_ENCRYPTION_KEY", kek.as_str()),
    ];
    // Without the KEK the command refuses, naming the key.
    let out = labedge_tests::spawn::run(
        "edge-gateway",
        &["--config", config.to_str().unwrap(), "retire-signing-key", &kid],
        &env[..1],
    );
    let text = labedge_tests::spawn::output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("auth.key_encryption_key"), "{text}");

    let out = labedge_tests::spawn::run(
        "edge-gateway",
        &["--config", config.to_str().unwrap(), "retire-signing-key", &kid],
        &env,
    );
    let done = std::time::Instant::now();
    let text = labedge_tests::spawn::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&kid) && text.contains("new signing key"), "{text}");
    let refused_after = loop {
        let status = me(leaked.clone()).await;
        if status == 401 {
            break done.elapsed();
        }
        assert_eq!(status, 200);
        assert!(done.elapsed() < std::time::Duration::from_secs(2), "refused within 2 s");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    eprintln!("the running gateway refused the retired key's token {refused_after:?} after the command ended");
    // The in-process twin that logs staff in learns of it the same way.
    while real.gw.state.keys.kids().contains(&kid) {
        assert!(done.elapsed() < std::time::Duration::from_secs(2));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let fresh = real.gw.login(&device, NURSE.0, NURSE.1).await;
    assert_eq!(me(fresh.access_token.expose_secret().to_owned()).await, 200);
}

#[test]
fn serve_names_a_missing_or_malformed_key_encryption_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = "profile = \"sandbox\"\nlab = \"TEST-LAB\"\n[http]\naddr = \"127.0.0.1:0\"\nplain_http = true\n[database]\n\
                url = \"postgres://x@h/x\"\n[upstream]\nendpoints = [{ name = \"cloud\", url = \"https://h\" }]\n\
                ca = \"/x\"\ncert = \"/x\"\nkey = \"/x\"\n";
    for (case, auth, expected) in [
        ("missing", "", "LABEDGE_GATEWAY_AUTH__KEY_ENCRYPTION_KEY"),
        (
            "not base64",
            "[auth]\nkey_encryption_key = \"not base64!\"\n",
            "must be base64",
        ),
        (
            "too short",
            "[auth]\nkey_encryption_key = \"c2hvcnQ=\"\n",
            "exactly 32 bytes",
        ),
    ] {
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, format!("{base}{auth}")).unwrap();
        for command in ["check-config", "serve", "rotate-signing-key"] {
            let out = labedge_tests::spawn::run("edge-gateway", &["--config", path.to_str().unwrap(), command], &[]);
            let text = labedge_tests::spawn::output_text(&out);
            assert_eq!(out.status.code(), Some(2), "{case}, {command}: {text}");
            assert!(
                text.contains("auth.key_encryption_key") && text.contains(expected),
                "{case}, {command}: {text}"
            );
        }
    }
}
