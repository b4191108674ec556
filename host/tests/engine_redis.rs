//! The engine suite over a real `redis-server` started by each test, and
//! what only a server can do: stop, come back, and keep every commit.

mod support;

use support::redis::RedisServer;
use support::suite::{self, Harness, alice, change};

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
async fn every_key_carries_the_hash_tag_of_its_prefix_and_partition() {
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
        let partitioned = key
            .strip_prefix("{signoff-layout:p")
            .and_then(|rest| rest.split_once("}:"))
            .and_then(|(tag, _)| tag.split_once('.'))
            .is_some_and(|(partition, _)| partition.parse::<u16>().is_ok_and(|p| p < 16));
        assert!(
            partitioned || key.starts_with("{signoff-layout}:"),
            "untagged key {key}"
        );
    }
}

/// The engine answers `unavailable` while Redis is down, never panics, and
/// works again without a restart once Redis is back, with every committed
/// request still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_loses_no_committed_request() {
    let server = std::sync::Mutex::new(RedisServer::start_persistent());
    let url = server.lock().expect("lock").url();
    suite::restart_keeps_commits(
        &Harness::redis(&url, "restart"),
        suite::Outage::Whole,
        || server.lock().expect("lock").stop(),
        || server.lock().expect("lock").restart(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_never_reverts_a_replacement() {
    let server = RedisServer::start();
    suite::a_reload_never_reverts_a_replacement(&Harness::redis(&server.url(), "reload")).await;
}
