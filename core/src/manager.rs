//! The manager: the one component that talks to the cache.
//!
//! It runs the pure decisions of the other modules against a [`Cache`]: reads,
//! decides, and writes with compare-and-swap on the version it read, retrying
//! against the fresh state when another writer got there first. Time and ids
//! come from the injected [`Clock`] and [`IdSource`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::cache::{Batch, Cache, Check, CommitOutcome, Entry, IndexChange, IndexEntry, Put};
use crate::change::PolicyChange;
use crate::error::Error;
use crate::input::{ListQuery, parse_idempotency_key};
use crate::keys;
use crate::listing::{self, Page};
use crate::ratelimit::{self, Bucket, Decision};
use crate::request::{Action, ApprovalRequest, Principal, Status};
use crate::rules::{Rules, canonical_json};
use crate::time::Timestamp;

/// How many times a write is retried against fresh state before giving up
/// with `conflict`. Every round lets at least one writer through, so this
/// bounds the contention a single request tolerates.
pub const MAX_ATTEMPTS: usize = 256;

/// At most this many index entries that no longer belong to the listing
/// (requests found due and expired on the way) are stepped over in one page,
/// so that a page is bounded work even when the sweeper is far behind.
const MAX_SKIPPED_PER_PAGE: usize = 256;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 3600 * 1000;

/// The source of the current time.
pub trait Clock {
    /// Now.
    fn now(&self) -> Timestamp;
}

impl<F: Fn() -> Timestamp> Clock for F {
    fn now(&self) -> Timestamp {
        self()
    }
}

/// The source of new request ids.
pub trait IdSource {
    /// A fresh, unique id.
    fn new_id(&self) -> Uuid;
}

impl<F: Fn() -> Uuid> IdSource for F {
    fn new_id(&self) -> Uuid {
        self()
    }
}

/// The result of a create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The stored request (the first one, on an idempotent replay).
    pub request: ApprovalRequest,
    /// Whether this was a replay of an earlier create with the same key.
    pub replayed: bool,
}

/// The result of an expiry sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ExpireReport {
    /// How many requests this sweep expired.
    pub expired: u32,
    /// Their ids.
    #[cfg_attr(feature = "tsify", tsify(type = "string[]"))]
    pub ids: Vec<Uuid>,
}

#[derive(Serialize, Deserialize)]
struct IdempotencyRecord {
    body: String,
    request: ApprovalRequest,
}

/// Validation and level of a change, without storing anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(missing_as_null))]
pub struct Preview {
    /// Whether the change is valid.
    pub valid: bool,
    /// Every problem, in order.
    pub errors: Vec<crate::validation::Violation>,
    /// The level it would need; `null` when invalid.
    pub level: Option<String>,
    /// Why; `null` when invalid.
    pub explanation: Option<crate::rules::LevelExplanation>,
}

