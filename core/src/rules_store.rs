//! Replacing the rules in force: who may, on which precondition, and where
//! the document lives in the cache so that every host deciding over one store
//! decides with the same rules.
//!
//! The document is stored under [`RULES_KEY`] as a [`StoredRules`] record,
//! in partition 0 so that a replacement appends its `rules.replaced` event
//! to that partition's log in the same commit. A
//! replacement is a compare-and-swap on that key, guarded by the caller's
//! `If-Match` (docs/CONTRACT.md, sections 7 and 9): the checks run in the
//! order `forbidden` (the `admin` role), `precondition_failed`, then
//! `invalid_request` (the document), after the transport's own
//! `unauthenticated`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::{Batch, Cache, Check, CommitOutcome, Entry, Put};
use crate::error::Error;
use crate::events;
use crate::manager::{Clock, IdSource, MAX_ATTEMPTS, Manager};
use crate::request::Principal;
use crate::rules::Rules;

/// The cache key of the rules document, in partition 0 (which every store
/// has) beside the event log its replacements append to.
pub const RULES_KEY: &str = "p0:cfg:rules";

/// Where stores written before the rules joined partition 0 keep them. It is
/// read when [`RULES_KEY`] is absent and never written: the first
/// replacement writes [`RULES_KEY`], which wins from then on.
pub const LEGACY_RULES_KEY: &str = "cfg:rules";

/// The partition holding the rules and the `rules.replaced` events.
pub const RULES_PARTITION: u16 = 0;

/// The stored rules and the version of [`RULES_KEY`] (`None` when only the
/// legacy record exists, or none).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The record.
    pub rules: StoredRules,
    /// The version of [`RULES_KEY`], to compare-and-swap on.
    pub version: Option<u64>,
}

/// Reads the stored rules in one round trip: [`RULES_KEY`], else
/// [`LEGACY_RULES_KEY`].
pub async fn read_stored<C: Cache>(cache: &C) -> Result<Option<StoredRecord>, Error> {
    let found = cache
        .get_many(&[RULES_KEY.to_owned(), LEGACY_RULES_KEY.to_owned()], None)
        .await?;
    let mut found = found.into_iter();
    if let Some(entry) = found.next().flatten() {
        return Ok(Some(StoredRecord {
            rules: StoredRules::decode(&entry.value)?,
            version: Some(entry.version),
        }));
    }
    match found.next().flatten() {
        Some(legacy) => Ok(Some(StoredRecord {
            rules: StoredRules::decode(&legacy.value)?,
            version: None,
        })),
        None => Ok(None),
    }
}

/// The role that may replace the rules.
pub const ADMIN_ROLE: &str = "admin";

/// The stored form of the rules in force. Unknown fields are tolerated, so
/// that a newer version may add some during a rolling upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRules {
    /// The digest of `document` ([`Rules::digest`]).
    pub digest: String,
    /// The normalized document.
    pub document: Value,
}

impl StoredRules {
    /// The record of validated `rules`.
    pub fn of(rules: &Rules, digest: String) -> Result<Self, Error> {
        let document = serde_json::to_value(rules)
            .map_err(|error| Error::Internal(format!("the rules do not serialize: {error}")))?;
        Ok(Self { digest, document })
    }

    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map_err(|error| Error::Internal(format!("the stored rules are unreadable: {error}")))
    }

    /// The rules this record holds, validated again: a record written by
    /// hand or by a broken host never puts invalid rules in force.
    pub fn rules(&self) -> Result<Rules, Error> {
        Rules::parse(&self.document).map_err(|items| {
            Error::Internal(format!(
                "the stored rules are invalid ({} problems)",
                items.len()
            ))
        })
    }
}

/// What an `If-Match` precondition asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: whatever is in force.
    Any,
    /// One of these digests (entity tags without their quotes). Weak tags
    /// and malformed items are left out, so they match nothing.
    Digests(Vec<String>),
}

impl IfMatch {
    /// Parses the values of `If-Match` headers: `*`, or a comma-separated
    /// list of quoted digests (`"<digest>"`); a bare digest is taken as its
    /// quoted form. A transport that cannot read a header value as text
    /// passes `""` for it, which matches nothing.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut digests = Vec::new();
        for value in values {
            for item in value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
            {
                if item == "*" {
                    return Self::Any;
                }
                if let Some(tag) = item
                    .strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                {
                    digests.push(tag.to_owned());
                } else if !item.starts_with("W/") && !item.contains('"') {
                    digests.push(item.to_owned());
                }
            }
        }
        Self::Digests(digests)
    }

    /// Whether the precondition holds when `current` is the digest in force.
    pub fn holds(&self, current: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Digests(digests) => digests.iter().any(|digest| digest == current),
        }
    }
}

