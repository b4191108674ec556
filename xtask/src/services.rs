//! The services a task starts for itself: a private `redis-server` and the
//! release `signoff serve --dev`, each on a free loopback port and killed
//! when dropped, so that nothing outlives the task.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{self, Result};

/// A child process killed when dropped.
pub struct Guard(Child);

impl Guard {
    /// The process id, to read its CPU time in `/proc`.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| error.to_string())
}

/// Waits up to 30 s for `ready`.
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not start within 30 s"))
}

/// The release build of the server, `target/release/signoff`.
pub fn server_binary() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::root().join("target"))
        .join("release")
        .join("signoff")
}

/// A release example of the host, `target/release/examples/<name>`.
pub fn example_binary(name: &str) -> PathBuf {
    server_binary()
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        .join("examples")
        .join(name)
}

/// `binary --listen 127.0.0.1:<port>` with `extra` flags, answering
/// `/readyz`; its port.
pub fn start_http(binary: &Path, extra: &[&str]) -> Result<(Guard, u16)> {
    let port = free_port()?;
    let child = Guard(
        Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("{}: {error}", binary.display()))?,
    );
    wait_for(&binary.display().to_string(), || ready(port))?;
    Ok((child, port))
}

/// A `redis-server` that keeps nothing on disk, in `dir`; its port.
pub fn start_redis(dir: &Path) -> Result<(Guard, u16)> {
    tools::ensure_apt("redis-server", &["redis-server"])?;
    let port = free_port()?;
    let redis = Guard(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|error| format!("redis-server: {error}"))?,
    );
    wait_for("redis-server", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok((redis, port))
}

/// `signoff serve --dev` with `extra` flags, answering `/readyz`; its port.
pub fn start_server(extra: &[&str]) -> Result<(Guard, u16)> {
    let binary = server_binary();
    let port = free_port()?;
    let server = Guard(
        Command::new(&binary)
            .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("{}: {error}", binary.display()))?,
    );
    wait_for("signoff serve", || ready(port))?;
    Ok((server, port))
}

/// Whether `GET /readyz` answers 200.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let asked = stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_ok();
    let mut answer = String::new();
    asked && stream.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 200")
}