/// Validates `input` against `rules` and determines its level.
pub fn preview(input: &Value, rules: &Rules) -> Preview {
    match PolicyChange::parse(input, Some(rules)) {
        Ok(change) => {
            let determination = rules.determine(&change);
            Preview {
                valid: true,
                errors: Vec::new(),
                level: rules
                    .levels
                    .get(determination.level_index)
                    .map(|level| level.name.clone()),
                explanation: Some(determination.explanation),
            }
        }
        Err(errors) => Preview {
            valid: false,
            errors,
            level: None,
            explanation: None,
        },
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|error| Error::Internal(error.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(entry: &Entry) -> Result<T, Error> {
    serde_json::from_slice(&entry.value).map_err(|error| Error::Internal(error.to_string()))
}

fn too_much_contention() -> Error {
    Error::Conflict(format!(
        "gave up after {MAX_ATTEMPTS} conflicting writes; retry the request"
    ))
}

/// The approval engine over a cache, a clock and an id source.
pub struct Manager<C, K, I> {
    cache: C,
    clock: K,
    ids: I,
    rules: Rules,
    rules_digest: String,
}

impl<C: Cache, K: Clock, I: IdSource> Manager<C, K, I> {
    /// A manager deciding with `rules`.
    pub fn new(cache: C, clock: K, ids: I, rules: Rules) -> Self {
        let rules_digest = rules.digest();
        Self {
            cache,
            clock,
            ids,
            rules,
            rules_digest,
        }
    }

    /// A manager deciding with `rules` whose digest the caller already knows
    /// (it computed [`Rules::digest`] of the same rules earlier, say when it
    /// validated them), so the digest is not computed again. `digest` must be
    /// that digest: the manager records it in every request it creates.
    pub fn with_digest(cache: C, clock: K, ids: I, rules: Rules, digest: String) -> Self {
        Self {
            cache,
            clock,
            ids,
            rules,
            rules_digest: digest,
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The digest of the rules in force.
    pub fn rules_digest(&self) -> &str {
        &self.rules_digest
    }

    /// Replaces the rules; requests already stored keep the stages they were
    /// decided with.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules_digest = rules.digest();
        self.rules = rules;
    }

    /// The cache.
    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// The time on the manager's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Validates, rate-limits, decides and stores a change filed by
    /// `principal`. With an idempotency key, a repeat of the same change
    /// returns the first request; another change under the same key is a
    /// `conflict`.
    pub async fn create(
        &self,
        input: &Value,
        principal: &Principal,
        idempotency_key: Option<&str>,
    ) -> Result<Created, Error> {
        let change = PolicyChange::parse(input, Some(&self.rules))
            .map_err(|details| Error::invalid("the change is invalid", details))?;
        if let Some(key) = idempotency_key {
            parse_idempotency_key(key)?;
        }
        let body = canonical_json(input);
        let id = self.ids.new_id();
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let mut batch = Batch::default();
            let idempotency = match idempotency_key {
                Some(key) => {
                    let record_key = keys::idempotency(&principal.id, key);
                    if let Some(entry) = self.cache.get(&record_key).await? {
                        let record: IdempotencyRecord = decode(&entry)?;
                        if record.body == body {
                            return Ok(Created {
                                request: record.request,
                                replayed: true,
                            });
                        }
                        return Err(Error::Conflict(format!(
                            "idempotency key `{key}` was already used with another change"
                        )));
                    }
                    batch.checks.push(Check {
                        key: record_key.clone(),
                        version: None,
                    });
                    Some(record_key)
                }
                None => None,
            };
            if let Some(limit) = &self.rules.rate_limit {
                let bucket_key = keys::rate_bucket(&principal.id);
                let stored = self.cache.get(&bucket_key).await?;
                let bucket = stored.as_ref().map(decode::<Bucket>).transpose()?;
                match ratelimit::take(limit, bucket, now) {
                    Decision::Allowed(next) => {
                        batch.checks.push(Check {
                            key: bucket_key.clone(),
                            version: stored.map(|entry| entry.version),
                        });
                        batch.puts.push(Put {
                            key: bucket_key,
                            value: encode(&next)?,
                            ttl_ms: Some(ratelimit::bucket_ttl_ms(limit)),
                        });
                    }
                    Decision::Limited {
                        retry_after_seconds,
                    } => {
                        return Err(Error::RateLimited {
                            retry_after_seconds,
                        });
                    }
                }
            }
            let request = ApprovalRequest::create(
                id,
                change.clone(),
                principal,
                &self.rules,
                &self.rules_digest,
                now,
            );
            let request_key = keys::request(&request.id);
            batch.checks.push(Check {
                key: request_key.clone(),
                version: None,
            });
            batch.puts.push(Put {
                key: request_key,
                value: encode(&request)?,
                ttl_ms: None,
            });
            if let Some(record_key) = idempotency {
                let record = IdempotencyRecord {
                    body: body.clone(),
                    request: request.clone(),
                };
                batch.puts.push(Put {
                    key: record_key,
                    value: encode(&record)?,
                    ttl_ms: Some(IDEMPOTENCY_TTL_MS),
                });
            }
            batch.index_adds = to_changes(keys::index_entries(&request));
            if self.cache.commit(batch).await? == CommitOutcome::Committed {
                return Ok(Created {
                    request,
                    replayed: false,
                });
            }
        }
        Err(too_much_contention())
    }

    /// The request with `id`, brought up to date with the clock (a due request
    /// is expired and stored so). `None` when unknown.
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, Error> {
        match self.transact(id, |_, _| Ok(None)).await {
            Ok(request) => Ok(Some(request)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Counts an approval by `principal`.
    pub async fn approve(
        &self,
        id: &str,
        principal: &Principal,
        comment: Option<String>,
    ) -> Result<ApprovalRequest, Error> {
        self.act(id, principal, Action::Approve { comment }).await
    }

    /// Rejects the request.
    pub async fn reject(
        &self,
        id: &str,
        principal: &Principal,
        reason: String,
    ) -> Result<ApprovalRequest, Error> {
        self.act(id, principal, Action::Reject { reason }).await
    }

    /// Cancels the request (requester only).
    pub async fn cancel(&self, id: &str, principal: &Principal) -> Result<ApprovalRequest, Error> {
        self.act(id, principal, Action::Cancel).await
    }

    /// Appends a comment.
    pub async fn comment(
        &self,
        id: &str,
        principal: &Principal,
        text: String,
    ) -> Result<ApprovalRequest, Error> {
        self.act(id, principal, Action::Comment { text }).await
    }

    /// Applies a lifecycle action.
    pub async fn act(
        &self,
        id: &str,
        principal: &Principal,
        action: Action,
    ) -> Result<ApprovalRequest, Error> {
        self.transact(id, |request, now| {
            request.apply(&action, principal, now).map(Some)
        })
        .await
    }

    /// Loads the request, expires it if due, lets `decide` derive its next
    /// state (`None`: unchanged), and stores the result with compare-and-swap,
    /// retrying on conflict. An expiry found on the way is stored even when
    /// `decide` fails, and the failure is returned after.
    async fn transact(
        &self,
        id: &str,
        decide: impl Fn(&ApprovalRequest, Timestamp) -> Result<Option<ApprovalRequest>, Error>,
    ) -> Result<ApprovalRequest, Error> {
        let not_found = || Error::NotFound(id.to_owned());
        let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
        let key = keys::request(&uuid);
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let entry = self.cache.get(&key).await?.ok_or_else(not_found)?;
            let stored: ApprovalRequest = decode(&entry)?;
            let mut current = stored.clone();
            let expired = current.expire_if_due(now);
            let (next, failure, changed) = match decide(&current, now) {
                Ok(Some(next)) => (next, None, true),
                Ok(None) => (current, None, expired),
                Err(error) => (current, Some(error), expired),
            };
            if changed && !self.store(&stored, &next, entry.version).await? {
                continue;
            }
            return match failure {
                Some(error) => Err(error),
                None => Ok(next),
            };
        }
        Err(too_much_contention())
    }

    /// Writes `next` over `previous` if the stored version is still `version`,
    /// moving its index entries. Returns whether it was written.
    async fn store(
        &self,
        previous: &ApprovalRequest,
        next: &ApprovalRequest,
        version: u64,
    ) -> Result<bool, Error> {
        let key = keys::request(&next.id);
        let before = keys::index_entries(previous);
        let after = keys::index_entries(next);
        let batch = Batch {
            checks: vec![Check {
                key: key.clone(),
                version: Some(version),
            }],
            puts: vec![Put {
                key,
                value: encode(next)?,
                ttl_ms: None,
            }],
            deletes: Vec::new(),
            index_removes: to_changes(
                before
                    .iter()
                    .filter(|entry| !after.contains(entry))
                    .cloned()
                    .collect(),
            ),
            index_adds: to_changes(
                after
                    .iter()
                    .filter(|entry| !before.contains(entry))
                    .cloned()
                    .collect(),
            ),
        };
        Ok(self.cache.commit(batch).await? == CommitOutcome::Committed)
    }

    /// One page of requests per SPEC section 5: O(log N + limit) cache work.
    pub async fn list(&self, query: &ListQuery) -> Result<Page, Error> {
        let policy_type = query.policy_type.as_deref();
        let mut after = match &query.cursor {
            Some(cursor) => Some(listing::decode(cursor, query.status, policy_type)?),
            None => None,
        };
        if query.status == Status::Expired {
            // Let requests that are due appear in the expired listing at once.
            self.expire_due(query.limit).await?;
        }
        let index = match policy_type {
            Some(policy_type) => keys::status_type_index(query.status, policy_type),
            None => keys::status_index(query.status),
        };
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let mut items: Vec<ApprovalRequest> = Vec::new();
        let mut last_returned: Option<IndexEntry> = None;
        let mut more = false;
        let mut skipped = 0;
        'pages: loop {
            let want = limit - items.len() + 1;
            let entries = self
                .cache
                .range(
                    &index,
                    after.as_ref(),
                    u32::try_from(want).unwrap_or(u32::MAX),
                )
                .await?;
            let exhausted = entries.len() < want;
            for entry in entries {
                if items.len() == limit {
                    more = true;
                    break 'pages;
                }
                if let Some(request) = self.load_listed(&entry, query).await? {
                    items.push(request);
                    last_returned = Some(entry.clone());
                } else {
                    skipped += 1;
                }
                after = Some(entry);
                if skipped == MAX_SKIPPED_PER_PAGE {
                    // Many entries that left the list (say, due requests the
                    // sweeper has not reached): stop here so that a page stays
                    // O(limit) work, and go on from the last entry looked at.
                    // Skipped entries were not in the list, so resuming after
                    // them keeps the traversal's guarantees.
                    more = true;
                    last_returned = after.clone();
                    break 'pages;
                }
            }
            if exhausted {
                break;
            }
        }
        let next_cursor = match (more, last_returned) {
            (true, Some(last)) => Some(listing::encode(query.status, policy_type, &last)),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// The request behind an index entry, if it still belongs to the listing
    /// at that position once brought up to date with the clock.
    async fn load_listed(
        &self,
        entry: &IndexEntry,
        query: &ListQuery,
    ) -> Result<Option<ApprovalRequest>, Error> {
        let request = match self.get(&entry.member).await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(None),
            // Another writer kept winning; the request is changing, skip it.
            Err(Error::Conflict(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let belongs = request.status == query.status
            && query
                .policy_type
                .as_ref()
                .is_none_or(|policy_type| *policy_type == request.change.policy_type)
            && keys::listing_sort_key(&request) == entry.sort_key;
        Ok(belongs.then_some(request))
    }

    /// Expires up to `limit` pending requests whose `expiresAt` has passed,
    /// oldest deadline first. Safe to run from several hosts at once: each
    /// expiry is a compare-and-swap, and a request expired by another host is
    /// simply not counted.
    pub async fn expire_due(&self, limit: u32) -> Result<ExpireReport, Error> {
        let now = self.clock.now();
        let horizon = keys::fixed(u64::try_from(now.as_millis()).unwrap_or(0));
        let due = self.cache.range(keys::DUE_INDEX, None, limit).await?;
        let mut ids = Vec::new();
        for entry in due.iter().filter(|entry| entry.sort_key <= horizon) {
            let Ok(id) = Uuid::parse_str(&entry.member) else {
                continue;
            };
            let key = keys::request(&id);
            for _ in 0..MAX_ATTEMPTS {
                let Some(stored_entry) = self.cache.get(&key).await? else {
                    break;
                };
                let stored: ApprovalRequest = decode(&stored_entry)?;
                let mut next = stored.clone();
                if !next.expire_if_due(self.clock.now()) {
                    break;
                }
                if self.store(&stored, &next, stored_entry.version).await? {
                    ids.push(id);
                    break;
                }
            }
        }
        Ok(ExpireReport {
            expired: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            ids,
        })
    }

    /// The creation time of the oldest pending request, for alerting.
    pub async fn oldest_pending(&self) -> Result<Option<Timestamp>, Error> {
        let oldest = self.cache.range(keys::AGE_INDEX, None, 1).await?;
        Ok(oldest
            .first()
            .and_then(|entry| entry.sort_key.parse::<i64>().ok())
            .map(Timestamp::from_millis))
    }
}

fn to_changes(entries: Vec<(String, IndexEntry)>) -> Vec<IndexChange> {
    entries
        .into_iter()
        .map(|(index, entry)| IndexChange { index, entry })
        .collect()
}
