//! `Policy::Fifo`: the oldest entry leaves, whatever its hits; a hit writes nothing at all.

use super::{MAIN, Ops};

/// Hits are not counted.
pub(super) const CAP: u8 = 0;

impl Ops<'_> {
    /// Makes room for a new key if the shard is full; the new entry's `uses` byte.
    pub(super) fn admit_fifo(&mut self, now: u64) -> u8 {
        if self.len() >= self.core.capacity {
            self.evict_fifo(now);
        }
        MAIN
    }

    /// Evicts the oldest entry.
    pub(super) fn evict_fifo(&mut self, now: u64) {
        match self.pop(true) {
            Some(at) => {
                let expired = self.expired_at(at, now);
                self.drop_slot(at, expired);
            }
            None => self.evict_any(),
        }
    }
}