/// Whether `principal` may replace the rules: only holders of `admin`.
pub fn ensure_may_replace(principal: &Principal) -> Result<(), Error> {
    if principal.roles.iter().any(|role| role == ADMIN_ROLE) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "replacing the rules needs the `{ADMIN_ROLE}` role"
        )))
    }
}

/// A version of the rules: the validated document and its digest, as a
/// replacement answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct RulesInForce {
    /// Their digest ([`Rules::digest`]), the `ETag` over HTTP.
    pub digest: String,
    /// The normalized document.
    pub rules: Rules,
}

impl<C: Cache, K: Clock, I: IdSource> Manager<C, K, I> {
    /// The rules stored in the cache, when any host stored some.
    pub async fn stored_rules(&self) -> Result<Option<StoredRules>, Error> {
        Ok(read_stored(self.cache()).await?.map(|record| record.rules))
    }

    /// The rules stored in the cache, validated, when any host stored some:
    /// what a host starting over an existing store puts in force.
    pub async fn stored_rules_in_force(&self) -> Result<Option<RulesInForce>, Error> {
        let Some(stored) = self.stored_rules().await? else {
            return Ok(None);
        };
        Ok(Some(RulesInForce {
            rules: stored.rules()?,
            digest: stored.digest,
        }))
    }

    /// Replaces the rules in the cache with `document` for `principal`, when
    /// `if_match` (if any) holds for the digest in force: the stored one, or
    /// this manager's when the store holds none yet. The caller puts the
    /// answer in force ([`Manager::set_rules`] or its own copy); requests
    /// already stored keep the stages they were decided with.
    pub async fn replace_rules(
        &self,
        document: &Value,
        principal: &Principal,
        if_match: Option<&IfMatch>,
    ) -> Result<RulesInForce, Error> {
        ensure_may_replace(principal)?;
        let mut validated: Option<RulesInForce> = None;
        let head_key = self.layout().events_head(RULES_PARTITION);
        for _ in 0..MAX_ATTEMPTS {
            let found = self
                .cache()
                .get_many(
                    &[
                        RULES_KEY.to_owned(),
                        LEGACY_RULES_KEY.to_owned(),
                        head_key.clone(),
                    ],
                    None,
                )
                .await?;
            let [stored, legacy, head] = <[Option<Entry>; 3]>::try_from(found).map_err(|_| {
                Error::Internal("the cache answered another number of keys".to_owned())
            })?;
            let current = match stored.as_ref().or(legacy.as_ref()) {
                Some(entry) => StoredRules::decode(&entry.value)?.digest,
                None => self.rules_digest().to_owned(),
            };
            if let Some(if_match) = if_match
                && !if_match.holds(&current)
            {
                return Err(Error::PreconditionFailed { current });
            }
            let next = match validated.take() {
                Some(next) => next,
                None => {
                    let rules = Rules::parse(document)
                        .map_err(|items| Error::invalid("the rules document is invalid", items))?;
                    let digest = rules.digest();
                    RulesInForce { rules, digest }
                }
            };
            let record = StoredRules::of(&next.rules, next.digest.clone())?;
            let value = serde_json::to_vec(&record)
                .map_err(|error| Error::Internal(format!("the rules do not encode: {error}")))?;
            let mut batch = Batch {
                checks: vec![Check {
                    key: RULES_KEY.to_owned(),
                    version: stored.map(|entry| entry.version),
                }],
                puts: vec![Put {
                    key: RULES_KEY.to_owned(),
                    value,
                    ttl_ms: None,
                }],
                ..Batch::default()
            };
            let replaced =
                events::rules_replaced(self.now(), &principal.id, &next.digest, &current);
            self.append_events(
                &mut batch,
                RULES_PARTITION,
                vec![replaced],
                None,
                head.as_ref(),
            )?;
            match self.cache().commit(batch).await? {
                CommitOutcome::Committed => return Ok(next),
                CommitOutcome::Conflict => validated = Some(next),
            }
        }
        Err(Error::Conflict(format!(
            "the rules changed {MAX_ATTEMPTS} times during the replacement; retry"
        )))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on a broken fixture"
)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::memory::MemoryCache;
    use crate::time::Timestamp;
    use serde_json::json;
    use uuid::Uuid;

    fn document(ttl: u32) -> Value {
        json!({
            "levels": [{ "name": "peer", "ttlSeconds": ttl, "stages": [] }],
            "defaultLevel": "peer"
        })
    }

    type TestManager = Manager<MemoryCache, fn() -> Timestamp, fn() -> Uuid>;

    fn manager() -> TestManager {
        Manager::new(
            MemoryCache::new(),
            (|| Timestamp::from_millis(0)) as fn() -> Timestamp,
            Uuid::nil as fn() -> Uuid,
            Rules::parse(&document(60)).unwrap(),
        )
    }

