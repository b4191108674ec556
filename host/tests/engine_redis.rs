//! The engine suite over a real `redis-server` started by each test, and
//! what only a server can do: stop, come back, and keep every commit.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use signoff_core::{ErrorCode, Status};
use support::redis::RedisServer;
use support::suite::{self, Harness, alice, bob, change};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle() {
    let server = RedisServer::start();
    suite::full_lifecycle(&Harness::redis(&server.url(), "lifecycle")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_traversal_with_concurrent_inserts_and_cancels() {
    let server = RedisServer::start();
    suite::listing_with_concurrent_changes(&Harness::redis(&server.url(), "listing")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_approvals_are_counted_exactly() {
    let server = RedisServer::start();
    suite::concurrent_approvals(&Harness::redis(&server.url(), "approvals")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_conflict_is_retried() {
    let server = RedisServer::start();
    suite::conflict_retried(&Harness::redis(&server.url(), "conflict")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_the_hash_tag_of_its_prefix() {
    let server = RedisServer::start();
    let harness = Harness::redis(&server.url(), "layout");
    let engine = harness.engine().await;
    engine
        .create(&change("iam", "tagged"), &alice(), Some("idem-1"))
        .await
        .expect("create");
    let keys = server.cli(&["--scan"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert!(
        keys.len() >= 6,
        "request, indexes, idempotency, rules: {keys:?}"
    );
    for key in keys {
        assert!(key.starts_with("{signoff-layout}:"), "untagged key {key}");
    }
}

/// The engine answers `unavailable` while Redis is down, never panics, and
/// works again without a restart once Redis is back, with every committed
/// request still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_loses_no_committed_request() {
    let mut server = RedisServer::start_persistent();
    let harness = Harness::redis(&server.url(), "restart");
    let engine = harness.engine().await;
    let mut committed = Vec::new();
    for n in 0..10 {
        let request = engine
            .create(&change("iam", &format!("before-{n}")), &alice(), None)
            .await
            .expect("create")
            .request;
        committed.push(request.id);
    }
    let approved = engine
        .approve(&committed[0].to_string(), &bob(), None)
        .await
        .expect("approve");
    assert_eq!(approved.stage.as_deref(), Some("security"));

    server.stop();
    assert!(!engine.ready().await);
    let down = engine.get(&committed[1].to_string()).await;
    assert_eq!(down.expect_err("down").code(), ErrorCode::Unavailable);
    let down = engine
        .create(&change("iam", "while-down"), &alice(), None)
        .await;
    assert_eq!(down.expect_err("down").code(), ErrorCode::Unavailable);
    let down = engine.list(&json!({})).await;
    assert_eq!(down.expect_err("down").code(), ErrorCode::Unavailable);
    assert_eq!(
        engine.stats().await.expect_err("down").code(),
        ErrorCode::Unavailable
    );

    server.restart();
    let started = Instant::now();
    while !engine.ready().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the engine reconnects by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &committed {
        let request = engine
            .get(&id.to_string())
            .await
            .expect("get after restart")
            .expect("the request survived");
        assert_eq!(request.status, Status::Pending);
    }
    let first = engine
        .get(&committed[0].to_string())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(first.approvals.len(), 1);
    let page = engine.list(&json!({ "limit": 500 })).await.expect("list");
    assert_eq!(page.items.len(), committed.len());
    engine
        .create(&change("iam", "after"), &alice(), None)
        .await
        .expect("create after restart");
}
