//! The instance pool: instances are reused, an instance whose call did not
//! return is dropped and the next request is served, large ones are retired,
//! and a reused instance follows a change of the rules.
//!
//! Each test starts its engine with limits no other engine in this process
//! uses, so it has a runtime (and counts) of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use signoff_core::{ErrorCode, Principal, Rules, Timestamp};

use super::{Engine, EngineOptions, EngineSettings, Limits};

fn rules(default_level: &str) -> Rules {
    Rules::parse(&json!({
        "levels": [
            { "name": "peer", "ttlSeconds": 3600, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
            ]},
            { "name": "pair", "ttlSeconds": 3600, "stages": [
                { "name": "review", "requiredApprovals": 2, "eligibleRoles": ["engineer"] }
            ]}
        ],
        "defaultLevel": default_level,
        "rules": []
    }))
    .expect("valid rules")
}

fn change(title: &str) -> Value {
    json!({
        "policyId": format!("iam/{title}"),
        "policyType": "iam",
        "changeKind": "update",
        "title": title,
        "justification": "Needed for the quarterly access review."
    })
}

fn alice() -> Principal {
    Principal::new("alice", &["engineer"])
}

fn bob() -> Principal {
    Principal::new("bob", &["engineer"])
}

/// Limits of their own for each test (a distinct `max_instances`).
fn limits(max_instances: u32) -> Limits {
    Limits {
        max_instances,
        max_memory_bytes: 32 << 20,
        deadline: Duration::from_secs(7),
    }
}

async fn engine(limits: Limits, settings: EngineSettings) -> Engine {
    Engine::start_with(
        EngineOptions {
            redis_url: None,
            key_prefix: "pool".to_owned(),
            rules: rules("peer"),
            storage: super::StorageOptions::default(),
        },
        EngineSettings { limits, ..settings },
    )
    .await
    .expect("engine starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_reused_across_requests() {
    let engine = engine(limits(3), EngineSettings::default()).await;
    let before = engine.instance_stats();
    // Starting validated the rules in one instance, now idle.
    assert_eq!(before.instantiated, 1, "{before:?}");
    assert_eq!(before.idle, 1, "{before:?}");
    for round in 0..5 {
        let created = engine
            .create(&change(&format!("reuse-{round}")), &alice(), None)
            .await
            .expect("created");
        let id = created.request.id.to_string();
        engine.approve(&id, &bob(), None).await.expect("approved");
        let error = engine
            .approve(&id, &bob(), None)
            .await
            .expect_err("approved already");
        assert_ne!(error.code(), ErrorCode::Internal, "{error}");
    }
    let after = engine.instance_stats();
    assert_eq!(after.instantiated, 1, "one instance served all: {after:?}");
    assert_eq!(after.reused, before.reused + 15, "{after:?}");
    assert_eq!(after.discarded, 0, "{after:?}");
    assert_eq!(after.idle, 1, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_interrupted_by_the_deadline_is_not_reused() {
    let slow = Arc::new(AtomicBool::new(false));
    let clock_slow = Arc::clone(&slow);
    let settings = EngineSettings {
        clock: Arc::new(move || {
            if clock_slow.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(400));
            }
            Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
        }),
        ..EngineSettings::default()
    };
    let limits = Limits {
        deadline: Duration::from_millis(200),
        ..limits(5)
    };
    let engine = engine(limits, settings).await;
    engine
        .create(&change("warm"), &alice(), None)
        .await
        .expect("created");
    let before = engine.instance_stats();
    assert_eq!(before.idle, 1, "{before:?}");
    slow.store(true, Ordering::SeqCst);
    let error = engine
        .create(&change("slow"), &alice(), None)
        .await
        .expect_err("interrupted");
    assert_eq!(error.code(), ErrorCode::Unavailable, "{error}");
    slow.store(false, Ordering::SeqCst);
    let trapped = engine.instance_stats();
    assert_eq!(trapped.discarded, before.discarded + 1, "{trapped:?}");
    assert_eq!(
        trapped.idle, 0,
        "the interrupted instance is gone: {trapped:?}"
    );
    engine
        .create(&change("fast"), &alice(), None)
        .await
        .expect("the next request runs");
    let after = engine.instance_stats();
    assert_eq!(
        after.instantiated,
        before.instantiated + 1,
        "a new instance served it: {after:?}"
    );
    assert_eq!(after.idle, 1, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_out_of_memory_is_not_reused() {
    let limits = Limits {
        max_memory_bytes: 16 << 20,
        ..limits(6)
    };
    let engine = engine(limits, EngineSettings::default()).await;
    let before = engine.instance_stats();
    let huge = json!({ "policyId": "x".repeat(24 << 20) });
    let error = engine.preview(&huge).await.expect_err("out of memory");
    assert_eq!(error.code(), ErrorCode::Internal, "{error}");
    let trapped = engine.instance_stats();
    assert_eq!(trapped.discarded, before.discarded + 1, "{trapped:?}");
    assert_eq!(trapped.idle, 0, "{trapped:?}");
    let preview = engine
        .preview(&change("small"))
        .await
        .expect("the next request runs");
    assert!(preview.valid);
    let after = engine.instance_stats();
    assert_eq!(after.instantiated, before.instantiated + 1, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_grew_large_is_retired() {
    let engine = engine(limits(7), EngineSettings::default()).await;
    let before = engine.instance_stats();
    // Invalid (too long) but answered: the call returns, its heap grew.
    let large = json!({ "policyId": "x".repeat(6 << 20) });
    let preview = engine.preview(&large).await.expect("answered");
    assert!(!preview.valid);
    let after = engine.instance_stats();
    assert_eq!(after.retired, before.retired + 1, "{after:?}");
    assert_eq!(after.discarded, before.discarded, "{after:?}");
    assert_eq!(after.idle, 0, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_decides_with_the_rules_in_force() {
    let engine = engine(limits(9), EngineSettings::default()).await;
    let first = engine
        .create(&change("before"), &alice(), None)
        .await
        .expect("created");
    assert_eq!(first.request.level, "peer");
    let digest = engine
        .replace_rules(
            &serde_json::to_value(rules("pair")).expect("json"),
            &Principal::new("root", &["admin"]),
            None,
        )
        .await
        .expect("replaced");
    let preview = engine.preview(&change("after")).await.expect("preview");
    assert_eq!(preview.level.as_deref(), Some("pair"));
    let second = engine
        .create(&change("after"), &alice(), None)
        .await
        .expect("created");
    assert_eq!(second.request.level, "pair");
    assert_eq!(second.request.rules_digest, digest);
    assert_ne!(first.request.rules_digest, digest);
    let stats = engine.instance_stats();
    assert_eq!(stats.instantiated, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instantiating_beside_a_full_pool_finds_a_slot() {
    let engine = engine(limits(1), EngineSettings::default()).await;
    assert_eq!(engine.instance_stats().idle, 1);
    engine.instantiate().await.expect("a slot");
    engine
        .preview(&change("after"))
        .await
        .expect("the next request runs");
}
