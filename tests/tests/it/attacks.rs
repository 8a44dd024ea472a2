//! Attacks on the gateway (issue 9, item 4), against real PostgreSQL and Redis. The JWT attack list
//! itself is `auth::every_token_attack_of_the_list_gets_401_invalid_token` (alg none, HS256 with
//! public material, unknown or no kid, wrong aud/iss/lab, expired, nbf/iat ahead, no exp, RS256,
//! tampered claims, garbage, token in the query string); here, what it leaves out:
//!
//! - the authorization matrix: every tablet route of `mobile_contracts::routes` × (a token of
//!   another lab, a role or scope that does not allow it, no token, a revoked device): 0 successes,
//!   every answer a problem document, never data;
//! - mass assignment: `lab_id`, `status`, `collected_by`… in bodies are refused (422
//!   `unknown_field` naming the field), as `docs/api-design.md` says;
//! - more tokens: a token of another gateway signed with this gateway's key but other claims, an
//!   over-long token, a refresh token used as an access token, a tablet token on admin routes;
//! - admin console login brute force: lockout of the (login, address) after 5 failures, per-address
//!   rate limit.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use labedge_tests::app::TestResponse;
use labedge_tests::edge_data::{self, home_visit, lab_visit, patient, prescription};
use labedge_tests::gateway::{ADMIN, ADMIN_PASSWORD, HOME_SAMPLER, NURSE, TestGateway};
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes::{self, with_id};
use serde_json::json;
use time::Duration;
use time::macros::date;
use uuid::Uuid;

/// A lab with two patients: `mine` on the home sampler's round today, `theirs` on nobody's; one
/// prescription and one lab visit each.
struct Lab {
    gw: TestGateway,
    mine: Uuid,
    theirs: Uuid,
    theirs_rx: Uuid,
    theirs_visit: Uuid,
    mine_rx: Uuid,
}

async fn lab(code: &str) -> Lab {
    let gw = TestGateway::start_with(code, |_| {}).await;
    edge_data::insert_catalog(&gw).await;
    let today = edge_data::local_today(&gw).await;
    let mine = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    let theirs = patient("Zoubir", "Yasmine", date!(1971 - 02 - 11));
    edge_data::upsert_patients(&gw, &[mine.clone(), theirs.clone()]).await;
    let mine_rx = prescription(gw.lab_id, mine.id, today, &["NFS"]);
    let theirs_rx = prescription(gw.lab_id, theirs.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(&gw, &[mine_rx.clone(), theirs_rx.clone()]).await;
    let at = edge_data::local_time(&gw, today, 9, 0).await;
    let home = home_visit(gw.lab_id, mine.id, gw.staff_id(HOME_SAMPLER.0), at, 1);
    let visit = lab_visit(gw.lab_id, theirs.id, at + Duration::minutes(15));
    edge_data::upsert_appointments(&gw, &[home, visit.clone()]).await;
    Lab {
        mine: mine.id,
        theirs: theirs.id,
        theirs_rx: theirs_rx.prescription.id,
        theirs_visit: visit.id,
        mine_rx: mine_rx.prescription.id,
        gw,
    }
}

/// What an attempt sends on one route.
struct Attempt {
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    /// A `multipart/form-data` body instead of JSON (uploads).
    multipart: Option<Vec<u8>>,
}

fn request(attempt: &Attempt, token: Option<&str>) -> TestRequest {
    let mut request = TestRequest::default()
        .method(attempt.method.clone())
        .uri(&attempt.path)
        .insert_header(("idempotency-key", Uuid::now_v7().to_string()))
        .insert_header(("if-match", "\"1\""));
    if let Some(token) = token {
        request = request.insert_header(("authorization", format!("Bearer {token}")));
    }
    match (&attempt.body, &attempt.multipart) {
        (_, Some(bytes)) => request
            .insert_header(("content-type", labedge_tests::multipart::content_type()))
            .set_payload(bytes.clone()),
        (Some(body), None) => request.set_json(body),
        (None, None) => request,
    }
}

/// The answer is a refusal: 401/403/404 (or 422 where a reference is refused as "not among
/// yours"), a problem document, and nothing of the lab's data.
#[track_caller]
fn assert_refused(response: &TestResponse, case: &str, allowed: &[u16], secrets: &[String]) -> u16 {
    let status = response.status.as_u16();
    assert!(allowed.contains(&status), "{case}: {status} {}", response.text());
    let problem = response.problem();
    assert_eq!(problem.status, status, "{case}");
    let text = response.text();
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "{case}: the answer leaks {secret}");
    }
    status
}

