//! Webhooks against a loopback receiver: signed deliveries in order,
//! retries after failures, a server killed mid-delivery, two servers on one
//! Redis, and a receiver that never answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;
mod support;

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_common::{Server, change, config};
use serde_json::{Value, json};
use signoff_host::server::{Config, webhooks};
use support::redis::RedisServer;

const SECRET: &str = "a-webhook-secret-for-tests";

/// How the receiver answers a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answering {
    Ok,
    Fail,
    Hang,
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    kind: String,
    signature: String,
    body: Vec<u8>,
    answered: Answering,
}

#[derive(Default)]
struct ReceiverState {
    log: Vec<Received>,
    script: VecDeque<Answering>,
    otherwise: Option<Answering>,
}

/// A webhook receiver on a loopback port: records every POST and answers
/// as scripted (then `otherwise`, by default 200).
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answering = {
        let mut state = state.lock().unwrap();
        let answering = state
            .script
            .pop_front()
            .or(state.otherwise)
            .unwrap_or(Answering::Ok);
        state.log.push(Received {
            id: header("signoff-event-id"),
            kind: header("signoff-event-type"),
            signature: header("signoff-signature"),
            body: body.to_vec(),
            answered: answering,
        });
        answering
    };
    match answering {
        Answering::Ok => StatusCode::NO_CONTENT.into_response(),
        Answering::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Answering::Hang => std::future::pending().await,
    }
}

impl Receiver {
    async fn start(path: &str) -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let route = path.split('?').next().unwrap_or(path);
        let app = axum::Router::new()
            .route(route, axum::routing::post(receive))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn script(&self, answers: &[Answering], otherwise: Answering) {
        let mut state = self.state.lock().unwrap();
        state.script = answers.iter().copied().collect();
        state.otherwise = Some(otherwise);
    }

    fn log(&self) -> Vec<Received> {
        self.state.lock().unwrap().log.clone()
    }

    /// The ids of the events answered 2xx, in the order they came.
    fn delivered(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|received| received.answered == Answering::Ok)
            .map(|received| received.id)
            .collect()
    }

    fn endpoint(&self, events: &[&str]) -> Value {
        json!({ "url": self.url, "secret": SECRET, "events": events })
    }
}

/// Waits until `done` holds, for at most `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn with_webhooks(mut config: Config, endpoints: &[Value], timeout: Duration) -> Config {
    config.webhooks = webhooks::parse(&Value::Array(endpoints.to_vec())).unwrap();
    config.webhook_settings = webhooks::Settings {
        timeout,
        poll: Duration::from_millis(20),
        ..webhooks::Settings::default()
    };
    config
}

/// Checks a delivery's signature the way a receiver would: HMAC-SHA256 of
/// `<t>.<body>` under the shared secret.
fn signature_holds(received: &Received) -> bool {
    let Some((t, v1)) = received
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signed = [t.as_bytes(), b".", &received.body].concat();
    hex::decode(v1).is_ok_and(|tag| ring::hmac::verify(&key, &signed, &tag).is_ok())
}

