//! The engine suite: the same scenarios over every cache backend (memory,
//! Redis, Redis Cluster), each through the wasmtime component.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use signoff_core::{Error, ErrorCode, Principal, Rules, Status, Timestamp};
use signoff_host::cache::{CacheBackend, RedisOptions};
use signoff_host::engine::{Engine, EngineOptions, EngineSettings, StorageOptions};

/// Where the engines of one scenario keep their data.
#[derive(Debug, Clone)]
pub struct Harness {
    /// `None` for the in-memory cache.
    pub redis_url: Option<String>,
    /// The key prefix, unique per scenario so scenarios may share a server.
    pub prefix: String,
}

/// The rules of the suite: `docs` changes need nothing, `brief` ones expire
/// after a second, `crowd` ones need 64 approvals, others two stages.
pub fn rules_document() -> Value {
    json!({
        "levels": [
            { "name": "auto", "ttlSeconds": 3600, "stages": [] },
            { "name": "brief", "ttlSeconds": 1, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
            ]},
            { "name": "standard", "ttlSeconds": 3600, "stages": [
                { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] },
                { "name": "security", "requiredApprovals": 1, "eligibleRoles": ["security"] }
            ]},
            { "name": "crowd", "ttlSeconds": 3600, "stages": [
                { "name": "all", "requiredApprovals": 64, "eligibleRoles": [] }
            ]}
        ],
        "defaultLevel": "standard",
        "rules": [
            { "name": "docs", "when": { "policyTypes": ["docs"] }, "level": "auto" },
            { "name": "brief", "when": { "policyTypes": ["brief"] }, "level": "brief" },
            { "name": "crowd", "when": { "policyTypes": ["crowd"] }, "level": "crowd" }
        ]
    })
}

/// A valid change of `policy_type`.
pub fn change(policy_type: &str, title: &str) -> Value {
    json!({
        "policyId": format!("{policy_type}/{title}"),
        "policyType": policy_type,
        "changeKind": "update",
        "title": title,
        "justification": "Needed for the quarterly access review."
    })
}

pub fn alice() -> Principal {
    Principal::new("alice", &["engineer"])
}

pub fn bob() -> Principal {
    Principal::new("bob", &["engineer"])
}

pub fn dave() -> Principal {
    Principal::new("dave", &["security"])
}

/// The settings of the suite's engines: the wall clock shifted by `offset`
/// milliseconds, so scenarios can move time forward.
pub fn settings_with_offset(offset: Arc<AtomicI64>) -> EngineSettings {
    EngineSettings {
        clock: Arc::new(move || {
            Timestamp::from_millis(
                chrono::Utc::now().timestamp_millis() + offset.load(Ordering::SeqCst),
            )
        }),
        rules_refresh: Duration::from_millis(100),
        ..EngineSettings::default()
    }
}

impl Harness {
    /// A harness over the in-memory cache.
    pub fn memory() -> Self {
        Self {
            redis_url: None,
            prefix: "signoff".into(),
        }
    }

    /// A harness over Redis at `url`, with its own key prefix.
    pub fn redis(url: &str, scenario: &str) -> Self {
        Self {
            redis_url: Some(url.to_owned()),
            prefix: format!("signoff-{scenario}"),
        }
    }

    fn options(&self) -> EngineOptions {
        EngineOptions {
            redis_url: self.redis_url.clone(),
            key_prefix: self.prefix.clone(),
            rules: Rules::parse(&rules_document()).expect("valid rules"),
            storage: StorageOptions::default(),
        }
    }

    /// An engine with the default settings.
    pub async fn engine(&self) -> Engine {
        self.engine_with(EngineSettings::default()).await
    }

    /// An engine over `rules` and `storage`, or why it would not start.
    pub async fn try_engine(
        &self,
        rules: Rules,
        storage: StorageOptions,
        settings: EngineSettings,
    ) -> anyhow::Result<Engine> {
        let options = EngineOptions {
            rules,
            storage,
            ..self.options()
        };
        Engine::start_with(options, settings).await
    }

    /// An engine with `settings`.
    pub async fn engine_with(&self, settings: EngineSettings) -> Engine {
        Engine::start_with(self.options(), settings)
            .await
            .expect("the engine starts")
    }

