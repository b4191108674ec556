//! Builds the engine component's guest (`signoff-wasm` with the `component`
//! feature, for `wasm32-unknown-unknown`) with a nested cargo, and leaves it
//! in `OUT_DIR` for `include_bytes!`, so that `cargo run -p signoff-host`
//! and `cargo test -p signoff-host` need nothing else and the binary is
//! self-contained.
//!
//! The nested build uses its own target directory (`target/guest`), so it
//! never waits for the lock that the outer cargo holds on `target/`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm";

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir
        .parent()
        .ok_or("the host crate has no parent folder")?
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    for watched in [
        "core/src",
        "core/Cargo.toml",
        "wasm/src",
        "wasm/wit",
        "wasm/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SIGNOFF_GUEST_TARGET_DIR");

    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    ensure_target_installed(&rustc)?;

    let target_dir = env::var_os("SIGNOFF_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| guest_target_dir(&root, &out_dir));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "-p",
            "signoff-wasm",
            "--features",
            "component",
        ])
        .args(["--target", TARGET, "--profile", PROFILE])
        // The `wasm` profile (LTO, one codegen unit) tuned for speed rather
        // than size: the server runs this build, browsers do not.
        .args(["--config", "profile.wasm.opt-level=3"])
        // A 256 KiB shadow stack instead of rustc's 1 MiB: every request's
        // fresh instance then starts with (and resets) a far smaller memory.
        .args([
            "--config",
            "target.wasm32-unknown-unknown.rustflags=[\"-C\", \"link-arg=-zstack-size=262144\"]",
            "--target-dir",
        ])
        .arg(&target_dir);
    // What the outer build set for itself must not leak into the guest's.
    for variable in [
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
    ] {
        command.env_remove(variable);
    }
    let status = command
        .status()
        .map_err(|error| format!("cannot run cargo for the engine component: {error}"))?;
    if !status.success() {
        return Err(format!(
            "building the engine component failed ({status}); run `cargo build -p signoff-wasm --features component --target {TARGET} --profile {PROFILE} --target-dir target/guest` to see why"
        ));
    }
    let built = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join("signoff_wasm.wasm");
    let embedded = out_dir.join("signoff_engine.wasm");
    std::fs::copy(&built, &embedded).map_err(|error| {
        format!(
            "cannot copy {} to {}: {error}",
            built.display(),
            embedded.display()
        )
    })?;
    Ok(())
}

/// `target/guest` beside the outer target directory (found from `OUT_DIR`,
/// `<target>/<profile>/build/<crate>-<hash>/out`), or under the repository.
fn guest_target_dir(root: &Path, out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|target| target.join("guest"))
        .unwrap_or_else(|| root.join("target").join("guest"))
}

/// Fails with the fix when rustup lacks the wasm target.
fn ensure_target_installed(rustc: &str) -> Result<(), String> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|error| format!("cannot run {rustc}: {error}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let library = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    if library.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the Rust target `{TARGET}` is not installed (no {}); install it with `cargo xtask wasm-targets` or `rustup target add {TARGET}`",
            library.display()
        ))
    }
}
