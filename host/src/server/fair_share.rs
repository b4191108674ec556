//! Each principal's fair share of the server: at most so many calls in
//! flight at once.
//!
//! One principal could otherwise hold every engine instance (with slow
//! listings, say) and starve everyone else. A call takes a [`Slot`] right
//! after authentication, before its body is read, and gives it back when its
//! answer is ready; a principal with every slot taken is answered
//! `429 rate_limited` with `Retry-After: 1` at once, without waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The calls in flight, by principal id.
#[derive(Debug)]
pub struct FairShare {
    limit: usize,
    in_flight: Mutex<HashMap<String, usize>>,
}

/// One call in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    share: Arc<FairShare>,
    principal: String,
}

impl FairShare {
    /// At most `limit` (at least 1) calls per principal.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// The most calls one principal may have in flight.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for `principal`, or `None` when its share is used up.
    pub fn enter(self: &Arc<Self>, principal: &str) -> Option<Slot> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(principal.to_owned()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            share: Arc::clone(self),
            principal: principal.to_owned(),
        })
    }

    /// How many calls `principal` has in flight.
    pub fn in_flight(&self, principal: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(principal)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self
            .share
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(&self.principal) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Forget idle principals, so the map tracks only who is
                // calling now.
                in_flight.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_principal_has_its_own_share() {
        let share = FairShare::new(2);
        let first = share.enter("alice").unwrap();
        let second = share.enter("alice").unwrap();
        assert!(share.enter("alice").is_none(), "the third call is refused");
        let bob = share.enter("bob").unwrap();
        assert_eq!(share.in_flight("alice"), 2);
        drop(first);
        assert_eq!(share.in_flight("alice"), 1);
        let again = share.enter("alice").unwrap();
        drop((second, again, bob));
        assert_eq!(share.in_flight("alice"), 0);
        assert!(share.in_flight.lock().unwrap().is_empty());
    }
}
