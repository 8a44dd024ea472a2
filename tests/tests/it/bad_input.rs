//! Bad input (issue 9, item 5): every malformed, oversized or hostile request gets a 4xx problem
//! document naming what is wrong (never a 5xx, never the submitted value); bodies over the limit
//! are refused before they are read; the gateway's memory stays flat over 1,000 such requests; slow
//! clients are cut off. The socket cases run against the real `edge-gateway` binary over raw TCP.

use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use labedge_tests::app::TestResponse;
use labedge_tests::edge_data::{self, patient, prescription};
use labedge_tests::gateway::TestGateway;
use labedge_tests::real_gateway::RealGateway;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::routes;
use serde_json::json;
use time::macros::date;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// A seeded lab with one patient and prescription, and a nurse's token.
async fn lab(gw: &TestGateway) -> (Uuid, Uuid, String) {
    edge_data::insert_catalog(gw).await;
    let today = edge_data::local_today(gw).await;
    let p = patient("Lefèvre", "Amandine", date!(1984 - 06 - 30));
    edge_data::upsert_patients(gw, std::slice::from_ref(&p)).await;
    let rx = prescription(gw.lab_id, p.id, today, &["NFS"]);
    edge_data::upsert_prescriptions(gw, std::slice::from_ref(&rx)).await;
    let (_, tokens) = gw.nurse_tablet().await;
    (p.id, rx.prescription.id, tokens.access_token.expose_secret().to_owned())
}

fn nested(depth: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(depth * 2 + 16);
    body.extend(std::iter::repeat_n(b'[', depth));
    body.extend(std::iter::repeat_n(b']', depth));
    body
}

fn nested_in_field(depth: usize) -> Vec<u8> {
    let mut body = b"{\"comments\":".to_vec();
    body.extend(std::iter::repeat_n(b'{', 1).chain(std::iter::repeat_n(b'[', depth)));
    body
}

/// (case, method, path, content type, body, expected status, code, pointer named).
type Case = (
    String,
    &'static str,
    String,
    &'static str,
    Vec<u8>,
    u16,
    ErrorCode,
    Option<String>,
);

