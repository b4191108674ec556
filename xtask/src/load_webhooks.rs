//! `cargo xtask load-webhooks`: what webhook delivery costs the server.
//!
//! Two release servers, each on its own private `redis-server`: one without
//! webhooks, one delivering every event to a loopback receiver (a plain
//! `std` listener answering 204). Phases of create + approve + list (the
//! load of `cargo xtask load`) run against one server, then the other, in
//! alternating order for `rounds` rounds (A B, B A, ...), so that both see
//! the same machine. The report is the throughput of each, their ratio,
//! and how long the receiver took to get every event after the last phase;
//! it is written as the `## Webhooks: the cost of delivery` section of
//! `docs/PERFORMANCE.md`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::load::{self, Options};
use crate::services;
use crate::tools::{self, Result};

const SECTION: &str = "## Webhooks: the cost of delivery";

/// A receiver on a free loopback port that answers every POST 204 and
/// counts them.
fn start_receiver(count: Arc<AtomicU64>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    let port = listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                let Ok(writer) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut writer = writer;
                // One request per connection: the server opens a new one
                // for every delivery.
                let mut length = 0_usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = writer.write_all(
                        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
        }
    });
    Ok(port)
}

fn parse(args: &[String]) -> Result<(Options, u64)> {
    let mut rest = Vec::new();
    let mut rounds = 3;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--rounds" {
            rounds = args
                .next()
                .ok_or("--rounds needs a value")?
                .parse::<u64>()
                .map_err(|error| format!("--rounds: {error}"))?
                .clamp(1, 20);
        } else {
            rest.push(flag.clone());
            rest.extend(args.next().cloned());
        }
    }
    Ok((load::parse(&rest)?, rounds))
}

/// Runs the comparison (see the module docs).
pub fn run(args: &[String]) -> Result {
    let (options, rounds) = parse(args)?;
    tools::step("release server", load::build_server)?;
    let work = std::env::temp_dir().join(format!("signoff-load-webhooks-{}", std::process::id()));
    std::fs::create_dir_all(work.join("plain")).map_err(|error| error.to_string())?;
    std::fs::create_dir_all(work.join("hooked")).map_err(|error| error.to_string())?;
    let rules = work.join("rules.json");
    std::fs::write(&rules, load::RULES).map_err(|error| error.to_string())?;
    let rules = rules.display().to_string();
    let received = Arc::new(AtomicU64::new(0));
    let receiver_port = start_receiver(Arc::clone(&received))?;
    let hooks = work.join("webhooks.json");
    std::fs::write(
        &hooks,
        format!(
            r#"[{{"url":"http://127.0.0.1:{receiver_port}/hook","secret":"a-load-test-secret","events":["*"]}}]"#
        ),
    )
    .map_err(|error| error.to_string())?;
    let hooks = hooks.display().to_string();

    let (_plain_redis, plain_redis) = services::start_redis(&work.join("plain"))?;
    let (_hooked_redis, hooked_redis) = services::start_redis(&work.join("hooked"))?;
    let plain_url = format!("redis://127.0.0.1:{plain_redis}");
    let hooked_url = format!("redis://127.0.0.1:{hooked_redis}");
    let (_plain, plain_port) =
        services::start_server(&["--redis-url", &plain_url, "--rules", &rules])?;
    let (_hooked, hooked_port) = services::start_server(&[
        "--redis-url",
        &hooked_url,
        "--rules",
        &rules,
        "--webhooks",
        &hooks,
    ])?;

    eprintln!(
        "==> load-webhooks: {rounds} rounds of {} iterations per server, {} clients",
        options.iterations, options.concurrency
    );
    let options = Arc::new(options);
    let mut totals = [(0_u64, 0.0_f64, 0_u64); 2];
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for variant in order {
            let port = [plain_port, hooked_port][variant];
            let phase = load::phase(port, &options);
            totals[variant].0 += phase.iterations;
            totals[variant].1 += phase.seconds;
            totals[variant].2 += phase.errors;
        }
    }
    // The backlog drains once no event has arrived for a second.
    let drained_from = Instant::now();
    let mut last_count = received.load(Ordering::SeqCst);
    let mut last_arrival = drained_from;
    while last_arrival.elapsed() < std::time::Duration::from_secs(1)
        && drained_from.elapsed() < std::time::Duration::from_secs(120)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let count = received.load(Ordering::SeqCst);
        if count != last_count {
            last_count = count;
            last_arrival = Instant::now();
        }
    }
    let drain = last_arrival.duration_since(drained_from).as_secs_f64();
    let plain_rate = totals[0].0 as f64 / totals[0].1;
    let hooked_rate = totals[1].0 as f64 / totals[1].1;
    let command = format!(
        "cargo xtask load-webhooks --rounds {rounds} --iterations {} --concurrency {} --seconds {}",
        options.iterations, options.concurrency, options.seconds
    );
    let report = format!(
        "{SECTION}\n\n`{command}`: two release servers, each on its own loopback \
         `redis-server`, one delivering every event to a loopback receiver that \
         answers 204; phases of create + approve + list alternate between them \
         (A B, B A, ...), {} clients on keep-alive connections.\n\n\
         | server | iterations | seconds | iterations/s | errors |\n| --- | --- | --- | --- | --- |\n\
         | no webhooks | {} | {:.1} | {plain_rate:.0} | {} |\n\
         | one endpoint, every event | {} | {:.1} | {hooked_rate:.0} | {} |\n\n\
         Ratio with webhooks / without: **{:.2}**. The receiver took {last_count} \
         events, the last {drain:.1} s after the last phase ended. Every \
         event is written in the change's own commit whether webhooks are \
         configured or not; what the ratio measures is the delivery: per event, \
         one range and one read of the log, a POST on a new connection, and a \
         compare-and-swap of the endpoint's position (plus a read of its new \
         version), competing with the load for the same cores.\n",
        options.concurrency,
        totals[0].0,
        totals[0].1,
        totals[0].2,
        totals[1].0,
        totals[1].1,
        totals[1].2,
        hooked_rate / plain_rate,
    );
    println!("{report}");
    load::write_section(
        &tools::root().join("docs").join("PERFORMANCE.md"),
        SECTION,
        &report,
    )?;
    let _ = std::fs::remove_dir_all(&work);
    if totals[0].2 + totals[1].2 > 0 {
        return Err("calls failed during the run".to_owned());
    }
    Ok(())
}
