//! Pages that cannot blow up: 300 requests with 250 KiB diffs, listed over
//! HTTP with `limit=500` and the default limit, over memory and Redis. Every
//! page answers 200 within the 4 MiB budget of item JSON, a page with items
//! left holds at least one, and the traversal returns every request once,
//! in full and in summary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;
mod support;

use std::collections::HashSet;

use http_common::{Backend, Server, change};
use serde_json::Value;
use support::redis::RedisServer;

const REQUESTS: usize = 300;
const DIFF_BYTES: usize = 250 * 1024;
const PAGE_BUDGET: usize = 4 * 1024 * 1024;

async fn fill(server: &Server) {
    let diff = "+ allow read\n".repeat(DIFF_BYTES / 13);
    for n in 0..REQUESTS {
        let mut body = change("iam");
        body["policyId"] = Value::from(format!("iam/large-{n}"));
        body["diff"] = Value::from(diff.clone());
        server.create("alice", &body).await;
    }
}

/// Lists every pending request page by page; returns the ids seen and the
/// number of pages.
async fn traverse(server: &Server, query: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= REQUESTS + 1, "the traversal does not end");
        let mut path = format!("/v1/requests?{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let answer = server.get(&path, Some("bob")).await;
        assert_eq!(answer.status.as_u16(), 200, "{path}: {}", answer.text);
        let items = answer.body["items"].as_array().unwrap();
        let item_bytes: usize = items.iter().map(|item| item.to_string().len()).sum();
        assert!(
            item_bytes <= PAGE_BUDGET || items.len() == 1,
            "a page of {item_bytes} bytes"
        );
        let next = answer.body["nextCursor"].as_str().map(str::to_owned);
        assert!(
            !items.is_empty() || next.is_none(),
            "a page with items left holds at least one"
        );
        for item in items {
            ids.push(item["id"].as_str().unwrap().to_owned());
            if query.contains("view=summary") {
                assert!(item["change"].get("diff").is_none());
                assert!(item["change"].get("justification").is_none());
                assert!(item.get("history").is_none());
                assert!(item["change"]["policyId"].is_string());
            } else {
                assert_eq!(
                    item["change"]["diff"].as_str().unwrap().len(),
                    DIFF_BYTES / 13 * 13
                );
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    (ids, pages)
}

async fn large_pages_stay_within_budget(backend: &Backend) {
    let server = backend.start().await;
    fill(&server).await;
    for query in ["limit=500", "status=pending", "limit=500&view=summary"] {
        let (ids, pages) = traverse(&server, query).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{query}: an item came twice");
        assert_eq!(ids.len(), REQUESTS, "{query}: every request, once");
        if query.contains("summary") {
            assert_eq!(pages, 1, "summaries of 300 requests fit one page");
        } else {
            // About 16 items of 250 KiB fit in 4 MiB.
            assert!(pages >= REQUESTS / 17, "{query}: {pages} pages");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_page_within_budget_in_memory() {
    large_pages_stay_within_budget(&Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_page_within_budget_over_redis() {
    let redis = RedisServer::start();
    large_pages_stay_within_budget(&Backend::Redis(redis.url())).await;
}