/// The bad requests of this file: (case, method, path, content type, body, expected status, code,
/// pointer named). Built against a collection that is otherwise good.
fn cases(patient: Uuid, rx: Uuid) -> Vec<Case> {
    let good = serde_json::to_value(edge_data::collection(patient, rx, &["EDTA"])).unwrap();
    let with = |key: &str, value: serde_json::Value| {
        let mut b = good.clone();
        b[key] = value;
        serde_json::to_vec(&b).unwrap()
    };
    let tube = |i: usize| json!({"barcode": format!("LAB-{i:012X}"), "tube_type": "EDTA"});
    let mutation = || json!({"mutation_id": Uuid::now_v7(), "queued_at": "2026-11-28T08:00:00Z", "op": {"kind": "collection.create", "collection": good.clone()}});
    let mut invalid_utf8 = serde_json::to_vec(&with_str(&good, "comments", "Prélèvement difficile")).unwrap();
    let at = invalid_utf8.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    invalid_utf8[at] = 0xff; // a lone byte that is no UTF-8
    let json_type = "application/json";
    let c = routes::COLLECTIONS.to_owned();
    let search = |q: &str| format!("{}?q={}", routes::PATIENTS, urlencode(q));
    vec![
        // A collection is an object: serde refuses the array at its first element, never recursing.
        (
            "JSON nested 10,000 deep".into(),
            "POST",
            c.clone(),
            json_type,
            nested(10_000),
            422,
            ErrorCode::ValidationFailed,
            Some("/0".into()),
        ),
        (
            "JSON nested 10,000 deep in a push".into(),
            "POST",
            routes::SYNC_PUSH.into(),
            json_type,
            nested(10_000),
            422,
            ErrorCode::ValidationFailed,
            Some("/0/0/0".into()),
        ),
        (
            "JSON nested 10,000 deep inside a field".into(),
            "POST",
            c.clone(),
            json_type,
            nested_in_field(10_000),
            422,
            ErrorCode::ValidationFailed,
            Some("/comments".into()),
        ),
        (
            "invalid UTF-8".into(),
            "POST",
            c.clone(),
            json_type,
            invalid_utf8,
            400,
            ErrorCode::MalformedJson,
            None,
        ),
        (
            "truncated JSON".into(),
            "POST",
            c.clone(),
            json_type,
            b"{\"id\": \"01".to_vec(),
            400,
            ErrorCode::MalformedJson,
            None,
        ),
        (
            "empty body".into(),
            "POST",
            c.clone(),
            json_type,
            Vec::new(),
            400,
            ErrorCode::MalformedJson,
            None,
        ),
        (
            "not JSON content type".into(),
            "POST",
            c.clone(),
            "text/plain",
            serde_json::to_vec(&good).unwrap(),
            415,
            ErrorCode::UnsupportedMediaType,
            None,
        ),
        (
            "21 tubes (max 20)".into(),
            "POST",
            c.clone(),
            json_type,
            with("tubes", (0..21).map(tube).collect()),
            422,
            ErrorCode::ValidationFailed,
            Some("/tubes".into()),
        ),
        (
            "comments of 1,001 characters".into(),
            "POST",
            c.clone(),
            json_type,
            with("comments", "a".repeat(1001).into()),
            422,
            ErrorCode::ValidationFailed,
            Some("/comments".into()),
        ),
        (
            "a number too large for the type".into(),
            "POST",
            c.clone(),
            json_type,
            String::from_utf8(with("identity_checked", json!(true)))
                .unwrap()
                .replace("\"identity_checked\":true", "\"identity_checked\":1e400")
                .into_bytes(),
            400,
            ErrorCode::MalformedJson,
            None,
        ),
        (
            "501 mutations in a push (max 500)".into(),
            "POST",
            routes::SYNC_PUSH.into(),
            json_type,
            serde_json::to_vec(&json!({"mutations": (0..501).map(|_| mutation()).collect::<Vec<_>>()})).unwrap(),
            422,
            ErrorCode::ValidationFailed,
            Some("/mutations".into()),
        ),
        bad_query(
            "per_page 10,000 (cap 50)",
            format!("{}&per_page=10000", search("martin")),
            "/per_page",
        ),
        bad_query(
            "per_page 51 (cap 50)",
            format!("{}&per_page=51", search("martin")),
            "/per_page",
        ),
        bad_query(
            "page 1,001 (cap 1000)",
            format!("{}&page=1001", search("martin")),
            "/page",
        ),
        bad_query(
            "per_page not a number",
            format!("{}&per_page=lots", search("martin")),
            "/per_page",
        ),
        bad_query("search ' OR 1=1--", search("' OR 1=1--"), "/q"),
        bad_query("search %", search("%"), "/q"),
        bad_query("search of 65 characters", search(&"m".repeat(65)), "/q"),
        bad_query(
            "sync cursor of 129 characters",
            format!("{}?cursor={}", routes::SYNC_PULL, "c".repeat(129)),
            "/cursor",
        ),
        (
            "malformed id in a path".into(),
            "GET",
            "/v1/patients/1%27%20OR%201=1--".into(),
            "",
            Vec::new(),
            404,
            ErrorCode::NotFound,
            None,
        ),
    ]
}

/// A GET refused with 422 for its query: `pointer` names the bad parameter.
fn bad_query(case: &str, path: String, pointer: &str) -> Case {
    (
        case.into(),
        "GET",
        path,
        "",
        Vec::new(),
        422,
        ErrorCode::ValidationFailed,
        Some(pointer.into()),
    )
}

