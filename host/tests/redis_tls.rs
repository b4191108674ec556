//! `rediss://` end to end: the `signoff` binary, started as an operator
//! would start it, stores its requests in a `redis-server` that only speaks
//! TLS on the port it is given, and checks that server's certificate.
//!
//! The certificate authority is made for the test with `openssl` and handed
//! to the server process through `SSL_CERT_FILE` (which the TLS stack reads
//! as the trusted roots), so nothing in the test disables verification.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::redis::{TempDir, cli, free_port};

/// Runs `openssl` with `args` in `dir`, failing the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (apt-get install -y openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority and a server certificate it signed for
/// `127.0.0.1`, written as `ca.pem`, `server.pem` and `server.key`.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=signoff test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// Kills the child process when dropped, so that a failed assertion does
/// not leave a server behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_rediss_url_stores_requests_over_verified_tls() {
    let dir = TempDir::new("tls");
    make_certificates(dir.path());

    // A plain port for the test's own `redis-cli` checks, and a TLS port,
    // the only one the signoff server is told about.
    let plain_port = free_port(false);
    let tls_port = free_port(false);
    let redis = Reaped(
        Command::new("redis-server")
            .current_dir(dir.path())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &plain_port.to_string()])
            .args(["--tls-port", &tls_port.to_string()])
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    wait_until("redis-server", || {
        cli(plain_port, &["ping"]).trim() == "PONG"
    });

    let http_port = free_port(false);
    let base = format!("http://127.0.0.1:{http_port}");
    let server = Reaped(
        Command::new(env!("CARGO_BIN_EXE_signoff"))
            .args([
                "serve",
                "--dev",
                "--listen",
                &format!("127.0.0.1:{http_port}"),
            ])
            .args(["--redis-url", &format!("rediss://127.0.0.1:{tls_port}")])
            .env("SSL_CERT_FILE", dir.path().join("ca.pem"))
            .env_remove("SSL_CERT_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start signoff"),
    );

    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|answer| answer.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "signoff never became ready over rediss://"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let created: Value = client
        .post(format!("{base}/v1/requests"))
        .bearer_auth("dev-alice")
        .json(&json!({
            "policyId": "iam/tls",
            "policyType": "iam",
            "changeKind": "update",
            "title": "Stored over TLS",
            "justification": "The store is reached through rediss only."
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("an id").to_owned();
    let read: Value = client
        .get(format!("{base}/v1/requests/{id}"))
        .bearer_auth("dev-bob")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["change"]["title"], "Stored over TLS");
    // The request is in that Redis, which the server reached by TLS alone.
    let keys = cli(plain_port, &["--scan", "--pattern", "*"]);
    assert!(keys.contains(&id), "{keys}");
    drop(server);
    drop(redis);
}
