//! The VPN gate against path tricks (issue 12, item 1). From an address that may reach the tablet
//! routes only, no spelling of an admin or metrics path may reach its handler: the gate decides on
//! the path as the router matches it, refuses percent-encoded unreserved characters, and gives a path
//! of no known kind the most restrictive class. With `[admin] addr` and `[monitoring] addr` set, the
//! tablet listener has no such route at all, whatever the path and whoever asks.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use labedge_edge_gateway::routes::Surface;
use labedge_tests::app::{TestApp, TestResponse};
use labedge_tests::gateway::{ADMIN_PEER, TestGateway};
use labedge_tests::real_gateway::RealGateway;

/// Protected routes: method, path, and what the handler answers to a request without credentials
/// when it is reached (the proof that a trick got through).
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/admin/assets/console.js"),
    ("GET", "/admin/v1/devices"),
    ("GET", "/admin/v1/session"),
    ("GET", "/admin/v1/security-events"),
    ("POST", "/admin/v1/login"),
    ("POST", "/admin/v1/enrollment-codes"),
    ("GET", "/metrics"),
];

/// Every spelling of `path` we could think of that a lenient router, proxy or decoder might take for
/// `path` itself.
fn tricks(path: &str) -> Vec<String> {
    let rest = &path[1..];
    let first = rest.as_bytes()[0];
    let encode_all = |upper: bool| -> String {
        path.bytes()
            .map(|b| match b {
                b'/' => "/".to_owned(),
                b if upper => format!("%{b:02X}"),
                b => format!("%{b:02x}"),
            })
            .collect()
    };
    let mut out = vec![
        // One encoded letter, lower and upper case hex.
        format!("/%{first:02x}{}", &rest[1..]),
        format!("/%{first:02X}{}", &rest[1..]),
        // Every character encoded.
        encode_all(false),
        encode_all(true),
        // Double encoding.
        format!("/%25{first:02x}{}", &rest[1..]),
        // Slashes encoded, doubled, dot segments, plain or encoded.
        path.replace('/', "%2F"),
        path.replace('/', "%2f"),
        format!("/{path}"),
        format!("//{path}"),
        format!("/.{path}"),
        format!("/v1/..{path}"),
        format!("/v1/%2e%2e{path}"),
        format!("/v1/%2E%2E{path}"),
        format!("/v1%2F..{path}"),
        format!("/%2e{path}"),
        // Matrix parameters, trailing characters, case.
        format!("{path};x=1"),
        format!(
            "/{};{}",
            rest.split('/').next().unwrap_or(rest),
            rest.split_once('/').map_or("", |(_, r)| r)
        ),
        format!("{path}%00"),
        format!("{path}%20"),
        format!("{path}."),
        path.to_uppercase(),
        path.replacen(first as char, &(first as char).to_uppercase().to_string(), 1),
        // A tablet prefix in front.
        format!("/v1{path}"),
        format!("/v1/%2F{rest}"),
    ];
    if !path.ends_with('/') {
        out.push(format!("{path}/"));
    }
    out.push(format!("{path}?x=/v1/me"));
    out
}

fn request(method: &str, uri: &str) -> TestRequest {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let request = TestRequest::default().method(method.clone()).uri(uri);
    if method == Method::POST {
        request.set_json(serde_json::json!({"login": "a.bernard", "password": "x"}))
    } else {
        request
    }
}

/// Whether an answer shows that the request reached a protected handler: anything but a refusal by
/// the gate (400, 403) or no route (404).
fn reached(response: &TestResponse) -> bool {
    !matches!(response.status.as_u16(), 400 | 403 | 404)
}

#[actix_web::test]
async fn no_spelling_of_an_admin_or_metrics_path_passes_the_gate_from_a_tablet_address() {
    // Everything on one listener (the local configuration): the gate alone stands in the way.
    let gw = TestGateway::start().await;
    let from_admin = gw.app.from_peer(ADMIN_PEER);
    let mut tried = 0;
    let mut through = Vec::new();
    for (method, path) in PROTECTED {
        // The plain path is refused from a tablet and reached from where it belongs (metrics: from
        // monitoring_ranges; the test config has 127.0.0.0/8), so that "refused" below means the
        // gate and not a path that leads nowhere.
        let plain = gw.app.send(request(method, path)).await;
        assert_eq!(plain.status.as_u16(), 403, "{method} {path} from a tablet");
        let legit = if *path == "/metrics" {
            gw.app.from_peer("127.0.0.1:4000").send(request(method, path)).await
        } else {
            from_admin.send(request(method, path)).await
        };
        assert!(
            reached(&legit),
            "{method} {path} from its own network: {}",
            legit.status
        );
        for trick in tricks(path) {
            let Ok(uri) = trick.parse::<actix_web::http::Uri>() else {
                continue;
            };
            tried += 1;
            let response = gw.app.send(request(method, &uri.to_string())).await;
            if reached(&response) {
                through.push(format!("{method} {trick} -> {}", response.status));
            } else if response.status.as_u16() != 404 {
                assert!(
                    response
                        .headers
                        .get("content-type")
                        .is_some_and(|v| v.to_str().unwrap().starts_with("application/problem+json")),
                    "{trick}: a refusal is a problem document"
                );
            }
        }
    }
    assert!(tried > 200, "only {tried} tricks tried");
    assert!(
        through.is_empty(),
        "reached a protected handler from a tablet address:\n{}",
        through.join("\n")
    );
}

