//! `Policy::Fifo`: the oldest entry leaves, whatever its hits; a hit writes nothing at all.

use std::hash::{BuildHasher, Hash};

use super::{MAIN, Shard};

/// Hits are not counted.
pub(super) const CAP: u8 = 0;

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Makes room for a new key if the shard is full; the new entry's `uses` byte.
    pub(super) fn admit_fifo<S: BuildHasher>(&mut self, hasher: &S, now: u64) -> u8 {
        if self.len() >= self.capacity {
            self.evict_fifo(hasher, now);
        }
        MAIN
    }

    /// Evicts the oldest entry.
    pub(super) fn evict_fifo<S: BuildHasher>(&mut self, hasher: &S, now: u64) {
        match self.pop(true) {
            Some(at) => {
                let expired = self.expired_at(at, now);
                self.drop_slot(hasher, at, expired);
            }
            None => self.evict_any(),
        }
    }
}
