//! The layout of signoff's data in the cache: keys, index names and sort keys.
//!
//! Sort keys are fixed-width ASCII so that byte order is the order the
//! listing promises; the member (a request id) breaks ties.

use uuid::Uuid;

use crate::cache::IndexEntry;
use crate::change::Priority;
use crate::request::{ApprovalRequest, Status};
use crate::time::Timestamp;

/// The key of a stored request.
pub fn request(id: &Uuid) -> String {
    format!("req:{id}")
}

/// The key of a principal's rate-limit bucket.
pub fn rate_bucket(principal: &str) -> String {
    format!("rate:{principal}")
}

/// The key of an idempotency record; the principal's length keeps ids that
/// contain `:` from colliding.
pub fn idempotency(principal: &str, key: &str) -> String {
    format!("idem:{}:{principal}:{key}", principal.len())
}

/// The index of every request in `status`.
pub fn status_index(status: Status) -> String {
    format!("idx:{}", status.as_str())
}

/// The index of the requests in `status` of one policy type.
pub fn status_type_index(status: Status, policy_type: &str) -> String {
    format!("idx:{}:type:{policy_type}", status.as_str())
}

/// The index of pending requests by `expiresAt`, read by the sweeper.
pub const DUE_INDEX: &str = "idx:due";

/// The index of pending requests by `createdAt`, for the oldest pending age.
pub const AGE_INDEX: &str = "idx:age";

fn millis(time: Timestamp) -> u64 {
    u64::try_from(time.as_millis()).unwrap_or(0)
}

/// A fixed-width decimal that sorts like the number.
pub fn fixed(number: u64) -> String {
    format!("{number:020}")
}

/// The sort key of a request in its status indexes: pending by priority then
/// age; the others most recently updated first.
pub fn listing_sort_key(request: &ApprovalRequest) -> String {
    listing_sort_key_of(
        request.status,
        request.change.priority,
        request.created_at,
        request.updated_at,
    )
}

/// [`listing_sort_key`] from its parts.
pub fn listing_sort_key_of(
    status: Status,
    priority: Priority,
    created_at: Timestamp,
    updated_at: Timestamp,
) -> String {
    match status {
        Status::Pending => format!("{}.{}", priority.queue_rank(), fixed(millis(created_at))),
        _ => fixed(u64::MAX - millis(updated_at)),
    }
}

/// Every index entry a request belongs to in its current state.
pub fn index_entries(request: &ApprovalRequest) -> Vec<(String, IndexEntry)> {
    let member = request.id.to_string();
    let sort_key = listing_sort_key(request);
    let mut entries = vec![
        (
            status_index(request.status),
            IndexEntry {
                sort_key: sort_key.clone(),
                member: member.clone(),
            },
        ),
        (
            status_type_index(request.status, &request.change.policy_type),
            IndexEntry {
                sort_key,
                member: member.clone(),
            },
        ),
    ];
    if request.status == Status::Pending {
        entries.push((
            DUE_INDEX.to_owned(),
            IndexEntry {
                sort_key: fixed(millis(request.expires_at)),
                member: member.clone(),
            },
        ));
        entries.push((
            AGE_INDEX.to_owned(),
            IndexEntry {
                sort_key: fixed(millis(request.created_at)),
                member,
            },
        ));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keys_sort_urgent_first_then_oldest() {
        let key = |priority, created| {
            listing_sort_key_of(
                Status::Pending,
                priority,
                Timestamp::from_millis(created),
                Timestamp::from_millis(0),
            )
        };
        let mut keys = vec![
            key(Priority::Low, 1),
            key(Priority::Urgent, 9),
            key(Priority::Normal, 2),
            key(Priority::Urgent, 3),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                key(Priority::Urgent, 3),
                key(Priority::Urgent, 9),
                key(Priority::Normal, 2),
                key(Priority::Low, 1)
            ]
        );
    }

    #[test]
    fn other_keys_sort_most_recent_first() {
        let key = |updated| {
            listing_sort_key_of(
                Status::Approved,
                Priority::Normal,
                Timestamp::from_millis(0),
                Timestamp::from_millis(updated),
            )
        };
        assert!(key(2_000) < key(1_000));
    }

    #[test]
    fn idempotency_keys_of_different_principals_never_collide() {
        assert_ne!(idempotency("a:b", "c"), idempotency("a", "b:c"));
    }
}
