//! Running commands, and installing the tools the project needs when missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The result of a task.
pub type Result<T = ()> = std::result::Result<T, String>;

/// The repository root (the parent of this crate's folder).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `command`, failing with its name when it does not succeed.
pub fn run(command: &mut Command) -> Result {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|error| format!("could not start {shown}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

/// Runs cargo with `args` at the repository root.
///
/// `cargo xtask` runs this program through `cargo run`, which sets the
/// variables of the xtask package (`CARGO_PKG_NAME=xtask`,
/// `CARGO_MANIFEST_DIR`, ...). A nested cargo that inherits them sees
/// them changed for the build scripts that watch them (ring's, among
/// others) and rebuilds those crates and everything above them, then the
/// shell's next build rebuilds them back. They are removed here, so a
/// nested build is the one the shell runs.
pub fn cargo(args: &[&str]) -> Result {
    let mut command = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            command.env_remove(name);
        }
    }
    run(command.args(args).current_dir(root()))
}

/// Whether `program --version` runs.
pub fn has_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs one named step and reports its duration.
pub fn step(name: &str, body: impl FnOnce() -> Result) -> Result {
    eprintln!("==> {name}");
    let started = Instant::now();
    let result = body();
    eprintln!("<== {name}: {:.1} s", started.elapsed().as_secs_f64());
    result.map_err(|error| format!("{name}: {error}"))
}

/// Adds the two WebAssembly targets when rustup lacks them.
pub fn ensure_wasm_targets() -> Result {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|error| format!("rustup: {error}"))?;
    let installed = String::from_utf8_lossy(&output.stdout).to_string();
    for target in ["wasm32-unknown-unknown", "wasm32-wasip2"] {
        if !installed.lines().any(|line| line.trim() == target) {
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    Ok(())
}

/// Installs Debian packages whose `probe` program is missing.
pub fn ensure_apt(probe: &str, packages: &[&str]) -> Result {
    if has_program(probe) {
        return Ok(());
    }
    install_apt(packages)
}

/// Installs Debian packages.
pub fn install_apt(packages: &[&str]) -> Result {
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
