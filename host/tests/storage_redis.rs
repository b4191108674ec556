//! The storage promises over a real `redis-server`: round trips per
//! operation (counted by Redis itself, `INFO commandstats`), the recorded
//! number of partitions, the durability check, commits that a lost reply
//! cannot apply twice, and one requester's concurrent creates that do not
//! fight over its rate-limit bucket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a panic"
)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use signoff_core::keys::Layout;
use signoff_core::{Principal, Rules};
use signoff_host::engine::{Engine, EngineSettings, StorageOptions};
use support::redis::RedisServer;
use support::suite::{Harness, alice, bob, change, rules_document};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The commands a client sends; the scripts' own reads use `GETRANGE`, and
/// their writes (`SET`, `DEL`, `ZADD`, `ZREM`) are never sent by a client,
/// so these are the round trips.
const CLIENT_COMMANDS: [&str; 8] = [
    "evalsha", "eval", "get", "mget", "zrange", "zcard", "exists", "wait",
];

fn command_calls(server: &RedisServer) -> BTreeMap<String, u64> {
    server
        .cli(&["info", "commandstats"])
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .trim()
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// The round trips that `operation` costs.
async fn round_trips<T>(server: &RedisServer, operation: impl Future<Output = T>) -> (u64, T) {
    let before = command_calls(server);
    let out = operation.await;
    let after = command_calls(server);
    let trips = CLIENT_COMMANDS
        .iter()
        .map(|name| {
            after.get(*name).copied().unwrap_or(0) - before.get(*name).copied().unwrap_or(0)
        })
        .sum();
    (trips, out)
}

/// Settings with no background reads of the rules during a count.
fn quiet_settings() -> EngineSettings {
    EngineSettings {
        rules_refresh: Duration::from_secs(3600),
        ..EngineSettings::default()
    }
}

fn suite_rules() -> Rules {
    Rules::parse(&rules_document()).unwrap()
}

fn rate_limited_rules() -> Rules {
    let mut document = rules_document();
    document["rateLimit"] = json!({ "requests": 1000, "perSeconds": 1, "burst": 1000 });
    Rules::parse(&document).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_costs_a_constant_number_of_round_trips() {
    let server = RedisServer::start();
    let harness = Harness::redis(&server.url(), "trips");
    let engine = harness
        .try_engine(suite_rules(), StorageOptions::default(), quiet_settings())
        .await
        .unwrap();
    let partitions = u64::from(engine.layout().partitions());
    // Warm up: the scripts are loaded once.
    let warm = engine.create(&change("iam", "warm"), &alice(), None).await;
    engine
        .approve(&warm.unwrap().request.id.to_string(), &bob(), None)
        .await
        .unwrap();
    engine.list_json(&json!({ "limit": 5 })).await.unwrap();

    let (create, created) = round_trips(
        &server,
        engine.create(&change("iam", "one"), &alice(), None),
    )
    .await;
    assert_eq!(
        create, 2,
        "a create without a rate limit reads its partition's event head, then commits"
    );
    let id = created.unwrap().request.id.to_string();

    let (idempotent, _) = round_trips(
        &server,
        engine.create(&change("iam", "two"), &alice(), Some("key-2")),
    )
    .await;
    assert!(idempotent <= 3, "with an idempotency key: {idempotent}");

    let (get, _) = round_trips(&server, engine.get(&id)).await;
    assert_eq!(get, 1);
    let (approve, approved) = round_trips(&server, engine.approve(&id, &bob(), None)).await;
    approved.unwrap();
    assert!(approve <= 2, "approve: {approve}");

    for n in 0..600 {
        engine
            .create(&change("iam", &format!("bulk-{n}")), &alice(), None)
            .await
            .unwrap();
    }
    for limit in [1, 50, 500] {
        let (page, body) = round_trips(
            &server,
            engine.list_json(&json!({ "limit": limit.to_string() })),
        )
        .await;
        let body: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), limit);
        eprintln!("round trips: list page of {limit}: {page}");
        assert!(
            page <= 2 + partitions,
            "a page of {limit} cost {page} round trips"
        );
    }
    // A store of its own: a store keeps the rules it was given first.
    let rate_limited = Harness::redis(&server.url(), "trips-limited")
        .try_engine(
            rate_limited_rules(),
            StorageOptions::default(),
            quiet_settings(),
        )
        .await
        .unwrap();
    rate_limited
        .create(&change("iam", "warm"), &alice(), None)
        .await
        .unwrap();
    let (limited, _) = round_trips(
        &server,
        rate_limited.create(&change("iam", "limited"), &alice(), None),
    )
    .await;
    eprintln!(
        "round trips: create {create}, with idempotency key {idempotent}, get {get}, \
         approve {approve}, create under a rate limit {limited}"
    );
    assert!(
        limited <= 4,
        "with a rate limit: the bucket's read, its commit, the event head's read and the request's commit: {limited}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_partitions_is_recorded_and_a_change_is_refused() {
    let server = RedisServer::start();
    let harness = Harness::redis(&server.url(), "fixed");
    let sixteen = StorageOptions::default();
    harness
        .try_engine(suite_rules(), sixteen, quiet_settings())
        .await
        .unwrap();
    let eight = StorageOptions {
        partitions: 8,
        ..sixteen
    };
    let refused = harness
        .try_engine(suite_rules(), eight, quiet_settings())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("16 partitions, not 8"),
        "{refused:#}"
    );
    // The same number again is fine, and so is another store.
    harness
        .try_engine(suite_rules(), sixteen, quiet_settings())
        .await
        .unwrap();
    Harness::redis(&server.url(), "other")
        .try_engine(suite_rules(), eight, quiet_settings())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_may_evict_is_refused_unless_allowed() {
    let server = RedisServer::start();
    let harness = Harness::redis(&server.url(), "evict");
    let engine = harness
        .try_engine(suite_rules(), StorageOptions::default(), quiet_settings())
        .await
        .unwrap();
    let durability = engine.durability().expect("asked at start-up");
    assert_eq!(durability.maxmemory_policy, "noeviction");
    assert!(!durability.appendonly.is_empty() && !durability.appendfsync.is_empty());

    server.cli(&["config", "set", "maxmemory-policy", "allkeys-lru"]);
    let refused = harness
        .try_engine(suite_rules(), StorageOptions::default(), quiet_settings())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("allow-eviction"),
        "{refused:#}"
    );
    let allowed = StorageOptions {
        allow_eviction: true,
        ..StorageOptions::default()
    };
    let engine = harness
        .try_engine(suite_rules(), allowed, quiet_settings())
        .await
        .unwrap();
    assert_eq!(engine.durability().unwrap().maxmemory_policy, "allkeys-lru");
}

