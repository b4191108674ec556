//! `/metrics`: served from figures kept in memory (a scrape never waits on
//! the cache), and closed by `--metrics-token` when one is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;

use http_common::{Server, config};
use reqwest::{Method, StatusCode};
use tokio::net::TcpListener;

#[tokio::test]
async fn a_metrics_token_closes_metrics_and_nothing_else() {
    let mut config = config();
    config.metrics_token = Some("scrape-me".to_owned());
    let server = Server::start(config).await;
    let open = server.get("/metrics", None).await;
    open.expect_error(401, "unauthenticated");
    let wrong = server
        .call(
            Method::GET,
            "/metrics",
            None,
            None,
            &[("authorization", "Bearer scrape-you")],
        )
        .await;
    wrong.expect_error(401, "unauthenticated");
    // A principal's token is not the metrics token.
    server
        .get("/metrics", Some("admin"))
        .await
        .expect_error(401, "unauthenticated");
    let right = server
        .call(
            Method::GET,
            "/metrics",
            None,
            None,
            &[("authorization", "Bearer scrape-me")],
        )
        .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.text);
    assert!(
        right.text.contains("signoff_pending_requests"),
        "{}",
        right.text
    );
    // Health and readiness stay open.
    assert_eq!(server.get("/healthz", None).await.status, StatusCode::OK);
    assert_eq!(server.get("/readyz", None).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scrape_does_not_wait_on_a_stuck_cache() {
    // A "Redis" that accepts connections and never answers.
    let stuck = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = stuck.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = stuck.accept().await {
            held.push(stream);
        }
    });
    let mut config = config();
    config.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let server = std::sync::Arc::new(Server::start(config).await);
    let readiness = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { server.get("/readyz", None).await })
    };
    let scrape = server.get("/metrics", None).await;
    assert_eq!(scrape.status, StatusCode::OK, "{}", scrape.text);
    assert!(
        !readiness.is_finished(),
        "the scrape answered only after a call that waits on the cache"
    );
    readiness.await.unwrap().expect_error(503, "unavailable");
    held.abort();
    std::sync::Arc::into_inner(server).unwrap().stop().await;
}
