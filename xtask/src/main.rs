//! The task runner of signoff, for people and CI alike.
//!
//! `cargo xtask ci` is the one test command: it installs what is missing
//! (wasm targets, tools, services), then runs formatting, lints, the
//! WebAssembly builds and every test suite. `cargo xtask serve` builds what the
//! server needs and starts it in development mode.

mod browser;
mod js;
mod load;
mod tools;

use std::process::ExitCode;

use tools::{Result, cargo, step};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("load") => load::run(&args[1..]),
        Some("wasm-targets") => tools::ensure_wasm_targets(),
        Some("browser") => browser::test(),
        Some("js") => step("js package", js::build).and_then(|()| step("js tests", js::test)),
        _ => {
            eprintln!("usage: cargo xtask <ci | wasm-targets | browser | js | load>");
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
    Ok(())
}
