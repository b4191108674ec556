//! The HTTP load client shared by `cargo xtask load` (see
//! [`crate::load_scenarios`]) and `cargo xtask load-webhooks`, and the
//! mixed phase the latter runs: `concurrency` clients, each on one
//! keep-alive connection, looping create (alice) + approve (bob) + list (20
//! approved) until `iterations` are done or `seconds` have passed.
//!
//! The client is plain `std`: HTTP/1.1 over a `TcpStream`, enough for the
//! server's `Content-Length` answers, so xtask needs no dependency.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::tools::{self, Result};

/// Rules for the run: every change needs one engineer; no rate limit.
pub(crate) const RULES: &str = r#"{
  "levels": [{ "name": "peer", "ttlSeconds": 86400, "stages": [
    { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
  ]}],
  "defaultLevel": "peer"
}"#;

pub(crate) const CHANGE: &str = r#"{"policyId":"iam/load","policyType":"iam","changeKind":"update","title":"Load test change","justification":"Measuring the server under load."}"#;

/// The options of a run.
pub(crate) struct Options {
    /// Create + approve + list iterations, at most.
    pub iterations: u64,
    /// Clients, each on one keep-alive connection.
    pub concurrency: u64,
    /// The longest a run (or a phase) lasts.
    pub seconds: u64,
}

pub(crate) fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        iterations: 3000,
        concurrency: 16,
        seconds: 60,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse::<u64>()
            .map_err(|error| format!("{flag}: {error}"))?;
        match flag.as_str() {
            "--iterations" => options.iterations = value.clamp(1, 1_000_000),
            "--concurrency" => options.concurrency = value.clamp(1, 256),
            "--seconds" => options.seconds = value.clamp(1, 600),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub(crate) fn open(port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one request and returns the status and body.
    pub(crate) fn call(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.writer.write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Latencies of one kind of call, in microseconds.
#[derive(Default)]
pub(crate) struct Samples(pub(crate) Vec<u64>);

impl Samples {
    pub(crate) fn percentile(&self, fraction: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let last = sorted.len() - 1;
        let index = ((last as f64) * fraction).round() as usize;
        sorted[index.min(last)] as f64 / 1000.0
    }
}

#[derive(Default)]
struct Worker {
    create: Samples,
    approve: Samples,
    list: Samples,
    errors: u64,
}

fn worker(port: u16, next: &AtomicU64, options: &Options, deadline: Instant) -> Worker {
    let mut results = Worker::default();
    let Ok(mut connection) = Connection::open(port) else {
        results.errors += 1;
        return results;
    };
    while Instant::now() < deadline && next.fetch_add(1, Ordering::SeqCst) < options.iterations {
        let started = Instant::now();
        let created = connection.call("POST", "/v1/requests", "dev-alice", CHANGE);
        let elapsed = started.elapsed().as_micros() as u64;
        let id = match created {
            Ok((201, body)) => body
                .strip_prefix("{\"id\":\"")
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned),
            _ => None,
        };
        let Some(id) = id else {
            results.errors += 1;
            continue;
        };
        results.create.0.push(elapsed);
        let started = Instant::now();
        let approved =
            connection.call("POST", &format!("/v1/requests/{id}/approve"), "dev-bob", "");
        match approved {
            Ok((200, _)) => results.approve.0.push(started.elapsed().as_micros() as u64),
            _ => results.errors += 1,
        }
        let started = Instant::now();
        let listed = connection.call(
            "GET",
            "/v1/requests?status=approved&limit=20",
            "dev-bob",
            "",
        );
        match listed {
            Ok((200, _)) => results.list.0.push(started.elapsed().as_micros() as u64),
            _ => results.errors += 1,
        }
    }
    results
}

/// Builds the release server the runs start, as the test suites build it
/// (the workspace's feature set, dev-dependencies included), so that after
/// the tests nothing recompiles and the binary is the one they ran.
pub(crate) fn build_server() -> Result {
    tools::cargo(&["test", "--release", "--workspace", "--no-run"])
}

/// What one phase of load did.
pub(crate) struct Phase {
    /// Iterations whose create succeeded.
    pub iterations: u64,
    /// How long the phase took.
    pub seconds: f64,
    /// Calls that failed.
    pub errors: u64,
}

/// Runs `options.concurrency` clients against the server on `port` until
/// `options.iterations` are done or `options.seconds` have passed.
pub(crate) fn phase(port: u16, options: &Arc<Options>) -> Phase {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let handles: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let next = Arc::clone(&next);
            let options = Arc::clone(options);
            std::thread::spawn(move || worker(port, &next, &options, deadline))
        })
        .collect();
    let mut total = Worker::default();
    for handle in handles {
        // A worker that panicked counts as one error.
        let Ok(part) = handle.join() else {
            total.errors += 1;
            continue;
        };
        total.create.0.extend(part.create.0);
        total.approve.0.extend(part.approve.0);
        total.list.0.extend(part.list.0);
        total.errors += part.errors;
    }
    Phase {
        iterations: total.create.0.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        errors: total.errors,
    }
}

/// Replaces the section under `heading` of the file (or appends it),
/// leaving the other sections as they are.
pub(crate) fn write_section(path: &std::path::Path, heading: &str, section: &str) -> Result {
    let current = std::fs::read_to_string(path).unwrap_or_else(|_| "# Performance\n".to_owned());
    let mut out = String::new();
    let mut lines = current.lines().peekable();
    let mut replaced = false;
    while let Some(line) = lines.next() {
        if line.trim_end() == heading {
            while lines.peek().is_some_and(|next| !next.starts_with("## ")) {
                lines.next();
            }
            out.push_str(section);
            if lines.peek().is_some() {
                out.push('\n');
            }
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(section);
    }
    std::fs::write(path, out).map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds() {
        let samples = Samples((1..=100).map(|value| value * 1000).collect());
        assert_eq!(samples.percentile(0.5), 51.0);
        assert_eq!(samples.percentile(0.99), 99.0);
        assert_eq!(Samples::default().percentile(0.5), 0.0);
    }
}
