//! `cargo xtask load`: what one call to the HTTP server costs on Redis, by
//! scenario and number of stored requests, next to a thin proxy and to
//! `redis-benchmark` on the same Redis, with the CPU of each process.
//!
//! It builds the release server and examples (as the test suites build
//! them), starts a private `redis-server` on a free loopback port, then on
//! that Redis:
//!
//! - H: `signoff serve --dev` with rules that need one engineer's approval
//!   and have no rate limit (and a per-principal fair share of 4096, so that
//!   seeding on many connections is not refused);
//! - P: the thin proxy (`host/examples/thin_proxy.rs`): the same HTTP stack
//!   and the same Redis round trips per call, with no engine, under its own
//!   key prefix;
//! - R: `redis-benchmark -t set` at the same concurrency.
//!
//! For each number of stored requests (`--stored`, comma-separated,
//! ascending), both H and P are first seeded with pending requests up to
//! that number (on many keep-alive connections), then each scenario runs: a
//! warm-up of H and P, then `--rounds` rounds of the measured phases H, P,
//! R, H, P, R ... The scenarios:
//!
//! - `create`: `POST /v1/requests` (alice);
//! - `approve`: `POST /v1/requests/{id}/approve` (bob) of pending requests
//!   that were created for the phase just before it, outside its measured
//!   window; a phase whose pool runs out ends early and says so;
//! - `create+approve`: a create, then the approve of that request;
//! - `list-50`: `GET /v1/requests?status=pending&limit=50` (bob), the first
//!   page, on every connection (warm: the same page again and again); after
//!   the rounds, one client also walks the listing through its cursors for
//!   up to `--seconds` (cold pages, each read once) and then reads the first
//!   page as many times (warm, same conditions).
//!
//! Per phase: calls/s, p50/p99, CPU-µs per call of the client (this
//! process's threads; for R, `redis-benchmark`, a waited child), of the
//! server (H: `signoff`, P: the proxy) and of `redis-server` (utime + stime
//! from `/proc/<pid>/stat`, in clock ticks of `getconf CLK_TCK`), and the
//! Redis commands per call (`INFO commandstats` deltas over a raw RESP
//! connection: all commands, and the round trips, the commands a client
//! sends). Then `--memory` counts run `host/examples/memory_per_request.rs`
//! (bytes per stored request in `MemoryCache`). The report is printed and
//! written as the `## HTTP server` section of `docs/PERFORMANCE.md`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::load::{self, CHANGE, Connection, Samples};
use crate::services;
use crate::tools::{self, Result};

const SECTION: &str = "## HTTP server";

/// The commands a client sends; the commit scripts' own reads use
/// `GETRANGE` and their writes are never sent by a client, so these are
/// the round trips (as `host/tests/storage_redis.rs` counts them).
const CLIENT_COMMANDS: [&str; 8] = [
    "evalsha", "eval", "get", "mget", "zrange", "zcard", "exists", "wait",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Create,
    Approve,
    CreateApprove,
    List50,
}

impl Scenario {
    const ALL: [Self; 4] = [
        Self::List50,
        Self::Approve,
        Self::Create,
        Self::CreateApprove,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Approve => "approve",
            Self::CreateApprove => "create+approve",
            Self::List50 => "list-50",
        }
    }
}

struct Options {
    scenarios: Vec<Scenario>,
    stored: Vec<u64>,
    seconds: u64,
    warmup: u64,
    concurrency: u64,
    rounds: u64,
    memory: Vec<u64>,
    seed_connections: u64,
}

fn numbers(flag: &str, value: &str) -> Result<Vec<u64>> {
    value
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.trim()
                .parse::<u64>()
                .map_err(|error| format!("{flag}: {error}"))
        })
        .collect()
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        scenarios: Scenario::ALL.to_vec(),
        stored: vec![10_000],
        seconds: 20,
        warmup: 5,
        concurrency: 16,
        rounds: 2,
        memory: vec![100_000],
        seed_connections: 64,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || -> Result<u64> {
            value
                .parse::<u64>()
                .map_err(|error| format!("{flag}: {error}"))
        };
        match flag.as_str() {
            "--scenario" => {
                options.scenarios = match value.as_str() {
                    "all" => Scenario::ALL.to_vec(),
                    "create" => vec![Scenario::Create],
                    "approve" => vec![Scenario::Approve],
                    "create+approve" => vec![Scenario::CreateApprove],
                    "list-50" => vec![Scenario::List50],
                    other => {
                        return Err(format!(
                            "--scenario {other}: one of create, approve, create+approve, list-50, all"
                        ));
                    }
                }
            }
            "--stored" => {
                let mut stored = numbers(flag, value)?;
                stored.sort_unstable();
                stored.dedup();
                options.stored = stored;
            }
            "--seconds" => options.seconds = number()?.clamp(1, 600),
            "--warmup" => options.warmup = number()?.min(600),
            "--concurrency" => options.concurrency = number()?.clamp(1, 256),
            "--rounds" => options.rounds = number()?.clamp(1, 20),
            "--memory" => options.memory = numbers(flag, value)?,
            "--seed-connections" => options.seed_connections = number()?.clamp(1, 512),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.stored.is_empty() {
        options.stored = vec![0];
    }
    Ok(options)
}

