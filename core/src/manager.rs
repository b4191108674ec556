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
use crate::events::{self, Event, EventPage, Head};
use crate::input::{ListQuery, ReviewFilter, parse_idempotency_key};
use crate::keys;
use crate::keys::Layout;
use crate::listing::{self, Page, RawPage, View};
use crate::ratelimit::{self, Bucket, Decision};
use crate::request::{Action, ApprovalRequest, Principal, ReviewOutcome, Status};
use crate::rules::{Rules, Visibility, canonical_json};
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
    /// A fresh, unique id, or why none could be made: an id source given by
    /// a caller (a JavaScript function) may fail, and the create then fails
    /// with that error and stores nothing.
    fn new_id(&self) -> Result<Uuid, Error>;
}

impl<F: Fn() -> Uuid> IdSource for F {
    fn new_id(&self) -> Result<Uuid, Error> {
        Ok(self())
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
    /// Entries of the due indexes that no longer matched a pending request
    /// (the request is gone, or no longer pending, or due at another time),
    /// removed by this sweep.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stale_removed: u32,
    /// Stored requests this sweep could not decode, and stepped over.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub undecodable: u32,
    /// Pending requests whose escalation this sweep recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub escalated: u32,
    /// Entries of the event indexes past the event retention (their records
    /// have expired) that this sweep removed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_trimmed: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// A create in progress: what every attempt of it shares.
struct Filing<'a> {
    change: PolicyChange,
    principal: &'a Principal,
    id: Uuid,
    /// The change's canonical JSON, to compare a replay with.
    body: String,
    idempotency_key: Option<&'a str>,
    /// Whether the request and the requester's records share a partition.
    same_partition: bool,
    record_key: Option<String>,
    bucket_key: Option<(&'a crate::rules::RateLimit, String)>,
}

/// What a create reads of the requester's partition.
#[derive(Default)]
struct RequesterState {
    bucket: Option<Entry>,
    record: Option<IdempotencyRecord>,
    /// The event head, when the request shares the partition.
    head: Option<Entry>,
}

/// The end of one attempt of a create.
enum Attempt {
    Done(Box<Created>),
    /// A commit met a conflict (or a replay must be looked for): try again,
    /// reading the idempotency record when `read_record`.
    Again {
        read_record: bool,
    },
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "tsify", tsify(missing_as_null))]
pub struct Preview {
    /// Whether the change is valid.
    pub valid: bool,
    /// Every problem, in order.
    pub errors: Vec<crate::validation::Violation>,
    /// The level it would need; `null` when invalid.
    // Written as `null` rather than left out, so the field is always there.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub level: Option<String>,
    /// Why; `null` when invalid.
    #[cfg_attr(feature = "openapi", schema(required = true))]
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
    layout: Layout,
    event_retention_ms: u64,
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
            layout: Layout::default(),
            event_retention_ms: events::limits::DEFAULT_RETENTION_MS,
        }
    }

    /// Keeps events for `retention_ms` (at least; 7 days by default).
    #[must_use]
    pub fn with_event_retention(mut self, retention_ms: u64) -> Self {
        self.event_retention_ms = retention_ms.max(1);
        self
    }

    /// How long the events this manager appends are kept, in milliseconds.
    pub fn event_retention_ms(&self) -> u64 {
        self.event_retention_ms
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
            layout: Layout::default(),
            event_retention_ms: events::limits::DEFAULT_RETENTION_MS,
        }
    }

    /// The same manager over a store of another layout (its number of
    /// partitions); the default is [`keys::DEFAULT_PARTITIONS`].
    #[must_use]
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The layout of the store.
    pub fn layout(&self) -> Layout {
        self.layout
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

    /// Who may see a request, by the rules in force.
    pub fn visibility(&self) -> Visibility {
        self.rules.visibility.unwrap_or_default()
    }

    /// The time on the manager's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Validates, rate-limits, decides and stores a change filed by
    /// `principal`. With an idempotency key, a repeat of the same change
    /// returns the first request; another change under the same key is a
    /// `conflict`.
    ///
    /// The request lives in the partition of its id; the requester's bucket
    /// and idempotency record live in the requester's partition. When the
    /// two differ, the create is two commits, each inside one partition:
    /// first the requester's (the token taken and the idempotency record
    /// written, holding the request to be stored), then the request's (put
    /// if absent). A create cut off between them has spent a token and
    /// stored no request; a replay with its idempotency key finds the record
    /// and completes the request from it, so there is never a second request
    /// for one key.
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
        ApprovalRequest::check_filing(&change, principal, &self.rules)?;
        let id = self.ids.new_id()?;
        let layout = self.layout;
        let filing = Filing {
            change,
            principal,
            id,
            body: canonical_json(input),
            idempotency_key,
            same_partition: layout.partition_of_id(&id)
                == layout.partition_of_principal(&principal.id),
            record_key: idempotency_key.map(|key| layout.idempotency(&principal.id, key)),
            bucket_key: self
                .rules
                .rate_limit
                .as_ref()
                .map(|limit| (limit, layout.rate_bucket(&principal.id))),
        };
        // The record is read only once a commit found it there: a create
        // without a conflict reads nothing but the bucket.
        let mut read_record = false;
        for _ in 0..MAX_ATTEMPTS {
            match self.try_create(&filing, read_record).await? {
                Attempt::Done(created) => return Ok(*created),
                Attempt::Again { read_record: read } => read_record = read,
            }
        }
        Err(too_much_contention())
    }

    /// One attempt of [`Manager::create`]: reads the requester's bucket
    /// (and, with `read_record`, its idempotency record), then commits.
    async fn try_create(&self, filing: &Filing<'_>, read_record: bool) -> Result<Attempt, Error> {
        let now = self.clock.now();
        let RequesterState {
            bucket: bucket_entry,
            record,
            head,
        } = self.requester_state(filing, read_record).await?;
        if let Some(record) = record {
            return Ok(Attempt::Done(Box::new(self.replay(filing, record).await?)));
        }
        let mut requester_batch = Batch::default();
        if let Some((limit, key)) = &filing.bucket_key {
            let bucket = bucket_entry.as_ref().map(decode::<Bucket>).transpose()?;
            match ratelimit::take(limit, bucket, now) {
                Decision::Allowed(next) => {
                    requester_batch.checks.push(Check {
                        key: key.clone(),
                        version: bucket_entry.map(|entry| entry.version),
                    });
                    requester_batch.puts.push(Put {
                        key: key.clone(),
                        value: encode(&next)?,
                        ttl_ms: Some(ratelimit::bucket_ttl_ms(limit)),
                    });
                }
                // A replay answers even when the bucket is empty: look for
                // the record before refusing.
                Decision::Limited { .. } if filing.record_key.is_some() && !read_record => {
                    return Ok(Attempt::Again { read_record: true });
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
            filing.id,
            filing.change.clone(),
            filing.principal,
            &self.rules,
            &self.rules_digest,
            now,
        )?;
        if let Some(record_key) = &filing.record_key {
            let record = IdempotencyRecord {
                body: filing.body.clone(),
                request: request.clone(),
            };
            requester_batch.checks.push(Check {
                key: record_key.clone(),
                version: None,
            });
            requester_batch.puts.push(Put {
                key: record_key.clone(),
                value: encode(&record)?,
                ttl_ms: Some(IDEMPOTENCY_TTL_MS),
            });
        }
        self.commit_created(filing, requester_batch, request, head.as_ref())
            .await
    }

    /// The requester's bucket, with `read_record` its idempotency record,
    /// and when the request shares the requester's partition that
    /// partition's event head, in one batched read.
    async fn requester_state(
        &self,
        filing: &Filing<'_>,
        read_record: bool,
    ) -> Result<RequesterState, Error> {
        let record_key = filing.record_key.as_ref().filter(|_| read_record);
        let head_key = filing.same_partition.then(|| {
            self.layout
                .events_head(self.layout.partition_of_id(&filing.id))
        });
        let reads: Vec<String> = filing
            .bucket_key
            .iter()
            .map(|(_, key)| key.clone())
            .chain(record_key.cloned())
            .chain(head_key.clone())
            .collect();
        if reads.is_empty() {
            return Ok(RequesterState::default());
        }
        let mut found = self.cache.get_many(&reads, None).await?;
        found.resize(reads.len(), None);
        let mut found = found.into_iter();
        let mut next_if = |wanted: bool| if wanted { found.next().flatten() } else { None };
        let bucket = next_if(filing.bucket_key.is_some());
        let record = next_if(record_key.is_some())
            .map(|entry| decode::<IdempotencyRecord>(&entry))
            .transpose()?;
        let head = next_if(head_key.is_some());
        Ok(RequesterState {
            bucket,
            record,
            head,
        })
    }

    /// The answer to a create whose idempotency record exists: the first
    /// request (completed if its commit was cut off), or `conflict` when the
    /// key was used with another change.
    async fn replay(
        &self,
        filing: &Filing<'_>,
        record: IdempotencyRecord,
    ) -> Result<Created, Error> {
        if record.body != filing.body {
            return Err(Error::Conflict(format!(
                "idempotency key `{}` was already used with another change",
                filing.idempotency_key.unwrap_or_default()
            )));
        }
        self.complete(&record.request).await?;
        Ok(Created {
            request: record.request,
            replayed: true,
        })
    }

    /// Commits a new request with the requester's writes: in one commit when
    /// both live in one partition, else the requester's first.
    async fn commit_created(
        &self,
        filing: &Filing<'_>,
        mut requester_batch: Batch,
        request: ApprovalRequest,
        head: Option<&Entry>,
    ) -> Result<Attempt, Error> {
        let again = Attempt::Again {
            read_record: filing.record_key.is_some(),
        };
        let done = |request| {
            Attempt::Done(Box::new(Created {
                request,
                replayed: false,
            }))
        };
        if filing.same_partition {
            let mut request_batch = self.request_batch(&request, head)?;
            requester_batch.checks.append(&mut request_batch.checks);
            requester_batch.puts.append(&mut request_batch.puts);
            requester_batch.index_adds = std::mem::take(&mut request_batch.index_adds);
            return Ok(match self.cache.commit(requester_batch).await? {
                CommitOutcome::Committed => done(request),
                CommitOutcome::Conflict => again,
            });
        }
        if !requester_batch.puts.is_empty()
            && self.cache.commit(requester_batch).await? == CommitOutcome::Conflict
        {
            return Ok(again);
        }
        match self.commit_new_request(&request).await? {
            CommitOutcome::Committed => Ok(done(request)),
            // The id is taken: by this very request when a replay of its
            // idempotency key completed it first, or else by another.
            CommitOutcome::Conflict => match self.stored(&request.id).await? {
                Some(stored)
                    if stored.requested_by == request.requested_by
                        && stored.created_at == request.created_at
                        && stored.change == request.change =>
                {
                    Ok(done(request))
                }
                _ => Err(Error::Conflict(format!(
                    "the new request's id `{}` is already in use; retry",
                    filing.id
                ))),
            },
        }
    }

    /// The commit that stores a new request, if its id is still free, with
    /// its events after the partition's event `head` as read.
    fn request_batch(
        &self,
        request: &ApprovalRequest,
        head: Option<&Entry>,
    ) -> Result<Batch, Error> {
        let key = self.layout.request(&request.id);
        let mut batch = Batch {
            checks: vec![Check {
                key: key.clone(),
                version: None,
            }],
            puts: vec![Put {
                key,
                value: encode(request)?,
                ttl_ms: None,
            }],
            index_adds: to_changes(self.layout.index_entries(request)),
            ..Batch::default()
        };
        self.add_events(&mut batch, None, request, head)?;
        Ok(batch)
    }

    /// Adds to `batch` the events of the change from `before` to `after`,
    /// chained after the event `head` of the request's partition as read
    /// (checked in the same commit, so that the chain never forks).
    fn add_events(
        &self,
        batch: &mut Batch,
        before: Option<&ApprovalRequest>,
        after: &ApprovalRequest,
        head: Option<&Entry>,
    ) -> Result<(), Error> {
        let drafts = events::drafts_of(before, after);
        let partition = self.layout.partition_of_id(&after.id);
        self.append_events(batch, partition, drafts, Some(after), head)
    }

    /// Adds `drafts` to `batch` as the next events of `partition`'s log,
    /// whose head is `head`: their records, index entries and the new head,
    /// with a check on the head's version, so that the log has no fork.
    pub(crate) fn append_events(
        &self,
        batch: &mut Batch,
        partition: u16,
        drafts: Vec<events::Draft>,
        request: Option<&ApprovalRequest>,
        head: Option<&Entry>,
    ) -> Result<(), Error> {
        if drafts.is_empty() {
            return Ok(());
        }
        let head_key = self.layout.events_head(partition);
        let current: Option<Head> = head.map(decode).transpose()?;
        let (appended, new_head) =
            events::chain(drafts, request, partition, current.as_ref(), self.now());
        batch.checks.push(Check {
            key: head_key.clone(),
            version: head.map(|entry| entry.version),
        });
        if let Some(new_head) = &new_head {
            batch.puts.push(Put {
                key: head_key,
                value: encode(new_head)?,
                ttl_ms: None,
            });
        }
        let index = self.layout.events_index(partition);
        for event in &appended {
            batch.puts.push(Put {
                key: self.layout.event(partition, &event.id),
                value: encode(event)?,
                ttl_ms: Some(self.event_retention_ms),
            });
            batch.index_adds.push(IndexChange {
                index: index.clone(),
                entry: IndexEntry {
                    sort_key: event.id.clone(),
                    member: event.id.clone(),
                },
            });
        }
        Ok(())
    }

    /// The event head of the partition of request `id`.
    async fn event_head(&self, id: &Uuid) -> Result<Option<Entry>, Error> {
        let partition = self.layout.partition_of_id(id);
        Ok(self.cache.get(&self.layout.events_head(partition)).await?)
    }

    /// Stores a new request in its own commit, with its events: reads its
    /// partition's event head, and on a conflict that is not the request
    /// being there already, tries again. Returns the outcome of the last
    /// commit: `Conflict` means the id is taken.
    async fn commit_new_request(&self, request: &ApprovalRequest) -> Result<CommitOutcome, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let head = self.event_head(&request.id).await?;
            let batch = self.request_batch(request, head.as_ref())?;
            match self.cache.commit(batch).await? {
                CommitOutcome::Committed => return Ok(CommitOutcome::Committed),
                CommitOutcome::Conflict if self.stored(&request.id).await?.is_some() => {
                    return Ok(CommitOutcome::Conflict);
                }
                // Another change in the partition moved the event head.
                CommitOutcome::Conflict => {}
            }
        }
        Err(too_much_contention())
    }

    /// Stores `request` as recorded by an idempotency record, unless it is
    /// stored already (the create that wrote the record was cut off before
    /// its second commit).
    async fn complete(&self, request: &ApprovalRequest) -> Result<(), Error> {
        if self.layout.partition_of_id(&request.id)
            == self.layout.partition_of_principal(&request.requested_by)
        {
            // One commit wrote both: the record is there, so is the request.
            return Ok(());
        }
        // A conflict means it is stored: either way it is there now.
        self.commit_new_request(request).await?;
        Ok(())
    }

    /// The request with `id` as stored, not brought up to date.
    async fn stored(&self, id: &Uuid) -> Result<Option<ApprovalRequest>, Error> {
        self.cache
            .get(&self.layout.request(id))
            .await?
            .map(|entry| decode(&entry))
            .transpose()
    }

    /// The request with `id`, brought up to date with the clock (a due request
    /// is expired and stored so). `None` when unknown.
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, Error> {
        self.get_as(id, None).await
    }

    /// [`Manager::get`] on behalf of `viewer`: a request the viewer may not
    /// see (the rules' `visibility`) is `None`, as an unknown one.
    pub async fn get_as(
        &self,
        id: &str,
        viewer: Option<&Principal>,
    ) -> Result<Option<ApprovalRequest>, Error> {
        match self.transact(id, viewer, |_, _| Ok(None)).await {
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

    /// Closes the after-the-fact review of an emergency request.
    pub async fn review(
        &self,
        id: &str,
        principal: &Principal,
        outcome: ReviewOutcome,
        comment: Option<String>,
    ) -> Result<ApprovalRequest, Error> {
        self.act(id, principal, Action::Review { outcome, comment })
            .await
    }

    /// Replaces the change of a pending request (its requester only),
    /// deciding its level again with the rules in force; see
    /// [`ApprovalRequest::amend`]. The body is judged first, as a change
    /// (an `emergency` in it is `not_allowed`: only a filing can be one).
    pub async fn amend(
        &self,
        id: &str,
        principal: &Principal,
        input: &Value,
    ) -> Result<ApprovalRequest, Error> {
        let change = parse_amendment(input, &self.rules)?;
        self.transact(id, Some(principal), |request, now| {
            request
                .amend(
                    change.clone(),
                    principal,
                    &self.rules,
                    &self.rules_digest,
                    now,
                )
                .map(Some)
        })
        .await
    }

    /// Applies a lifecycle action.
    pub async fn act(
        &self,
        id: &str,
        principal: &Principal,
        action: Action,
    ) -> Result<ApprovalRequest, Error> {
        self.transact(id, Some(principal), |request, now| {
            request.apply(&action, principal, now).map(Some)
        })
        .await
    }

    /// Loads the request, expires it if due, lets `decide` derive its next
    /// state (`None`: unchanged), and stores the result with compare-and-swap,
    /// retrying on conflict. An expiry found on the way is stored even when
    /// `decide` fails, and the failure is returned after. A request that
    /// `viewer` may not see is `not_found`, and nothing is stored.
    async fn transact(
        &self,
        id: &str,
        viewer: Option<&Principal>,
        decide: impl Fn(&ApprovalRequest, Timestamp) -> Result<Option<ApprovalRequest>, Error>,
    ) -> Result<ApprovalRequest, Error> {
        let not_found = || Error::NotFound(id.to_owned());
        let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
        let key = self.layout.request(&uuid);
        // The request and its partition's event head, in one round trip:
        // a change appends its events after that head.
        let reads = [
            key.clone(),
            self.layout.events_head(self.layout.partition_of_id(&uuid)),
        ];
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let mut found = self.cache.get_many(&reads, None).await?.into_iter();
            let entry = found.next().flatten().ok_or_else(not_found)?;
            let head = found.next().flatten();
            let stored: ApprovalRequest = decode(&entry)?;
            if let Some(viewer) = viewer
                && !stored.visible_to(viewer, self.visibility())
            {
                return Err(not_found());
            }
            let mut current = stored.clone();
            let expired = current.catch_up(now);
            let (next, failure, changed) = match decide(&current, now) {
                Ok(Some(next)) => (next, None, true),
                Ok(None) => (current, None, expired),
                Err(error) => (current, Some(error), expired),
            };
            if changed
                && !self
                    .store(&stored, &next, entry.version, head.as_ref())
                    .await?
            {
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
    /// moving its index entries and appending its events after the event
    /// `head` as read. Returns whether it was written.
    async fn store(
        &self,
        previous: &ApprovalRequest,
        next: &ApprovalRequest,
        version: u64,
        head: Option<&Entry>,
    ) -> Result<bool, Error> {
        let key = self.layout.request(&next.id);
        let before = self.layout.index_entries(previous);
        let after = self.layout.index_entries(next);
        let mut batch = Batch {
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
        self.add_events(&mut batch, Some(previous), next, head)?;
        Ok(self.cache.commit(batch).await? == CommitOutcome::Committed)
    }

    /// One page of requests, full items whatever `query.view` says (the
    /// typed form, for callers that work with requests; see
    /// [`Manager::list_raw`] for the page as JSON).
    pub async fn list(&self, query: &ListQuery) -> Result<Page, Error> {
        let full = ListQuery {
            view: View::Full,
            ..query.clone()
        };
        let raw = self.list_raw(&full).await?;
        let items = raw
            .items
            .iter()
            .map(|item| {
                serde_json::from_slice(item).map_err(|error| Error::Internal(error.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next_cursor: raw.next_cursor,
        })
    }

    /// One page of requests as JSON items in `query.view`: the stored bytes
    /// of each request are passed through unchanged for the full view.
    ///
    /// The partitions' indexes are merged: each of the P ranges starts
    /// strictly after the cursor's position and reads as many entries as the
    /// page may still need, so the first of their union in listing order are
    /// the first of the whole listing. Then one batched read fetches those
    /// candidates' values, within what the page may still hold. A page costs
    /// P ranges and one batched read, whatever its `limit`; it costs more
    /// rounds only when entries that left the listing (say, due requests the
    /// sweeper has not reached) must be stepped over, at most
    /// [`MAX_SKIPPED_PER_PAGE`] of them.
    pub async fn list_raw(&self, query: &ListQuery) -> Result<RawPage, Error> {
        let mut after = match &query.cursor {
            Some(cursor) => Some(listing::decode(cursor, query)?),
            None => None,
        };
        if query.status == Status::Expired {
            // Let requests that are due appear in the expired listing at once.
            self.expire_due(query.limit).await?;
        }
        let indexes = self.listing_indexes(query);
        // Under `visibility: involved`, only what the viewer may see.
        let restricted_to = query
            .viewer
            .as_ref()
            .filter(|_| self.visibility() == Visibility::Involved);
        // Open reviews are in `dueAt` order: the overdue ones are those up to
        // now, and the first entry after now ends the listing.
        let horizon = (query.emergency_review == Some(ReviewFilter::Overdue))
            .then(|| listing::review_sort_key(self.clock.now()));
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let mut items: Vec<Vec<u8>> = Vec::new();
        let mut page_bytes: usize = 0;
        let mut more = false;
        let mut skipped = 0;
        'rounds: loop {
            let want = limit - items.len() + 1;
            let want_u32 = u32::try_from(want).unwrap_or(u32::MAX);
            let mut candidates: Vec<IndexEntry> = Vec::new();
            let mut exhausted = true;
            for index in &indexes {
                let entries = self.cache.range(index, after.as_ref(), want_u32).await?;
                exhausted &= entries.len() < want;
                candidates.extend(entries);
            }
            candidates.sort();
            // One request may be in several role indexes of `actionableBy`.
            candidates.dedup();
            // Every entry left is among the candidates only when no
            // partition had more to give and none were cut off here.
            exhausted &= candidates.len() <= want;
            candidates.truncate(want);
            if let Some(horizon) = &horizon
                && let Some(first_later) = candidates
                    .iter()
                    .position(|entry| entry.sort_key > *horizon)
            {
                candidates.truncate(first_later);
                exhausted = true;
            }
            if candidates.is_empty() {
                break;
            }
            let keys: Vec<String> = candidates
                .iter()
                .map(|entry| {
                    Uuid::parse_str(&entry.member)
                        .map(|id| self.layout.request(&id))
                        .unwrap_or_default()
                })
                .collect();
            // The candidates' values, read in one batch within what the page
            // may still hold (a summary reads stored requests in batches of
            // a bounded size until the page is full).
            let mut offset = 0;
            while offset < candidates.len() {
                let read_budget = match query.view {
                    View::Full => listing::PAGE_BUDGET_BYTES.saturating_sub(page_bytes),
                    View::Summary => listing::SUMMARY_READ_BUDGET_BYTES,
                };
                let budget = u64::try_from(read_budget.max(1)).unwrap_or(u64::MAX);
                let values = self
                    .cache
                    .get_many(keys.get(offset..).unwrap_or_default(), Some(budget))
                    .await?;
                if values.is_empty() {
                    return Err(Error::Internal(
                        "the cache answered no value for a batched read".to_owned(),
                    ));
                }
                let read = values.len();
                let batch = candidates.get(offset..).unwrap_or_default();
                for (entry, value) in batch.iter().zip(values) {
                    if items.len() == limit {
                        more = true;
                        break 'rounds;
                    }
                    let item = match value {
                        Some(value) => listing::listed_item(
                            &value.value,
                            &entry.sort_key,
                            query,
                            self.clock.now(),
                            restricted_to,
                        )?,
                        None => None,
                    };
                    match item {
                        Some(item) => {
                            if !items.is_empty()
                                && page_bytes + item.len() > listing::PAGE_BUDGET_BYTES
                            {
                                more = true;
                                break 'rounds;
                            }
                            page_bytes += item.len();
                            items.push(item);
                        }
                        None => skipped += 1,
                    }
                    after = Some(entry.clone());
                    if skipped == MAX_SKIPPED_PER_PAGE {
                        // Many entries that left the list: stop here so that
                        // a page stays bounded work, and go on from the last
                        // entry looked at. Skipped entries were not in the
                        // list, so resuming after them keeps the traversal's
                        // guarantees.
                        more = true;
                        break 'rounds;
                    }
                }
                offset += read;
                if offset < candidates.len() && query.view == View::Full && !items.is_empty() {
                    // The read stopped at the page's budget: the next item
                    // would not fit.
                    more = true;
                    break 'rounds;
                }
            }
            if exhausted {
                break;
            }
        }
        let next_cursor = match (more, after) {
            (true, Some(last)) => Some(listing::encode(query, &last)),
            _ => None,
        };
        Ok(RawPage { items, next_cursor })
    }

    /// One page of events after the event id `after` (from the oldest kept
    /// when absent), oldest first, at most `limit` (1..=500): the P
    /// partitions' event indexes merged, then one batched read. Read on
    /// behalf of `viewer` under `visibility: involved`, the events of
    /// requests it may not see are left out (one more batched read of
    /// those requests). `nextCursor` is the id of the last event looked at
    /// when the page is full.
    pub async fn events(
        &self,
        after: Option<&str>,
        limit: u32,
        viewer: Option<&Principal>,
    ) -> Result<EventPage, Error> {
        if let Some(after) = after {
            events::parse_cursor(after)?;
        }
        if !(1..=events::limits::MAX_PAGE_SIZE).contains(&limit) {
            return Err(Error::invalid(
                "the events query is invalid",
                vec![crate::validation::Violation::new(
                    "limit",
                    crate::validation::ViolationCode::OutOfRange,
                    format!(
                        "must be between 1 and {}, got {limit}",
                        events::limits::MAX_PAGE_SIZE
                    ),
                )],
            ));
        }
        let position = after.map(|id| IndexEntry {
            sort_key: id.to_owned(),
            member: id.to_owned(),
        });
        let mut candidates: Vec<(IndexEntry, u16)> = Vec::new();
        for partition in self.layout.all() {
            let index = self.layout.events_index(partition);
            let entries = self.cache.range(&index, position.as_ref(), limit).await?;
            candidates.extend(entries.into_iter().map(|entry| (entry, partition)));
        }
        candidates.sort();
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let full = candidates.len() >= wanted;
        candidates.truncate(wanted);
        let keys: Vec<String> = candidates
            .iter()
            .map(|(entry, partition)| self.layout.event(*partition, &entry.member))
            .collect();
        let values = if keys.is_empty() {
            Vec::new()
        } else {
            self.cache.get_many(&keys, None).await?
        };
        let mut items: Vec<Event> = values
            .iter()
            .flatten()
            .map(decode::<Event>)
            .collect::<Result<_, _>>()?;
        if let Some(viewer) = viewer.filter(|_| self.visibility() == Visibility::Involved) {
            let visible = self.visible_requests(&items, viewer).await?;
            items.retain(|event| event.request_id.is_none_or(|id| visible.contains(&id)));
        }
        let next_cursor = full
            .then(|| candidates.last().map(|(entry, _)| entry.member.clone()))
            .flatten();
        Ok(EventPage { items, next_cursor })
    }

    /// The ids of the requests of `events` that `viewer` may see.
    async fn visible_requests(
        &self,
        events: &[Event],
        viewer: &Principal,
    ) -> Result<std::collections::HashSet<Uuid>, Error> {
        let mut ids: Vec<Uuid> = events.iter().filter_map(|event| event.request_id).collect();
        ids.sort();
        ids.dedup();
        let keys: Vec<String> = ids.iter().map(|id| self.layout.request(id)).collect();
        let mut visible = std::collections::HashSet::new();
        if keys.is_empty() {
            return Ok(visible);
        }
        let values = self.cache.get_many(&keys, None).await?;
        for (id, value) in ids.iter().zip(values) {
            let Some(value) = value else { continue };
            let request: ApprovalRequest = decode(&value)?;
            if request.visible_to(viewer, Visibility::Involved) {
                visible.insert(*id);
            }
        }
        Ok(visible)
    }

    /// The id of the newest event of the store (the largest of the
    /// partitions' heads), where a stream without `Last-Event-ID` starts.
    pub async fn latest_event_id(&self) -> Result<Option<String>, Error> {
        let keys: Vec<String> = self
            .layout
            .all()
            .map(|partition| self.layout.events_head(partition))
            .collect();
        let heads = self.cache.get_many(&keys, None).await?;
        let mut latest: Option<String> = None;
        for head in heads.iter().flatten() {
            let head: Head = decode(head)?;
            if latest.as_ref().is_none_or(|held| head.id > *held) {
                latest = Some(head.id);
            }
        }
        Ok(latest)
    }

    /// The indexes whose merge is the listing `query`, one or more per
    /// partition.
    fn listing_indexes(&self, query: &ListQuery) -> Vec<String> {
        let layout = &self.layout;
        let mut indexes = Vec::new();
        for partition in layout.all() {
            if let Some(principal) = &query.actionable_by {
                indexes.extend(
                    principal
                        .roles
                        .iter()
                        .map(|role| layout.role_index(partition, role)),
                );
                indexes.push(layout.anyone_index(partition));
            } else if query.emergency_review.is_some() {
                indexes.push(layout.review_index(partition));
            } else if let Some(policy_type) = &query.policy_type {
                indexes.push(layout.status_type_index(partition, query.status, policy_type));
            } else {
                indexes.push(layout.status_index(partition, query.status));
            }
        }
        indexes
    }

    /// Expires up to `limit` pending requests whose `expiresAt` has passed,
    /// oldest deadline first in each partition. Safe to run from several
    /// hosts at once: each expiry is a compare-and-swap, and a request expired
    /// by another host is simply not counted. Due-index entries that match no
    /// pending request are removed; a stored request that does not decode is
    /// counted and stepped over, so one bad record never stops the sweep.
    pub async fn expire_due(&self, limit: u32) -> Result<ExpireReport, Error> {
        let now = self.clock.now();
        let horizon = keys::fixed(u64::try_from(now.as_millis()).unwrap_or(0));
        let mut report = ExpireReport {
            expired: 0,
            ids: Vec::new(),
            stale_removed: 0,
            undecodable: 0,
            escalated: 0,
            events_trimmed: self.trim_event_indexes(now, limit).await?,
        };
        // The oldest deadlines of the whole store: the first `limit` of the
        // partitions' due indexes merged.
        let mut due: Vec<(IndexEntry, String)> = Vec::new();
        for partition in self.layout.all() {
            let due_index = self.layout.due_index(partition);
            let entries = self.cache.range(&due_index, None, limit).await?;
            due.extend(
                entries
                    .into_iter()
                    .filter(|entry| entry.sort_key <= horizon)
                    .map(|entry| (entry, due_index.clone())),
            );
        }
        due.sort();
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        if due.is_empty() {
            return Ok(report);
        }
        let keys: Vec<String> = due
            .iter()
            .map(|(entry, _)| {
                Uuid::parse_str(&entry.member)
                    .map(|id| self.layout.request(&id))
                    .unwrap_or_default()
            })
            .collect();
        let values = self.cache.get_many(&keys, None).await?;
        for ((entry, due_index), value) in due.into_iter().zip(values) {
            let Ok(id) = Uuid::parse_str(&entry.member) else {
                self.remove_stale(due_index, entry, &mut report).await?;
                continue;
            };
            let Some(value) = value else {
                self.remove_stale(due_index, entry, &mut report).await?;
                continue;
            };
            let Ok(stored) = decode::<ApprovalRequest>(&value) else {
                report.undecodable += 1;
                continue;
            };
            let deadline = stored
                .next_deadline()
                .map(|at| keys::fixed(u64::try_from(at.as_millis()).unwrap_or(0)));
            if deadline.as_ref() != Some(&entry.sort_key) {
                self.remove_stale(due_index, entry, &mut report).await?;
                continue;
            }
            match self.catch_up_one(&id, stored, value.version).await? {
                Some(Status::Expired) => report.ids.push(id),
                Some(_) => report.escalated += 1,
                None => {}
            }
        }
        report.expired = u32::try_from(report.ids.len()).unwrap_or(u32::MAX);
        Ok(report)
    }

    /// Brings the request `id` read as `stored` at `version` up to date with
    /// the clock (escalations, expiry), retrying against fresh state; the
    /// status it was stored with when this call changed it.
    async fn catch_up_one(
        &self,
        id: &Uuid,
        mut stored: ApprovalRequest,
        mut version: u64,
    ) -> Result<Option<Status>, Error> {
        let key = self.layout.request(id);
        for _ in 0..MAX_ATTEMPTS {
            let mut next = stored.clone();
            if !next.catch_up(self.clock.now()) {
                return Ok(None);
            }
            let head = self.event_head(id).await?;
            if self.store(&stored, &next, version, head.as_ref()).await? {
                return Ok(Some(next.status));
            }
            let Some(entry) = self.cache.get(&key).await? else {
                return Ok(None);
            };
            let Ok(fresh) = decode::<ApprovalRequest>(&entry) else {
                return Ok(None);
            };
            stored = fresh;
            version = entry.version;
        }
        Ok(None)
    }

    /// Removes up to `limit` entries per partition from the event indexes
    /// whose events are past the retention: their records have already
    /// expired (an event id's time is never before its commit), and without
    /// this their index entries would stay for ever. Readers step over such
    /// entries anyway, so removing them changes no answer.
    async fn trim_event_indexes(&self, now: Timestamp, limit: u32) -> Result<u32, Error> {
        let retention = i64::try_from(self.event_retention_ms).unwrap_or(i64::MAX);
        let cutoff = events::event_id(now.as_millis().saturating_sub(retention), 0, 0);
        let mut trimmed = 0;
        for partition in self.layout.all() {
            let index = self.layout.events_index(partition);
            let past: Vec<IndexChange> = self
                .cache
                .range(&index, None, limit)
                .await?
                .into_iter()
                .take_while(|entry| entry.sort_key < cutoff)
                .map(|entry| IndexChange {
                    index: index.clone(),
                    entry,
                })
                .collect();
            if past.is_empty() {
                continue;
            }
            let count = u32::try_from(past.len()).unwrap_or(u32::MAX);
            let batch = Batch {
                index_removes: past,
                ..Batch::default()
            };
            if self.cache.commit(batch).await? == CommitOutcome::Committed {
                trimmed += count;
            }
        }
        Ok(trimmed)
    }

    /// Removes an entry of a due index that matches no pending request.
    async fn remove_stale(
        &self,
        index: String,
        entry: IndexEntry,
        report: &mut ExpireReport,
    ) -> Result<(), Error> {
        let batch = Batch {
            index_removes: vec![IndexChange { index, entry }],
            ..Batch::default()
        };
        if self.cache.commit(batch).await? == CommitOutcome::Committed {
            report.stale_removed += 1;
        }
        Ok(())
    }

    /// The creation time of the oldest pending request, for alerting: the
    /// oldest of every partition's oldest.
    pub async fn oldest_pending(&self) -> Result<Option<Timestamp>, Error> {
        let mut oldest: Option<i64> = None;
        for partition in self.layout.all() {
            let first = self
                .cache
                .range(&self.layout.age_index(partition), None, 1)
                .await?;
            if let Some(millis) = first
                .first()
                .and_then(|entry| entry.sort_key.parse::<i64>().ok())
            {
                oldest = Some(oldest.map_or(millis, |held| held.min(millis)));
            }
        }
        Ok(oldest.map(Timestamp::from_millis))
    }
}

/// The change of an amend: a valid change that is not an emergency.
pub fn parse_amendment(input: &Value, rules: &Rules) -> Result<PolicyChange, Error> {
    let mut change = PolicyChange::parse(input, Some(rules))
        .map_err(|details| Error::invalid("the change is invalid", details))?;
    if change.emergency.take().is_some() {
        return Err(Error::invalid(
            "the change is invalid",
            vec![crate::validation::Violation::new(
                "emergency",
                crate::validation::ViolationCode::NotAllowed,
                "only a new filing can be an emergency, not an amend",
            )],
        ));
    }
    Ok(change)
}

fn to_changes(entries: Vec<(String, IndexEntry)>) -> Vec<IndexChange> {
    entries
        .into_iter()
        .map(|(index, entry)| IndexChange { index, entry })
        .collect()
}
