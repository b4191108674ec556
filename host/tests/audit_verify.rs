//! `signoff audit verify FILE`, run as a user runs it: the binary over a
//! request the core filed and decided, that request tampered with, a
//! request whose stored history had one byte changed in Redis, and a file
//! that is neither a request nor events (docs/CONTRACT.md section 12).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod http_common;
mod support;

use std::path::PathBuf;
use std::process::Command;

use futures::executor::block_on;
use serde_json::{Value, json};
use signoff_core::{Manager, MemoryCache, Principal, Rules, Timestamp};

fn decided_request() -> Value {
    let rules = Rules::parse(&json!({
        "levels": [{ "name": "peer", "ttlSeconds": 3600, "stages": [
            { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
        ]}],
        "defaultLevel": "peer"
    }))
    .unwrap();
    let manager = Manager::new(
        MemoryCache::new(),
        || Timestamp::from_millis(1_767_225_600_000),
        || uuid::Uuid::from_u128(42),
        rules,
    );
    let change = json!({
        "policyId": "iam/admins", "policyType": "iam", "changeKind": "update",
        "title": "Add bob", "justification": "Bob joins the on-call rotation."
    });
    let alice = Principal::new("alice", &["engineer"]);
    let bob = Principal::new("bob", &["engineer"]);
    block_on(async {
        let created = manager.create(&change, &alice, None).await.unwrap();
        let id = created.request.id.to_string();
        manager.comment(&id, &alice, "ping".into()).await.unwrap();
        let done = manager.approve(&id, &bob, Some("ok".into())).await.unwrap();
        serde_json::to_value(done).unwrap()
    })
}

fn verify(name: &str, text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("signoff-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(["audit", "verify"])
        .arg(&file)
        .output()
        .expect("the binary runs");
    std::fs::remove_file(&file).unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn a_decided_request_verifies_and_a_tampered_one_names_its_first_broken_entry() {
    let request = decided_request();
    let (code, said) = verify(
        "request.json",
        &serde_json::to_string_pretty(&request).unwrap(),
    );
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("3 entries verified"), "{said}");

    let mut tampered = request.clone();
    tampered["history"][1]["comment"] = json!("pong");
    let (code, said) = verify("tampered.json", &tampered.to_string());
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("entry 1 breaks the chain"), "{said}");

    let (code, said) = verify("nothing.txt", "hello\n");
    assert_eq!(code, 2, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_changed_in_redis_is_named_by_the_verifier() {
    let redis = support::redis::RedisServer::start();
    let mut config = http_common::config();
    config.redis_url = Some(redis.url());
    config.key_prefix = "audit:".into();
    let server = http_common::Server::start(config).await;
    let created = server
        .create("alice", &http_common::change("network"))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/requests/{id}");
    server
        .post(
            &format!("{path}/comments"),
            "alice",
            Some(&json!({ "text": "ping" })),
        )
        .await
        .expect(200);
    server
        .post(
            &format!("{path}/approve"),
            "bob",
            Some(&json!({ "comment": "ok" })),
        )
        .await
        .expect(200);
    let exported = server.get(&path, Some("admin")).await.text;
    let (code, said) = verify("exported.json", &exported);
    assert_eq!(code, 0, "{said}");

    // One byte of the stored history: the comment's "ping" becomes "pong".
    let keys = redis.cli(&["--scan", "--pattern", &format!("*req:{id}")]);
    let key = keys.lines().next().expect("the request's key").to_owned();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut stored: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    let at = stored
        .windows(6)
        .position(|window| window == b"\"ping\"")
        .expect("the comment is stored");
    stored[at + 2] = b'o';
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(&stored)
        .query_async(&mut connection)
        .await
        .unwrap();

    let exported = server.get(&path, Some("admin")).await.text;
    assert!(exported.contains("pong"), "{exported}");
    let (code, said) = verify("changed.json", &exported);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("entry 1 breaks the chain"), "{said}");
    server.stop().await;
}