/// A loopback proxy in front of Redis that, once armed, forwards the next
/// `EVALSHA` to Redis, then cuts the connection instead of passing the
/// reply back: the commit reached Redis, its answer is lost.
struct ReplyCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
}

impl ReplyCutter {
    async fn start(redis_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (task_armed, task_cuts) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = TcpStream::connect(("127.0.0.1", redis_port)).await.unwrap();
                tokio::spawn(relay(
                    client,
                    upstream,
                    task_armed.clone(),
                    task_cuts.clone(),
                ));
            }
        });
        Self { port, armed, cuts }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Arms the cut and waits until it has happened.
    async fn cut_next_commit_reply(&self, action: impl Future<Output = ()>) {
        let before = self.cuts.load(Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
        action.await;
        assert_eq!(
            self.cuts.load(Ordering::SeqCst),
            before + 1,
            "a commit's reply was cut"
        );
    }
}

async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    armed: Arc<AtomicBool>,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let cutting = Arc::new(AtomicBool::new(false));
    let to_redis_cutting = cutting.clone();
    let to_redis = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let read = client_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                break;
            }
            let chunk = &buffer[..read];
            if chunk.windows(7).any(|window| window == b"EVALSHA")
                && armed.swap(false, Ordering::SeqCst)
            {
                to_redis_cutting.store(true, Ordering::SeqCst);
            }
            if upstream_write.write_all(chunk).await.is_err() {
                break;
            }
        }
    };
    let to_client = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let read = upstream_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                break;
            }
            if cutting.load(Ordering::SeqCst) {
                // The commit was applied; its answer goes nowhere.
                cuts.fetch_add(1, Ordering::SeqCst);
                break;
            }
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    // Whichever side ends first closes the connection both ways.
    tokio::select! {
        () = to_redis => {},
        () = to_client => {},
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_reply_is_lost_is_applied_once() {
    let server = RedisServer::start();
    let proxy = ReplyCutter::start(server.port()).await;
    let harness = Harness::redis(&proxy.url(), "lost");
    let engine = harness
        .try_engine(suite_rules(), StorageOptions::default(), quiet_settings())
        .await
        .unwrap();
    // Warm up: the scripts are loaded, so the commits are EVALSHA.
    engine
        .create(&change("iam", "warm"), &alice(), None)
        .await
        .unwrap();

    let mut created = None;
    proxy
        .cut_next_commit_reply(async {
            created = Some(engine.create(&change("iam", "once"), &alice(), None).await);
        })
        .await;
    let request = created.unwrap().expect("the create is answered as done");
    let id = request.request.id.to_string();
    proxy
        .cut_next_commit_reply(async {
            engine
                .comment(&id, &bob(), Some(&json!({ "text": "Looks right." })))
                .await
                .expect("the comment is answered as done");
        })
        .await;
    proxy
        .cut_next_commit_reply(async {
            engine
                .approve(&id, &bob(), None)
                .await
                .expect("the approval is answered as done");
        })
        .await;

    let stored = engine.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.approvals.len(), 1, "one approval");
    let comments = stored
        .history
        .iter()
        .filter(|entry| entry.action == signoff_core::ActionKind::Comment)
        .count();
    assert_eq!(comments, 1, "one comment");
    let page = engine
        .list(&json!({ "status": "pending", "limit": "500" }))
        .await
        .unwrap();
    let once = page
        .items
        .iter()
        .filter(|item| item.change.title == "once")
        .count()
        + engine
            .list(&json!({ "status": "approved", "limit": "500" }))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|item| item.change.title == "once")
            .count();
    assert_eq!(once, 1, "one request");
}