impl Options {
    fn command(&self) -> String {
        let scenario = if self.scenarios.len() == Scenario::ALL.len() {
            "all".to_owned()
        } else {
            self.scenarios
                .iter()
                .map(|scenario| scenario.name())
                .collect::<Vec<_>>()
                .join(",")
        };
        let list = |numbers: &[u64]| {
            numbers
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "cargo xtask load --scenario {scenario} --stored {} --seconds {} --warmup {} \
             --concurrency {} --rounds {} --memory {}",
            list(&self.stored),
            self.seconds,
            self.warmup,
            self.concurrency,
            self.rounds,
            list(&self.memory),
        )
    }
}

// ---------------------------------------------------------------------------
// CPU time and Redis commands

/// Clock ticks per second of `/proc/<pid>/stat`.
fn clock_ticks() -> (f64, bool) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .map_or((100.0, false), |ticks| (ticks, true))
}

/// (utime + stime, cutime + cstime) of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> (u64, u64) {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or((0, 0), |stat| parse_stat(&stat))
}

/// (utime + stime, cutime + cstime) of a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> (u64, u64) {
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is field 3, utime 14, stime 15, cutime 16,
    // cstime 17.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return (0, 0);
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    (field(14) + field(15), field(16) + field(17))
}

/// `INFO commandstats` over a raw RESP connection: calls per command.
fn command_calls(port: u16) -> Result<Vec<(String, u64)>> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|error| format!("redis: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|error| error.to_string())?;
    stream
        .write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        .map_err(|error| format!("redis: {error}"))?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    reader
        .read_line(&mut head)
        .map_err(|error| format!("redis: {error}"))?;
    let length: usize = head
        .trim()
        .strip_prefix('$')
        .and_then(|length| length.parse().ok())
        .ok_or_else(|| format!("redis answered {head:?} to INFO"))?;
    let mut body = vec![0; length + 2];
    reader
        .read_exact(&mut body)
        .map_err(|error| format!("redis: {error}"))?;
    Ok(String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .trim()
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect())
}

/// Commands in total (but `INFO` and `CONFIG`, which only the measurement
/// and `redis-benchmark`'s start send) and round trips.
fn commands(port: u16) -> Result<(u64, u64)> {
    let calls = command_calls(port)?;
    let total = calls
        .iter()
        .filter(|(name, _)| name != "info" && !name.starts_with("config"))
        .map(|(_, calls)| calls)
        .sum();
    let trips = calls
        .iter()
        .filter(|(name, _)| CLIENT_COMMANDS.contains(&name.as_str()))
        .map(|(_, calls)| calls)
        .sum();
    Ok((total, trips))
}

/// The processes a phase watches.
struct Pids {
    server: String,
    proxy: String,
    redis: String,
    redis_port: u16,
}

struct Snapshot {
    at: Instant,
    client: u64,
    children: u64,
    server: u64,
    proxy: u64,
    redis: u64,
    commands: u64,
    trips: u64,
}

impl Pids {
    fn snapshot(&self) -> Result<Snapshot> {
        let (commands, trips) = commands(self.redis_port)?;
        let (client, children) = cpu_ticks("self");
        Ok(Snapshot {
            at: Instant::now(),
            client,
            children,
            server: cpu_ticks(&self.server).0,
            proxy: cpu_ticks(&self.proxy).0,
            redis: cpu_ticks(&self.redis).0,
            commands,
            trips,
        })
    }
}

// ---------------------------------------------------------------------------
// Load

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Server,
    Proxy,
    Redis,
}

impl Target {
    fn letter(self) -> &'static str {
        match self {
            Self::Server => "H",
            Self::Proxy => "P",
            Self::Redis => "R",
        }
    }
}

/// What one phase measured.
#[derive(Clone, Default)]
struct Measured {
    calls: u64,
    iterations: u64,
    errors: u64,
    seconds: f64,
    latencies: Vec<u64>,
    /// CPU-µs in total.
    client_us: f64,
    server_us: f64,
    redis_us: f64,
    commands: u64,
    trips: u64,
    /// `redis-benchmark`'s own percentiles (ms), for R.
    benchmark_p50: Option<f64>,
    benchmark_p99: Option<f64>,
    pool_ran_out: bool,
}

impl Measured {
    fn add(&mut self, other: &Measured) {
        self.calls += other.calls;
        self.iterations += other.iterations;
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.latencies.extend_from_slice(&other.latencies);
        self.client_us += other.client_us;
        self.server_us += other.server_us;
        self.redis_us += other.redis_us;
        self.commands += other.commands;
        self.trips += other.trips;
        self.benchmark_p50 = other.benchmark_p50.or(self.benchmark_p50);
        self.benchmark_p99 = other.benchmark_p99.or(self.benchmark_p99);
        self.pool_ran_out |= other.pool_ran_out;
    }

