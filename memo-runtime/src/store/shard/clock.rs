//! `Policy::Lru`: least recently used, approximated by CLOCK (second chance).
//!
//! A hit sets the entry's reference bit (a use count capped at one) when it is clear. To make
//! room, the hand goes round the entries in insertion order: a set bit is cleared and the entry
//! goes round again; the first entry found clear leaves. Exact LRU would move the entry to the
//! front of a list on every hit, a write every reader shares.

use super::{MAIN, Ops, USES};

/// One reference bit.
pub(super) const CAP: u8 = 1;

impl Ops<'_> {
    /// Makes room for a new key if the shard is full; the new entry's `uses` byte.
    pub(super) fn admit_clock(&mut self, now: u64) -> u8 {
        while self.len() >= self.core.capacity {
            let held = self.len();
            self.evict_clock(now);
            if self.len() == held {
                // Nothing could leave (see `make_room`).
                break;
            }
        }
        MAIN
    }

    /// Evicts one entry: the hand clears set bits until it finds an entry whose bit is clear.
    pub(super) fn evict_clock(&mut self, now: u64) {
        loop {
            let Some(at) = self.pop(true) else {
                return self.evict_any();
            };
            if self.expired_at(at, now) {
                return self.drop_slot(at, true);
            }
            let uses = self.uses_mut(at);
            if *uses & USES > 0 {
                *uses = MAIN;
                self.core.main.push_back(at);
                continue;
            }
            return self.drop_slot(at, false);
        }
    }
}
