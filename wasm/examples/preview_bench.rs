//! Times the native core on the work `previewChange` does in JavaScript, on
//! the same input as `wasm/tests/bench/preview.mjs`, for docs/PERFORMANCE.md:
//!
//! ```text
//! cargo run --release -p signoff-wasm --example preview_bench
//! ```
//!
//! Release builds only: a debug build measures the compiler, not the core.

use std::hint::black_box;
use std::time::Instant;

use serde_json::Value;
use signoff_core::{Rules, preview};

const INPUT: &str = include_str!("../tests/bench/preview-input.json");

/// The best of 5 rounds of `iterations` calls (the machine is shared), after
/// a warm-up, as `preview.mjs` measures.
fn time(label: &str, iterations: u32, mut body: impl FnMut()) {
    for _ in 0..iterations / 10 {
        body();
    }
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..iterations {
            body();
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e9 / f64::from(iterations));
    }
    println!(
        "{label}: {:.2} us per call (best of 5 x {iterations} calls)",
        best / 1000.0
    );
}

fn main() -> Result<(), String> {
    let input: Value = serde_json::from_str(INPUT).map_err(|error| error.to_string())?;
    let rules_value = input.get("rules").cloned().unwrap_or(Value::Null);
    let change = input.get("change").cloned().unwrap_or(Value::Null);
    let rules_text = rules_value.to_string();
    let change_text = change.to_string();
    let rules = Rules::parse(&rules_value).map_err(|problems| format!("{problems:?}"))?;
    let answer = preview(&change, &rules);
    if answer.level.as_deref() != Some("security") {
        return Err(format!("unexpected preview: {answer:?}"));
    }

    time("preview(change, parsed rules)", 100_000, || {
        black_box(preview(black_box(&change), black_box(&rules)));
    });
    time(
        "JSON text in, preview with parsed rules, JSON text out",
        100_000,
        || {
            let change: Value =
                serde_json::from_slice(black_box(change_text.as_bytes())).unwrap_or(Value::Null);
            let answer = serde_json::to_vec(&preview(&change, &rules)).unwrap_or_default();
            black_box(answer);
        },
    );
    time("Rules::parse + preview, from JSON values", 100_000, || {
        let rules = Rules::parse(black_box(&rules_value)).unwrap_or_else(|_| rules.clone());
        black_box(preview(black_box(&change), &rules));
    });
    time(
        "JSON text in, Rules::parse + preview, JSON text out",
        100_000,
        || {
            let change: Value =
                serde_json::from_slice(black_box(change_text.as_bytes())).unwrap_or(Value::Null);
            let document: Value =
                serde_json::from_slice(black_box(rules_text.as_bytes())).unwrap_or(Value::Null);
            let rules = Rules::parse(&document).unwrap_or_else(|_| rules.clone());
            let answer = serde_json::to_vec(&preview(&change, &rules)).unwrap_or_default();
            black_box(answer);
        },
    );
    Ok(())
}
