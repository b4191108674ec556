//! The HTTP API of docs/CONTRACT.md section 7, through HTTP, against an in-process
//! server on the in-memory cache. The scenarios live in
//! `http_common/suite.rs`; `http_redis` runs them over Redis.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;

use http_common::{Backend, Server, change, config, suite};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_request_lives_its_whole_life_over_http() {
    suite::a_request_lives_its_whole_life_over_http(&Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_model_over_http() {
    suite::the_approval_model_over_http(&Backend::Memory).await;
}

#[tokio::test]
async fn visibility_hides_what_a_principal_may_not_see() {
    suite::visibility_hides_what_a_principal_may_not_see(&Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_and_streamed() {
    suite::events_are_listed_and_streamed(&Backend::Memory).await;
}

#[tokio::test]
async fn rules_are_simulated_without_being_stored() {
    suite::rules_are_simulated_without_being_stored(&Backend::Memory).await;
}

#[tokio::test]
async fn requests_are_searched_by_title_and_policy_id() {
    suite::requests_are_searched_by_title_and_policy_id(&Backend::Memory).await;
}

#[tokio::test]
async fn principals_are_listed_without_their_tokens() {
    suite::principals_are_listed_without_their_tokens(&Backend::Memory).await;
}

#[tokio::test]
async fn listing_pages_through_a_policy_type() {
    suite::listing_pages_through_a_policy_type(&Backend::Memory).await;
}

#[tokio::test]
async fn preview_validates_and_explains_without_storing() {
    suite::preview_validates_and_explains_without_storing(&Backend::Memory).await;
}

#[tokio::test]
async fn every_error_code_of_section_7() {
    suite::every_error_code_of_section_7(&Backend::Memory).await;
}

#[tokio::test]
async fn authentication_failures_are_401_everywhere() {
    suite::authentication_failures_are_401_everywhere(&Backend::Memory).await;
}

#[tokio::test]
async fn rules_are_replaced_by_admins_with_a_fresh_etag() {
    suite::rules_are_replaced_by_admins_with_a_fresh_etag(&Backend::Memory).await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    suite::the_rate_limit_answers_429_with_retry_after(&Backend::Memory).await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer() {
    suite::idempotency_keys_replay_the_first_answer(&Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_approvers_are_counted_exactly() {
    suite::sixty_four_concurrent_approvers_are_counted_exactly(&Backend::Memory).await;
}

#[tokio::test]
async fn the_sweeper_expires_due_requests_and_counts_them() {
    suite::the_sweeper_expires_due_requests_and_counts_them(&Backend::Memory).await;
}

#[tokio::test]
async fn metrics_health_and_request_ids() {
    suite::metrics_health_and_request_ids(&Backend::Memory).await;
}

#[tokio::test]
async fn the_editor_and_the_package_are_served_when_present() {
    let root = std::env::temp_dir().join(format!("signoff-www-{}", std::process::id()));
    let www = root.join("www");
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><title>editor</title>",
    )
    .unwrap();
    std::fs::write(pkg.join("signoff.js"), "export default 1;").unwrap();
    let mut with_files = config();
    with_files.www_dir = www.clone();
    with_files.pkg_dir = pkg.clone();
    let server = Server::start(with_files).await;
    let page = server.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("editor"));
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let script = server.get("/pkg/signoff.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(script.text, "export default 1;");
    server
        .get("/pkg/missing.js", None)
        .await
        .expect_error(404, "not_found");
    server
        .get("/missing.html", None)
        .await
        .expect_error(404, "not_found");
    server
        .call(Method::POST, "/index.html", None, None, &[])
        .await
        .expect_error(404, "not_found");
    server.stop().await;

    // Absent directories: 404 JSON, and the API is unaffected.
    let mut without = config();
    without.www_dir = root.join("absent-www");
    without.pkg_dir = root.join("absent-pkg");
    let server = Server::start(without).await;
    server.get("/", None).await.expect_error(404, "not_found");
    server
        .get("/pkg/signoff.js", None)
        .await
        .expect_error(404, "not_found");
    server.get("/v1/rules", Some("bob")).await.expect(200);
    server.stop().await;
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn shutdown_lets_the_server_finish_and_stop() {
    let server = Server::start_default().await;
    let base = server.base.clone();
    server.create("alice", &change("network")).await;
    server.stop().await;
    let refused = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "the server still answers after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_call_in_flight_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start_default().await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let body = change("network").to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/preview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        http_common::token("alice"),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Shut down while the call is half sent, then finish sending it.
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "the server stopped with a call in flight"
    );
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"valid\":true"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("the server stops once the call is answered")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_kept_for_the_retention_and_then_gone() {
    let mut short = config();
    short.storage.event_retention = std::time::Duration::from_secs(1);
    let server = Server::start(short).await;
    server.create("alice", &change("network")).await;
    let listed = server.get("/v1/events", Some("bob")).await;
    assert_eq!(listed.expect(200)["items"].as_array().unwrap().len(), 1);
    // The record lapses after its time to live; the listing steps over the
    // index entry it leaves.
    let started = std::time::Instant::now();
    loop {
        let listed = server.get("/v1/events", Some("bob")).await;
        if listed.expect(200)["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the event outlived its retention"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The request itself stays.
    let page = server.get("/v1/requests", Some("bob")).await;
    assert_eq!(page.expect(200)["items"].as_array().unwrap().len(), 1);
    server.stop().await;
}
