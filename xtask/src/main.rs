//! The task runner of signoff, for people and CI alike.
//!
//! `cargo xtask ci` is the one test command: it installs what is missing
//! (wasm targets, tools, services), then runs formatting, lints, the
//! WebAssembly builds and every test suite. `cargo xtask serve` builds what the
//! server needs and starts it in development mode.

mod browser;
mod js;
mod load;
mod load_scenarios;
mod load_webhooks;
mod schemathesis;
mod services;
mod tools;

use std::process::ExitCode;

use tools::{Result, cargo, step};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("serve") => serve(&args[1..]),
        Some("load") => load_scenarios::run(&args[1..]),
        Some("load-webhooks") => load_webhooks::run(&args[1..]),
        Some("wasm-targets") => tools::ensure_wasm_targets(),
        Some("browser") => browser::test(),
        Some("schemathesis") => schemathesis::test(),
        Some("js") => step("js package", js::build).and_then(|()| step("js tests", js::test)),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | serve [server flags] | wasm-targets | browser | js | schemathesis | load | load-webhooks>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the JS package the editor imports, then runs `signoff serve --dev`
/// (the host embeds the core's component, built by its build script) with
/// any further flags passed through, e.g. `--listen 127.0.0.1:9000`.
fn serve(extra: &[String]) -> Result {
    tools::ensure_wasm_targets()?;
    step("js package", js::build)?;
    let mut args = vec![
        "run",
        "--release",
        "-p",
        "signoff-host",
        "--bin",
        "signoff",
        "--",
        "serve",
        "--dev",
    ];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

/// Every check, in the order that fails fastest.
fn ci() -> Result {
    tools::ensure_wasm_targets()?;
    step("format", || cargo(&["fmt", "--all", "--", "--check"]))?;
    step("lint", || {
        cargo(&[
            "clippy",
            "--release",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("core for wasm32-unknown-unknown", || {
        cargo(&[
            "build",
            "--release",
            "-p",
            "signoff-core",
            "--target",
            "wasm32-unknown-unknown",
        ])
    })?;
    step("core for wasm32-wasip2", || {
        cargo(&[
            "build",
            "--release",
            "-p",
            "signoff-core",
            "--target",
            "wasm32-wasip2",
        ])
    })?;
    step("js package", js::build)?;
    tools::ensure_apt("redis-server", &["redis-server"])?;
    step("native tests", || {
        cargo(&["test", "--release", "--workspace"])
    })?;
    step("js tests", js::test)?;
    step("browser tests", browser::test)?;
    step("api fuzzing (schemathesis)", schemathesis::test)?;
    Ok(())
}