    fn rate(&self) -> f64 {
        self.calls as f64 / self.seconds.max(1e-9)
    }

    fn per_call(&self, total: f64) -> f64 {
        total / (self.calls.max(1) as f64)
    }

    fn p50(&self) -> f64 {
        self.benchmark_p50
            .unwrap_or_else(|| ms(&self.latencies, 0.5))
    }

    fn p99(&self) -> f64 {
        self.benchmark_p99
            .unwrap_or_else(|| ms(&self.latencies, 0.99))
    }
}

/// The id in a request's JSON (the first `"id":"…"`).
fn id_of(body: &str) -> Option<String> {
    body.split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

/// One client's part of a phase.
#[derive(Default)]
struct Part {
    calls: u64,
    iterations: u64,
    errors: u64,
    latencies: Vec<u64>,
    ids: Vec<String>,
    pool_ran_out: bool,
}

fn timed(
    connection: &mut Connection,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
    expect: u16,
    part: &mut Part,
) -> Option<String> {
    let started = Instant::now();
    let answer = connection.call(method, path, token, body);
    let elapsed = started.elapsed().as_nanos() as u64;
    match answer {
        Ok((status, body)) if status == expect => {
            part.calls += 1;
            part.latencies.push(elapsed);
            Some(body)
        }
        _ => {
            part.errors += 1;
            None
        }
    }
}

/// Runs `scenario` on one connection until `deadline` (or, for approve,
/// until the pool is empty; for seeding, until `budget` creates are done).
fn client(
    port: u16,
    scenario: Scenario,
    deadline: Instant,
    pool: &Mutex<Vec<String>>,
    budget: Option<&AtomicU64>,
    keep_ids: bool,
) -> Part {
    let mut part = Part::default();
    let Ok(mut connection) = Connection::open(port) else {
        part.errors += 1;
        return part;
    };
    while Instant::now() < deadline {
        if let Some(budget) = budget
            && budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_err()
        {
            break;
        }
        match scenario {
            Scenario::Create => {
                let created = timed(
                    &mut connection,
                    "POST",
                    "/v1/requests",
                    "dev-alice",
                    CHANGE,
                    201,
                    &mut part,
                );
                if keep_ids && let Some(id) = created.as_deref().and_then(id_of) {
                    part.ids.push(id);
                }
            }
            Scenario::Approve => {
                let next = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let Some(id) = next else {
                    part.pool_ran_out = true;
                    break;
                };
                let path = format!("/v1/requests/{id}/approve");
                timed(
                    &mut connection,
                    "POST",
                    &path,
                    "dev-bob",
                    "",
                    200,
                    &mut part,
                );
            }
            Scenario::CreateApprove => {
                let created = timed(
                    &mut connection,
                    "POST",
                    "/v1/requests",
                    "dev-alice",
                    CHANGE,
                    201,
                    &mut part,
                );
                let Some(id) = created.as_deref().and_then(id_of) else {
                    continue;
                };
                let path = format!("/v1/requests/{id}/approve");
                timed(
                    &mut connection,
                    "POST",
                    &path,
                    "dev-bob",
                    "",
                    200,
                    &mut part,
                );
            }
            Scenario::List50 => {
                timed(
                    &mut connection,
                    "GET",
                    "/v1/requests?status=pending&limit=50",
                    "dev-bob",
                    "",
                    200,
                    &mut part,
                );
            }
        }
        part.iterations += 1;
    }
    part
}

/// `clients` connections running `scenario` on `port` for `seconds`.
fn drive(
    port: u16,
    scenario: Scenario,
    clients: u64,
    seconds: f64,
    pool: &Arc<Mutex<Vec<String>>>,
    budget: Option<u64>,
    keep_ids: bool,
) -> (Part, f64) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let budget = budget.map(|budget| Arc::new(AtomicU64::new(budget)));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let pool = Arc::clone(pool);
            let budget = budget.clone();
            std::thread::spawn(move || {
                client(port, scenario, deadline, &pool, budget.as_deref(), keep_ids)
            })
        })
        .collect();
    let mut total = Part::default();
    for handle in handles {
        let Ok(mut part) = handle.join() else {
            total.errors += 1;
            continue;
        };
        total.calls += part.calls;
        total.iterations += part.iterations;
        total.errors += part.errors;
        total.latencies.append(&mut part.latencies);
        total.ids.append(&mut part.ids);
        total.pool_ran_out |= part.pool_ran_out;
    }
    (total, started.elapsed().as_secs_f64())
}

/// Creates `count` pending requests on `port` over many connections; their
/// ids when `keep_ids`, and the seconds it took.
fn seed(port: u16, count: u64, connections: u64, keep_ids: bool) -> Result<(Vec<String>, f64)> {
    if count == 0 {
        return Ok((Vec::new(), 0.0));
    }
    let pool = Arc::new(Mutex::new(Vec::new()));
    let (part, seconds) = drive(
        port,
        Scenario::Create,
        connections.min(count),
        24.0 * 3600.0,
        &pool,
        Some(count),
        keep_ids,
    );
    if part.errors > 0 {
        return Err(format!("{} creates failed while seeding", part.errors));
    }
    Ok((part.ids, seconds))
}

