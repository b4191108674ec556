//! What crosses the component boundary, read on the host's side: the cache
//! import's records as the core's cache types, and the manager's answers,
//! which are JSON text written by the core's own types, read back into them.

use serde::Serialize;
use serde::de::DeserializeOwned;
use signoff_core as core;

use super::runtime::generated::signoff::engine::cache;

pub fn batch(batch: cache::Batch) -> core::Batch {
    let changes = |changes: Vec<cache::IndexChange>| {
        changes
            .into_iter()
            .map(|change| core::IndexChange {
                index: change.index,
                entry: core::IndexEntry {
                    sort_key: change.sort_key,
                    member: change.member,
                },
            })
            .collect()
    };
    core::Batch {
        checks: batch
            .checks
            .into_iter()
            .map(|check| core::Check {
                key: check.key,
                version: check.version,
            })
            .collect(),
        puts: batch
            .puts
            .into_iter()
            .map(|put| core::Put {
                key: put.key,
                value: put.value,
                ttl_ms: put.ttl_ms,
            })
            .collect(),
        deletes: batch.deletes,
        index_adds: changes(batch.index_adds),
        index_removes: changes(batch.index_removes),
    }
}

pub fn index_entry(entry: cache::IndexEntry) -> core::IndexEntry {
    core::IndexEntry {
        sort_key: entry.sort_key,
        member: entry.member,
    }
}

/// A value as the JSON text the guest reads.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, core::Error> {
    serde_json::to_string(value)
        .map_err(|error| core::Error::Internal(format!("a value did not serialize: {error}")))
}

/// An answer of the guest, JSON text of a core type.
pub fn answer<T: DeserializeOwned>(text: &str) -> Result<T, core::Error> {
    serde_json::from_str(text).map_err(|error| {
        core::Error::Internal(format!("the engine answered an unreadable value: {error}"))
    })
}

/// An error of the guest: the core's `Error` as JSON text.
pub fn error(text: &str) -> core::Error {
    serde_json::from_str(text).unwrap_or_else(|error| {
        core::Error::Internal(format!("the engine answered an unreadable error: {error}"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_error_crosses_unchanged() {
        let errors = [
            core::Error::invalid(
                "bad",
                vec![core::Violation::new(
                    "title",
                    core::ViolationCode::TooLong,
                    "too long",
                )],
            ),
            core::Error::NotFound("x".into()),
            core::Error::NotPending {
                id: "x".into(),
                status: core::Status::Approved,
            },
            core::Error::NotEligible {
                principal: "bob".into(),
                stage: "review".into(),
            },
            core::Error::RateLimited {
                retry_after_seconds: 3,
            },
            core::Error::PreconditionFailed {
                current: "d".into(),
            },
        ];
        for sent in errors {
            assert_eq!(error(&to_json(&sent).unwrap()), sent);
        }
        assert_eq!(error("nonsense").code(), core::ErrorCode::Internal);
    }
}
