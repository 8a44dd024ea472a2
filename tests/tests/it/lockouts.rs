//! Login lockouts (issue 12, items 3 and 4): an attempt is reserved before its PIN or password is
//! verified, so concurrent guesses cannot outrun the threshold; lockouts are per (login, device) and
//! per (login, address), never lab-wide, so nobody can lock a colleague out; they grow when they
//! repeat; a lab admin lifts them from the console; the per-device rate limit counts only devices
//! whose credentials were checked.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use futures_util::future::join_all;
use labedge_edge_gateway::security_events::Action;
use labedge_tests::app::TestResponse;
use labedge_tests::gateway::{ADMIN, ADMIN_PASSWORD, Device, NURSE, TestGateway};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{LoginRequest, Secret};
use serde_json::json;

/// Security events of `action` with `reason`, among the last 500.
fn events(gw: &TestGateway, action: Action, reason: &str) -> usize {
    gw.state
        .security
        .recent(500)
        .iter()
        .filter(|e| e.action == action && e.reason == Some(reason))
        .count()
}

async fn admin_login(gw: &TestGateway, peer: &str, password: &str) -> TestResponse {
    gw.app
        .from_peer(peer)
        .send(
            TestRequest::post()
                .uri("/admin/v1/login")
                .set_json(json!({"login": ADMIN.0, "password": password})),
        )
        .await
}