/// One requester filing 16 at once: every create takes a token from the
/// same bucket, yet the bucket's commits go in at their first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_creates_of_one_requester_do_not_fight_over_its_bucket() {
    let server = RedisServer::start();
    let harness = Harness::redis(&server.url(), "bot");
    let engine = Arc::new(
        harness
            .try_engine(
                rate_limited_rules(),
                StorageOptions::default(),
                quiet_settings(),
            )
            .await
            .unwrap(),
    );
    let bot = Principal::new("ci-bot", &["engineer"]);
    engine
        .create(&change("iam", "warm"), &bot, None)
        .await
        .unwrap();
    const ROUNDS: usize = 8;
    const CONCURRENT: usize = 16;
    let before = command_calls(&server);
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        let calls: Vec<_> = (0..CONCURRENT)
            .map(|n| {
                let (engine, bot) = (engine.clone(), bot.clone());
                tokio::spawn(async move {
                    engine
                        .create(&change("iam", &format!("bot-{round}-{n}")), &bot, None)
                        .await
                        .unwrap()
                        .request
                        .id
                })
            })
            .collect();
        for call in calls {
            ids.push(call.await.unwrap());
        }
    }
    let after = command_calls(&server);
    let scripts = |calls: &BTreeMap<String, u64>| calls.get("evalsha").copied().unwrap_or(0);
    let commits = scripts(&after) - scripts(&before);
    // A create whose request lands in another partition than the bot's
    // bucket makes one more commit (the request's), which never conflicts.
    let layout = Layout::default();
    let home = layout.partition_of_principal(&bot.id);
    let request_commits = ids
        .iter()
        .filter(|id| layout.partition_of_id(id) != home)
        .count() as u64;
    let creates = (ROUNDS * CONCURRENT) as f64;
    let attempts = (commits - request_commits) as f64 / creates;
    eprintln!("bucket commit attempts per create at {CONCURRENT} concurrent: {attempts:.3}");
    assert!(attempts <= 1.3, "{attempts} attempts per create");
}

/// Two engines over one store, each with its own turns: the bucket is
/// still never spent twice, whatever the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_shared_by_two_servers_never_spends_a_token_twice() {
    let server = RedisServer::start();
    let harness = Harness::redis(&server.url(), "tokens");
    let mut document = rules_document();
    document["rateLimit"] = json!({ "requests": 1, "perSeconds": 3600, "burst": 20 });
    let rules = Rules::parse(&document).unwrap();
    let mut engines: Vec<Arc<Engine>> = Vec::new();
    for _ in 0..2 {
        engines.push(Arc::new(
            harness
                .try_engine(rules.clone(), StorageOptions::default(), quiet_settings())
                .await
                .unwrap(),
        ));
    }
    let calls: Vec<_> = (0..40)
        .map(|n| {
            let engine = engines[n % 2].clone();
            tokio::spawn(async move {
                engine
                    .create(&change("iam", &format!("t-{n}")), &alice(), None)
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut created = 0;
    for call in calls {
        created += usize::from(call.await.unwrap());
    }
    assert_eq!(created, 20, "exactly the burst");
}