#[actix_web::test]
async fn the_gate_classes_the_decoded_path_and_refuses_encoded_unreserved_characters() {
    let gw = TestGateway::start().await;
    // The trick of the review: `%61` is `a`.
    let r = gw.app.get("/%61dmin/v1/devices").await.expect(400);
    assert_eq!(r.problem().code, mobile_contracts::problem::ErrorCode::BadRequest);
    // From the admin network, the same trick is refused too: no client of ours writes it.
    let from_admin = gw.app.from_peer(ADMIN_PEER);
    from_admin.get("/%61dmin/v1/devices").await.expect(400);
    // A path of no known kind is the lab network's: 403 from a tablet, 404 from the lab.
    gw.app.get("/administrator").await.expect(403);
    from_admin.get("/administrator").await.expect(404);
    // Encoding that is not of an unreserved character is routed as usual (no such patient id: 404,
    // not the gate's 400 or 403).
    let r = gw.app.get("/v1/patients/a%20b").await.expect(404);
    assert_eq!(r.problem().code, mobile_contracts::problem::ErrorCode::NotFound);
}

#[actix_web::test]
async fn an_ipv4_client_seen_as_an_ipv4_mapped_ipv6_address_is_checked_as_ipv4() {
    let gw = TestGateway::start().await;
    let mapped = gw.app.from_peer("[::ffff:10.8.0.10]:50000");
    // 10.8.0.10 is in tablet_ranges: the tablet route answers (401 for no token, past the gate).
    mapped.get("/v1/me").await.expect(401);
    let admin_mapped = gw.app.from_peer("[::ffff:192.168.10.20]:50000");
    admin_mapped.get("/admin/v1/devices").await.expect(401);
    // And a mapped address outside every range is still refused.
    let outsider = gw.app.from_peer("[::ffff:203.0.113.9]:50000");
    outsider.get("/v1/me").await.expect(403);
}

/// A peer allowed everywhere, so that only the routes a listener has decide.
const EVERYWHERE: &str = "127.0.0.1:40000";

#[actix_web::test]
async fn with_their_own_listeners_the_tablet_listener_has_no_admin_or_metrics_route() {
    let gw = TestGateway::start_with("GATE-LAB", |config| {
        config.admin.addr = Some("127.0.0.1:0".parse().unwrap());
        config.monitoring.addr = Some("127.0.0.1:0".parse().unwrap());
        for ranges in [&mut config.access.tablet_ranges, &mut config.access.admin_ranges] {
            ranges.push("127.0.0.0/8".parse().unwrap());
        }
    })
    .await;
    let on = |app: TestApp| app.from_peer(EVERYWHERE);
    let tablet = on(gw.app.clone());
    let admin = on(TestApp::new(labedge_edge_gateway::startup::app_for(gw.state.clone(), Surface::ADMIN)).await);
    let monitoring = on(TestApp::new(labedge_edge_gateway::startup::app_for(
        gw.state.clone(),
        Surface::MONITORING,
    ))
    .await);

    for (method, path) in PROTECTED {
        let r = tablet.send(request(method, path)).await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path} on the tablet listener");
    }
    tablet.get("/v1/me").await.expect(401);
    tablet.get("/openapi.json").await.expect(200);
    tablet.get("/healthz").await.expect(200);

    admin.get("/admin").await.expect(200);
    admin.get("/admin/v1/devices").await.expect(401);
    admin.get("/metrics").await.expect(404);
    admin.get("/v1/me").await.expect(404);
    admin.get("/openapi.json").await.expect(404);
    admin.get("/healthz").await.expect(200);

    monitoring.get("/metrics").await.expect(200);
    monitoring.get("/admin").await.expect(404);
    monitoring.get("/v1/me").await.expect(404);
    monitoring.get("/readyz").await.expect(200);
}

#[actix_web::test]
async fn the_binary_serves_the_console_and_metrics_on_their_own_listeners() {
    let real = RealGateway::start_with("SIDE-LAB", 1, |config| {
        config.admin.addr = Some("127.0.0.1:0".parse().unwrap());
        config.monitoring.addr = Some("127.0.0.1:0".parse().unwrap());
        config.access.admin_ranges.push("127.0.0.0/8".parse().unwrap());
    })
    .await;
    let admin = real.admin_addr.expect("admin listener");
    let monitoring = real.monitoring_addr.expect("monitoring listener");
    assert_ne!(admin, real.addr);
    assert_ne!(monitoring, real.addr);
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    // 127.0.0.1 is in every range here: only the listener's routes decide.
    for path in ["/admin", "/admin/v1/devices", "/%61dmin", "/metrics", "/%6detrics"] {
        let got = status(format!("{}{path}", real.url)).await;
        assert!(matches!(got, 400 | 404), "{path} on the tablet listener: {got}");
    }
    assert_eq!(status(format!("http://{admin}/admin")).await, 200);
    assert_eq!(status(format!("http://{admin}/admin/v1/devices")).await, 401);
    assert_eq!(status(format!("http://{admin}/v1/me")).await, 404);
    assert_eq!(status(format!("http://{monitoring}/metrics")).await, 200);
    assert_eq!(status(format!("http://{monitoring}/admin")).await, 404);
    assert_eq!(status(format!("{}/v1/me", real.url)).await, 401);
}
