//! Hostile input: hundreds of random and malformed requests against every
//! route. No answer is a 5xx, every error carries the JSON error body with
//! the status of its code, and the server is healthy afterwards.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;

use http_common::{Server, change, token};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next() as u8).collect()
    }
}

/// Bodies that are not JSON at all, or not JSON the server may accept.
fn broken_bodies(rng: &mut Rng) -> Vec<(&'static str, Vec<u8>)> {
    let valid = change("network").to_string();
    let mut bodies = vec![
        ("random bytes", rng.bytes(64)),
        ("random bytes, long", rng.bytes(4096)),
        ("truncated", valid.as_bytes()[..valid.len() / 2].to_vec()),
        ("trailing garbage", format!("{valid} }}").into_bytes()),
        ("deep arrays", "[".repeat(10_000).into_bytes()),
        ("deep objects", "{\"a\":".repeat(10_000).into_bytes()),
        (
            "deep but closed",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        ("huge exponent", b"{\"riskScore\": 1e999999}".to_vec()),
        ("invalid utf-8", b"{\"title\": \"\xff\xfe\xfd\"}".to_vec()),
        ("lone surrogate", b"{\"title\": \"\\ud800\"}".to_vec()),
        ("nul bytes", b"\0\0\0\0".to_vec()),
        ("bom", b"\xef\xbb\xbf{}".to_vec()),
        ("single quote", b"{'a': 1}".to_vec()),
        ("nan", b"{\"riskScore\": NaN}".to_vec()),
        ("only whitespace", b"   \n\t ".to_vec()),
    ];
    for _ in 0..5 {
        let length = rng.below(300) + 1;
        bodies.push(("random bytes, random length", rng.bytes(length)));
    }
    bodies
}

/// JSON bodies of the wrong shape: the server must answer 4xx or a 200
/// preview, never 5xx.
fn odd_json_bodies() -> Vec<Value> {
    let mut wrong = change("network");
    wrong["riskScore"] = json!("high");
    vec![
        json!(null),
        json!([]),
        json!("text"),
        json!(42),
        json!(123_456_789_012_345_678_901_234_567_890.0_f64),
        json!({ "policyId": 5, "policyType": [], "changeKind": {}, "title": true }),
        json!({ "riskScore": 18_446_744_073_709_551_615_u64 }),
        json!({ "riskScore": -9_223_372_036_854_775_808_i64 }),
        json!({ "metadata": { "k": { "nested": [1, 2, 3] } } }),
        json!({ "comment": 1, "reason": [], "text": {} }),
        json!({ "levels": "none", "defaultLevel": 7 }),
        json!({ "title": "\u{202e}evil\u{0000}" }),
        json!({ "diff": "x".repeat(300 * 1024) }),
        wrong,
    ]
}

fn routes(id: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/v1/requests".into()),
        (Method::GET, "/v1/requests".into()),
        (Method::GET, format!("/v1/requests/{id}")),
        (Method::POST, format!("/v1/requests/{id}/approve")),
        (Method::POST, format!("/v1/requests/{id}/reject")),
        (Method::POST, format!("/v1/requests/{id}/cancel")),
        (Method::POST, format!("/v1/requests/{id}/comments")),
        (Method::POST, "/v1/preview".into()),
        (Method::GET, "/v1/rules".into()),
        (Method::PUT, "/v1/rules".into()),
        (Method::GET, "/metrics".into()),
        (Method::GET, "/healthz".into()),
        (Method::GET, "/readyz".into()),
        (Method::PATCH, "/v1/requests".into()),
        (Method::DELETE, format!("/v1/requests/{id}")),
        (Method::POST, "/v1/requests/%ff%fe/approve".into()),
        (Method::GET, "/v1/requests/..%2f..%2fetc%2fpasswd".into()),
        (Method::GET, "/../../etc/passwd".into()),
        (Method::GET, "/%2e%2e/Cargo.toml".into()),
        (Method::POST, "/unknown".into()),
    ]
}

