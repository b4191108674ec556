//! The engine suite against a real 3-master Redis Cluster started by the
//! test: every commit's keys share one slot, so no command fails with
//! `CROSSSLOT`, and the answers are those of a single node.

mod support;

use support::redis::RedisCluster;
use support::suite::{self, Harness};

/// One cluster for the whole suite (starting one takes seconds); each
/// scenario has its own key prefix, hence its own slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_a_three_master_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    suite::full_lifecycle(&Harness::redis(&url, "lifecycle")).await;
    suite::listing_with_concurrent_changes(&Harness::redis(&url, "listing")).await;
    suite::concurrent_approvals(&Harness::redis(&url, "approvals")).await;
    suite::conflict_retried(&Harness::redis(&url, "conflict")).await;
    // The scenarios' data landed on more than one master.
    let holding = cluster
        .nodes()
        .iter()
        .filter(|node| node.cli(&["dbsize"]).trim() != "0")
        .count();
    assert!(holding >= 2, "the prefixes spread over the masters");
}

/// A master stopped and restarted mid-test (append-only files): calls
/// answer `unavailable` while it is down, and the cluster connection comes
/// back by itself with every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_stopped_and_restarted_loses_no_committed_request() {
    let cluster = std::sync::Mutex::new(RedisCluster::start_persistent());
    let url = cluster.lock().expect("lock").url();
    let stopped = std::sync::Mutex::new(None);
    suite::restart_keeps_commits(
        &Harness::redis(&url, "restart"),
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
