//! The serving limits of every route: head and body timeouts, the connection
//! cap, authentication before the body, each principal's fair share, and a
//! shutdown that no connection can hold. Raw TCP where the test needs to send
//! half a request; every wait is bounded, and every assertion is on what the
//! client saw (statuses, counts, the order of events), not on how long
//! something took.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_common::{Server, change, config, token};
use reqwest::StatusCode;
use signoff_host::server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single wait of these tests may take before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (or `PATIENCE` runs out); returns what came.
async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(read)) => seen.extend_from_slice(&buffer[..read]),
            Err(_) => return None,
        }
    }
}

/// Reads until `needle` has come (or the peer closed, or `PATIENCE` ran out).
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Instant::now() + PATIENCE;
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(read)) => seen.extend_from_slice(&buffer[..read]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn with_limits(change_limits: impl FnOnce(&mut Config)) -> Config {
    let mut config = config();
    change_limits(&mut config);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_connections_do_not_stop_healthz_and_are_closed_within_the_head_timeout() {
    let head_timeout = Duration::from_millis(1000);
    let server = Server::start(with_limits(|config| {
        config.limits.head_timeout = head_timeout;
    }))
    .await;
    let address = address(&server);
    let mut half_open = Vec::new();
    for index in 0..400 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        // Half of them send half a head, the others nothing at all.
        if index % 2 == 0 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        half_open.push((stream, Instant::now()));
    }
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);

    let mut longest = Duration::ZERO;
    for (mut stream, opened) in half_open {
        let answer = read_to_close(&mut stream)
            .await
            .expect("the server closes a connection whose head does not arrive");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
        longest = longest.max(opened.elapsed());
    }
    // Each was closed by the server (`read_to_close` gives up after
    // `PATIENCE`, 20 times the head timeout); how soon is a figure for the
    // log, not an assertion, since a loaded machine delays the timers.
    eprintln!("400 half-open connections: the last one closed after {longest:?}");
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    server.stop().await;
}

/// Asks for `/healthz` on a fresh connection that closes after the answer.
async fn raw_health(address: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    read_to_close(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let mut config = config();
    config.limits.max_connections = 4;
    config.limits.head_timeout = Duration::from_millis(1500);
    // Started by hand, so that no pooled client connection takes a slot.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(signoff_host::server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let mut ready = false;
    for _ in 0..200 {
        if raw_health(&address)
            .await
            .is_some_and(|answer| answer.starts_with("HTTP/1.1 200"))
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "the server did not start");

    let idle_connecting = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut fifth = TcpStream::connect(&address).await.unwrap();
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let first_idle_closed = tokio::spawn(async move {
        for mut stream in idle {
            read_to_close(&mut stream)
                .await
                .expect("closed by the head timer");
        }
    });
    let answer = read_to_close(&mut fifth)
        .await
        .expect("answered in the end");
    let answered = Instant::now();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A timer never fires early: the fifth call can only have been served
    // once an idle connection's head timer had run out.
    assert!(
        answered.duration_since(idle_connecting) >= Duration::from_millis(1500),
        "the fifth connection was served while four were open"
    );
    first_idle_closed.await.unwrap();
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

const BIG_HEAD: &str = "POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n";

#[tokio::test]
async fn an_unauthenticated_body_is_never_read() {
    let server = Server::start_default().await;
    let address = address(&server);

    // With `Expect: 100-continue` the client waits for leave to send: it must
    // get the 401 instead, never a 100.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(format!("{BIG_HEAD}Expect: 100-continue\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_to_close(&mut stream)
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("\"unauthenticated\""), "{answer}");

    // Without it, the head alone is answered: the server does not wait for
    // the megabyte announced.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(format!("{BIG_HEAD}Authorization: Bearer wrong\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_to_close(&mut stream)
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // A caller who is known is let in: the server asks for the body.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "{BIG_HEAD}Authorization: Bearer {}\r\nExpect: 100-continue\r\n\r\n",
        token("alice")
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 100"), "{answer}");
    // Hang up rather than leave the call waiting for its body (the stop
    // would wait for the body timeout).
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_and_closes() {
    let server = Server::start(with_limits(|config| {
        config.limits.body_timeout = Duration::from_millis(500);
    }))
    .await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    let head = format!(
        "POST /v1/preview HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\nAuthorization: Bearer {}\r\n\r\n{{\"title\":",
        token("alice")
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream)
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_on_a_half_open_connection() {
    let server = Server::start(with_limits(|config| {
        config.limits.head_timeout = Duration::from_secs(600);
        config.limits.shutdown_grace = Duration::from_millis(300);
    }))
    .await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The server has the connection (its head is being read) before it stops.
    assert_eq!(server.get("/healthz", None).await.status, StatusCode::OK);
    tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("the server stops although a head never completes");
    assert!(read_to_close(&mut stream).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_principal_flooding_gets_429_while_another_keeps_answering() {
    const SHARE: usize = 4;
    let server = Arc::new(
        Server::start(with_limits(|config| {
            config.limits.max_inflight_per_principal = SHARE;
        }))
        .await,
    );
    let bob_target = {
        let created = server.create("bob", &change("iam")).await;
        format!("/v1/requests/{}", created["id"].as_str().unwrap())
    };

    // alice takes her whole share with calls whose bodies never come: each
    // holds its slot (taken before the body is read) until it times out.
    let head = format!(
        "POST /v1/preview HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\nAuthorization: Bearer {}\r\n\r\n{{",
        token("alice")
    );
    let mut held = Vec::new();
    for _ in 0..SHARE {
        let mut stream = TcpStream::connect(address(&server)).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        held.push(stream);
    }
    // Once the server has them all in flight, alice's next call is refused.
    let started = Instant::now();
    let refused = loop {
        let answer = server.get("/v1/requests", Some("alice")).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            break answer;
        }
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert!(started.elapsed() < PATIENCE, "alice's share was never full");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    refused.expect_error(429, "rate_limited");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.body["error"]["details"]["retryAfterSeconds"], 1);

    // alice floods on top of it: refused, every time, while bob is served.
    let flooding = Arc::new(AtomicBool::new(true));
    let refusals = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for _ in 0..16 {
        let server = Arc::clone(&server);
        let flooding = Arc::clone(&flooding);
        let refusals = Arc::clone(&refusals);
        flood.push(tokio::spawn(async move {
            while flooding.load(Ordering::SeqCst) {
                let answer = server
                    .get("/v1/requests?status=pending&limit=500", Some("alice"))
                    .await;
                answer.expect_error(429, "rate_limited");
                refusals.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let answer = server.get(&bob_target, Some("bob")).await;
        latencies.push(started.elapsed());
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    flooding.store(false, Ordering::SeqCst);
    for task in flood {
        task.await.unwrap();
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "flood: {} refused; the other principal: p50 {p50:?}, p99 {p99:?}",
        refusals.load(Ordering::SeqCst)
    );
    // Starved, bob would wait for alice's calls (seconds); the bound only
    // separates served from starved, on a machine of any load.
    assert!(p99 < Duration::from_secs(2), "bob's p99 was {p99:?}");

    // alice hangs up: her share is hers again.
    drop(held);
    let started = Instant::now();
    while server.get("/v1/requests", Some("alice")).await.status != StatusCode::OK {
        assert!(
            started.elapsed() < PATIENCE,
            "alice's share was never given back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = Arc::into_inner(server).unwrap();
    server.stop().await;
}