    /// Moves the version of `key` behind the engine's back, from another
    /// thread and runtime with its own connection (the memory cache is
    /// shared instead), and waits until it is done.
    pub fn bump_version(&self, engine_cache: &CacheBackend, key: &str) {
        let backend = match &self.redis_url {
            None => engine_cache.clone(),
            Some(_) => CacheBackend::Memory(signoff_core::MemoryCache::new()),
        };
        let harness = self.clone();
        let key = key.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let backend = match &harness.redis_url {
                    None => backend,
                    Some(url) => CacheBackend::redis(url, &harness.prefix, RedisOptions::default())
                        .expect("redis backend"),
                };
                let entry = backend.get(&key).await.expect("get").expect("present");
                let outcome = backend
                    .commit(signoff_core::Batch {
                        checks: vec![signoff_core::Check {
                            key: key.clone(),
                            version: Some(entry.version),
                        }],
                        puts: vec![signoff_core::Put {
                            key: key.clone(),
                            value: entry.value,
                            ttl_ms: None,
                        }],
                        ..signoff_core::Batch::default()
                    })
                    .await
                    .expect("commit");
                assert_eq!(outcome, signoff_core::CommitOutcome::Committed);
            });
        })
        .join()
        .expect("the side writer finished");
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, signoff_core::Error>) -> ErrorCode {
    result.expect_err("the call should fail").code()
}

