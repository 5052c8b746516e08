//! Which destinations changed since a relay driver last read them, so that a driver keeps
//! its destination in memory between steps instead of reading it every step.
//!
//! Every change a driver must see is announced on `eventgate_destinations` (a trigger,
//! migration `..._destination_notifications`) and counted here by the process's LISTEN
//! connection (`crate::listener`). A driver notes the count before it reads the row and
//! reads again once the count moved. Notifications are lost while the LISTEN connection
//! is down: every (re)connect counts as a change of every destination.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

pub const CHANNEL: &str = "eventgate_destinations";

#[derive(Clone, Default)]
pub struct DestinationChanges {
    counts: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    /// Moves when changes may have been missed (every destination counts as changed).
    epoch: u64,
    per_destination: HashMap<Uuid, u64>,
}

/// How far the changes of one destination had got when a driver read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    epoch: u64,
    count: u64,
}

impl DestinationChanges {
    /// Call before reading the destination; the row read is current until
    /// [`DestinationChanges::changed_since`] says otherwise.
    pub fn seen(&self, id: Uuid) -> Seen {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        Seen {
            epoch: counts.epoch,
            count: counts.per_destination.get(&id).copied().unwrap_or(0),
        }
    }

    pub fn changed_since(&self, id: Uuid, seen: Seen) -> bool {
        self.seen(id) != seen
    }

    /// A notification: `id` changed.
    pub fn changed(&self, id: Uuid) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.per_destination.entry(id).or_default();
        *count = count.wrapping_add(1);
    }

    /// Changes may have been missed: every destination counts as changed.
    pub fn all_changed(&self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.epoch = counts.epoch.wrapping_add(1);
        // The epoch alone invalidates every reading; the counts can start over.
        counts.per_destination.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_one_destination_invalidates_only_its_readings() {
        let changes = DestinationChanges::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (seen_a, seen_b) = (changes.seen(a), changes.seen(b));
        changes.changed(a);
        assert!(changes.changed_since(a, seen_a));
        assert!(!changes.changed_since(b, seen_b));
        let seen_a = changes.seen(a);
        assert!(!changes.changed_since(a, seen_a));
    }

    #[test]
    fn missed_notifications_invalidate_every_reading() {
        let changes = DestinationChanges::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        changes.changed(a);
        let (seen_a, seen_b) = (changes.seen(a), changes.seen(b));
        changes.all_changed();
        assert!(changes.changed_since(a, seen_a));
        assert!(changes.changed_since(b, seen_b));
        // A count that started over must not make an old reading look current.
        changes.changed(a);
        assert!(changes.changed_since(a, seen_a));
    }
}