/// Checks an answer: never 5xx; an error is the JSON error body.
#[track_caller]
fn check(what: &str, status: StatusCode, content_type: Option<&str>, text: &str) -> Option<Value> {
    assert!(status.as_u16() < 500, "{what}: {status} {text}");
    if status.is_success() {
        return None;
    }
    assert!(
        content_type.is_some_and(|value| value.starts_with("application/json")),
        "{what}: {status} answered {content_type:?}"
    );
    let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{what}: {text}"));
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {text}"));
    assert!(body["error"]["message"].is_string(), "{what}: {text}");
    let expected = match code {
        "invalid_request" => 400,
        "unauthenticated" => 401,
        "forbidden" | "self_approval" | "not_eligible" => 403,
        "not_found" => 404,
        "method_not_allowed" => 405,
        "conflict" | "not_pending" | "expired" | "already_approved" => 409,
        "precondition_failed" => 412,
        "payload_too_large" => 413,
        "unsupported_media_type" => 415,
        "rate_limited" => 429,
        other => panic!("{what}: unexpected code {other}"),
    };
    assert_eq!(status.as_u16(), expected, "{what}: {text}");
    Some(body)
}

async fn send(
    server: &Server,
    method: Method,
    path: &str,
    headers: &[(&str, &[u8])],
    body: Option<Vec<u8>>,
) -> (StatusCode, Option<String>, String) {
    let mut request = server
        .client
        .request(method.clone(), format!("{}{path}", server.base));
    for (name, value) in headers {
        request = request.header(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let method_shown = format!("{method}");
    let length = body.as_ref().map_or(0, Vec::len);
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap_or_else(|error| {
        panic!("the server answers {method_shown} {path} ({length} bytes): {error:?}")
    });
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (
        status,
        content_type,
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_never_break_the_server() {
    let server = Server::start_default().await;
    let request = server.create("alice", &change("network")).await;
    let id = request["id"].as_str().unwrap().to_owned();
    let mut rng = Rng(0x5157_0ff0_dead_beef);
    let auth = format!("Bearer {}", token("admin"));
    let bob = format!("Bearer {}", token("bob"));
    let json_type: &[u8] = b"application/json";
    let mut calls = 0;

    // Every route, every broken body, as JSON: never accepted where a body
    // is read.
    for (method, path) in routes(&id) {
        for (name, body) in broken_bodies(&mut rng) {
            let who = if rng.below(2) == 0 { &auth } else { &bob };
            let (status, content_type, text) = send(
                &server,
                method.clone(),
                &path,
                &[
                    ("authorization", who.as_bytes()),
                    ("content-type", json_type),
                ],
                Some(body),
            )
            .await;
            let what = format!("{method} {path} with {name}");
            check(&what, status, content_type.as_deref(), &text);
            let reads_body = method == Method::POST || method == Method::PUT;
            if reads_body && !name.starts_with("only whitespace") {
                assert!(status.is_client_error(), "{what}: {status}");
            }
            calls += 1;
        }
        for body in odd_json_bodies() {
            let (status, content_type, text) = send(
                &server,
                method.clone(),
                &path,
                &[
                    ("authorization", bob.as_bytes()),
                    ("content-type", json_type),
                ],
                Some(body.to_string().into_bytes()),
            )
            .await;
            check(
                &format!("{method} {path} with {body:.80}"),
                status,
                content_type.as_deref(),
                &text,
            );
            calls += 1;
        }
    }

    // Content types, missing and wrong, on the routes that read bodies.
    let body = change("network").to_string().into_bytes();
    let content_types: [Option<&[u8]>; 9] = [
        None,
        Some(b"text/plain"),
        Some(b"application/x-www-form-urlencoded"),
        Some(b"application/jsonx"),
        Some(b"json"),
        Some(b";;;"),
        Some(b""),
        Some(b"application/json\xff"),
        Some(b"multipart/form-data; boundary=x"),
    ];
    for (method, path) in routes(&id)
        .into_iter()
        .filter(|(method, _)| *method == Method::POST || *method == Method::PUT)
    {
        for content_type in content_types {
            let mut headers: Vec<(&str, &[u8])> = vec![("authorization", auth.as_bytes())];
            if let Some(value) = content_type {
                headers.push(("content-type", value));
            }
            let (status, answered, text) =
                send(&server, method.clone(), &path, &headers, Some(body.clone())).await;
            let what = format!("{method} {path} as {content_type:?}");
            check(&what, status, answered.as_deref(), &text);
            assert!(status.is_client_error(), "{what}: {status}");
            calls += 1;
        }
    }

    // An 8 MiB body on every route.
    let huge = vec![b'['; 8 * 1024 * 1024];
    for (method, path) in routes(&id) {
        let (status, content_type, text) = send(
            &server,
            method.clone(),
            &path,
            &[
                ("authorization", auth.as_bytes()),
                ("content-type", json_type),
            ],
            Some(huge.clone()),
        )
        .await;
        let what = format!("{method} {path} with 8 MiB");
        check(&what, status, content_type.as_deref(), &text);
        if method == Method::POST || method == Method::PUT {
            assert!(status.is_client_error(), "{what}: {status}");
        }
        calls += 1;
    }

    // Weird headers.
    let long_token = format!("Bearer {}", "t".repeat(8 * 1024));
    let weird: Vec<Vec<(&str, Vec<u8>)>> = vec![
        vec![("authorization", b"Bearer \xff\xfe\x80".to_vec())],
        vec![("authorization", long_token.into_bytes())],
        vec![("authorization", b"Bearer\ttoken".to_vec())],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("idempotency-key", b"\xff\xfe".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("idempotency-key", vec![b'k'; 4096]),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("if-match", b"\"unterminated".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("if-match", b"W/\"weak\"".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("if-match", b"\xff".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("x-request-id", b"\xff\xfe".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("x-request-id", vec![b'r'; 4096]),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("accept", b"\x80/\x81".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("range", b"bytes=999999999-".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("content-length", b"5".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("expect", b"100-continue".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("transfer-encoding", b"gzip".to_vec()),
        ],
        vec![
            ("authorization", auth.as_bytes().to_vec()),
            ("content-type", b"application/json".to_vec()),
            ("content-type", b"text/plain".to_vec()),
        ],
    ];
    for headers in &weird {
        for (method, path) in routes(&id) {
            let borrowed: Vec<(&str, &[u8])> = headers
                .iter()
                .filter(|(name, _)| *name != "content-length" && *name != "transfer-encoding")
                .map(|(name, value)| (*name, value.as_slice()))
                .collect();
            let body = (method == Method::POST || method == Method::PUT)
                .then(|| change("network").to_string().into_bytes());
            let (status, content_type, text) =
                send(&server, method.clone(), &path, &borrowed, body).await;
            check(
                &format!("{method} {path} with {headers:?}"),
                status,
                content_type.as_deref(),
                &text,
            );
            calls += 1;
        }
    }
    assert!(calls > 500, "only {calls} calls");
    eprintln!("{calls} hostile calls answered");

    // Raw HTTP that a client library would not send.
    let raw: [&[u8]; 6] = [
        b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Type: application/json\r\n\r\n{\"short\"",
        b"POST /v1/preview HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n",
        b"GET /v1/requests?limit=%ff HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-of-bob\r\n\r\n",
        b"GET /v1/requests?%zz=1&&=&limit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-of-bob\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: \x01\x02\r\n\r\n",
    ];
    for bytes in raw {
        raw_exchange(&server.base, bytes).await;
    }

    // Still healthy, and still working.
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    let created = server.create("alice", &change("firewall")).await;
    assert_eq!(created["status"], "pending");
    server.stop().await;
}

/// Sends raw bytes and reads whatever comes back within a second; a status
/// line, if any, must not be 5xx.
async fn raw_exchange(base: &str, bytes: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    if let Some(status) = text.split_whitespace().nth(1) {
        assert!(!status.starts_with('5'), "{text}");
    }
}
