//! The layout of signoff's data in the cache: partitions, keys, index names
//! and sort keys.
//!
//! The store is split into P partitions (1..=[`MAX_PARTITIONS`], default
//! [`DEFAULT_PARTITIONS`], fixed for the life of a store). Every key and index
//! name written here starts with its partition, `p<N>:`, and every atomic
//! commit the manager makes touches one partition only, so a backend can map
//! a partition to a shard (Redis Cluster: the partition is the hash tag).
//!
//! - a request lives in the partition of its id ([`Layout::partition_of_id`]),
//!   so reading it by id needs nothing else;
//! - a requester's rate-limit bucket and idempotency records live in the
//!   partition of the requester ([`Layout::partition_of_principal`]);
//! - every partition holds its own listing indexes; a listing merges the P
//!   ranges (see `Manager::list`).
//!
//! Sort keys are fixed-width ASCII so that byte order is the order the
//! listing promises; the member (a request id) breaks ties.

use uuid::Uuid;

use crate::cache::IndexEntry;
use crate::change::Priority;
use crate::request::{ApprovalRequest, Status};
use crate::time::Timestamp;

/// The number of partitions of a store that does not say otherwise.
pub const DEFAULT_PARTITIONS: u16 = 16;

/// The most partitions a store may have.
pub const MAX_PARTITIONS: u16 = 1024;

/// Where a store records its number of partitions, so that a host refuses to
/// start with another number. It lies outside every partition on purpose:
/// where a partition lives depends on the number of partitions (a Redis
/// backend spreads their hash tags by it), this record must not.
pub const PARTITIONS_KEY: &str = "store:partitions";

/// A number of partitions out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a store has 1..=1024 partitions, not {0}")]
pub struct InvalidPartitions(pub u32);

/// Which partition holds what: the one place that knows the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    partitions: u16,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            partitions: DEFAULT_PARTITIONS,
        }
    }
}

/// FNV-1a, 64 bits: a hash every build computes alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl Layout {
    /// A layout of `partitions` partitions (1..=1024).
    pub fn new(partitions: u32) -> Result<Self, InvalidPartitions> {
        match u16::try_from(partitions) {
            Ok(count) if (1..=MAX_PARTITIONS).contains(&count) => Ok(Self { partitions: count }),
            _ => Err(InvalidPartitions(partitions)),
        }
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// Every partition, in order.
    pub fn all(&self) -> impl Iterator<Item = u16> + use<> {
        0..self.partitions
    }

    fn reduce(&self, hash: u64) -> u16 {
        u16::try_from(hash % u64::from(self.partitions)).unwrap_or(0)
    }

    /// The partition of a request: its id's low 64 bits, hashed (ids made by
    /// tests count up, and must spread too).
    pub fn partition_of_id(&self, id: &Uuid) -> u16 {
        let (_, low) = id.as_u64_pair();
        self.reduce(fnv1a(&low.to_be_bytes()))
    }

    /// The partition of a requester's bucket and idempotency records.
    pub fn partition_of_principal(&self, principal: &str) -> u16 {
        self.reduce(fnv1a(principal.as_bytes()))
    }

    /// The key of a stored request.
    pub fn request(&self, id: &Uuid) -> String {
        format!("p{}:req:{id}", self.partition_of_id(id))
    }

    /// The key of a principal's rate-limit bucket.
    pub fn rate_bucket(&self, principal: &str) -> String {
        format!(
            "p{}:rate:{principal}",
            self.partition_of_principal(principal)
        )
    }

    /// The key of an idempotency record; the principal's length keeps ids
    /// that contain `:` from colliding.
    pub fn idempotency(&self, principal: &str, key: &str) -> String {
        format!(
            "p{}:idem:{}:{principal}:{key}",
            self.partition_of_principal(principal),
            principal.len()
        )
    }

    /// The index of the requests in `status` held by `partition`.
    pub fn status_index(&self, partition: u16, status: Status) -> String {
        format!("p{partition}:idx:{}", status.as_str())
    }

    /// The index of the requests in `status` of one policy type held by
    /// `partition`.
    pub fn status_type_index(&self, partition: u16, status: Status, policy_type: &str) -> String {
        format!("p{partition}:idx:{}:type:{policy_type}", status.as_str())
    }

    /// The index of `partition`'s pending requests by the next moment the
    /// clock changes them (an escalation, else expiry), read by the
    /// sweeper.
    pub fn due_index(&self, partition: u16) -> String {
        format!("p{partition}:idx:due")
    }

    /// The index of `partition`'s pending requests that holders of `role`
    /// may approve now (as far as roles go), in pending listing order.
    pub fn role_index(&self, partition: u16, role: &str) -> String {
        format!("p{partition}:idx:role:{role}")
    }

    /// The index of `partition`'s pending requests that any principal may
    /// approve now (a quorum with no eligible roles), in pending listing
    /// order.
    pub fn anyone_index(&self, partition: u16) -> String {
        format!("p{partition}:idx:anyone")
    }

    /// The head of `partition`'s event log: its last event's id and hash.
    pub fn events_head(&self, partition: u16) -> String {
        format!("p{partition}:events:head")
    }

    /// The event `id` of `partition`.
    pub fn event(&self, partition: u16, id: &str) -> String {
        format!("p{partition}:event:{id}")
    }

    /// The index of `partition`'s events by id.
    pub fn events_index(&self, partition: u16) -> String {
        format!("p{partition}:idx:events")
    }

    /// Where the server keeps its delivery of `partition`'s events to the
    /// webhook endpoint `endpoint` (a digest of its URL): beside the log it
    /// follows, so that its compare-and-swap stays in one partition.
    pub fn webhook_delivery(&self, partition: u16, endpoint: &str) -> String {
        format!("p{partition}:webhook:{endpoint}")
    }

    /// The index of `partition`'s emergency requests whose review is open,
    /// by the review's `dueAt`.
    pub fn review_index(&self, partition: u16) -> String {
        format!("p{partition}:idx:review")
    }

    /// The index of `partition`'s pending requests by `createdAt`, for the
    /// oldest pending age.
    pub fn age_index(&self, partition: u16) -> String {
        format!("p{partition}:idx:age")
    }

    /// Every index entry a request belongs to in its current state, all in
    /// the request's partition.
    pub fn index_entries(&self, request: &ApprovalRequest) -> Vec<(String, IndexEntry)> {
        let partition = self.partition_of_id(&request.id);
        let member = request.id.to_string();
        let sort_key = listing_sort_key(request);
        let mut entries = vec![
            (
                self.status_index(partition, request.status),
                IndexEntry {
                    sort_key: sort_key.clone(),
                    member: member.clone(),
                },
            ),
            (
                self.status_type_index(partition, request.status, &request.change.policy_type),
                IndexEntry {
                    sort_key,
                    member: member.clone(),
                },
            ),
        ];
        if request.review_open()
            && let Some(emergency) = &request.emergency
        {
            entries.push((
                self.review_index(partition),
                IndexEntry {
                    sort_key: fixed(millis(emergency.review.due_at)),
                    member: member.clone(),
                },
            ));
        }
        if let Some(deadline) = request.next_deadline() {
            entries.push((
                self.due_index(partition),
                IndexEntry {
                    sort_key: fixed(millis(deadline)),
                    member: member.clone(),
                },
            ));
        }
        let (anyone, roles) = request.approver_roles();
        let pending_key = listing_sort_key(request);
        for index in roles
            .iter()
            .map(|role| self.role_index(partition, role))
            .chain(anyone.then(|| self.anyone_index(partition)))
        {
            entries.push((
                index,
                IndexEntry {
                    sort_key: pending_key.clone(),
                    member: member.clone(),
                },
            ));
        }
        if request.status == Status::Pending {
            entries.push((
                self.age_index(partition),
                IndexEntry {
                    sort_key: fixed(millis(request.created_at)),
                    member,
                },
            ));
        }
        entries
    }
}