    fn admin() -> Principal {
        Principal::new("root", &["admin"])
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(future)
    }

    #[test]
    fn if_match_takes_quoted_bare_star_and_lists() {
        assert_eq!(IfMatch::parse(["*"]), IfMatch::Any);
        assert!(IfMatch::parse(["\"a\", \"b\""]).holds("b"));
        assert!(IfMatch::parse(["a"]).holds("a"));
        assert!(!IfMatch::parse(["W/\"a\""]).holds("a"));
        assert!(!IfMatch::parse(["\"a"]).holds("a"));
        assert!(!IfMatch::parse(Vec::<&str>::new()).holds("a"));
    }

    #[test]
    fn only_admins_replace_and_the_checks_run_in_order() {
        let manager = manager();
        let stale = IfMatch::parse(["\"stale\""]);
        let outcome = block_on(manager.replace_rules(
            &json!({}),
            &Principal::new("bob", &["engineer"]),
            Some(&stale),
        ));
        assert_eq!(outcome.unwrap_err().code(), ErrorCode::Forbidden);
        let outcome = block_on(manager.replace_rules(&json!({}), &admin(), Some(&stale)));
        assert_eq!(
            outcome.unwrap_err(),
            Error::PreconditionFailed {
                current: manager.rules_digest().to_owned()
            }
        );
        let outcome = block_on(manager.replace_rules(&json!({}), &admin(), None));
        assert_eq!(outcome.unwrap_err().code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn a_replacement_is_stored_and_guards_the_next_one() {
        let manager = manager();
        let first = IfMatch::Digests(vec![manager.rules_digest().to_owned()]);
        let replaced = block_on(manager.replace_rules(&document(120), &admin(), Some(&first)))
            .expect("replaced");
        let stored = block_on(manager.stored_rules_in_force()).unwrap();
        assert_eq!(stored.as_ref(), Some(&replaced));
        // The manager's own digest is stale now: the stored one decides.
        let again = block_on(manager.replace_rules(&document(180), &admin(), Some(&first)));
        assert_eq!(
            again.unwrap_err(),
            Error::PreconditionFailed {
                current: replaced.digest.clone()
            }
        );
        let now = IfMatch::Digests(vec![replaced.digest]);
        assert!(block_on(manager.replace_rules(&document(180), &admin(), Some(&now))).is_ok());
    }

    #[test]
    fn a_replacement_appends_its_event_in_partition_zero() {
        let manager = manager();
        let before = manager.rules_digest().to_owned();
        let replaced = block_on(manager.replace_rules(&document(120), &admin(), None)).unwrap();
        let page = block_on(manager.events(None, 10, None)).unwrap();
        assert_eq!(page.items.len(), 1);
        let event = &page.items[0];
        assert_eq!(event.kind, crate::events::EventType::RulesReplaced);
        assert_eq!(event.actor, "root");
        assert!(event.request_id.is_none());
        assert!(event.id.contains("-0000-"), "{}", event.id);
        assert_eq!(
            event.data,
            Some(json!({ "digest": replaced.digest, "previousDigest": before }))
        );
        // A second replacement chains on the first.
        block_on(manager.replace_rules(&document(180), &admin(), None)).unwrap();
        let page = block_on(manager.events(None, 10, None)).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[1].prev_hash, page.items[0].hash);
        assert_eq!(
            page.items[1].data.as_ref().unwrap()["previousDigest"],
            json!(replaced.digest)
        );
    }

    #[test]
    fn rules_stored_before_partition_zero_are_read_until_replaced() {
        let manager = manager();
        let legacy = Rules::parse(&document(90)).unwrap();
        let record = StoredRules::of(&legacy, legacy.digest()).unwrap();
        block_on(manager.cache().commit(Batch {
            puts: vec![Put {
                key: LEGACY_RULES_KEY.to_owned(),
                value: serde_json::to_vec(&record).unwrap(),
                ttl_ms: None,
            }],
            ..Batch::default()
        }))
        .unwrap();
        let stored = block_on(manager.stored_rules()).unwrap().unwrap();
        assert_eq!(stored.digest, legacy.digest());
        // The legacy digest is the one an If-Match must name.
        let stale = IfMatch::Digests(vec![manager.rules_digest().to_owned()]);
        let refused = block_on(manager.replace_rules(&document(120), &admin(), Some(&stale)));
        assert_eq!(
            refused.unwrap_err(),
            Error::PreconditionFailed {
                current: legacy.digest()
            }
        );
        let fresh = IfMatch::Digests(vec![legacy.digest()]);
        let replaced =
            block_on(manager.replace_rules(&document(120), &admin(), Some(&fresh))).unwrap();
        let stored = block_on(manager.stored_rules()).unwrap().unwrap();
        assert_eq!(stored.digest, replaced.digest);
    }
}