/// Every event of the log, as `GET /v1/events` lists it to an admin.
async fn all_events(server: &Server) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let page = server
            .get(&format!("/v1/events?limit=500{after}"), Some("admin"))
            .await
            .expect(200)
            .clone();
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_are_signed_complete_and_in_order() {
    let everything = Receiver::start("/all").await;
    let approvals = Receiver::start("/approved?token=kept-out-of-logs").await;
    let server = Server::start(with_webhooks(
        config(),
        &[
            everything.endpoint(&["request.*"]),
            approvals.endpoint(&["request.approved", "request.rejected"]),
        ],
        Duration::from_secs(5),
    ))
    .await;
    // One approval by a peer approves it.
    let request = server.create("alice", &change("iam")).await;
    let id = request["id"].as_str().unwrap().to_owned();
    server
        .post(&format!("/v1/requests/{id}/approve"), "bob", None)
        .await
        .expect(200);
    let events = all_events(&server).await;
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(events.last().unwrap()["type"], "request.approved");
    wait_for(
        "every event at the first endpoint",
        Duration::from_secs(10),
        || everything.delivered().len() >= events.len(),
    )
    .await;
    wait_for(
        "the approval at the second",
        Duration::from_secs(10),
        || !approvals.delivered().is_empty(),
    )
    .await;
    let log = everything.log();
    let ids: Vec<&str> = log.iter().map(|received| received.id.as_str()).collect();
    let listed: Vec<&str> = events
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, listed, "each event once, in the log's order");
    for (received, event) in log.iter().zip(&events) {
        assert!(signature_holds(received), "{received:?}");
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(&body, event, "the body is the event itself");
        assert_eq!(received.kind, event["type"].as_str().unwrap());
    }
    // A tampered body or another secret does not verify.
    let mut tampered = log[0].clone();
    tampered.body[2] ^= 1;
    assert!(!signature_holds(&tampered));
    let only_decisions = approvals.log();
    assert_eq!(only_decisions.len(), 1, "{only_decisions:?}");
    assert_eq!(only_decisions[0].kind, "request.approved");
    let endpoint = approvals.url.split('?').next().unwrap().to_owned();
    server
        .metrics_with(&[&format!(
            "signoff_webhook_deliveries_total{{endpoint=\"{endpoint}\",outcome=\"delivered\"}} 1"
        )])
        .await;
    let text = server.get("/metrics", None).await.text;
    assert!(
        !text.contains("kept-out-of-logs"),
        "a URL's query is never shown"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_delivery_is_retried_and_order_is_kept() {
    let receiver = Receiver::start("/hook").await;
    receiver.script(&[Answering::Fail, Answering::Fail], Answering::Ok);
    let server = Server::start(with_webhooks(
        config(),
        &[receiver.endpoint(&["*"])],
        Duration::from_secs(5),
    ))
    .await;
    // One request's events, all in one partition: the first fails twice,
    // and nothing after it goes before it.
    let request = server.create("alice", &change("iam")).await;
    let id = request["id"].as_str().unwrap();
    server
        .post(&format!("/v1/requests/{id}/approve"), "bob", None)
        .await
        .expect(200);
    let events = all_events(&server).await;
    let listed: Vec<&str> = events
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert!(listed.len() >= 3, "{events:?}");
    // 1 s, then 2 s of backoff before the third try.
    wait_for(
        "every event after the retries",
        Duration::from_secs(15),
        || receiver.delivered().len() >= listed.len(),
    )
    .await;
    let answers: Vec<(String, Answering)> = receiver
        .log()
        .into_iter()
        .map(|received| (received.id, received.answered))
        .collect();
    let expected: Vec<(String, Answering)> =
        [(listed[0], Answering::Fail), (listed[0], Answering::Fail)]
            .into_iter()
            .chain(listed.iter().map(|id| (*id, Answering::Ok)))
            .map(|(id, answered)| (id.to_owned(), answered))
            .collect();
    assert_eq!(answers, expected);
    let endpoint = &receiver.url;
    server
        .metrics_with(&[
            &format!(
                "signoff_webhook_deliveries_total{{endpoint=\"{endpoint}\",outcome=\"failed\"}} 2"
            ),
            &format!(
                "signoff_webhook_deliveries_total{{endpoint=\"{endpoint}\",outcome=\"delivered\"}} {}",
                listed.len()
            ),
            &format!(
                "signoff_webhook_oldest_undelivered_age_seconds{{endpoint=\"{endpoint}\"}} 0"
            ),
        ])
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_never_answers_costs_no_more_than_its_timeout() {
    let silent = Receiver::start("/silent").await;
    silent.script(&[], Answering::Hang);
    let prompt = Receiver::start("/prompt").await;
    let server = Server::start(with_webhooks(
        config(),
        &[silent.endpoint(&["*"]), prompt.endpoint(&["*"])],
        Duration::from_millis(500),
    ))
    .await;
    server.create("alice", &change("iam")).await;
    // The other endpoint is not held up by the silent one.
    wait_for(
        "the prompt endpoint's delivery",
        Duration::from_secs(5),
        || prompt.delivered().len() == 1,
    )
    .await;
    // The silent one's first try is abandoned at its timeout and tried
    // again (after 1 s), while the first connection still hangs.
    wait_for(
        "a second try at the silent endpoint",
        Duration::from_secs(10),
        || silent.log().len() >= 2,
    )
    .await;
    let endpoint = &silent.url;
    let metrics = server
        .metrics_with(&[&format!(
            "signoff_webhook_deliveries_total{{endpoint=\"{endpoint}\",outcome=\"failed\"}}"
        )])
        .await;
    assert!(!metrics.text.contains(&format!(
        "signoff_webhook_deliveries_total{{endpoint=\"{endpoint}\",outcome=\"delivered\"}} 1"
    )));
    // A call to the API is not slowed by deliveries in flight.
    server.get("/v1/me", Some("alice")).await.expect(200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_redis_deliver_each_event_once() {
    const EVENTS: usize = 1000;
    let redis = RedisServer::start();
    let receiver = Receiver::start("/once").await;
    let shared = |config: Config| {
        let mut config =
            with_webhooks(config, &[receiver.endpoint(&["*"])], Duration::from_secs(5));
        config.redis_url = Some(redis.url());
        config.key_prefix = "webhooks-once:".to_owned();
        config
    };
    let one = Server::start(shared(config())).await;
    let two = Server::start(shared(config())).await;
    // Comments add one event each: 1000 of them over 10 requests, half
    // through each server.
    let mut requests = Vec::new();
    for index in 0..10 {
        let server = if index % 2 == 0 { &one } else { &two };
        let request = server.create("alice", &change("iam")).await;
        requests.push(request["id"].as_str().unwrap().to_owned());
    }
    let comments = EVENTS - requests.len();
    let mut calls = Vec::new();
    for index in 0..comments {
        let server = if index % 2 == 0 { &one } else { &two };
        let id = requests[index % requests.len()].clone();
        calls.push(async move {
            server
                .post(
                    &format!("/v1/requests/{id}/comments"),
                    "carol",
                    Some(&json!({ "text": format!("note {index}") })),
                )
                .await
                .expect(200);
        });
    }
    futures::stream::iter(calls)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let events = all_events(&one).await;
    assert_eq!(events.len(), EVENTS);
    wait_for("every event delivered", Duration::from_secs(60), || {
        receiver.delivered().len() >= EVENTS
    })
    .await;
    // Give a duplicate the time to show up, were there one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = receiver.delivered();
    let distinct: HashSet<&String> = delivered.iter().collect();
    assert_eq!(distinct.len(), EVENTS);
    assert_eq!(delivered.len(), EVENTS, "no event delivered twice");
    // Each request's events came in the order they happened.
    let position: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(index, event)| (event["id"].as_str().unwrap(), index))
        .collect();
    let mut last_seen: HashMap<String, usize> = HashMap::new();
    for received in receiver.log() {
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        let request = body["requestId"].as_str().unwrap().to_owned();
        let at = position[received.id.as_str()];
        if let Some(before) = last_seen.insert(request, at) {
            assert!(before < at, "a request's events out of order");
        }
    }
    one.stop().await;
    two.stop().await;
}

/// A `signoff serve --dev` process on Redis, delivering to `receiver`.
fn spawn_server(redis: &RedisServer, webhooks_file: &std::path::Path) -> (Child, String) {
    let port = support::redis::free_port(false);
    let child = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", &redis.url()])
        .arg("--webhooks")
        .arg(webhooks_file)
        .args(["--webhook-timeout-ms", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    loop {
        if let Ok(answer) = client.get(format!("{base}/healthz")).send().await
            && answer.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_delivery_delivers_after_restart() {
    let redis = RedisServer::start();
    let receiver = Receiver::start("/kill").await;
    // The first delivery is received and never answered: the server dies
    // while it waits.
    receiver.script(&[Answering::Hang], Answering::Ok);
    let dir = support::redis::TempDir::new("webhooks-kill");
    let file = dir.path().join("webhooks.json");
    std::fs::write(&file, json!([receiver.endpoint(&["*"])]).to_string()).unwrap();
    let client = reqwest::Client::new();
    let (mut first, base) = spawn_server(&redis, &file);
    wait_healthy(&client, &base).await;
    let created: Value = client
        .post(format!("{base}/v1/requests"))
        .bearer_auth("dev-alice")
        .json(&change("iam"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    wait_for("the delivery in flight", Duration::from_secs(10), || {
        !receiver.log().is_empty()
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let in_flight = receiver.log()[0].id.clone();
    let (mut second, base) = spawn_server(&redis, &file);
    wait_healthy(&client, &base).await;
    // The dead server's lease lapses (2 × 1 s + 5 s), then the event goes
    // again, and so do the events after it.
    let answer = client
        .post(format!("{base}/v1/requests/{id}/cancel"))
        .bearer_auth("dev-alice")
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "{}",
        answer.text().await.unwrap()
    );
    wait_for(
        "the redelivery after the restart",
        Duration::from_secs(30),
        || receiver.delivered().len() >= 2,
    )
    .await;
    let delivered = receiver.delivered();
    assert_eq!(
        delivered[0], in_flight,
        "the event in flight came again first"
    );
    let kinds: Vec<String> = receiver
        .log()
        .iter()
        .filter(|received| received.answered == Answering::Ok)
        .map(|received| received.kind.clone())
        .collect();
    assert_eq!(kinds, ["request.created", "request.cancelled"]);
    second.kill().unwrap();
    second.wait().unwrap();
}