/// The partition a key or index name written by [`Layout`] belongs to, and
/// the rest of it; `None` for a key outside every partition (say, the
/// host's own records). Backends use it to route a commit to its shard.
pub fn split_partition(key: &str) -> Option<(u16, &str)> {
    let rest = key.strip_prefix('p')?;
    let colon = rest.find(':')?;
    let digits = rest.get(..colon)?;
    if digits.is_empty()
        || digits.len() > 4
        || !digits.bytes().all(|byte| byte.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    let partition = digits.parse::<u16>().ok()?;
    (partition < MAX_PARTITIONS).then(|| (partition, rest.get(colon + 1..).unwrap_or("")))
}

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
        let layout = Layout::default();
        assert_eq!(
            layout.partition_of_principal("a:b"),
            layout.partition_of_principal("a:b")
        );
        let one = layout.idempotency("a:b", "c");
        let other = layout.idempotency("a", "b:c");
        assert_ne!(
            split_partition(&one).map(|(_, rest)| rest),
            split_partition(&other).map(|(_, rest)| rest)
        );
    }

    #[test]
    fn partitions_are_refused_out_of_range() {
        assert!(Layout::new(0).is_err());
        assert!(Layout::new(1025).is_err());
        assert!(Layout::new(70_000).is_err());
        assert_eq!(Layout::new(1).unwrap().partitions(), 1);
        assert_eq!(Layout::new(1024).unwrap().partitions(), 1024);
    }

    #[test]
    fn every_key_names_its_partition_and_the_partition_splits_back() {
        let layout = Layout::new(1024).unwrap();
        let id = Uuid::from_u128(7);
        let key = layout.request(&id);
        let (partition, rest) = split_partition(&key).unwrap();
        assert_eq!(partition, layout.partition_of_id(&id));
        assert_eq!(rest, format!("req:{id}"));
        let (partition, _) = split_partition(&layout.rate_bucket("alice")).unwrap();
        assert_eq!(partition, layout.partition_of_principal("alice"));
        assert_eq!(
            split_partition(&layout.due_index(1023)),
            Some((1023, "idx:due"))
        );
        assert_eq!(split_partition(PARTITIONS_KEY), None);
        for outside in ["cfg:rules", "p:x", "p01:x", "p1024:x", "px:y", "p12345:x"] {
            assert_eq!(split_partition(outside), None, "{outside}");
        }
    }

    #[test]
    fn ids_that_count_up_spread_over_every_partition() {
        let layout = Layout::default();
        let mut counts = [0_u32; DEFAULT_PARTITIONS as usize];
        for n in 0..1600_u128 {
            counts[usize::from(layout.partition_of_id(&Uuid::from_u128(n)))] += 1;
        }
        assert!(
            counts.iter().all(|count| (50..=150).contains(count)),
            "{counts:?}"
        );
    }
}
