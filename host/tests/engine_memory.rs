//! The engine suite over the embedded in-memory cache.

mod support;

use support::suite::{self, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle() {
    suite::full_lifecycle(&Harness::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_traversal_with_concurrent_inserts_and_cancels() {
    suite::listing_with_concurrent_changes(&Harness::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_approvals_are_counted_exactly() {
    suite::concurrent_approvals(&Harness::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_conflict_is_retried() {
    suite::conflict_retried(&Harness::memory()).await;
}