/// Create, every lifecycle action and its error codes, comments, listing by
/// status, stats, preview, idempotency, expiry and rules replacement.
pub async fn full_lifecycle(harness: &Harness) {
    let offset = Arc::new(AtomicI64::new(0));
    let engine = harness
        .engine_with(settings_with_offset(offset.clone()))
        .await;
    assert!(engine.ready().await);

    let preview = engine.preview(&change("iam", "p")).await.expect("preview");
    assert!(preview.valid);
    assert_eq!(preview.level.as_deref(), Some("standard"));
    let invalid = engine
        .preview(&json!({ "policyType": "iam", "extra": 1 }))
        .await
        .expect("preview");
    assert!(!invalid.valid && invalid.level.is_none());
    assert!(invalid.errors.iter().any(|item| item.path == "extra"));

    let created = engine
        .create(&change("iam", "standard"), &alice(), None)
        .await
        .expect("create");
    assert!(!created.replayed);
    let request = created.request;
    let id = request.id.to_string();
    assert_eq!(
        (request.status, request.stage.as_deref(), request.version),
        (Status::Pending, Some("review"), 1)
    );

    assert_eq!(
        code(engine.approve(&id, &alice(), None).await),
        ErrorCode::SelfApproval
    );
    let carol = Principal::new("carol", &["sales"]);
    assert_eq!(
        code(engine.approve(&id, &carol, None).await),
        ErrorCode::NotEligible
    );
    let approved = engine
        .approve(&id, &bob(), Some(&json!({ "comment": "looks right" })))
        .await
        .expect("bob approves");
    assert_eq!(approved.stage.as_deref(), Some("security"));
    assert_eq!(
        code(engine.approve(&id, &bob(), None).await),
        ErrorCode::AlreadyApproved
    );
    assert_eq!(
        code(
            engine
                .approve(&id, &dave(), Some(&json!({ "bogus": 1 })))
                .await
        ),
        ErrorCode::InvalidRequest
    );
    let done = engine
        .approve(&id, &dave(), None)
        .await
        .expect("dave approves");
    assert_eq!(
        (done.status, done.stage.as_deref()),
        (Status::Approved, None)
    );
    assert_eq!(done.approvals.len(), 2);
    assert_eq!(
        code(engine.cancel(&id, &alice(), None).await),
        ErrorCode::NotPending
    );
    let commented = engine
        .comment(&id, &carol, Some(&json!({ "text": "for the record" })))
        .await
        .expect("comment");
    assert_eq!(commented.version, done.version + 1);
    assert_eq!(commented.updated_at, done.updated_at);
    assert_eq!(engine.get(&id).await.expect("get"), Some(commented.clone()));

    let rejected = engine
        .create(&change("iam", "rejected"), &alice(), None)
        .await
        .expect("create")
        .request;
    let rejected_id = rejected.id.to_string();
    assert_eq!(
        code(engine.reject(&rejected_id, &bob(), None).await),
        ErrorCode::InvalidRequest
    );
    let rejected = engine
        .reject(
            &rejected_id,
            &bob(),
            Some(&json!({ "reason": "too broad" })),
        )
        .await
        .expect("reject");
    assert_eq!(rejected.status, Status::Rejected);
    assert_eq!(
        rejected.rejection.as_ref().map(|r| r.reason.as_str()),
        Some("too broad")
    );

    let cancelled = engine
        .create(&change("iam", "cancelled"), &alice(), None)
        .await
        .expect("create")
        .request;
    let cancelled_id = cancelled.id.to_string();
    assert_eq!(
        code(engine.cancel(&cancelled_id, &bob(), None).await),
        ErrorCode::Forbidden
    );
    let cancelled = engine
        .cancel(&cancelled_id, &alice(), None)
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, Status::Cancelled);

    let auto = engine
        .create(&change("docs", "auto"), &alice(), None)
        .await
        .expect("create")
        .request;
    assert_eq!(auto.status, Status::Approved);

    // Idempotency: the same body replays, another one conflicts.
    let first = engine
        .create(&change("iam", "idem"), &alice(), Some("key-1"))
        .await
        .expect("create");
    let replay = engine
        .create(&change("iam", "idem"), &alice(), Some("key-1"))
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.request.id, first.request.id);
    assert_eq!(
        code(
            engine
                .create(&change("iam", "other"), &alice(), Some("key-1"))
                .await
        ),
        ErrorCode::Conflict
    );

    assert_eq!(
        engine
            .get("00000000-0000-4000-8000-00000000dead")
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        code(engine.approve("nope", &bob(), None).await),
        ErrorCode::NotFound
    );

    let approved_page = engine
        .list(&json!({ "status": "approved" }))
        .await
        .expect("list");
    let approved_ids: Vec<String> = approved_page
        .items
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    // Most recently updated first, ties (same millisecond) by id ascending.
    let updated_at = |wanted: &str| {
        approved_page
            .items
            .iter()
            .find(|r| r.id.to_string() == wanted)
            .map(|r| r.updated_at)
    };
    let mut expected = vec![auto.id.to_string(), id.clone()];
    expected.sort_by(|a, b| updated_at(b).cmp(&updated_at(a)).then_with(|| a.cmp(b)));
    assert_eq!(approved_ids, expected);
    let pending = engine.list(&json!({})).await.expect("list");
    assert_eq!(pending.items.len(), 1);
    assert_eq!(pending.items[0].id, first.request.id);
    assert_eq!(
        code(engine.list(&json!({ "limit": 0 })).await),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(engine.list(&json!({ "cursor": "garbage" })).await),
        ErrorCode::InvalidRequest
    );

    let stats = engine.stats().await.expect("stats");
    assert_eq!(stats.pending, 1);
    assert_eq!(
        stats.oldest_pending_created_at,
        Some(first.request.created_at)
    );

    // Expiry: a brief request expires at its deadline, by `system`.
    let brief = engine
        .create(&change("brief", "soon"), &alice(), None)
        .await
        .expect("create")
        .request;
    offset.store(5_000, Ordering::SeqCst);
    let report = engine.expire_due(100).await.expect("expire");
    assert_eq!(report.ids, [brief.id]);
    let expired = engine
        .get(&brief.id.to_string())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(expired.status, Status::Expired);
    assert_eq!(expired.updated_at, brief.expires_at);
    assert_eq!(
        expired.history.last().map(|entry| entry.actor.as_str()),
        Some("system")
    );
    assert_eq!(
        code(engine.approve(&brief.id.to_string(), &bob(), None).await),
        ErrorCode::Expired
    );
    assert_eq!(engine.expire_due(100).await.expect("expire").expired, 0);

    // Rules: a wrong If-Match, an invalid document, then a replacement that
    // a second server adopts.
    let (document, digest) = engine.rules().await;
    assert_eq!(document["defaultLevel"], "standard");
    let admin = Principal::new("root", &["admin"]);
    let quoted = |digest: &str| vec![format!("\"{digest}\"")];
    assert_eq!(
        engine
            .replace_rules(&document, &admin, Some(&quoted("not-the-digest")))
            .await,
        Err(Error::PreconditionFailed {
            current: digest.clone()
        })
    );
    assert!(matches!(
        engine.replace_rules(&json!({ "levels": [] }), &admin, Some(&quoted(&digest))).await,
        Err(Error::InvalidRequest { details, .. }) if !details.is_empty()
    ));
    assert_eq!(
        code(engine.replace_rules(&document, &bob(), None).await),
        ErrorCode::Forbidden
    );
    let other = harness
        .engine_with(settings_with_offset(offset.clone()))
        .await;
    let mut stricter = rules_document();
    stricter["defaultLevel"] = json!("crowd");
    let new_digest = engine
        .replace_rules(&stricter, &admin, Some(&quoted(&digest)))
        .await
        .expect("replace");
    assert_ne!(new_digest, digest);
    assert_eq!(engine.rules().await.1, new_digest);
    let created = engine
        .create(&change("iam", "after"), &alice(), None)
        .await
        .expect("create")
        .request;
    assert_eq!(
        (created.level.as_str(), created.rules_digest.as_str()),
        ("crowd", new_digest.as_str())
    );
    if harness.redis_url.is_some() {
        let mut converged = false;
        for _ in 0..50 {
            if other.rules().await.1 == new_digest {
                converged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(converged, "a second server adopts the new rules");
        // A server started with the old rules would undo the replacement:
        // it refuses to start, and names both digests.
        let refused = harness
            .try_engine(
                Rules::parse(&rules_document()).expect("valid rules"),
                StorageOptions::default(),
                EngineSettings::default(),
            )
            .await
            .expect_err("a server with other rules than the store's refuses to start");
        let reason = refused.to_string();
        assert!(
            reason.contains(&new_digest) && reason.contains(&digest),
            "{reason}"
        );
        // Started with the rules in force, it starts.
        let started = harness
            .try_engine(
                Rules::parse(&stricter).expect("valid rules"),
                StorageOptions::default(),
                EngineSettings::default(),
            )
            .await
            .expect("a server with the rules in force starts");
        assert_eq!(started.rules().await.1, new_digest);
    }
}

/// A traversal in pages of 7 while requests are created and cancelled
/// between pages: no item twice, every item that stayed pending throughout
/// returned, in listing order.
pub async fn listing_with_concurrent_changes(harness: &Harness) {
    let engine = harness.engine().await;
    let mut initial = Vec::new();
    for n in 0..30 {
        let priority = ["low", "normal", "high", "urgent"][n % 4];
        let mut body = change("iam", &format!("initial-{n}"));
        body["priority"] = json!(priority);
        let request = engine
            .create(&body, &alice(), None)
            .await
            .expect("create")
            .request;
        initial.push(request.id);
    }
    let mut seen = Vec::new();
    let mut cancelled = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = json!({ "limit": 7, "policyType": "iam" });
        if let Some(cursor) = &cursor {
            query["cursor"] = json!(cursor);
        }
        let page = engine.list(&query).await.expect("list");
        pages += 1;
        assert!(page.items.len() <= 7);
        for item in &page.items {
            assert_eq!(item.status, Status::Pending);
            seen.push(item.clone());
        }
        // Between pages: two new requests, and two cancellations, one of
        // an item not returned yet and one already returned.
        for extra in 0..2 {
            engine
                .create(
                    &change("iam", &format!("late-{pages}-{extra}")),
                    &alice(),
                    None,
                )
                .await
                .expect("create");
        }
        let unseen = initial
            .iter()
            .find(|id| !cancelled.contains(*id) && !seen.iter().any(|item| item.id == **id));
        let returned = seen.first().map(|item| item.id);
        for id in unseen.copied().into_iter().chain(returned) {
            if cancelled.insert(id) {
                engine
                    .cancel(&id.to_string(), &alice(), None)
                    .await
                    .expect("cancel");
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 100, "the traversal ends");
    }
    let mut ids = HashSet::new();
    for item in &seen {
        assert!(ids.insert(item.id), "{} returned twice", item.id);
    }
    for id in &initial {
        if !cancelled.contains(id) {
            assert!(ids.contains(id), "{id} stayed pending but was not returned");
        }
    }
    let keys: Vec<String> = seen
        .iter()
        .map(signoff_core::keys::listing_sort_key)
        .collect();
    let mut positions: Vec<(String, String)> = keys
        .iter()
        .cloned()
        .zip(seen.iter().map(|item| item.id.to_string()))
        .collect();
    let returned_order = positions.clone();
    positions.sort();
    assert_eq!(returned_order, positions, "items come in listing order");
}

/// 64 approvers at once on one request that needs 64 approvals: every
/// approval counted exactly once.
pub async fn concurrent_approvals(harness: &Harness) {
    let engine = Arc::new(harness.engine().await);
    let request = engine
        .create(&change("crowd", "everyone"), &alice(), None)
        .await
        .expect("create")
        .request;
    let id = request.id.to_string();
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let engine = Arc::clone(&engine);
            let id = id.clone();
            tokio::spawn(async move {
                engine
                    .approve(&id, &Principal::new(format!("approver-{n}"), &[]), None)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("the task ran")
            .expect("the approval counted");
    }
    let done = engine.get(&id).await.expect("get").expect("present");
    assert_eq!(done.status, Status::Approved);
    assert_eq!(done.approvals.len(), 64);
    let approvers: HashSet<&str> = done.approvals.iter().map(|a| a.by.as_str()).collect();
    assert_eq!(approvers.len(), 64);
    assert_eq!(done.version, 65);
    assert_eq!(engine.stats().await.expect("stats").pending, 0);
}

/// A commit that loses to a concurrent write is retried against the fresh
/// state: another writer moves the request's version between the sweep's
/// read and its write, and the sweep still expires the request, on its
/// second attempt.
pub async fn conflict_retried(harness: &Harness) {
    let offset = Arc::new(AtomicI64::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicUsize::new(0));
    let target: Arc<OnceLock<(CacheBackend, String)>> = Arc::new(OnceLock::new());
    let fired = Arc::new(Mutex::new(false));
    let clock = {
        let (offset, calls, armed, target, fired) = (
            offset.clone(),
            calls.clone(),
            armed.clone(),
            target.clone(),
            fired.clone(),
        );
        let harness = harness.clone();
        Arc::new(move || {
            let now = chrono::Utc::now().timestamp_millis() + offset.load(Ordering::SeqCst);
            if armed.load(Ordering::SeqCst) == 1 {
                // The sweep's first clock read sets its horizon; the second
                // comes between its read of the request and its write.
                if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                    let (cache, key) = target.get().expect("target set");
                    harness.bump_version(cache, key);
                    *fired.lock().expect("lock") = true;
                }
            }
            Timestamp::from_millis(now)
        })
    };
    let settings = EngineSettings {
        clock,
        ..settings_with_offset(offset.clone())
    };
    let engine = harness.engine_with(settings).await;
    let request = engine
        .create(&change("brief", "raced"), &alice(), None)
        .await
        .expect("create")
        .request;
    let key = signoff_core::keys::Layout::default().request(&request.id);
    target
        .set((engine.cache().clone(), key.clone()))
        .expect("set once");
    offset.store(5_000, Ordering::SeqCst);
    armed.store(1, Ordering::SeqCst);
    let report = engine.expire_due(10).await.expect("expire");
    armed.store(0, Ordering::SeqCst);
    assert!(
        *fired.lock().expect("lock"),
        "the concurrent write happened"
    );
    assert!(
        calls.load(Ordering::SeqCst) >= 3,
        "the sweep read the clock again to retry"
    );
    assert_eq!(report.ids, [request.id]);
    let expired = engine
        .get(&request.id.to_string())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(expired.status, Status::Expired);

    // And at the cache itself: a stale check writes nothing.
    let stored = engine
        .cache()
        .get(&key)
        .await
        .expect("get")
        .expect("present");
    let stale = signoff_core::Batch {
        checks: vec![signoff_core::Check {
            key: key.clone(),
            version: Some(stored.version + 1_000_000),
        }],
        puts: vec![signoff_core::Put {
            key: key.clone(),
            value: b"overwritten".to_vec(),
            ttl_ms: None,
        }],
        // A key of the same partition: a commit never spans partitions.
        deletes: vec![format!(
            "p{}:nothing",
            signoff_core::keys::split_partition(&key)
                .expect("a partitioned key")
                .0
        )],
        ..signoff_core::Batch::default()
    };
    assert_eq!(
        engine.cache().commit(stale).await.expect("commit"),
        signoff_core::CommitOutcome::Conflict
    );
    assert_eq!(engine.cache().get(&key).await.expect("get"), Some(stored));
}

/// What a stopped server takes down.
#[derive(Debug, Clone, Copy)]
pub enum Outage {
    /// The only Redis server: nothing can be read or written.
    Whole,
    /// One master of a cluster: the partitions it holds, and every listing.
    OneMaster,
}

/// Commits, then `stop` the store: what it held answers `unavailable` (for a
/// whole outage every call does, and `ready` is false) while it is down; then
/// `restart` it: the same engine reconnects by itself, and every committed
/// request is there.
pub async fn restart_keeps_commits(
    harness: &Harness,
    outage: Outage,
    stop: impl FnOnce(),
    restart: impl FnOnce(),
) {
    let engine = harness.engine().await;
    let mut committed = Vec::new();
    for n in 0..10 {
        let request = engine
            .create(&change("iam", &format!("before-{n}")), &alice(), None)
            .await
            .expect("create")
            .request;
        committed.push(request.id);
    }
    let approved = engine
        .approve(&committed[0].to_string(), &bob(), None)
        .await
        .expect("approve");
    assert_eq!(approved.stage.as_deref(), Some("security"));

    stop();
    // A listing merges every partition, so it needs every master.
    assert_eq!(code(engine.list(&json!({})).await), ErrorCode::Unavailable);
    match outage {
        Outage::Whole => {
            assert!(!engine.ready().await);
            let down = engine.get(&committed[1].to_string()).await;
            assert_eq!(code(down), ErrorCode::Unavailable);
            let down = engine
                .create(&change("iam", "while-down"), &alice(), None)
                .await;
            assert_eq!(code(down), ErrorCode::Unavailable);
            assert_eq!(code(engine.stats().await), ErrorCode::Unavailable);
        }
        Outage::OneMaster => {
            // The requests on the stopped master are unavailable; the others
            // may still be read until the cluster declares itself down. No
            // read answers anything else, and nothing is answered wrongly.
            let mut unavailable = 0;
            for id in &committed {
                match engine.get(&id.to_string()).await {
                    Ok(found) => {
                        let found = found.expect("a committed request is never missing");
                        assert_eq!(found.id, *id);
                    }
                    Err(error) => {
                        assert_eq!(error.code(), ErrorCode::Unavailable, "{error}");
                        unavailable += 1;
                    }
                }
            }
            assert!(unavailable > 0, "the stopped master held some requests");
            // A create lands in one partition: it is either refused as
            // unavailable or committed, and then it must survive too.
            match engine
                .create(&change("iam", "while-down"), &alice(), None)
                .await
            {
                Ok(created) => committed.push(created.request.id),
                Err(error) => assert_eq!(error.code(), ErrorCode::Unavailable, "{error}"),
            }
        }
    }

    restart();
    let started = std::time::Instant::now();
    while !engine.ready().await || engine.get(&committed[1].to_string()).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the engine reconnects by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &committed {
        let request = engine
            .get(&id.to_string())
            .await
            .expect("get after restart")
            .expect("the request survived");
        assert_eq!(request.status, Status::Pending);
    }
    let first = engine
        .get(&committed[0].to_string())
        .await
        .expect("get")
        .expect("present");
    assert_eq!(first.approvals.len(), 1);
    let page = engine.list(&json!({ "limit": 500 })).await.expect("list");
    assert_eq!(page.items.len(), committed.len());
    engine
        .create(&change("iam", "after"), &alice(), None)
        .await
        .expect("create after restart");
}

/// A reload from the cache never puts back rules older than a replacement
/// made while it ran: with a reload every millisecond, each of 100
/// replacements stays in force, read again and again, until the next one.
pub async fn a_reload_never_reverts_a_replacement(harness: &Harness) {
    let settings = EngineSettings {
        rules_refresh: Duration::from_millis(1),
        ..EngineSettings::default()
    };
    let engine = harness.engine_with(settings).await;
    let admin = Principal::new("root", &["admin"]);
    for n in 0..100_u64 {
        let mut document = rules_document();
        document["levels"][0]["ttlSeconds"] = json!(3600 + n);
        let digest = engine
            .replace_rules(&document, &admin, None)
            .await
            .expect("replace");
        for _ in 0..5 {
            assert_eq!(
                engine.rules().await.1,
                digest,
                "replacement {n} was reverted by a reload"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
}
