//! schemathesis, a property-based API fuzzer from PyPI, against the live
//! server: it reads the server's own `/openapi.json`, generates valid and
//! invalid calls for every operation (and chains them in stateful runs),
//! and fails on any 5xx or any answer, status or header the document does
//! not describe. Every check runs; `xtask/schemathesis.toml` says, for the
//! few operations where the contract asks for it, which statuses two of
//! them accept, and why. It runs twice, bounded in time: on the embedded in-memory cache
//! and on a private `redis-server`.
//!
//! schemathesis is installed once into a virtual environment under
//! `target/tools/` (Debian's system pip installs nothing outside one). The
//! reports (JUnit XML) are written to `target/schemathesis/<cache>/`, where
//! CI keeps them.

use std::path::PathBuf;
use std::process::Command;

use crate::services;
use crate::tools::{self, Result, run};

/// The schemathesis release the document is tested with.
const VERSION: &str = "4.32.5";

/// The time budget of each run, in seconds.
const MAX_SECONDS: &str = "75";

/// The fixed seed of the generated data, so that a failure reproduces.
const SEED: &str = "20261129";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::root().join("target"))
}

/// How schemathesis judges the server: `xtask/schemathesis.toml`.
fn config_file() -> PathBuf {
    tools::root().join("xtask").join("schemathesis.toml")
}

/// The `schemathesis` program, installed when missing.
fn install() -> Result<PathBuf> {
    let venv = target_dir()
        .join("tools")
        .join(format!("schemathesis-{VERSION}"));
    let program = venv.join("bin").join("schemathesis");
    if program.is_file() {
        return Ok(program);
    }
    let has_venv = Command::new("python3")
        .args(["-m", "venv", "--help"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_venv {
        tools::install_apt(&["python3", "python3-venv"])?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("schemathesis=={VERSION}")))?;
    Ok(program)
}

/// Runs schemathesis against the server on the in-memory cache, then on
/// Redis. The release server must be built (`ci` builds it in its native
/// tests step; this builds it otherwise, with the same features).
pub fn test() -> Result {
    let schemathesis = install()?;
    tools::cargo(&["test", "--release", "--workspace", "--no-run"])?;
    let work = std::env::temp_dir().join(format!("signoff-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|error| error.to_string())?;
    let outcome = (|| {
        fuzz(&schemathesis, "memory", &[])?;
        let (_redis, redis_port) = services::start_redis(&work)?;
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        fuzz(&schemathesis, "redis", &["--redis-url", &redis_url])
    })();
    let _ = std::fs::remove_dir_all(&work);
    outcome
}

/// One bounded run against a server started with `server_flags`.
fn fuzz(schemathesis: &PathBuf, cache: &str, server_flags: &[&str]) -> Result {
    let (_server, port) = services::start_server(server_flags)?;
    let reports = target_dir().join("schemathesis").join(cache);
    std::fs::create_dir_all(&reports).map_err(|error| error.to_string())?;
    eprintln!("==> schemathesis on the {cache} cache, at most {MAX_SECONDS} s");
    run(Command::new(schemathesis)
        // Which statuses two of the checks accept on the operations where
        // the contract asks for it; every check runs on every operation.
        .arg("--config-file")
        .arg(config_file())
        .arg("run")
        .arg(format!("http://127.0.0.1:{port}/openapi.json"))
        .args(["--checks", "all"])
        // The event stream never ends by design (it is a server-sent event
        // stream): a fuzzer's call would only meet its own timeout. The
        // HTTP tests follow it instead.
        .args(["--exclude-path", "/v1/events/stream"])
        .args(["--max-time", MAX_SECONDS])
        .args(["--seed", SEED])
        .args(["--workers", "2"])
        .args(["--header", "Authorization: Bearer dev-admin"])
        .args(["--request-timeout", "10"])
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(&reports)
        .arg("--no-color"))
}
