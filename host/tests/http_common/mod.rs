//! Shared by the `http_*` suites: an in-process server on `127.0.0.1:0`,
//! a JSON client, and the principals and rules the suites use.

#![allow(dead_code, reason = "each suite uses a different part of the helpers")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failure is a panic"
)]

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use signoff_core::{Principal, Rules};
use signoff_host::server::{self, Config, Principals, SweepConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How many `crowd` principals exist (for the concurrent approvals test).
pub const CROWD: usize = 64;

/// The token of a principal in the test set.
pub fn token(id: &str) -> String {
    format!("token-of-{id}")
}

/// The test principals: the demo cast, an admin, and the crowd.
pub fn principals() -> Principals {
    let mut cast: Vec<(Principal, String)> = [
        ("alice", vec!["engineer"]),
        ("bob", vec!["engineer"]),
        ("erin", vec!["engineer"]),
        ("carol", vec!["security"]),
        ("chuck", vec!["security"]),
        ("dave", vec!["security-lead"]),
        ("admin", vec!["admin"]),
        ("nobody", vec![]),
    ]
    .into_iter()
    .map(|(id, roles)| (Principal::new(id, &roles), token(id)))
    .collect();
    for index in 0..CROWD {
        let id = format!("crowd-{index:02}");
        cast.push((Principal::new(id.clone(), &["crowd"]), token(&id)));
    }
    Principals::from_tokens(
        cast.iter()
            .map(|(principal, token)| (principal.clone(), token.as_str())),
    )
}

/// The test rules: like the demo's, plus a level needing the whole crowd, a
/// short-lived level, and a generous rate limit.
pub fn rules_json() -> Value {
    json!({
        "levels": [
            { "name": "auto", "ttlSeconds": 86400, "stages": [] },
            { "name": "peer", "ttlSeconds": 604800, "stages": [
                { "name": "peer-review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
            ]},
            { "name": "brief", "ttlSeconds": 1, "stages": [
                { "name": "quick", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
            ]},
            { "name": "security", "ttlSeconds": 259200, "stages": [
                { "name": "security-review", "requiredApprovals": 2, "eligibleRoles": ["security"] },
                { "name": "lead-signoff", "requiredApprovals": 1, "eligibleRoles": ["security-lead"] }
            ]},
            { "name": "crowd", "ttlSeconds": 259200, "stages": [
                { "name": "everyone", "requiredApprovals": CROWD, "eligibleRoles": ["crowd"] }
            ]}
        ],
        "defaultLevel": "peer",
        "rules": [
            { "name": "docs", "when": { "policyTypes": ["docs"] }, "level": "auto" },
            { "name": "iam-prod", "when": { "policyTypes": ["iam"], "environments": ["prod"] }, "level": "security" },
            { "name": "risky", "when": { "riskScoreAtLeast": 70 }, "level": "security" },
            { "name": "ephemeral", "when": { "policyTypes": ["ephemeral"] }, "level": "brief" },
            { "name": "crowd", "when": { "policyTypes": ["crowd"] }, "level": "crowd" }
        ],
        "rateLimit": { "requests": 1000, "perSeconds": 1, "burst": 1000 }
    })
}

/// A configuration over the test rules and principals, sweeping fast.
pub fn config() -> Config {
    config_with(rules_json())
}

/// A configuration over `rules` and the test principals.
pub fn config_with(rules: Value) -> Config {
    let rules = Rules::parse(&rules).expect("test rules are valid");
    let mut config = Config::new(rules, principals());
    config.sweep = SweepConfig {
        interval: Duration::from_millis(100),
        batch: 100,
        max_batches: 10,
    };
    config.metrics_refresh = Duration::from_millis(50);
    config
}

/// A valid change of `policy_type`.
pub fn change(policy_type: &str) -> Value {
    json!({
        "policyId": format!("{policy_type}/policy-1"),
        "policyType": policy_type,
        "changeKind": "update",
        "title": "Tighten the policy",
        "justification": "The audit asked for least privilege here."
    })
}

/// An answer: status, headers and JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts a JSON error with `status` and `code`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        assert!(
            self.body["error"]["message"].is_string(),
            "message missing: {}",
            self.text
        );
        assert!(
            self.headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.starts_with("application/json")),
            "not JSON: {:?}",
            self.headers
        );
    }

    /// Asserts `status` and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        &self.body
    }
}

/// A server running in this process.
pub struct Server {
    pub base: String,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), server::ServerError>>>,
}

impl Server {
    /// Starts `config` on a free loopback port.
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let server = Self {
            base: format!("http://{address}"),
            client,
            stop: Some(stop),
            handle: Some(handle),
        };
        for _ in 0..100 {
            if server.get("/healthz", None).await.status == StatusCode::OK {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not start");
    }

    /// Starts the default test configuration.
    pub async fn start_default() -> Self {
        Self::start(config()).await
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(who) = who {
            request = request.bearer_auth(token(who));
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        for (name, value) in headers {
            request = request.header(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        Self::answer(request.send().await.expect("the server answers")).await
    }

    /// Reads an answer.
    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, who: Option<&str>) -> Answer {
        self.call(Method::GET, path, who, None, &[]).await
    }

    pub async fn post(&self, path: &str, who: &str, body: Option<&Value>) -> Answer {
        self.call(Method::POST, path, Some(who), body, &[]).await
    }

    /// Creates a change as `who` and returns the stored request.
    pub async fn create(&self, who: &str, change: &Value) -> Value {
        self.post("/v1/requests", who, Some(change))
            .await
            .expect(201)
            .clone()
    }

    /// The value of one sample line of `/metrics`, if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics", None).await.text;
        text.lines().find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
    }

    /// `/metrics` once it holds every line of `lines` (the gauges are
    /// refreshed in the background); panics after ten seconds.
    pub async fn metrics_with(&self, lines: &[&str]) -> Answer {
        let mut last = None;
        for _ in 0..200 {
            let answer = self.get("/metrics", None).await;
            if lines.iter().all(|line| answer.text.contains(line)) {
                return answer;
            }
            last = Some(answer);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "/metrics never held {lines:?}:\n{}",
            last.map(|answer| answer.text).unwrap_or_default()
        );
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("the server task")
                .expect("the server stops cleanly");
        }
    }
}

pub mod suite;

/// Where a test server keeps its data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded in-memory cache.
    Memory,
    /// A Redis server at this URL; each server gets its own key prefix.
    Redis(String),
}

impl Backend {
    /// A server with the test rules.
    pub async fn start(&self) -> Server {
        self.start_config(config()).await
    }

    /// A server with `rules`.
    pub async fn start_with(&self, rules: Value) -> Server {
        self.start_config(config_with(rules)).await
    }

    /// A server with `config`, on this backend.
    pub async fn start_config(&self, mut config: Config) -> Server {
        static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        if let Self::Redis(url) = self {
            let number = SERVERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            config.redis_url = Some(url.clone());
            config.key_prefix = format!("http-{}-{number}:", std::process::id());
        }
        Server::start(config).await
    }
}
