//! The per-requester token bucket, in fixed-point arithmetic so that every
//! build computes the same tokens to the micro-token.

use serde::{Deserialize, Serialize};

use crate::rules::RateLimit;
use crate::time::Timestamp;

/// Micro-tokens per token.
const SCALE: u128 = 1_000_000;

/// A bucket as stored: its tokens at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Micro-tokens held at `at`.
    pub micro_tokens: u64,
    /// Epoch milliseconds of the last update.
    pub at: i64,
}

/// What taking a token decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A token was taken; store this bucket.
    Allowed(Bucket),
    /// No token; retry after this many seconds (at least 1).
    Limited {
        /// Seconds until one token, rounded up.
        retry_after_seconds: u64,
    },
}

/// Tries to take one token at `now` from `stored` (a full bucket when absent).
/// Tokens above the current capacity are clamped, so a rules change applies at
/// once.
pub fn take(limit: &RateLimit, stored: Option<Bucket>, now: Timestamp) -> Decision {
    let capacity = u128::from(limit.capacity()) * SCALE;
    let per_ms = u128::from(limit.per_seconds) * 1000;
    let requests = u128::from(limit.requests);
    let (held, elapsed) = match stored {
        None => (capacity, 0),
        Some(bucket) => (
            u128::from(bucket.micro_tokens).min(capacity),
            u128::try_from(now.as_millis().saturating_sub(bucket.at)).unwrap_or(0),
        ),
    };
    let refill = elapsed.saturating_mul(requests).saturating_mul(SCALE) / per_ms;
    let tokens = held.saturating_add(refill).min(capacity);
    if tokens >= SCALE {
        Decision::Allowed(Bucket {
            micro_tokens: u64::try_from(tokens - SCALE).unwrap_or(u64::MAX),
            at: now.as_millis(),
        })
    } else {
        // The exact milliseconds until one token, from the stored state rather
        // than from the truncated refill (which would add a spurious second
        // when the token is due on a whole second), then seconds rounded up.
        // `held < SCALE` here, and the exact wait is positive.
        let rate = requests * SCALE;
        let since_stored_ms = ((SCALE - held) * per_ms).div_ceil(rate);
        let wait_ms = since_stored_ms.saturating_sub(elapsed);
        let seconds = u64::try_from(wait_ms.div_ceil(1000)).unwrap_or(u64::MAX);
        Decision::Limited {
            retry_after_seconds: seconds.max(1),
        }
    }
}

/// How long a bucket must be kept: after refilling completely it equals an
/// absent one. Capped at one year.
pub fn bucket_ttl_ms(limit: &RateLimit) -> u64 {
    let full_ms = u128::from(limit.capacity()) * u128::from(limit.per_seconds) * 1000
        / u128::from(limit.requests);
    let year_ms = 366 * 24 * 3600 * 1000;
    u64::try_from(full_ms.saturating_add(1000).min(year_ms)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, per_seconds: u32, burst: Option<u32>) -> RateLimit {
        RateLimit {
            requests,
            per_seconds,
            burst,
        }
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn drain(
        limit: &RateLimit,
        mut bucket: Option<Bucket>,
        now: Timestamp,
        times: usize,
    ) -> Option<Bucket> {
        for _ in 0..times {
            match take(limit, bucket, now) {
                Decision::Allowed(next) => bucket = Some(next),
                Decision::Limited { .. } => panic!("limited too early"),
            }
        }
        bucket
    }

    #[test]
    fn a_full_bucket_allows_burst_then_refuses_with_the_wait() {
        let limit = limit(2, 60, Some(3));
        let bucket = drain(&limit, None, at(0), 3);
        // Two tokens a minute: one token every 30 s.
        assert_eq!(
            take(&limit, bucket, at(0)),
            Decision::Limited {
                retry_after_seconds: 30
            }
        );
        assert_eq!(
            take(&limit, bucket, at(29_001)),
            Decision::Limited {
                retry_after_seconds: 1
            }
        );
        assert!(matches!(
            take(&limit, bucket, at(30_000)),
            Decision::Allowed(_)
        ));
    }

    #[test]
    fn a_token_due_on_a_whole_second_is_not_rounded_past_it() {
        // One token an hour, asked 2 s after the last one: due in exactly 3598 s.
        let limit = limit(1, 3600, None);
        let bucket = drain(&limit, None, at(0), 1);
        assert_eq!(
            take(&limit, bucket, at(2_000)),
            Decision::Limited {
                retry_after_seconds: 3598
            }
        );
        assert_eq!(
            take(&limit, bucket, at(2_001)),
            Decision::Limited {
                retry_after_seconds: 3598
            }
        );
        assert!(matches!(
            take(&limit, bucket, at(3_600_000)),
            Decision::Allowed(_)
        ));
    }

    #[test]
    fn the_wait_is_at_least_one_second() {
        let limit = limit(1000, 1, None);
        let bucket = drain(&limit, None, at(0), 1000);
        assert_eq!(
            take(&limit, bucket, at(0)),
            Decision::Limited {
                retry_after_seconds: 1
            }
        );
    }

    #[test]
    fn tokens_are_clamped_to_a_smaller_burst() {
        let wide = limit(10, 60, None);
        let bucket = drain(&wide, None, at(0), 1); // 9 tokens left
        let narrow = limit(10, 60, Some(2));
        let bucket = drain(&narrow, bucket, at(0), 2);
        assert!(matches!(
            take(&narrow, bucket, at(0)),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn ttl_covers_a_full_refill() {
        assert_eq!(bucket_ttl_ms(&limit(2, 60, Some(3))), 91_000);
        assert_eq!(
            bucket_ttl_ms(&limit(1, 1_000_000_000, Some(1_000_000_000))),
            366 * 24 * 3600 * 1000
        );
    }
}
