//! The HTTP scenarios over a real `redis-server` (one per test), and what
//! only a server can do: stop mid-test (503 `unavailable`), come back, and
//! keep every committed request while the HTTP server recovers by itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;
mod support;

use std::time::{Duration, Instant};

use http_common::suite::{self, id};
use http_common::{Backend, change};
use reqwest::Method;
use serde_json::json;
use support::redis::RedisServer;

macro_rules! over_redis {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let redis = RedisServer::start();
            suite::$name(&Backend::Redis(redis.url())).await;
        }
    )*};
}

over_redis!(
    a_request_lives_its_whole_life_over_http,
    listing_pages_through_a_policy_type,
    preview_validates_and_explains_without_storing,
    every_error_code_of_section_7,
    authentication_failures_are_401_everywhere,
    rules_are_replaced_by_admins_with_a_fresh_etag,
    the_rate_limit_answers_429_with_retry_after,
    idempotency_keys_replay_the_first_answer,
    sixty_four_concurrent_approvers_are_counted_exactly,
    the_sweeper_expires_due_requests_and_counts_them,
    metrics_health_and_request_ids,
    the_approval_model_over_http,
    visibility_hides_what_a_principal_may_not_see,
    events_are_listed_and_streamed,
    rules_are_simulated_without_being_stored,
    requests_are_searched_by_title_and_policy_id,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_resumes_across_a_restart() {
    let redis = RedisServer::start();
    suite::a_stream_resumes_across_a_restart(|| {
        let mut config = http_common::config();
        config.redis_url = Some(redis.url());
        config.key_prefix = "stream-restart:".into();
        config
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_redis_share_their_requests() {
    let redis = RedisServer::start();
    let mut config_a = http_common::config();
    config_a.redis_url = Some(redis.url());
    config_a.key_prefix = "shared:".into();
    let mut config_b = http_common::config();
    config_b.redis_url = Some(redis.url());
    config_b.key_prefix = "shared:".into();
    let a = http_common::Server::start(config_a).await;
    let b = http_common::Server::start(config_b).await;
    let created = a.create("alice", &change("network")).await;
    let path = format!("/v1/requests/{}", id(&created));
    let approved = b.post(&format!("{path}/approve"), "bob", None).await;
    assert_eq!(approved.expect(200)["status"], "approved");
    assert_eq!(
        a.get(&path, Some("erin")).await.expect(200)["status"],
        "approved"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_test_is_503_and_the_server_recovers_alone() {
    let mut redis = RedisServer::start_persistent();
    let server = Backend::Redis(redis.url()).start().await;
    let mut committed = Vec::new();
    for _ in 0..5 {
        committed.push(id(&server.create("alice", &change("network")).await));
    }
    let approved = server
        .post(
            &format!("/v1/requests/{}/approve", committed[0]),
            "bob",
            None,
        )
        .await;
    assert_eq!(approved.expect(200)["status"], "approved");

    tokio::task::block_in_place(|| redis.stop());

    // Every call that needs the cache answers 503 unavailable, fast, with
    // the JSON error body; health and metrics still answer.
    let started = Instant::now();
    server
        .post("/v1/requests", "alice", Some(&change("network")))
        .await
        .expect_error(503, "unavailable");
    server
        .get(&format!("/v1/requests/{}", committed[1]), Some("bob"))
        .await
        .expect_error(503, "unavailable");
    server
        .get("/v1/requests", Some("bob"))
        .await
        .expect_error(503, "unavailable");
    server
        .post(
            &format!("/v1/requests/{}/approve", committed[1]),
            "bob",
            None,
        )
        .await
        .expect_error(503, "unavailable");
    let ready = server.get("/readyz", None).await;
    ready.expect_error(503, "unavailable");
    assert!(
        !ready.text.contains("127.0.0.1"),
        "internals leaked: {}",
        ready.text
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.get("/healthz", None).await.status.as_u16(), 200);
    assert_eq!(server.get("/metrics", None).await.status.as_u16(), 200);
    // Authentication and body checks need no cache and still come first.
    server
        .call(Method::POST, "/v1/requests", None, Some(&json!({})), &[])
        .await
        .expect_error(401, "unauthenticated");
    // Let the sweeper fail a few times.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let failures = server.metric("signoff_sweep_failures_total").await.unwrap();
    assert!(failures >= 1.0, "{failures}");

    tokio::task::block_in_place(|| redis.restart());

    // The server recovers by itself: no restart, no call from us but polls.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if server.get("/readyz", None).await.status.as_u16() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answer = server
        .get(&format!("/v1/requests/{}", committed[0]), Some("bob"))
        .await;
    while answer.status.as_u16() == 503 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = server
            .get(&format!("/v1/requests/{}", committed[0]), Some("bob"))
            .await;
    }
    assert_eq!(answer.expect(200)["status"], "approved");
    for request in &committed[1..] {
        let found = server
            .get(&format!("/v1/requests/{request}"), Some("bob"))
            .await;
        assert_eq!(found.expect(200)["status"], "pending");
    }
    let listed = server.get("/v1/requests?limit=500", Some("bob")).await;
    assert_eq!(listed.expect(200)["items"].as_array().unwrap().len(), 4);
    let fresh = server.create("alice", &change("network")).await;
    assert_eq!(fresh["status"], "pending");
    let approved = server
        .post(
            &format!("/v1/requests/{}/approve", committed[1]),
            "bob",
            None,
        )
        .await;
    assert_eq!(approved.expect(200)["status"], "approved");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metrics_report_what_redis_promises() {
    let redis = RedisServer::start();
    let server = Backend::Redis(redis.url()).start().await;
    let ready = server.get("/readyz", None).await;
    let body = ready.expect(200);
    assert_eq!(body["store"]["maxmemoryPolicy"], "noeviction");
    assert!(body["store"]["appendonly"].is_string());
    assert!(body["store"]["appendfsync"].is_string());
    assert_eq!(body["partitions"], 16);
    assert_eq!(server.metric("signoff_store_partitions").await, Some(16.0));
    let text = server.get("/metrics", None).await.text;
    assert!(
        text.lines().any(|line| line.starts_with("signoff_store{")
            && line.contains("maxmemory_policy=\"noeviction\"")),
        "{text}"
    );
    server.stop().await;
}
