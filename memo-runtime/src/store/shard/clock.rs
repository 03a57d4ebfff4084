//! `Policy::Lru`: least recently used, approximated by CLOCK (second chance).
//!
//! A hit sets the entry's reference bit (a use count capped at one) when it is clear. To make
//! room, the hand goes round the entries in insertion order: a set bit is cleared and the entry
//! goes round again; the first entry found clear leaves. Exact LRU would move the entry to the
//! front of a list on every hit, a write every reader shares.

use std::hash::{BuildHasher, Hash};

use super::{MAIN, Shard, USES};

/// One reference bit.
pub(super) const CAP: u8 = 1;

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Makes room for a new key if the shard is full; the new entry's `uses` byte.
    pub(super) fn admit_clock<S: BuildHasher>(&mut self, hasher: &S, now: u64) -> u8 {
        while self.len() >= self.capacity {
            self.evict_clock(hasher, now);
        }
        MAIN
    }

    /// Evicts one entry: the hand clears set bits until it finds an entry whose bit is clear.
    pub(super) fn evict_clock<S: BuildHasher>(&mut self, hasher: &S, now: u64) {
        loop {
            let Some(at) = self.pop(true) else {
                return self.evict_any();
            };
            if self.expired_at(at, now) {
                return self.drop_slot(hasher, at, true);
            }
            let uses = self.slot_mut(at).uses.get_mut();
            if *uses & USES > 0 {
                *uses = MAIN;
                self.main.push_back(at);
                continue;
            }
            return self.drop_slot(hasher, at, false);
        }
    }
}