async fn revoke(gw: &TestGateway, device: Uuid) {
    let admin = gw.admin_login().await;
    gw.revoke_device(&admin, device).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tablet_route_refuses_another_lab_another_scope_no_token_and_a_revoked_device() {
    let lab_a = lab("LAB-A").await;
    let lab_b = TestGateway::start_with("LAB-B", |_| {}).await;
    let gw = &lab_a.gw;
    // Tokens: lab B's nurse, lab A's home sampler (scoped to `mine`), lab A's revoked tablet.
    let (b_device, b_tokens) = lab_b.nurse_tablet().await;
    let other_lab = b_tokens.access_token.expose_secret().to_owned();
    let sampler_device = gw.enroll(None).await;
    let sampler = gw.login(&sampler_device, HOME_SAMPLER.0, HOME_SAMPLER.1).await;
    let sampler_token = sampler.access_token.expose_secret().to_owned();
    let (revoked_device, revoked_tokens) = gw.nurse_tablet().await;
    let revoked = revoked_tokens.access_token.expose_secret().to_owned();
    gw.app.get_authed(routes::ME, &revoked).await.expect(200);
    revoke(gw, revoked_device.id).await;
    let lab_b_code = {
        let admin = lab_b.admin_login().await;
        lab_b.enrollment_code(&admin).await
    };
    // What must never appear in a refusal: lab A's patients and prescriptions.
    let secrets = vec![
        "Zoubir".to_owned(),
        "Lefèvre".to_owned(),
        lab_a.theirs.to_string(),
        lab_a.theirs_rx.to_string(),
        lab_a.mine.to_string(),
    ];

    let collection = serde_json::to_value(edge_data::collection(lab_a.theirs, lab_a.theirs_rx, &["EDTA"])).unwrap();
    let push = json!({"mutations": [{"mutation_id": Uuid::now_v7(), "queued_at": "2026-11-28T08:00:00Z", "op": {"kind": "collection.create", "collection": collection.clone()}}]});
    let get = |path: String| Attempt {
        method: Method::GET,
        path,
        body: None,
        multipart: None,
    };
    let today = edge_data::local_today(gw).await;
    // Every route of the contract; the public ones are listed with why they need no token.
    let mut tried = Vec::new();
    let mut figures = Vec::new();
    // Logout last: it ends the home sampler's session.
    let mut all = routes::ALL.to_vec();
    all.sort_by_key(|r| *r == routes::LOGOUT);
    let walk_in = json!({"id": Uuid::now_v7(), "birth_family_name": "Zoubir", "birth_given_names": "Nadia",
        "birth_date": "1990-01-01", "sex": "F", "birth_place_code": "13055"});
    let tomorrow_9 = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let booking = json!({"id": Uuid::now_v7(), "patient_id": lab_a.theirs, "kind": "lab",
        "scheduled_at": tomorrow_9.format(&time::format_description::well_known::Rfc3339).unwrap()});
    let post = |path: String, body: serde_json::Value| Attempt {
        method: Method::POST,
        path,
        body: Some(body),
        multipart: None,
    };
    // A paper prescription for lab A's patient out of the home sampler's scope.
    let paper = labedge_tests::multipart::body(&[
        labedge_tests::multipart::Part::json(
            "prescription",
            &json!({"id": Uuid::now_v7(), "patient_id": lab_a.theirs, "issued_on": "2026-12-01"}),
        ),
        labedge_tests::multipart::Part::file("file", "rx.jpg", "image/jpeg", labedge_tests::multipart::jpeg(2048)),
    ]);
    let mut cases: Vec<(&str, Attempt)> = Vec::new();
    for route in all {
        // A path's second method is tried as its own case.
        match route {
            routes::PATIENTS => cases.push((route, post(route.into(), walk_in.clone()))),
            routes::APPOINTMENTS => cases.push((route, post(route.into(), booking.clone()))),
            _ => {}
        }
        let attempt = match route {
            routes::HEALTHZ | routes::READYZ | routes::OPENAPI_JSON | routes::METRICS => {
                // Public by design (network-gated, no patient data); /metrics not even from tablets.
                if route == routes::METRICS {
                    let r = gw.app.get(route).await;
                    assert_refused(&r, "tablet peer on /metrics", &[403], &secrets);
                    assert_eq!(r.problem().code, ErrorCode::PeerNotAllowed);
                }
                continue;
            }
            routes::ENROLL | routes::LOGIN | routes::REFRESH | routes::PIN_RESET => continue, // credential routes, below
            routes::ME => get(routes::ME.into()),
            routes::PIN => Attempt {
                method: Method::POST,
                path: routes::PIN.into(),
                body: Some(json!({"current_pin": "0000", "new_pin": "975310"})),
                multipart: None,
            },
            routes::PATIENTS => get(format!("{}?q=zoubir", routes::PATIENTS)),
            routes::PATIENT => get(with_id(routes::PATIENT, lab_a.theirs)),
            routes::PATIENT_PRESCRIPTIONS => get(with_id(routes::PATIENT_PRESCRIPTIONS, lab_a.theirs)),
            routes::PRESCRIPTION => get(with_id(routes::PRESCRIPTION, lab_a.theirs_rx)),
            routes::ROUNDS => get(format!("{}?date={today}", routes::ROUNDS)),
            routes::APPOINTMENTS => get(format!("{}?date={today}", routes::APPOINTMENTS)),
            routes::APPOINTMENT => Attempt {
                method: Method::PATCH,
                path: with_id(routes::APPOINTMENT, lab_a.theirs_visit),
                body: Some(json!({"status": "checked_in"})),
                multipart: None,
            },
            routes::COLLECTIONS => Attempt {
                method: Method::POST,
                path: routes::COLLECTIONS.into(),
                body: Some(collection.clone()),
                multipart: None,
            },
            routes::SYNC_PUSH => Attempt {
                method: Method::POST,
                path: routes::SYNC_PUSH.into(),
                body: Some(push.clone()),
                multipart: None,
            },
            routes::SYNC_PULL => get(routes::SYNC_PULL.into()),
            routes::SLOTS => get(format!("{}?date={today}&kind=lab", routes::SLOTS)),
            routes::APPOINTMENT_RESCHEDULE => post(
                with_id(routes::APPOINTMENT_RESCHEDULE, lab_a.theirs_visit),
                json!({"scheduled_at": booking["scheduled_at"]}),
            ),
            routes::COLLECTION_VOID => post(
                with_id(routes::COLLECTION_VOID, Uuid::now_v7()),
                json!({"reason": "wrong patient"}),
            ),
            routes::PRESCRIPTIONS => Attempt {
                method: Method::POST,
                path: routes::PRESCRIPTIONS.into(),
                body: None,
                multipart: Some(paper.clone()),
            },
            routes::LOGOUT => Attempt {
                method: Method::POST,
                path: routes::LOGOUT.into(),
                body: None,
                multipart: None,
            },
            other => panic!("a route of the contract the matrix does not know: {other}"),
        };
        cases.push((route, attempt));
    }
    for (route, attempt) in cases {
        tried.push(route);
        // Another lab's token: refused as a token (issuer, audience, key all differ).
        let r = gw.app.send(request(&attempt, Some(&other_lab))).await;
        let s1 = assert_refused(&r, &format!("{route} other lab"), &[401], &secrets);
        assert_eq!(r.problem().code, ErrorCode::InvalidToken, "{route}");
        // No token.
        let r = gw.app.send(request(&attempt, None)).await;
        let s2 = assert_refused(&r, &format!("{route} no token"), &[401], &secrets);
        // A revoked device: told so, and to wipe.
        let r = gw.app.send(request(&attempt, Some(&revoked))).await;
        let s3 = assert_refused(&r, &format!("{route} revoked device"), &[403], &secrets);
        assert_eq!(r.problem().code, ErrorCode::DeviceRevoked, "{route}");
        assert!(r.header("clear-site-data").is_some(), "{route}");
        // Another role or scope: the home sampler, on what is not theirs. Object routes answer 404
        // (or 422 "not among yours" for a write's reference); list routes answer 200 without the
        // objects out of scope; `me` and `logout` concern the caller only.
        let r = gw.app.send(request(&attempt, Some(&sampler_token))).await;
        let desk_write = attempt.method == Method::POST
            && matches!(route, routes::PATIENTS | routes::APPOINTMENTS | routes::PRESCRIPTIONS);
        let s4 = match route {
            _ if desk_write => assert_refused(&r, &format!("POST {route} other role"), &[403], &secrets),
            routes::ME
            | routes::LOGOUT
            | routes::ROUNDS
            | routes::APPOINTMENTS
            | routes::SYNC_PULL
            | routes::SLOTS
            | routes::PATIENTS => {
                // Not a refusal: the caller's own scope. Nothing out of it shows.
                assert!(
                    r.status.is_success() || r.status.as_u16() == 204,
                    "{route}: {}",
                    r.text()
                );
                for secret in [lab_a.theirs.to_string(), lab_a.theirs_rx.to_string(), "Zoubir".into()] {
                    assert!(!r.text().contains(&secret), "{route}: the home sampler sees {secret}");
                }
                r.status.as_u16()
            }
            routes::SYNC_PUSH => {
                // The push answers per item: the one collection is rejected.
                let body: serde_json::Value = r.json();
                assert_eq!(r.status.as_u16(), 200, "{route}");
                assert_eq!(body["results"][0]["outcome"], "rejected", "{route}: {body}");
                422
            }
            routes::COLLECTIONS => assert_refused(&r, &format!("{route} other scope"), &[422], &secrets),
            // The caller's own PIN only, and not without knowing it.
            routes::PIN => assert_refused(&r, &format!("{route} wrong current PIN"), &[422], &secrets),
            _ => assert_refused(&r, &format!("{route} other scope"), &[403, 404], &secrets),
        };
        figures.push(format!("{} {route}: {s1}/{s4}/{s2}/{s3}", attempt.method));
    }
    assert_eq!(tried.len(), 19, "every token route and method of the contract");

    // The credential routes, with another lab's credentials, none, and a revoked device's.
    let enroll = |code: &str| json!({"code": code, "label": "x", "app_version": "1.0.0"});
    let login = |device: Uuid, secret: &str| json!({"device_id": device, "device_secret": secret, "login": NURSE.0, "pin": NURSE.1});
    let refresh = |device: Uuid, secret: &str, token: &str| json!({"device_id": device, "device_secret": secret, "refresh_token": token});
    let pin_reset = |device: Uuid, secret: &str| json!({"device_id": device, "device_secret": secret, "login": NURSE.0, "reset_code": "ABCD2345", "new_pin": "975310"});
    let cases = [
        ("enroll, lab B's code", routes::ENROLL, enroll(&lab_b_code), vec![400]),
        ("enroll, no code", routes::ENROLL, json!({"label": "x"}), vec![422]),
        (
            "login, lab B's device",
            routes::LOGIN,
            login(b_device.id, &b_device.secret),
            vec![401],
        ),
        ("login, no credentials", routes::LOGIN, json!({}), vec![422]),
        (
            "login, revoked device",
            routes::LOGIN,
            login(revoked_device.id, &revoked_device.secret),
            vec![403],
        ),
        (
            "refresh, lab B's token",
            routes::REFRESH,
            refresh(b_device.id, &b_device.secret, b_tokens.refresh_token.expose_secret()),
            vec![401],
        ),
        ("refresh, nothing", routes::REFRESH, json!({}), vec![422]),
        (
            "PIN reset, lab B's device",
            routes::PIN_RESET,
            pin_reset(b_device.id, &b_device.secret),
            vec![401],
        ),
        ("PIN reset, nothing", routes::PIN_RESET, json!({}), vec![422]),
        (
            "PIN reset, revoked device",
            routes::PIN_RESET,
            pin_reset(revoked_device.id, &revoked_device.secret),
            vec![403],
        ),
        (
            "refresh, revoked device",
            routes::REFRESH,
            refresh(
                revoked_device.id,
                &revoked_device.secret,
                revoked_tokens.refresh_token.expose_secret(),
            ),
            vec![403],
        ),
    ];
    for (case, route, body, allowed) in cases {
        let r = gw.app.json(Method::POST, route, &body).await;
        let status = assert_refused(&r, case, &allowed, &secrets);
        assert!(!r.text().contains("access_token"), "{case}: no token handed out");
        figures.push(format!("POST {route} ({case}): {status}"));
    }
    // Lab B's code is still good at lab B: it was refused at A, not spent.
    lab_b
        .app
        .json(Method::POST, routes::ENROLL, &enroll(&lab_b_code))
        .await
        .expect(201);

    // A tablet token on the admin routes: 403 (even from the admin network).
    let (_, nurse) = gw.nurse_tablet().await;
    for path in ["/admin/v1/devices", "/admin/v1/security-events", "/admin/v1/session"] {
        let r = gw
            .from_admin_network(TestRequest::get().uri(path).insert_header((
                "authorization",
                format!("Bearer {}", nurse.access_token.expose_secret()),
            )))
            .await;
        let status = assert_refused(&r, &format!("tablet token on {path}"), &[401, 403], &secrets);
        figures.push(format!("GET {path} (tablet token): {status}"));
    }
    let total = tried.len() * 4 + 8 + 3;
    eprintln!("authorization matrix: {total} attempts, 0 successes (other lab/other scope/no token/revoked):");
    for line in &figures {
        eprintln!("  {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_gateway_owns_are_refused_in_every_body_naming_the_field() {
    let lab = lab("TEST-LAB").await;
    let gw = &lab.gw;
    let (_, tokens) = gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    let good_collection = || serde_json::to_value(edge_data::collection(lab.mine, lab.mine_rx, &["EDTA"])).unwrap();
    let mut refused = 0;
    // Collections (the direct route and inside a push), appointment changes, enrollment and login.
    for field in [
        "lab_id",
        "status",
        "collected_by",
        "device_id",
        "recorded_at",
        "role",
        "staff_id",
    ] {
        let value = match field {
            "status" => json!("validated"),
            "recorded_at" => json!("2025-03-14T09:00:00Z"),
            "role" => json!("lab_admin"),
            _ => json!(Uuid::now_v7()),
        };
        let mut body = good_collection();
        body[field] = value.clone();
        let r = gw
            .app
            .send(request(
                &Attempt {
                    method: Method::POST,
                    path: routes::COLLECTIONS.into(),
                    body: Some(body.clone()),
                    multipart: None,
                },
                Some(&token),
            ))
            .await;
        assert_unknown_field(&r, field, &format!("/{field}"));
        // Inside a push: the whole push is refused, naming the field by its pointer.
        let push = json!({"mutations": [{"mutation_id": Uuid::now_v7(), "op": {"kind": "collection.create", "collection": body}}]});
        let r = gw
            .app
            .send(request(
                &Attempt {
                    method: Method::POST,
                    path: routes::SYNC_PUSH.into(),
                    body: Some(push),
                    multipart: None,
                },
                Some(&token),
            ))
            .await;
        // The operation is an internally tagged enum: serde buffers it, so the pointer stops at the
        // operation and the message names the field.
        assert_unknown_field(&r, field, "/mutations/0/op");
        assert!(r.problem().errors[0].message.contains(&format!("`{field}`")), "{field}");
        refused += 2;
        if field != "status" {
            // An appointment change carries `status` legitimately; anything else is refused.
            let r = gw
                .app
                .send(request(
                    &Attempt {
                        method: Method::PATCH,
                        path: with_id(routes::APPOINTMENT, lab.theirs_visit),
                        body: Some(json!({"status": "checked_in", field: value.clone()})),
                        multipart: None,
                    },
                    Some(&token),
                ))
                .await;
            assert_unknown_field(&r, field, &format!("/{field}"));
            refused += 1;
        }
    }
    // Enrollment and login: no lab, role or device chosen by the client.
    let device = gw.enroll(None).await;
    for (route, body, field) in [
        (
            routes::LOGIN,
            json!({"device_id": device.id, "device_secret": device.secret, "login": ADMIN.0, "pin": ADMIN.1, "role": "lab_admin"}),
            "role",
        ),
        (
            routes::LOGIN,
            json!({"device_id": device.id, "device_secret": device.secret, "login": NURSE.0, "pin": NURSE.1, "lab_id": Uuid::now_v7()}),
            "lab_id",
        ),
        (
            routes::ENROLL,
            json!({"code": "ABCDEFGH", "label": "x", "lab_id": Uuid::now_v7()}),
            "lab_id",
        ),
    ] {
        let r = gw.app.json(Method::POST, route, &body).await;
        assert_unknown_field(&r, field, &format!("/{field}"));
        refused += 1;
    }
    // Nothing was recorded by any of them.
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query("SELECT count(*) AS n FROM collections")
        .get_result(&mut gw.db.conn().await)
        .await
        .unwrap();
    assert_eq!(n.n, 0);
    eprintln!(
        "mass assignment: {refused} bodies with gateway-owned fields, {refused} refused 422 unknown_field, 0 stored"
    );
}

#[track_caller]
fn assert_unknown_field(response: &TestResponse, field: &str, pointer: &str) {
    assert_eq!(response.status.as_u16(), 422, "{field}: {}", response.text());
    let problem = response.problem();
    assert_eq!(problem.code, ErrorCode::ValidationFailed, "{field}");
    assert_eq!(problem.errors.len(), 1, "{field}: {problem:?}");
    assert_eq!(problem.errors[0].pointer, pointer, "{field}");
    assert_eq!(problem.errors[0].code, "unknown_field", "{field}");
}

async fn admin_login(gw: &TestGateway, peer: &str, login: &str, password: &str) -> TestResponse {
    let mut app = gw.app.clone();
    app.peer = peer.parse().unwrap();
    app.send(
        TestRequest::post()
            .uri("/admin/v1/login")
            .set_json(json!({"login": login, "password": password})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_console_brute_force_is_locked_out_then_rate_limited() {
    let gw = TestGateway::start_with("TEST-LAB", |c| c.auth.attempts_per_minute_per_address = 12).await;
    // Lockout: 5 wrong passwords for the admin's login, then even the right one is refused.
    let peer = "192.168.10.31:40000";
    let started = std::time::Instant::now();
    let mut failures = 0;
    for _ in 0..5 {
        let r = admin_login(&gw, peer, ADMIN.0, "hunter2").await;
        assert_eq!(r.status.as_u16(), 401, "{}", r.text());
        assert_eq!(r.problem().code, ErrorCode::InvalidCredentials);
        failures += 1;
    }
    let locked = admin_login(&gw, peer, ADMIN.0, ADMIN_PASSWORD).await;
    assert_eq!(locked.status.as_u16(), 429, "locked out: {}", locked.text());
    assert_eq!(locked.problem().code, ErrorCode::LockedOut);
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 60 && retry <= 15 * 60, "Retry-After {retry}");
    assert!(locked.header("set-cookie").is_none(), "no session while locked");
    // Not from another address: the lockout is the (login, address) pair's, so that whoever guesses
    // cannot lock the admin out of her own desk (`lockouts.rs`).
    admin_login(&gw, "192.168.10.32:40000", ADMIN.0, ADMIN_PASSWORD)
        .await
        .expect(200);
    // Unknown logins lock out like known ones (no login enumeration).
    for _ in 0..5 {
        admin_login(&gw, "192.168.10.33:40000", "x.nobody", "guess")
            .await
            .expect(401);
    }
    let r = admin_login(&gw, "192.168.10.33:40000", "x.nobody", "guess").await;
    assert_eq!(r.problem().code, ErrorCode::LockedOut);

    // Spraying many logins from one address: rate limited per address (12 a minute here).
    let peer = "192.168.10.40:40000";
    let mut sprayed = 0;
    let limited = loop {
        let r = admin_login(&gw, peer, &format!("spray.{sprayed}"), "Password1").await;
        if r.status.as_u16() == 429 {
            break r;
        }
        assert_eq!(r.status.as_u16(), 401, "{}", r.text());
        sprayed += 1;
        assert!(sprayed <= 12, "no rate limit after {sprayed} attempts");
    };
    assert_eq!(limited.problem().code, ErrorCode::RateLimited);
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() <= 60);
    assert_eq!(sprayed, 12);
    // Another admin-network address is unaffected by that limit; the admin still is locked out
    // from the address that guessed.
    admin_login(&gw, "192.168.10.41:40000", ADMIN.0, ADMIN_PASSWORD)
        .await
        .expect(200);
    let still = admin_login(&gw, "192.168.10.31:40000", ADMIN.0, ADMIN_PASSWORD).await;
    assert_eq!(still.problem().code, ErrorCode::LockedOut);
    eprintln!(
        "admin brute force: locked out after {failures} failures (Retry-After {retry} s), spray limited after {sprayed} attempts/min/address, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