/// The run's services and what it knows of them.
struct Run<'a> {
    options: &'a Options,
    pids: Pids,
    ticks: f64,
    server_port: u16,
    proxy_port: u16,
    redis_port: u16,
    /// Requests stored by H and P.
    stored: [u64; 2],
    /// Calls/s last measured per target and scenario, to size approve
    /// pools and `redis-benchmark` runs.
    rates: Vec<(Target, Scenario, f64)>,
    redis_rate: f64,
}

impl Run<'_> {
    fn port(&self, target: Target) -> u16 {
        match target {
            Target::Server => self.server_port,
            Target::Proxy => self.proxy_port,
            Target::Redis => self.redis_port,
        }
    }

    fn slot(target: Target) -> usize {
        usize::from(target == Target::Proxy)
    }

    fn rate(&self, target: Target, scenario: Scenario) -> Option<f64> {
        self.rates
            .iter()
            .rev()
            .find(|(t, s, _)| *t == target && *s == scenario)
            .map(|(_, _, rate)| *rate)
    }

    /// Tops H and P up to `count` stored requests.
    fn seed_to(&mut self, count: u64) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        for target in [Target::Server, Target::Proxy] {
            let missing = count.saturating_sub(self.stored[Self::slot(target)]);
            if missing == 0 {
                continue;
            }
            eprintln!(
                "==> load: seeding {missing} requests on {}",
                target.letter()
            );
            let (_, seconds) = seed(
                self.port(target),
                missing,
                self.options.seed_connections,
                false,
            )?;
            self.stored[Self::slot(target)] += missing;
            lines.push(format!(
                "{}: {missing} creates in {seconds:.1} s ({:.0}/s on {} connections)",
                target.letter(),
                missing as f64 / seconds.max(1e-9),
                self.options.seed_connections.min(missing),
            ));
        }
        Ok(lines)
    }

    /// The pending requests an approve phase of `seconds` on `target` will
    /// take, created now (outside the measured window).
    fn pool(&mut self, target: Target, seconds: f64) -> Result<Arc<Mutex<Vec<String>>>> {
        let rate = self
            .rate(target, Scenario::Approve)
            .unwrap_or(if target == Target::Server {
                1500.0
            } else {
                3000.0
            });
        let count = (rate * seconds * 1.3).ceil() as u64 + self.options.concurrency;
        let (ids, _) = seed(
            self.port(target),
            count,
            self.options.seed_connections,
            true,
        )?;
        self.stored[Self::slot(target)] += ids.len() as u64;
        Ok(Arc::new(Mutex::new(ids)))
    }

    /// One phase of `scenario` on `target`, measured unless it is a
    /// warm-up.
    fn phase(&mut self, target: Target, scenario: Scenario, seconds: f64) -> Result<Measured> {
        if target == Target::Redis {
            return self.redis_phase(seconds);
        }
        let pool = if scenario == Scenario::Approve {
            self.pool(target, seconds)?
        } else {
            Arc::new(Mutex::new(Vec::new()))
        };
        let before = self.pids.snapshot()?;
        let (part, elapsed) = drive(
            self.port(target),
            scenario,
            self.options.concurrency,
            seconds,
            &pool,
            None,
            false,
        );
        let after = self.pids.snapshot()?;
        let elapsed = elapsed.min(after.at.duration_since(before.at).as_secs_f64());
        let creates = match scenario {
            Scenario::Create | Scenario::CreateApprove => part.iterations,
            _ => 0,
        };
        self.stored[Self::slot(target)] += creates;
        let measured = self.measured(target, &before, &after, part, elapsed);
        if measured.seconds > 0.0 {
            self.rates.push((target, scenario, measured.rate()));
        }
        Ok(measured)
    }

    fn measured(
        &self,
        target: Target,
        before: &Snapshot,
        after: &Snapshot,
        part: Part,
        seconds: f64,
    ) -> Measured {
        let micros = |ticks: u64| ticks as f64 / self.ticks * 1e6;
        let server = match target {
            Target::Server => after.server - before.server,
            Target::Proxy => after.proxy - before.proxy,
            Target::Redis => 0,
        };
        let client = match target {
            Target::Redis => after.children - before.children,
            _ => after.client - before.client,
        };
        Measured {
            calls: part.calls,
            iterations: part.iterations,
            errors: part.errors,
            seconds,
            latencies: part.latencies,
            client_us: micros(client),
            server_us: micros(server),
            redis_us: micros(after.redis - before.redis),
            commands: after.commands - before.commands,
            // redis-benchmark's SETs are its round trips.
            trips: if target == Target::Redis {
                after.commands - before.commands
            } else {
                after.trips - before.trips
            },
            benchmark_p50: None,
            benchmark_p99: None,
            pool_ran_out: part.pool_ran_out,
        }
    }

    /// `redis-benchmark -t set` sized to last about `seconds`.
    fn redis_phase(&mut self, seconds: f64) -> Result<Measured> {
        let count = ((self.redis_rate * seconds) as u64).max(10_000);
        let before = self.pids.snapshot()?;
        let output = Command::new("redis-benchmark")
            .args(["-p", &self.redis_port.to_string(), "-t", "set"])
            .args(["-n", &count.to_string()])
            .args(["-c", &self.options.concurrency.to_string(), "--csv"])
            .output()
            .map_err(|error| format!("redis-benchmark: {error}"))?;
        let after = self.pids.snapshot()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let Some((rate, p50, p99)) = parse_benchmark_csv(&text) else {
            return Err(format!("cannot read redis-benchmark's output: {text}"));
        };
        self.redis_rate = rate;
        let part = Part {
            calls: count,
            iterations: count,
            ..Part::default()
        };
        let mut measured = self.measured(
            Target::Redis,
            &before,
            &after,
            part,
            count as f64 / rate.max(1e-9),
        );
        measured.benchmark_p50 = Some(p50);
        measured.benchmark_p99 = Some(p99);
        Ok(measured)
    }

    /// One client walking the pending listing through its cursors for
    /// `seconds` (each page read once), then reading the first page as many
    /// times: (cold, warm) latencies in ns and the pages walked.
    fn walk(&self, target: Target, seconds: f64) -> Result<(Vec<u64>, Vec<u64>)> {
        let mut connection =
            Connection::open(self.port(target)).map_err(|error| format!("walk: {error}"))?;
        let started = Instant::now();
        let mut cold = Vec::new();
        let mut cursor: Option<String> = None;
        while started.elapsed().as_secs_f64() < seconds {
            let path = match &cursor {
                Some(cursor) => format!("/v1/requests?status=pending&limit=50&cursor={cursor}"),
                None => "/v1/requests?status=pending&limit=50".to_owned(),
            };
            let begun = Instant::now();
            let (status, body) = connection
                .call("GET", &path, "dev-bob", "")
                .map_err(|error| format!("walk: {error}"))?;
            let elapsed = begun.elapsed().as_nanos() as u64;
            if status != 200 {
                return Err(format!("walk: {path} answered {status}"));
            }
            // The first page is the warm one; the walk measures the others.
            if cursor.is_some() {
                cold.push(elapsed);
            }
            cursor = body
                .split("\"nextCursor\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        let mut warm = Vec::new();
        for _ in 0..cold.len().max(100) {
            let begun = Instant::now();
            let (status, _) = connection
                .call("GET", "/v1/requests?status=pending&limit=50", "dev-bob", "")
                .map_err(|error| format!("walk: {error}"))?;
            if status != 200 {
                return Err(format!("walk: the first page answered {status}"));
            }
            warm.push(begun.elapsed().as_nanos() as u64);
        }
        Ok((cold, warm))
    }
}

/// `"SET","104712.04","0.103","0.032","0.095","0.167","0.343","5.207"` ->
/// (rate, p50 ms, p99 ms).
fn parse_benchmark_csv(output: &str) -> Option<(f64, f64, f64)> {
    let line = output.lines().find(|line| line.starts_with("\"SET\""))?;
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|field| field.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    Some((*fields.first()?, *fields.get(3)?, *fields.get(5)?))
}

// ---------------------------------------------------------------------------
// The run and its report

/// Every phase of one scenario at one size.
struct ScenarioResult {
    scenario: Scenario,
    stored: [u64; 2],
    phases: Vec<(Target, Measured)>,
    /// list-50: one client's cold walk and warm first pages, H then P.
    walks: Vec<(Target, Vec<u64>, Vec<u64>)>,
}

impl ScenarioResult {
    fn total(&self, target: Target) -> Measured {
        let mut total = Measured::default();
        for (phase_target, measured) in &self.phases {
            if *phase_target == target {
                total.add(measured);
            }
        }
        total
    }

    fn walk(&self, target: Target) -> Option<(&Vec<u64>, &Vec<u64>)> {
        self.walks
            .iter()
            .find(|(walk_target, _, _)| *walk_target == target)
            .map(|(_, cold, warm)| (cold, warm))
    }
}

struct SizeResult {
    stored: u64,
    seeding: Vec<String>,
    scenarios: Vec<ScenarioResult>,
}

impl SizeResult {
    fn scenario(&self, scenario: Scenario) -> Option<&ScenarioResult> {
        self.scenarios
            .iter()
            .find(|result| result.scenario == scenario)
    }
}

fn run_scenario(run: &mut Run, scenario: Scenario) -> Result<ScenarioResult> {
    let options = run.options;
    let stored = run.stored;
    eprintln!(
        "==> load: {} (H stored {}, P stored {}): warm-up {} s, {} rounds of H/P/R {} s",
        scenario.name(),
        stored[0],
        stored[1],
        options.warmup,
        options.rounds,
        options.seconds
    );
    if options.warmup > 0 {
        for target in [Target::Server, Target::Proxy] {
            run.phase(target, scenario, options.warmup as f64)?;
        }
    }
    let mut phases = Vec::new();
    for _ in 0..options.rounds {
        for target in [Target::Server, Target::Proxy, Target::Redis] {
            // redis-benchmark's rate settles within seconds: a quarter of
            // the phase is enough for the ratio.
            let seconds = if target == Target::Redis {
                (options.seconds as f64 / 4.0).max(2.0)
            } else {
                options.seconds as f64
            };
            let measured = run.phase(target, scenario, seconds)?;
            eprintln!(
                "    {} {}: {:.0} calls/s, errors {}",
                target.letter(),
                scenario.name(),
                measured.rate(),
                measured.errors
            );
            phases.push((target, measured));
        }
    }
    let mut walks = Vec::new();
    if scenario == Scenario::List50 {
        for target in [Target::Server, Target::Proxy] {
            let (cold, warm) = run.walk(target, options.seconds as f64)?;
            walks.push((target, cold, warm));
        }
    }
    Ok(ScenarioResult {
        scenario,
        stored,
        phases,
        walks,
    })
}

/// `memory_per_request N` for each count: its output lines.
fn memory(counts: &[u64]) -> Result<Vec<(u64, String)>> {
    let binary = services::example_binary("memory_per_request");
    counts
        .iter()
        .map(|count| {
            eprintln!("==> load: memory per stored request, {count} requests");
            let output = Command::new(&binary)
                .arg(count.to_string())
                .output()
                .map_err(|error| format!("{}: {error}", binary.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "{} {count} failed: {}",
                    binary.display(),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Ok((*count, String::from_utf8_lossy(&output.stdout).into_owned()))
        })
        .collect()
}

/// `key=value` of a `MEMORY` line.
fn memory_figure(text: &str, key: &str) -> Option<f64> {
    text.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// Runs the load (see the module docs).
pub fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    tools::ensure_apt("redis-server", &["redis-server"])?;
    tools::step("release server and examples", load::build_server)?;
    let work = std::env::temp_dir().join(format!("signoff-load-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|error| error.to_string())?;
    let result = run_in(&options, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_in(options: &Options, work: &std::path::Path) -> Result {
    let rules = work.join("rules.json");
    std::fs::write(&rules, load::RULES).map_err(|error| error.to_string())?;
    let rules = rules.display().to_string();
    let (redis, redis_port) = services::start_redis(work)?;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let (server, server_port) = services::start_server(&[
        "--redis-url",
        &redis_url,
        "--rules",
        &rules,
        "--max-inflight-per-principal",
        "4096",
    ])?;
    let (proxy, proxy_port) = services::start_http(
        &services::example_binary("thin_proxy"),
        &["--redis-url", &redis_url, "--key-prefix", "thin:"],
    )?;
    let (ticks, ticks_known) = clock_ticks();
    let mut run = Run {
        options,
        pids: Pids {
            server: server.pid().to_string(),
            proxy: proxy.pid().to_string(),
            redis: redis.pid().to_string(),
            redis_port,
        },
        ticks,
        server_port,
        proxy_port,
        redis_port,
        stored: [0, 0],
        rates: Vec::new(),
        redis_rate: 60_000.0,
    };
    let started = Instant::now();
    let mut sizes = Vec::new();
    for &stored in &options.stored {
        let seeding = run.seed_to(stored)?;
        let mut scenarios = Vec::new();
        for &scenario in &options.scenarios {
            scenarios.push(run_scenario(&mut run, scenario)?);
        }
        sizes.push(SizeResult {
            stored,
            seeding,
            scenarios,
        });
    }
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    drop(proxy);
    drop(server);
    drop(redis);
    let memory = memory(&options.memory)?;
    let report = report(
        options,
        &sizes,
        &memory,
        (ticks, ticks_known),
        &load_average,
        minutes,
    );
    println!("{report}");
    load::write_section(
        &tools::root().join("docs").join("PERFORMANCE.md"),
        SECTION,
        &report,
    )?;
    let errors: u64 = sizes
        .iter()
        .flat_map(|size| &size.scenarios)
        .flat_map(|scenario| &scenario.phases)
        .map(|(_, measured)| measured.errors)
        .sum();
    if errors > 0 {
        return Err(format!("{errors} calls failed during the load run"));
    }
    Ok(())
}

/// A percentile of latencies in ns, in ms.
fn ms(nanos: &[u64], fraction: f64) -> f64 {
    Samples(nanos.to_vec()).percentile(fraction) / 1000.0
}

fn report(
    options: &Options,
    sizes: &[SizeResult],
    memory: &[(u64, String)],
    (ticks, ticks_known): (f64, bool),
    load_average: &str,
    minutes: f64,
) -> String {
    let mut out = format!("{SECTION}\n\n");
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = write!(
        out,
        "    {}\n\n\
         One run, {minutes:.0} minutes, on this machine's {cores} cores shared by the \
         client threads, the server, the proxy and Redis (load average at the end: \
         {}). H is `signoff serve` (release, `--redis-url` on a private loopback \
         `redis-server`, rules with one approval stage and no rate limit), P the thin \
         proxy (`host/examples/thin_proxy.rs`: the same HTTP stack and Redis round \
         trips, no engine), R `redis-benchmark -t set -c {}` (3-byte values, one key), \
         all on the same Redis; {} clients on keep-alive connections; each scenario \
         warms H and P up for {} s, then runs {} rounds of H {} s, P {} s, R {:.0} s. \
         CPU-µs per call: utime + stime deltas of `/proc/<pid>/stat` ({}), divided by \
         the calls (client: the load's threads, or `redis-benchmark` for R). \
         Commands per call: `INFO commandstats` deltas (all commands, then the round \
         trips a client sends; the server's background work, about one sweep a \
         second, is included, and the commit scripts' inner commands count in the \
         first figure).\n",
        options.command(),
        load_average
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        options.concurrency,
        options.concurrency,
        options.warmup,
        options.rounds,
        options.seconds,
        options.seconds,
        (options.seconds as f64 / 4.0).max(2.0),
        if ticks_known {
            format!("{ticks:.0} clock ticks per second, `getconf CLK_TCK`")
        } else {
            "100 clock ticks per second assumed: `getconf CLK_TCK` did not answer".to_owned()
        },
    );
    for size in sizes {
        let _ = write!(out, "\n### At least {} stored requests\n\n", size.stored);
        if size.seeding.is_empty() {
            let _ = writeln!(
                out,
                "No seeding: the scenarios before had already stored more (see each \
                 scenario's counts).\n"
            );
        } else {
            let _ = writeln!(out, "Seeding: {}.\n", size.seeding.join("; "));
        }
        for result in &size.scenarios {
            scenario_table(&mut out, result);
        }
    }
    memory_section(&mut out, memory);
    expectations(&mut out, options, sizes, memory);
    out
}

fn scenario_table(out: &mut String, result: &ScenarioResult) {
    let _ = write!(
        out,
        "**{}** (stored at the start: H {}, P {}):\n\n\
         | phase | calls | s | calls/s | p50 ms | p99 ms | CPU-µs/call client | server | Redis | Redis commands/call | round trips/call | errors |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        result.scenario.name(),
        result.stored[0],
        result.stored[1],
    );
    let row = |out: &mut String, name: &str, target: Target, measured: &Measured| {
        let server = if target == Target::Redis {
            "–".to_owned()
        } else {
            format!("{:.1}", measured.per_call(measured.server_us))
        };
        let _ = writeln!(
            out,
            "| {name}{} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.1} | {server} | {:.1} | {:.2} | {:.2} | {} |",
            if measured.pool_ran_out {
                " (pool ran out)"
            } else {
                ""
            },
            measured.calls,
            measured.seconds,
            measured.rate(),
            measured.p50(),
            measured.p99(),
            measured.per_call(measured.client_us),
            measured.per_call(measured.redis_us),
            measured.per_call(measured.commands as f64),
            measured.per_call(measured.trips as f64),
            measured.errors,
        );
    };
    let mut rounds = [0; 3];
    for (target, measured) in &result.phases {
        let slot = match target {
            Target::Server => 0,
            Target::Proxy => 1,
            Target::Redis => 2,
        };
        rounds[slot] += 1;
        row(
            out,
            &format!("{}{}", target.letter(), rounds[slot]),
            *target,
            measured,
        );
    }
    let server = result.total(Target::Server);
    let proxy = result.total(Target::Proxy);
    let redis = result.total(Target::Redis);
    row(out, "**H, all rounds**", Target::Server, &server);
    row(out, "**P, all rounds**", Target::Proxy, &proxy);
    row(out, "**R, all rounds**", Target::Redis, &redis);
    let _ = write!(
        out,
        "\nH / P: **{:.2}** calls/s; H / R: **{:.3}**; P / R: {:.3}.",
        server.rate() / proxy.rate().max(1e-9),
        server.rate() / redis.rate().max(1e-9),
        proxy.rate() / redis.rate().max(1e-9),
    );
    if result.scenario == Scenario::CreateApprove {
        let _ = write!(
            out,
            " Iterations (create + approve) per second: H {:.0}, P {:.0}.",
            server.iterations as f64 / server.seconds.max(1e-9),
            proxy.iterations as f64 / proxy.seconds.max(1e-9),
        );
    }
    out.push('\n');
    for target in [Target::Server, Target::Proxy] {
        if let Some((cold, warm)) = result.walk(target) {
            let _ = write!(
                out,
                "\n{} with one client: cold pages (a walk through the cursors, each page read once): \
                 {} pages, p50 {:.2} ms, p99 {:.2} ms; warm (the first page again, as many times): \
                 p50 {:.2} ms, p99 {:.2} ms.",
                target.letter(),
                cold.len(),
                ms(cold, 0.5),
                ms(cold, 0.99),
                ms(warm, 0.5),
                ms(warm, 0.99),
            );
        }
    }
    out.push_str("\n\n");
}

fn memory_section(out: &mut String, memory: &[(u64, String)]) {
    if memory.is_empty() {
        return;
    }
    out.push_str(
        "### Memory per stored request in `MemoryCache`\n\n\
         `target/release/examples/memory_per_request N` \
         (`host/examples/memory_per_request.rs`): N creates through the native \
         `Manager` over `MemoryCache`, resident memory growth / N, and what the \
         cache was asked to hold:\n\n",
    );
    for (_, text) in memory {
        for line in text.lines().filter(|line| line.starts_with("MEMORY")) {
            let _ = writeln!(out, "    {line}");
        }
    }
    out.push('\n');
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn expectations(
    out: &mut String,
    options: &Options,
    sizes: &[SizeResult],
    memory: &[(u64, String)],
) {
    out.push_str("### Expectations, from this run\n\n| expectation | stored | measured | verdict |\n| --- | --- | --- | --- |\n");
    for size in sizes {
        if let Some(result) = size.scenario(Scenario::CreateApprove) {
            let ratio =
                result.total(Target::Server).rate() / result.total(Target::Proxy).rate().max(1e-9);
            let _ = writeln!(
                out,
                "| create+approve at least 0.7x the thin proxy | {} | {ratio:.2}x | {} |",
                size.stored,
                verdict(ratio >= 0.7)
            );
        }
        if let Some(result) = size.scenario(Scenario::Create) {
            let server = result.total(Target::Server);
            let micros = server.per_call(server.server_us);
            let _ = writeln!(
                out,
                "| server CPU at most 60 µs per create | {} | {micros:.0} µs | {} |",
                size.stored,
                verdict(micros <= 60.0)
            );
        }
        if let (Some(list), Some(create)) = (
            size.scenario(Scenario::List50),
            size.scenario(Scenario::Create),
        ) {
            let ratio =
                list.total(Target::Server).rate() / create.total(Target::Server).rate().max(1e-9);
            let _ = writeln!(
                out,
                "| a list page of 50 at least 0.5x the create rate | {} | {ratio:.2}x ({:.0} / {:.0} calls/s) | {} |",
                size.stored,
                list.total(Target::Server).rate(),
                create.total(Target::Server).rate(),
                verdict(ratio >= 0.5)
            );
        }
    }
    for (count, text) in memory {
        if let Some(bytes) = memory_figure(text, "resident_bytes_per_request") {
            let _ = writeln!(
                out,
                "| memory per stored request in `MemoryCache` at most 1.5 KB | {count} | {bytes:.0} B | {} |",
                verdict(bytes <= 1536.0)
            );
        }
    }
    let lists: Vec<(u64, &ScenarioResult)> = sizes
        .iter()
        .filter_map(|size| Some((size.stored, size.scenario(Scenario::List50)?)))
        .collect();
    if let (Some((small, first)), Some((large, last))) = (lists.first(), lists.last())
        && small != large
    {
        for (name, pick) in [("cold", 0), ("warm", 1)] {
            let p50 = |result: &ScenarioResult| {
                result
                    .walk(Target::Server)
                    .map_or(0.0, |walk| ms(if pick == 0 { walk.0 } else { walk.1 }, 0.5))
            };
            let ratio = p50(last) / p50(first).max(1e-9);
            let _ = writeln!(
                out,
                "| a page of 50 at {large} stored within 1.3x of the page at {small} ({name}, one client, p50) | {large} / {small} | {ratio:.2}x ({:.2} / {:.2} ms) | {} |",
                p50(last),
                p50(first),
                verdict(ratio <= 1.3)
            );
        }
        let rate = |result: &ScenarioResult| result.total(Target::Server).rate();
        let ratio = rate(first) / rate(last).max(1e-9);
        let _ = writeln!(
            out,
            "| the same, warm first page under load ({} clients; time per page = 1 / rate) | {large} / {small} | {ratio:.2}x ({:.0} / {:.0} pages/s) | {} |",
            options.concurrency,
            rate(last),
            rate(first),
            verdict(ratio <= 1.3)
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read() {
        let output = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"104712.04\",\"0.103\",\"0.032\",\"0.095\",\"0.167\",\"0.343\",\"5.207\"\n";
        assert_eq!(
            parse_benchmark_csv(output),
            Some((104_712.04, 0.095, 0.343))
        );
        assert_eq!(parse_benchmark_csv("nothing"), None);
    }

    #[test]
    fn ids_are_read_from_requests() {
        assert_eq!(
            id_of(r#"{"id":"abc","change":{"policyId":"x"}}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(id_of("{}"), None);
    }

    #[test]
    fn stat_lines_are_read() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 25 7 3 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), (175, 10));
        assert_eq!(cpu_ticks("no-such-process"), (0, 0));
    }

    #[test]
    fn flags_are_read() {
        let args: Vec<String> = ["--scenario", "list-50", "--stored", "1000000,10000"]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
        let options = parse(&args).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(options.scenarios, vec![Scenario::List50]);
        assert_eq!(options.stored, vec![10_000, 1_000_000]);
        assert_eq!(options.seconds, 20);
        assert!(parse(&["--scenario".to_owned(), "nope".to_owned()]).is_err());
    }
}