fn retry_after(response: &TestResponse) -> u64 {
    response.header("retry-after").unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_wrong_pins_are_at_most_the_threshold_verified() {
    let gw = TestGateway::start_with("TEST-LAB", |c| c.auth.attempts_per_minute_per_device = 100).await;
    let device = gw.enroll(None).await;
    let answers =
        join_all((0..20).map(|i| gw.try_login(&device, NURSE.0, if i % 2 == 0 { "0000" } else { "9999" }))).await;
    let refused_unverified = answers
        .iter()
        .filter(|r| r.status.as_u16() == 429 && r.problem().code == ErrorCode::LockedOut)
        .count();
    let verified = events(&gw, Action::Login, "bad_pin");
    eprintln!("20 concurrent wrong PINs: {verified} verified, {refused_unverified} refused unverified");
    assert!(verified <= 5, "{verified} PINs verified, threshold 5");
    assert_eq!(verified + refused_unverified, 20, "every attempt is one or the other");
    assert_eq!(events(&gw, Action::Lockout, "too_many_failures"), 1, "one lockout");
    // The right PIN is refused too, now.
    gw.try_login(&device, NURSE.0, NURSE.1).await.expect(429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admin_password_guesses_are_at_most_the_threshold_verified() {
    let gw = TestGateway::start_with("TEST-LAB", |c| c.auth.attempts_per_minute_per_address = 100).await;
    let answers = join_all((0..20).map(|_| admin_login(&gw, "192.168.10.50:1000", "hunter2"))).await;
    let unverified = answers.iter().filter(|r| r.status.as_u16() == 429).count();
    let verified = events(&gw, Action::AdminLogin, "bad_password_or_role");
    assert!(verified <= 5, "{verified} passwords verified, threshold 5");
    assert_eq!(verified + unverified, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pins_on_other_tablets_never_lock_a_colleague_out_of_hers() {
    let gw = TestGateway::start().await;
    let admin = gw.admin_login().await;
    let hers = gw.enroll_with(&admin, None).await;
    // Two tablets in an attacker's hands, each locked out after 5 wrong PINs of the nurse's login:
    // 10 failures in all, which used to lock her login lab-wide.
    for _ in 0..2 {
        let stolen = gw.enroll_with(&admin, None).await;
        for _ in 0..5 {
            gw.try_login(&stolen, NURSE.0, "0000").await.expect(401);
        }
        gw.try_login(&stolen, NURSE.0, NURSE.1).await.expect(429);
    }
    gw.login(&hers, NURSE.0, NURSE.1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_passwords_from_one_address_do_not_lock_the_admin_out_of_her_desk() {
    let gw = TestGateway::start().await;
    for _ in 0..5 {
        admin_login(&gw, "192.168.10.66:1000", "hunter2").await.expect(401);
    }
    let locked = admin_login(&gw, "192.168.10.66:1000", ADMIN_PASSWORD).await.expect(429);
    assert_eq!(locked.problem().code, ErrorCode::LockedOut);
    admin_login(&gw, "192.168.10.20:1000", ADMIN_PASSWORD).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_lockouts_grow_and_a_lab_admin_lifts_one_at_once() {
    let gw = TestGateway::start_with("TEST-LAB", |c| c.auth.attempts_per_minute_per_device = 100).await;
    let device = gw.enroll(None).await;
    let lock = |device: Device| {
        let gw = &gw;
        async move {
            for _ in 0..5 {
                gw.try_login(&device, NURSE.0, "0000").await.expect(401);
            }
            retry_after(&gw.try_login(&device, NURSE.0, NURSE.1).await.expect(429))
        }
    };
    let first = lock(device.clone()).await;
    assert!((800..=900).contains(&first), "first lockout 15 min: {first}");
    let expire = "UPDATE login_failures SET locked_until = now() - interval '1 second'";
    diesel_async::SimpleAsyncConnection::batch_execute(&mut gw.db.conn().await, expire)
        .await
        .unwrap();
    let second = lock(device.clone()).await;
    assert!(
        (1700..=1800).contains(&second),
        "second lockout in a row 30 min: {second}"
    );

    // The lab admin sees it in the console and lifts it.
    let admin = gw.admin_login().await;
    let list = gw
        .from_admin_network(
            TestRequest::get()
                .uri("/admin/v1/lockouts")
                .insert_header(("cookie", admin.cookie.clone())),
        )
        .await
        .expect(200);
    assert_eq!(list.header("cache-control").as_deref(), Some("no-store"));
    let rows: Vec<serde_json::Value> = list.json();
    let row = rows
        .iter()
        .find(|r| r["device_id"] == json!(device.id))
        .expect("the tablet's lockout is listed");
    assert_eq!(row["kind"], "pin");
    assert_eq!(row["login"], NURSE.0);
    assert_eq!(row["lockouts"], 2);
    assert!(row["locked_until"].is_string());
    let id = row["id"].as_str().unwrap();
    let unlock = |id: String| {
        TestRequest::post()
            .uri(&format!("/admin/v1/lockouts/{id}/unlock"))
            .insert_header(("cookie", admin.cookie.clone()))
            .insert_header(("x-csrf-token", admin.csrf.clone()))
    };
    // The CSRF token is required, as for every state change.
    gw.from_admin_network(
        TestRequest::post()
            .uri(&format!("/admin/v1/lockouts/{id}/unlock"))
            .insert_header(("cookie", admin.cookie.clone())),
    )
    .await
    .expect(403);
    gw.from_admin_network(unlock(id.to_owned())).await.expect(204);
    assert_eq!(
        gw.state
            .security
            .recent(50)
            .iter()
            .filter(|e| e.action == Action::Unlock && e.staff_id == Some(gw.staff_id(ADMIN.0)))
            .count(),
        1,
        "the unlock is a security event naming the admin"
    );
    gw.login(&device, NURSE.0, NURSE.1).await;
    gw.from_admin_network(unlock(id.to_owned())).await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_device_rate_limit_counts_only_a_device_whose_secret_was_checked() {
    let gw = TestGateway::start_with("TEST-LAB", |c| c.auth.attempts_per_minute_per_device = 3).await;
    let device = gw.enroll(None).await;
    // Someone on the VPN who knows the tablet's id, not its secret, tries ten times.
    let attacker = gw.app.from_peer("10.8.0.99:40000");
    for _ in 0..10 {
        let request = LoginRequest {
            device_id: device.id,
            device_secret: Secret::new("not-the-secret-at-all-000".to_owned()),
            login: NURSE.0.into(),
            pin: Secret::new("0000"),
        };
        attacker
            .json(Method::POST, "/v1/auth/login", &request)
            .await
            .expect(401);
    }
    // The tablet itself is not slowed down by them.
    gw.login(&device, NURSE.0, NURSE.1).await;
    // Its own attempts are still limited.
    for _ in 0..2 {
        gw.try_login(&device, NURSE.0, "0000").await.expect(401);
    }
    let limited = gw.try_login(&device, NURSE.0, NURSE.1).await.expect(429);
    assert_eq!(limited.problem().code, ErrorCode::RateLimited);
}
