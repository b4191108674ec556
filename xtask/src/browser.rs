//! The browser tests of the policy editor (`www/`): Playwright (`playwright-core`
//! from npm) drives Debian's chromium against the real server, which the tests
//! start on a free loopback port with `signoff serve --dev`, and against the
//! editor served as static files for local mode.

use std::process::Command;

use crate::tools::{self, Result, cargo, root, run};

/// Installs chromium and the npm packages when missing, builds the server
/// (`target/release/signoff`),
/// then runs `node --test` in `www/tests`, and the editor's suite again with
/// the server on Redis. The JS package must already be in
/// `wasm/pkg/web` (`cargo xtask js` builds it; `ci` runs that step earlier).
pub fn test() -> Result {
    tools::ensure_apt("chromium", &["chromium", "chromium-driver"])?;
    let tests = root().join("www").join("tests");
    let install = if tests.join("package-lock.json").is_file() {
        "ci"
    } else {
        "install"
    };
    run(Command::new("npm")
        .args([install, "--no-audit", "--no-fund"])
        .current_dir(&tests))?;
    // Built as the test suites build it: the same feature set (dev-dependency
    // features included), so after `ci`'s native tests nothing recompiles.
    cargo(&["test", "--release", "--workspace", "--no-run"])?;
    let package = root().join("wasm").join("pkg").join("web").join("index.js");
    if !package.is_file() {
        return Err(format!(
            "{} is missing: build the JS package with `cargo xtask js` first",
            package.display()
        ));
    }
    run(Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .current_dir(&tests))?;
    // The editor's paths again, against a server on a private
    // `redis-server` (the harness starts and stops it): what the editor
    // sees must not depend on the cache.
    tools::ensure_apt("redis-server", &["redis-server"])?;
    run(Command::new("node")
        .args(["--test", "--test-concurrency=1", "editor.test.js"])
        .env("SIGNOFF_TEST_CACHE", "redis")
        .current_dir(&tests))
}
