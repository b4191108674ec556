//! The engine suite against a real 3-master Redis Cluster started by the
//! test: every commit's keys lie in one partition, hence one slot, so no
//! command fails with `CROSSSLOT`, the answers are those of a single node,
//! and the partitions spread the data over the masters.

mod support;

use std::sync::Arc;

use support::redis::RedisCluster;
use support::suite::{self, Harness, alice, change};

/// One cluster for the whole suite (starting one takes seconds); each
/// scenario has its own key prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_a_three_master_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    suite::full_lifecycle(&Harness::redis(&url, "lifecycle")).await;
    suite::listing_with_concurrent_changes(&Harness::redis(&url, "listing")).await;
    suite::concurrent_approvals(&Harness::redis(&url, "approvals")).await;
    suite::conflict_retried(&Harness::redis(&url, "conflict")).await;

    // 3,000 creates spread over every master, none holding half.
    const CREATES: usize = 3_000;
    let engine = Arc::new(Harness::redis(&url, "spread").engine().await);
    let tasks: Vec<_> = (0..8)
        .map(|worker| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for n in (worker..CREATES).step_by(8) {
                    engine
                        .create(&change("iam", &format!("spread-{n}")), &alice(), None)
                        .await
                        .expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("creates");
    }
    let held: Vec<usize> = cluster
        .nodes()
        .iter()
        .map(|node| {
            node.cli(&["--scan", "--pattern", "{signoff-spread:p*}:req:*"])
                .lines()
                .filter(|line| !line.trim().is_empty())
                .count()
        })
        .collect();
    eprintln!("requests per master after {CREATES} creates: {held:?}");
    assert_eq!(held.iter().sum::<usize>(), CREATES, "{held:?}");
    assert!(
        held.iter().all(|count| *count > 0),
        "every master holds requests: {held:?}"
    );
    assert!(
        held.iter().all(|count| *count <= CREATES / 2),
        "no master holds half: {held:?}"
    );
    // And a listing over all partitions sees every one of them once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = serde_json::json!({ "limit": "500" });
        if let Some(cursor) = cursor.take() {
            query["cursor"] = cursor.into();
        }
        let page = engine.list(&query).await.expect("list");
        for item in &page.items {
            if item.change.title.starts_with("spread-") {
                assert!(seen.insert(item.id), "listed twice");
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), CREATES);
}

/// A master stopped and restarted mid-test (append-only files): the
/// requests it holds, and every listing, answer `unavailable` while it is
/// down; the other masters' requests stay readable; the cluster connection
/// comes back by itself with every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_stopped_and_restarted_loses_no_committed_request() {
    let cluster = std::sync::Mutex::new(RedisCluster::start_persistent());
    let url = cluster.lock().expect("lock").url();
    let stopped = std::sync::Mutex::new(None);
    suite::restart_keeps_commits(
        &Harness::redis(&url, "restart"),
        suite::Outage::OneMaster,
        || {
            let mut cluster = cluster.lock().expect("lock");
            let index = cluster.node_with_data();
            cluster.node_mut(index).stop();
            *stopped.lock().expect("lock") = Some(index);
        },
        || {
            let mut cluster = cluster.lock().expect("lock");
            let index = stopped.lock().expect("lock").expect("a node was stopped");
            cluster.node_mut(index).restart();
            cluster.wait_ok();
        },
    )
    .await;
}
