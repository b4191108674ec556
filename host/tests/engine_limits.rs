//! The bounds on the guest: a request that runs past its deadline is
//! interrupted and answers `unavailable`, a guest that needs more memory
//! than its slot allows fails that request alone, and the engine serves the
//! next request normally in both cases.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use signoff_core::{ErrorCode, Timestamp};
use signoff_host::engine::{EngineSettings, Limits};
use support::suite::{Harness, alice, change};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_is_interrupted() {
    let slow = Arc::new(AtomicBool::new(false));
    let clock_slow = slow.clone();
    let settings = EngineSettings {
        limits: Limits {
            deadline: Duration::from_millis(200),
            ..Limits::default()
        },
        // A clock that stalls stands for any host call that takes too long:
        // the deadline counts the whole request, host calls included.
        clock: Arc::new(move || {
            if clock_slow.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(400));
            }
            Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
        }),
        ..EngineSettings::default()
    };
    let engine = Harness::memory().engine_with(settings).await;
    slow.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let error = engine
        .create(&change("iam", "slow"), &alice(), None)
        .await
        .expect_err("interrupted");
    assert_eq!(error.code(), ErrorCode::Unavailable);
    assert!(error.to_string().contains("200 ms"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    slow.store(false, Ordering::SeqCst);
    engine
        .create(&change("iam", "fast"), &alice(), None)
        .await
        .expect("the next request runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_out_of_memory_fails_only_its_request() {
    let settings = EngineSettings {
        limits: Limits {
            max_memory_bytes: 16 << 20,
            ..Limits::default()
        },
        ..EngineSettings::default()
    };
    let engine = Harness::memory().engine_with(settings).await;
    let huge = json!({ "policyId": "x".repeat(24 << 20) });
    let error = engine.preview(&huge).await.expect_err("out of memory");
    assert_eq!(error.code(), ErrorCode::Internal);
    assert!(!error.to_string().contains("wasm"), "no internals: {error}");
    let preview = engine
        .preview(&change("iam", "small"))
        .await
        .expect("the next request runs");
    assert!(preview.valid);
}

/// The guest's 256 KiB stack holds the deepest JSON its parser accepts
/// (128 levels); deeper input is refused as invalid, never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_input_is_refused_not_crashed() {
    let engine = Harness::memory().engine().await;
    for depth in [100, 126, 1000] {
        let mut nested = json!("leaf");
        for _ in 0..depth {
            nested = json!([nested]);
        }
        let mut body = change("iam", "nested");
        body["metadata"] = json!({ "deep": nested });
        match engine.preview(&body).await {
            Ok(preview) => assert!(!preview.valid),
            Err(error) => assert_eq!(error.code(), ErrorCode::InvalidRequest),
        }
        let error = engine
            .create(&body, &alice(), None)
            .await
            .expect_err("invalid");
        assert_eq!(error.code(), ErrorCode::InvalidRequest);
    }
}
