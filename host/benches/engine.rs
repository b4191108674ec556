//! The wasmtime component against the native core, both over the in-memory
//! cache: one create then one approve of that request, each call in a warm
//! instance from the engine's pool, plus what one instantiation costs (paid
//! only when the pool has no idle instance).
//!
//! `cargo bench -p signoff-host --bench engine`; results in
//! docs/PERFORMANCE.md under "wasmtime component".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "a benchmark: a broken setup must fail loudly"
)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use signoff_core::{Manager, MemoryCache, Principal, Rules, Timestamp};
use signoff_host::engine::{Engine, EngineOptions, StorageOptions};

fn rules() -> Rules {
    Rules::parse(&json!({
        "levels": [
            { "name": "auto", "ttlSeconds": 3600, "stages": [] },
            { "name": "peer", "ttlSeconds": 86400, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
            ]},
            { "name": "security", "ttlSeconds": 86400, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] },
                { "name": "security", "requiredApprovals": 1, "eligibleRoles": ["security"] }
            ]}
        ],
        "defaultLevel": "peer",
        "rules": [
            { "name": "docs", "when": { "policyTypes": ["docs"] }, "level": "auto" },
            { "name": "prod-iam", "when": { "policyTypes": ["iam"], "environments": ["prod"] }, "level": "security" },
            { "name": "risky", "when": { "riskScoreAtLeast": 70 }, "level": "security" }
        ]
    }))
    .expect("valid rules")
}

fn change() -> Value {
    json!({
        "policyId": "iam/admins",
        "policyType": "iam",
        "changeKind": "update",
        "environment": "staging",
        "title": "Add bob to the admins",
        "justification": "Bob joins the on-call rotation this week.",
        "riskScore": 40,
        "metadata": { "ticket": "OPS-1234" }
    })
}

/// Polls a native future over the memory cache, which is ready at once.
fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the memory cache never waits"),
    }
}

fn bench(c: &mut Criterion) {
    let alice = Principal::new("alice", &["engineer"]);
    let bob = Principal::new("bob", &["engineer"]);
    let change = change();

    let native = Manager::new(
        MemoryCache::with_clock(std::sync::Arc::new(|| {
            chrono::Utc::now().timestamp_millis()
        })),
        || Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        uuid::Uuid::new_v4,
        rules(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = runtime.block_on(async {
        Engine::start(EngineOptions {
            redis_url: None,
            key_prefix: "bench".into(),
            rules: rules(),
            storage: StorageOptions::default(),
        })
        .await
        .unwrap()
    });

    let mut group = c.benchmark_group("create_approve");
    group.bench_function("native", |b| {
        b.iter(|| {
            let created = ready(native.create(&change, &alice, None)).unwrap();
            let id = created.request.id.to_string();
            ready(native.approve(&id, &bob, None)).unwrap()
        });
    });
    group.bench_function("wasmtime", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let created = engine.create(&change, &alice, None).await.unwrap();
                let id = created.request.id.to_string();
                engine.approve(&id, &bob, None).await.unwrap()
            })
        });
    });
    group.finish();

    let rules_text = serde_json::to_string(&rules()).unwrap();
    c.bench_function("native_rules_parse_digest", |b| {
        b.iter(|| {
            let rules = Rules::parse_str(&rules_text).unwrap();
            rules.digest()
        });
    });
    let existing = runtime
        .block_on(engine.create(&change, &alice, None))
        .unwrap()
        .request
        .id
        .to_string();
    c.bench_function("get_existing", |b| {
        b.iter(|| runtime.block_on(engine.get(&existing)).unwrap());
    });
    c.bench_function("create_only", |b| {
        b.iter(|| {
            runtime
                .block_on(engine.create(&change, &alice, None))
                .unwrap()
        });
    });
    c.bench_function("get_unknown", |b| {
        b.iter(|| {
            runtime
                .block_on(engine.get("00000000-0000-4000-8000-000000000000"))
                .unwrap()
        });
    });
    c.bench_function("preview", |b| {
        b.iter(|| runtime.block_on(engine.preview(&change)).unwrap());
    });
    c.bench_function("instantiate", |b| {
        b.iter(|| runtime.block_on(engine.instantiate()).unwrap());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