fn with_str(v: &serde_json::Value, key: &str, s: &str) -> serde_json::Value {
    let mut v = v.clone();
    v[key] = s.into();
    v
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[track_caller]
fn check(
    case: &str,
    status: u16,
    content_type: &str,
    body: &[u8],
    expected: u16,
    code: ErrorCode,
    pointer: Option<&str>,
) {
    assert_eq!(status, expected, "{case}: {}", String::from_utf8_lossy(body));
    assert!(
        content_type.starts_with("application/problem+json"),
        "{case}: {content_type}"
    );
    let problem: mobile_contracts::problem::Problem = serde_json::from_slice(body).unwrap();
    assert_eq!(problem.code, code, "{case}: {problem:?}");
    assert_eq!(problem.status, status, "{case}");
    if let Some(pointer) = pointer {
        assert!(
            problem.errors.iter().any(|e| e.pointer == pointer),
            "{case}: names {pointer}: {problem:?}"
        );
    }
    let text = String::from_utf8_lossy(body);
    for value in ["Prélèvement", "Lefèvre", "OR 1=1", "mmmmmmmm", "lots"] {
        assert!(!text.contains(value), "{case}: echoes {value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_a_4xx_problem_naming_what_is_wrong() {
    let gw = TestGateway::start().await;
    let (patient, rx, token) = lab(&gw).await;
    for (case, method, path, content_type, body, expected, code, pointer) in cases(patient, rx) {
        let mut request = TestRequest::default()
            .method(method.parse().unwrap())
            .uri(&path)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("idempotency-key", Uuid::now_v7().to_string()));
        if !content_type.is_empty() {
            request = request.insert_header(("content-type", content_type)).set_payload(body);
        }
        let r: TestResponse = gw.app.send(request).await;
        let ct = r.header("content-type").unwrap_or_default();
        check(
            &case,
            r.status.as_u16(),
            &ct,
            r.text().as_bytes(),
            expected,
            code,
            pointer.as_deref(),
        );
        eprintln!(
            "bad input: {case} -> {expected} {code:?} {}",
            pointer.unwrap_or_default()
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Over a socket, against the real binary.

/// Reads an HTTP/1.1 response head and up to `Content-Length` of body; returns (status, head, body).
async fn read_response(stream: &mut TcpStream, timeout: Duration) -> Option<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let body = buf[end + 4..].to_vec();
            return Some((status, head, body));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

fn header_value<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_before_it_is_sent() {
    let real = RealGateway::start("TEST-LAB", 1, |_| {}).await;
    let (_, tokens) = real.gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    let limit = real.gw.state.config.http.max_body_bytes;

    // Declared 50 MB, 1 KiB sent: the 413 comes back while the client is still "sending".
    let declared = 50 * 1024 * 1024;
    let mut stream = TcpStream::connect(real.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n",
        routes::COLLECTIONS,
        Uuid::now_v7()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b' '; 1024]).await.unwrap();
    let started = Instant::now();
    let (status, head, body) = read_response(&mut stream, Duration::from_secs(5))
        .await
        .expect("an answer before the body is sent");
    let waited = started.elapsed();
    check(
        "declared 50 MB",
        status,
        header_value(&head, "content-type"),
        &body,
        413,
        ErrorCode::PayloadTooLarge,
        None,
    );
    eprintln!(
        "body limit: Content-Length {declared} (limit {limit}) -> 413 after {} bytes of body sent ({:.4} % of it), in {} ms",
        1024,
        1024.0 * 100.0 / declared as f64,
        waited.as_millis()
    );

    // No Content-Length (chunked): refused as soon as what arrived passes the limit.
    let mut stream = TcpStream::connect(real.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        routes::COLLECTIONS,
        Uuid::now_v7()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = [b' '; 16 * 1024];
    let mut sent = 0usize;
    let answer = loop {
        // Offer up to 50 MB, 16 KiB at a time, looking for the answer between chunks.
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if stream.write_all(&framed).await.is_err() {
            break read_response(&mut stream, Duration::from_secs(5)).await;
        }
        sent += chunk.len();
        if sent > limit
            && let Some(answer) = read_response(&mut stream, Duration::from_millis(200)).await
        {
            break Some(answer);
        }
        assert!(sent < declared, "the gateway read {sent} bytes without refusing");
    };
    let (status, head, body) = answer.expect("an answer to the chunked body");
    check(
        "chunked over the limit",
        status,
        header_value(&head, "content-type"),
        &body,
        413,
        ErrorCode::PayloadTooLarge,
        None,
    );
    eprintln!("body limit: chunked body -> 413 after {sent} bytes sent (limit {limit})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_over_1000_bad_requests() {
    let real = RealGateway::start("TEST-LAB", 2, |_| {}).await;
    let (patient, rx, token) = lab(&real.gw).await;
    let client = reqwest::Client::new();
    let cases = cases(patient, rx);
    let send = |i: usize| {
        let (case, method, path, content_type, body, expected, _, _) = &cases[i % cases.len()];
        let mut request = client
            .request(method.parse().unwrap(), format!("{}{path}", real.url))
            .bearer_auth(&token)
            .header("idempotency-key", Uuid::now_v7().to_string());
        if !content_type.is_empty() {
            request = request.header("content-type", *content_type).body(body.clone());
        }
        let (case, expected) = (case.clone(), *expected);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), expected, "{case}");
        }
    };
    // Warm up (pools, caches, allocator arenas), then measure.
    for i in 0..200 {
        send(i).await;
    }
    let before = real.rss_kib();
    let started = Instant::now();
    let n = if labedge_tests::long_run() { 10_000 } else { 1_000 };
    for batch in (0..n).collect::<Vec<_>>().chunks(4) {
        let futures: Vec<_> = batch.iter().map(|i| send(*i)).collect();
        for f in futures {
            f.await;
        }
    }
    let after = real.rss_kib();
    let growth = after.saturating_sub(before);
    eprintln!(
        "memory: gateway RSS {before} KiB before, {after} KiB after {n} bad requests ({} kinds, {:.1} s): +{growth} KiB",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(growth < 16 * 1024, "RSS grew by {growth} KiB over {n} bad requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let real = RealGateway::start("TEST-LAB", 1, |_| {}).await;
    let (_, tokens) = real.gw.nurse_tablet().await;
    let token = tokens.access_token.expose_secret().to_owned();
    let timeout_ms = real.gw.state.config.http.client_request_timeout_ms;

    // A request head sent one byte every 2 s: cut off at the head timeout.
    let slow_head = async {
        let mut stream = TcpStream::connect(real.addr).await.unwrap();
        let started = Instant::now();
        let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let mut sent = 0;
        for byte in head {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
                    break;
                }
                Err(_) => {}
            }
            assert!(started.elapsed() < Duration::from_secs(30), "never cut off");
        }
        (started.elapsed(), sent, head.len())
    };
    // A body sent one byte every 2 s after a complete head: cut off too.
    let slow_body = async {
        let mut stream = TcpStream::connect(real.addr).await.unwrap();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 400\r\n\r\n",
            routes::COLLECTIONS,
            Uuid::now_v7()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut sent = 0;
        let mut answer = None;
        while sent < 400 {
            if stream.write_all(b" ").await.is_err() {
                break;
            }
            sent += 1;
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    answer = Some(
                        String::from_utf8_lossy(&buf[..n])
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_owned(),
                    );
                    break;
                }
                Err(_) => {}
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "a slow body is never cut off"
            );
        }
        (started.elapsed(), sent, answer)
    };
    let ((head_after, head_sent, head_len), (body_after, body_sent, body_answer)) = tokio::join!(slow_head, slow_body);
    eprintln!(
        "slow client: head at 1 byte/2 s cut off after {:.1} s ({head_sent}/{head_len} bytes; client_request_timeout {timeout_ms} ms)",
        head_after.as_secs_f64()
    );
    eprintln!(
        "slow client: body at 1 byte/2 s cut off after {:.1} s ({body_sent}/400 bytes), answer {body_answer:?}",
        body_after.as_secs_f64()
    );
    assert!(head_sent < head_len, "the head was never complete");
    assert!(head_after < Duration::from_millis(timeout_ms) + Duration::from_secs(3));
    assert!(body_sent < 400);
    assert!(
        body_answer.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 400")),
        "{body_answer:?}"
    );
    let grace = labedge_service::http::BODY_GRACE;
    assert!(
        body_after < grace + Duration::from_secs(3),
        "cut off at the body deadline"
    );
    // The gateway still answers.
    let ok = reqwest::get(format!("{}/healthz", real.url)).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}
