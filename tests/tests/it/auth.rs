//! Tablet authentication and access control at the gateway (issue 3), against real PostgreSQL and
//! Redis.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use base64::Engine as _;
use diesel_async::SimpleAsyncConnection;
use labedge_service::config::SecretString;
use labedge_tests::app::TestApp;
use labedge_tests::gateway::{ADMIN, ADMIN_PASSWORD, HOME_SAMPLER, NURSE, TestGateway, forge_token, token_part};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{EnrollRequest, Me, RefreshRequest, Role, Secret, TokenResponse};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn assert_invalid_token(response: &labedge_tests::app::TestResponse, case: &str) {
    assert_eq!(response.status.as_u16(), 401, "{case}: {}", response.text());
    assert_eq!(
        response.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"labedge\", error=\"invalid_token\""),
        "{case}"
    );
    assert_eq!(response.problem().code, ErrorCode::InvalidToken, "{case}");
}

async fn refresh(
    gw: &TestGateway,
    device: &labedge_tests::gateway::Device,
    token: &str,
) -> labedge_tests::app::TestResponse {
    let request = RefreshRequest {
        device_id: device.id,
        device_secret: Secret::new(device.secret.clone()),
        refresh_token: Secret::new(token),
    };
    gw.app.json(Method::POST, "/v1/auth/refresh", &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_enrolls_a_nurse_logs_in_and_out() {
    let gw = TestGateway::start().await;
    let device = gw.enroll(None).await;
    assert_eq!(device.enrolled.lab.code, "TEST-LAB");
    assert!(device.enrolled.client_certificate_pem.is_none());
    assert!(device.secret.len() >= 40, "a 256-bit device secret");

    let tokens = gw.login(&device, NURSE.0, NURSE.1).await;
    assert_eq!(tokens.staff.role, Role::Nurse);
    assert!(tokens.expires_in <= 900 && tokens.refresh_expires_in > tokens.expires_in);
    let grace = tokens.offline_grace_until - time::OffsetDateTime::now_utc();
    assert!(
        (47..=48).contains(&grace.whole_hours()),
        "48 h offline grace by default: {grace}"
    );

    // The access token carries every claim the contract promises.
    let token = tokens.access_token.expose_secret();
    let header: serde_json::Value = token_part(token, 0);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].is_string());
    let claims: serde_json::Value = token_part(token, 1);
    for claim in [
        "sub", "device", "lab", "role", "jti", "iat", "nbf", "exp", "iss", "aud", "sid",
    ] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }
    assert_eq!(claims["device"], device.id.to_string());

    let me: Me = gw.app.get_authed("/v1/me", token).await.expect(200).json();
    assert_eq!(
        (me.login.as_str(), me.device.id, me.lab.code.as_str()),
        (NURSE.0, device.id, "TEST-LAB")
    );

    gw.app
        .send(
            TestRequest::post()
                .uri("/v1/auth/logout")
                .insert_header(("authorization", format!("Bearer {token}"))),
        )
        .await
        .expect(204);
    assert_invalid_token(&gw.app.get_authed("/v1/me", token).await, "after logout");
    refresh(&gw, &device, tokens.refresh_token.expose_secret())
        .await
        .expect(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_codes_are_single_use_and_expire() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let code = gw.enrollment_code(&admin).await;
    assert_eq!(code.len(), 8);
    let request = |code: &str| EnrollRequest {
        code: code.into(),
        label: "Tablette".into(),
        app_version: None,
        csr_pem: None,
    };
    gw.app
        .json(Method::POST, "/v1/devices/enroll", &request(&code))
        .await
        .expect(201);
    let again = gw
        .app
        .json(Method::POST, "/v1/devices/enroll", &request(&code))
        .await
        .expect(400);
    assert_eq!(again.problem().code, ErrorCode::EnrollmentCodeInvalid);

    let stale = gw.enrollment_code(&admin).await;
    gw.db
        .conn()
        .await
        .batch_execute("UPDATE enrollment_codes SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .await
        .unwrap();
    let expired = gw
        .app
        .json(Method::POST, "/v1/devices/enroll", &request(&stale))
        .await
        .expect(400);
    assert_eq!(expired.problem().code, ErrorCode::EnrollmentCodeInvalid);
    let unknown = gw
        .app
        .json(Method::POST, "/v1/devices/enroll", &request("ZZZZZZZZ"))
        .await
        .expect(400);
    assert_eq!(unknown.problem().code, ErrorCode::EnrollmentCodeInvalid);
    let count: Vec<labedge_edge_gateway::auth::manage::DeviceView> = gw
        .from_admin_network(
            TestRequest::get()
                .uri("/admin/v1/devices")
                .insert_header(("cookie", admin.cookie.clone())),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(count.len(), 1, "one device for one valid code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_login_and_a_wrong_pin_get_the_same_answer() {
    let gw = TestGateway::start().await;
    let device = gw.enroll(None).await;
    let unknown = gw.try_login(&device, "x.nobody", "1234").await.expect(401).problem();
    let wrong_pin = gw.try_login(&device, NURSE.0, "9999").await.expect(401).problem();
    let wrong_secret = gw
        .try_login(
            &labedge_tests::gateway::Device {
                secret: "not-the-secret-at-all-000".into(),
                ..device.clone()
            },
            NURSE.0,
            NURSE.1,
        )
        .await
        .expect(401)
        .problem();
    assert_eq!(unknown.code, ErrorCode::InvalidCredentials);
    assert_eq!(
        serde_json::to_value(&unknown).unwrap(),
        serde_json::to_value(&wrong_pin).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&unknown).unwrap(),
        serde_json::to_value(&wrong_secret).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_a_login_out_on_a_device() {
    let gw = TestGateway::start().await;
    let device = gw.enroll(None).await;
    for _ in 0..5 {
        gw.try_login(&device, NURSE.0, "0000").await.expect(401);
    }
    // Locked: even the right PIN is refused until the lockout ends.
    let locked = gw.try_login(&device, NURSE.0, NURSE.1).await.expect(429);
    assert_eq!(locked.problem().code, ErrorCode::LockedOut);
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "15 minutes: {retry}");
    // Another staff member on the same device is not affected.
    gw.login(&device, HOME_SAMPLER.0, HOME_SAMPLER.1).await;
    // The lockout ends when its time is up.
    gw.db
        .conn()
        .await
        .batch_execute("UPDATE login_failures SET locked_until = now() - interval '1 second'")
        .await
        .unwrap();
    gw.login(&device, NURSE.0, NURSE.1).await;
    let metrics = labedge_service::metrics::install().render();
    assert!(metrics.contains("action=\"lockout\""), "the lockout is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_rate_limited_per_device_and_per_address() {
    let gw = TestGateway::start_with("TEST-LAB", |c| {
        c.auth.attempts_per_minute_per_device = 3;
        c.auth.attempts_per_minute_per_address = 100;
    })
    .await;
    let device = gw.enroll(None).await;
    for _ in 0..3 {
        gw.try_login(&device, "x.nobody", "1234").await.expect(401);
    }
    let limited = gw.try_login(&device, NURSE.0, NURSE.1).await.expect(429);
    assert_eq!(limited.problem().code, ErrorCode::RateLimited);
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() <= 60);

    let per_address = TestGateway::start_with("TEST-LAB", |c| c.auth.attempts_per_minute_per_address = 2).await;
    let a = per_address.enroll(None).await;
    let b = per_address.enroll(None).await;
    per_address.try_login(&a, NURSE.0, "0000").await.expect(401);
    per_address.try_login(&b, NURSE.0, "0000").await.expect(401);
    per_address
        .try_login(&b, HOME_SAMPLER.0, HOME_SAMPLER.1)
        .await
        .expect(429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_refresh_token_presented_again_revokes_its_whole_session() {
    let gw = TestGateway::start().await;
    let (device, first) = gw.nurse_tablet().await;
    let second: TokenResponse = refresh(&gw, &device, first.refresh_token.expose_secret())
        .await
        .expect(200)
        .json();
    assert_ne!(
        second.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );
    gw.app
        .get_authed("/v1/me", second.access_token.expose_secret())
        .await
        .expect(200);

    // The first refresh token again: a copy is in someone else's hands.
    assert_invalid_token(
        &refresh(&gw, &device, first.refresh_token.expose_secret()).await,
        "reuse",
    );
    assert_invalid_token(
        &refresh(&gw, &device, second.refresh_token.expose_secret()).await,
        "family revoked",
    );
    assert_invalid_token(
        &gw.app.get_authed("/v1/me", second.access_token.expose_secret()).await,
        "session revoked",
    );
    // A new PIN login starts a new session.
    gw.login(&device, NURSE.0, NURSE.1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_refused_on_its_very_next_request_and_told_to_wipe() {
    let gw = TestGateway::start().await;
    let (device, tokens) = gw.nurse_tablet().await;
    gw.app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(200);

    let admin = gw.admin_login().await;
    gw.revoke_device(&admin, device.id).await;

    let refused = gw
        .app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(403);
    assert_eq!(refused.problem().code, ErrorCode::DeviceRevoked);
    assert!(
        refused.header("clear-site-data").unwrap().contains("storage"),
        "told to wipe its data"
    );
    assert!(
        gw.redis
            .keys()
            .iter()
            .any(|k| k.ends_with(&format!("rev:device:{}", device.id))),
        "revocation in redis"
    );
    gw.try_login(&device, NURSE.0, NURSE.1).await.expect(403);
    refresh(&gw, &device, tokens.refresh_token.expose_secret())
        .await
        .expect(403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_staff_member_is_refused_on_the_next_request() {
    let gw = TestGateway::start().await;
    let (device, tokens) = gw.nurse_tablet().await;
    let admin = gw.admin_login().await;
    gw.console(
        &admin,
        TestRequest::post()
            .uri(&format!("/admin/v1/staff/{}/revoke", gw.staff_id(NURSE.0)))
            .set_json(serde_json::json!({"reason": "left the lab"})),
    )
    .await
    .expect(204);
    assert_invalid_token(
        &gw.app.get_authed("/v1/me", tokens.access_token.expose_secret()).await,
        "staff revoked",
    );
    gw.try_login(&device, NURSE.0, NURSE.1).await.expect(401);
    // An unknown staff id is a 404, not a silent success.
    gw.console(
        &admin,
        TestRequest::post().uri(&format!("/admin/v1/staff/{}/revoke", uuid::Uuid::now_v7())),
    )
    .await
    .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_falls_back_to_postgresql_and_fails_closed_without_both() {
    // Redis unreachable from the start.
    let gw = TestGateway::start_with("TEST-LAB", |c| c.redis.url = SecretString::new("redis://127.0.0.1:1")).await;
    let (device, tokens) = gw.nurse_tablet().await;
    gw.app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(200);
    let admin = gw.admin_login().await;
    gw.revoke_device(&admin, device.id).await;
    gw.app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(403);

    // Neither Redis nor PostgreSQL: nobody gets in.
    let (_, other) = gw.nurse_tablet().await;
    let mut dead = gw.state.clone();
    let mut db = labedge_service::config::DatabaseConfig::new("postgres://postgres@127.0.0.1:1/none");
    db.acquire_timeout_ms = 300;
    db.connect_timeout_ms = 300;
    dead.pool = labedge_schema::db::build_pool(&db.pool_settings()).unwrap();
    dead.revocations = Arc::new(labedge_edge_gateway::auth::revocation::Revocations::new(
        dead.redis.clone(),
        dead.pool.clone(),
    ));
    let app = TestApp::new(labedge_edge_gateway::startup::app(dead)).await;
    let closed = app
        .get_authed("/v1/me", other.access_token.expose_secret())
        .await
        .expect(503);
    assert_eq!(closed.problem().code, ErrorCode::ServiceUnavailable);
    assert!(closed.header("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_attack_of_the_list_gets_401_invalid_token() {
    let gw = TestGateway::start().await;
    let (_, tokens) = gw.nurse_tablet().await;
    let good = tokens.access_token.expose_secret().to_owned();
    let header: serde_json::Value = token_part(&good, 0);
    let claims: serde_json::Value = token_part(&good, 1);
    let kid = header["kid"].clone();
    let secret: Vec<u8> = gw.signing_secret(kid.as_str().unwrap()).await;
    // The forging works: the real key and claims give a token the gateway accepts.
    let reforged = forge_token(&header, &claims, &secret);
    gw.app.get_authed("/v1/me", &reforged).await.expect(200);

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with = |key: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let mut without_exp = claims.clone();
    without_exp.as_object_mut().unwrap().remove("exp");
    let public_material = std::fs::read(gw.pki.path().join("ca.pem")).unwrap();
    let none_token = format!(
        "{}.{}.",
        B64.encode(serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string()),
        B64.encode(claims.to_string())
    );
    let cases: Vec<(&str, String)> = vec![
        ("alg none", none_token),
        (
            "HS256 signed with public material",
            forge_token(&header, &claims, &public_material),
        ),
        (
            "unknown kid",
            forge_token(
                &serde_json::json!({"alg": "HS256", "kid": "k-not-in-the-ring"}),
                &claims,
                &secret,
            ),
        ),
        (
            "no kid",
            forge_token(&serde_json::json!({"alg": "HS256"}), &claims, &secret),
        ),
        (
            "wrong audience",
            forge_token(&header, &with("aud", "labedge-tablet-api/OTHER".into()), &secret),
        ),
        (
            "wrong issuer",
            forge_token(&header, &with("iss", "labedge-gateway/OTHER".into()), &secret),
        ),
        (
            "expired",
            forge_token(&header, &with("exp", (now - 120).into()), &secret),
        ),
        (
            "nbf in the future",
            forge_token(&header, &with("nbf", (now + 300).into()), &secret),
        ),
        (
            "iat in the future",
            forge_token(&header, &with("iat", (now + 300).into()), &secret),
        ),
        ("no exp", forge_token(&header, &without_exp, &secret)),
        (
            "another lab in the claims",
            forge_token(&header, &with("lab", "OTHER".into()), &secret),
        ),
        (
            "RS256 header",
            forge_token(&serde_json::json!({"alg": "RS256", "kid": kid}), &claims, &secret),
        ),
        ("tampered claims", {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            parts[1] = B64.encode(with("role", "lab_admin".into()).to_string());
            parts.join(".")
        }),
        ("garbage", "not.a.jwt".into()),
    ];
    for (case, token) in cases {
        assert_invalid_token(&gw.app.get_authed("/v1/me", &token).await, case);
    }
    // A token in the query string is refused, even beside a valid header.
    let in_query = gw
        .app
        .send(
            TestRequest::get()
                .uri(&format!("/v1/me?access_token={good}"))
                .insert_header(("authorization", format!("Bearer {good}"))),
        )
        .await;
    assert_invalid_token(&in_query, "token in the query string");
    // No token at all: 401 with a challenge but no error code (RFC 6750 §3.1).
    let missing = gw.app.get("/v1/me").await.expect(401);
    assert_eq!(
        missing.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"labedge\"")
    );
    let metrics = labedge_service::metrics::install().render();
    for reason in [
        "algorithm",
        "unknown_kid",
        "audience",
        "issuer",
        "expired",
        "not_yet_valid",
        "signature",
        "in_query_string",
    ] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "refusals counted by reason: {reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_labs_gateway_is_refused() {
    let lab_a = TestGateway::start_with("LAB-A", |_| {}).await;
    let lab_b = TestGateway::start_with("LAB-B", |_| {}).await;
    let (_, b_tokens) = lab_b.nurse_tablet().await;
    lab_b
        .app
        .get_authed("/v1/me", b_tokens.access_token.expose_secret())
        .await
        .expect(200);
    assert_invalid_token(
        &lab_a
            .app
            .get_authed("/v1/me", b_tokens.access_token.expose_secret())
            .await,
        "lab B's token at lab A",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_signing_key_logs_nobody_out() {
    let gw = TestGateway::start().await;
    let (device, before) = gw.nurse_tablet().await;
    let kid_of = |token: &str| -> String {
        let header: serde_json::Value = token_part(token, 0);
        header["kid"].as_str().unwrap().to_owned()
    };
    let (new_kid, retired) = labedge_edge_gateway::auth::keys::rotate(
        &mut gw.db.conn().await,
        &gw.kek(),
        std::time::Duration::from_secs(930),
    )
    .await
    .unwrap();
    assert_eq!(retired, 0, "the previous key still verifies live tokens");
    gw.state.keys.reload(&mut gw.db.conn().await).await.unwrap();
    gw.app
        .get_authed("/v1/me", before.access_token.expose_secret())
        .await
        .expect(200);
    let after = gw.login(&device, NURSE.0, NURSE.1).await;
    assert_eq!(kid_of(after.access_token.expose_secret()), new_kid);
    assert_ne!(kid_of(before.access_token.expose_secret()), new_kid);
    gw.app
        .get_authed("/v1/me", after.access_token.expose_secret())
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_are_refused_without_their_certificate() {
    let mut gw = TestGateway::start().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let device = gw.enroll(Some(csr)).await;
    let cert_pem = device
        .enrolled
        .client_certificate_pem
        .clone()
        .expect("a client certificate");
    assert!(device.enrolled.ca_certificate_pem.is_some());
    let der = labedge_service::tls::parse_certs(&cert_pem).unwrap().remove(0).to_vec();

    // The device was enrolled with a certificate: its secret alone does not log it in.
    gw.try_login(&device, NURSE.0, NURSE.1).await.expect(401);
    gw.app.certificate = Some(der.clone());
    let tokens = gw.login(&device, NURSE.0, NURSE.1).await;
    let claims: serde_json::Value = serde_json::from_slice(
        &B64.decode(tokens.access_token.expose_secret().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["cnf"]["x5t#S256"].as_str().unwrap(),
        B64.encode(<sha2::Sha256 as sha2::Digest>::digest(&der))
    );
    gw.app
        .get_authed("/v1/me", tokens.access_token.expose_secret())
        .await
        .expect(200);

    // Replayed with another certificate, or none: refused.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["other".into()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    gw.app.certificate = Some(other.der().to_vec());
    assert_invalid_token(
        &gw.app.get_authed("/v1/me", tokens.access_token.expose_secret()).await,
        "another certificate",
    );
    gw.app.certificate = None;
    assert_invalid_token(
        &gw.app.get_authed("/v1/me", tokens.access_token.expose_secret()).await,
        "no certificate",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_outside_the_allowed_networks_are_refused() {
    let gw = TestGateway::start_with("TEST-LAB", |c| {
        c.access.trusted_proxies = vec!["10.8.0.250/32".parse().unwrap()]
    })
    .await;
    let mut outsider = gw.app.clone();
    outsider.peer = "203.0.113.7:40000".parse().unwrap();
    let refused = outsider.get("/v1/me").await.expect(403);
    assert_eq!(refused.problem().code, ErrorCode::PeerNotAllowed);
    outsider.get("/healthz").await.expect(403);
    // A forwarded header from an untrusted peer changes nothing.
    outsider
        .send(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-forwarded-for", "10.8.0.3")),
        )
        .await
        .expect(403);
    // Tablets reach tablet routes and health, not the console nor the metrics.
    gw.app.get("/healthz").await.expect(200);
    gw.app.get("/metrics").await.expect(403);
    gw.app.get("/admin/v1/session").await.expect(403);
    // Through the trusted proxy, the address it forwards counts.
    let mut proxy = gw.app.clone();
    proxy.peer = "10.8.0.250:443".parse().unwrap();
    proxy
        .send(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-forwarded-for", "203.0.113.7")),
        )
        .await
        .expect(403);
    proxy
        .send(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-forwarded-for", "10.8.0.3")),
        )
        .await
        .expect(200);
    let metrics = labedge_service::metrics::install().render();
    assert!(metrics.contains("action=\"peer_refused\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_session_is_strict() {
    let gw = TestGateway::start().await;
    let login = gw
        .from_admin_network(
            TestRequest::post()
                .uri("/admin/v1/login")
                .set_json(serde_json::json!({"login": ADMIN.0, "password": ADMIN_PASSWORD})),
        )
        .await
        .expect(200);
    let cookie = login.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let admin = gw.admin_login().await;
    let post = |csrf: Option<&str>| {
        let mut request = TestRequest::post()
            .uri("/admin/v1/enrollment-codes")
            .insert_header(("cookie", admin.cookie.clone()));
        if let Some(csrf) = csrf {
            request = request.insert_header(("x-csrf-token", csrf.to_owned()));
        }
        request
    };
    gw.from_admin_network(post(None)).await.expect(403);
    gw.from_admin_network(post(Some("forged"))).await.expect(403);
    gw.from_admin_network(post(Some(&admin.csrf))).await.expect(201);
    // No session, or a tablet token instead of one.
    gw.from_admin_network(TestRequest::get().uri("/admin/v1/devices"))
        .await
        .expect(401);
    let (_, tokens) = gw.nurse_tablet().await;
    gw.from_admin_network(TestRequest::get().uri("/admin/v1/devices").insert_header((
        "authorization",
        format!("Bearer {}", tokens.access_token.expose_secret()),
    )))
    .await
    .expect(403);
    // A nurse has no console password; a wrong password is refused.
    gw.from_admin_network(
        TestRequest::post()
            .uri("/admin/v1/login")
            .set_json(serde_json::json!({"login": NURSE.0, "password": "x"})),
    )
    .await
    .expect(401);
    gw.from_admin_network(
        TestRequest::post()
            .uri("/admin/v1/login")
            .set_json(serde_json::json!({"login": ADMIN.0, "password": "wrong"})),
    )
    .await
    .expect(401);
    // Logout ends the session.
    gw.console(&admin, TestRequest::post().uri("/admin/v1/logout"))
        .await
        .expect(204);
    gw.from_admin_network(
        TestRequest::get()
            .uri("/admin/v1/session")
            .insert_header(("cookie", admin.cookie.clone())),
    )
    .await
    .expect(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_offline_grace_bound_staff_log_in_with_their_pin_again() {
    let gw = TestGateway::start().await;
    let (device, tokens) = gw.nurse_tablet().await;
    gw.db
        .conn()
        .await
        .batch_execute("UPDATE auth_sessions SET expires_at = now() - interval '1 minute'")
        .await
        .unwrap();
    let expired = refresh(&gw, &device, tokens.refresh_token.expose_secret())
        .await
        .expect(401);
    assert_eq!(expired.problem().code, ErrorCode::OfflineGraceExpired);
    gw.login(&device, NURSE.0, NURSE.1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_are_logged_counted_and_listed_without_logins_or_secrets() {
    let gw = TestGateway::start().await;
    let device = gw.enroll(None).await;
    gw.try_login(&device, NURSE.0, "0000").await.expect(401);
    let metrics = labedge_service::metrics::install().render();
    assert!(metrics.lines().any(|l| l.starts_with("labedge_security_events_total")
        && l.contains("action=\"login\"")
        && l.contains("outcome=\"failure\"")
        && l.contains("reason=\"bad_pin\"")));
    let admin = gw.admin_login().await;
    let events = gw
        .from_admin_network(
            TestRequest::get()
                .uri("/admin/v1/security-events")
                .insert_header(("cookie", admin.cookie.clone())),
        )
        .await
        .expect(200);
    let text = events.text();
    let listed: Vec<serde_json::Value> = events.json();
    assert!(
        listed
            .iter()
            .any(|e| e["action"] == "login" && e["reason"] == "bad_pin" && e["device_id"] == device.id.to_string())
    );
    assert!(listed.iter().any(|e| e["action"] == "enroll" && e["success"] == true));
    for secret in [NURSE.0, "0000", device.secret.as_str(), ADMIN_PASSWORD] {
        assert!(!text.contains(secret), "no login or secret in the events");
    }
}

/// Polls `GET /v1/me` with `token` until it answers `status` (5 s at most); returns how long it took.
async fn me_until(gw: &TestGateway, token: &str, status: u16) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let answered = gw.app.get_authed("/v1/me", token).await.status.as_u16();
        if answered == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "GET /v1/me still answers {answered}, not {status}, after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Polls until the revocation checks are (or are not) answered from memory (5 s at most).
async fn in_memory_until(gw: &TestGateway, wanted: bool) {
    let started = std::time::Instant::now();
    while gw.state.revocations.in_memory() != wanted {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the revocation list in memory is still {}",
            if wanted { "not live" } else { "live" }
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_standing_committed_by_another_process_reaches_the_list_in_memory() {
    let gw = TestGateway::start().await;
    let nurse = gw.staff_id(NURSE.0);
    let (device, tokens) = gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    me_until(&gw, &token, 200).await;
    in_memory_until(&gw, true).await;
    // Another process (a command line, an operator's psql) changes PostgreSQL alone; the listener
    // brings it here, and while the list is in memory the checks ask neither Redis nor PostgreSQL.
    let mut sql = gw.db.conn().await;
    let set_active = |active: bool| format!("UPDATE staff SET active = {active} WHERE id = '{nurse}'");
    sql.batch_execute(&set_active(false)).await.unwrap();
    let took = me_until(&gw, &token, 401).await;
    assert!(
        gw.state.revocations.in_memory(),
        "the refusal came from the list in memory"
    );
    eprintln!("staff deactivated by SQL: refused after {took:?}");
    sql.batch_execute(&set_active(true)).await.unwrap();
    me_until(&gw, &token, 200).await;
    assert!(gw.state.revocations.in_memory());

    // The listening connection lost (PostgreSQL ended every session of the database): the checks
    // go on through Redis and PostgreSQL, and the listener comes back, loads the list again, and
    // holds what was committed while it was away.
    sql.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    in_memory_until(&gw, false).await;
    let set_device = |status: &str| format!("UPDATE devices SET status = '{status}' WHERE id = '{}'", device.id);
    sql.batch_execute(&set_device("revoked")).await.unwrap();
    in_memory_until(&gw, true).await;
    let took = me_until(&gw, &token, 403).await;
    assert!(gw.state.revocations.in_memory());
    eprintln!("device revoked by SQL while the listener was away: refused from memory after {took:?}");
    sql.batch_execute(&set_device("active")).await.unwrap();
    me_until(&gw, &token, 200).await;
    assert!(gw.state.revocations.in_memory());
}
