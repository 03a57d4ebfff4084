//! `Policy::Lfu`: least frequently used, by sampling.
//!
//! A hit adds one to the entry's count (up to 127; past that it writes nothing). To make room, the
//! oldest `SAMPLE` entries in ring order are looked at and the one with the lowest count leaves
//! (the oldest among equals); the others go round to the back. An exact LFU would keep entries
//! sorted by count, moving an entry on every hit, a write every reader shares. Every 10 × the
//! shard's bound inserts all counts are halved, so that keys popular long ago give way.

use super::{MAIN, Ops, USES};

/// The highest count.
pub(super) const CAP: u8 = USES;

/// Entries compared per eviction.
const SAMPLE: usize = 8;

/// Counts are halved every `AGING × capacity` inserts (the sample period of `TinyLFU`): often
/// enough that yesterday's favourites leave, seldom enough that counts tell keys apart (halving
/// every `capacity` inserts left Zipf 0.7 at 10,000 entries no better than LRU, 12.7 %).
const AGING: usize = 10;

impl Ops<'_> {
    /// Makes room for a new key if the shard is full; the new entry's `uses` byte.
    pub(super) fn admit_lfu(&mut self, now: u64) -> u8 {
        self.core.since_aging += 1;
        // Bounded by weight alone, the period follows the entries held.
        let period = if self.core.capacity == usize::MAX {
            self.len().max(1)
        } else {
            self.core.capacity
        };
        if self.core.since_aging >= period.saturating_mul(AGING) {
            self.core.since_aging = 0;
            self.entries.each(&mut |meta| {
                let uses = meta.uses.get_mut();
                *uses = MAIN | ((*uses & USES) / 2);
            });
        }
        if self.len() >= self.core.capacity {
            self.evict_lfu(now);
        }
        MAIN
    }

    /// Evicts the least used of the oldest `SAMPLE` entries (or an expired one among them).
    pub(super) fn evict_lfu(&mut self, now: u64) {
        let mut sample = [0_u32; SAMPLE];
        let mut taken = 0;
        while taken < SAMPLE {
            let Some(at) = self.pop(true) else {
                break;
            };
            if self.expired_at(at, now) {
                // An expired entry makes the room; the others keep their places at the front.
                for &at in sample[..taken].iter().rev() {
                    self.core.main.push_front(at);
                }
                return self.drop_slot(at, true);
            }
            sample[taken] = at;
            taken += 1;
        }
        if taken == 0 {
            return self.evict_any();
        }
        let uses_of = |ops: &mut Self, at| *ops.uses_mut(at) & USES;
        let mut victim = 0;
        for i in 1..taken {
            if uses_of(self, sample[i]) < uses_of(self, sample[victim]) {
                victim = i;
            }
        }
        for (i, &at) in sample[..taken].iter().enumerate() {
            if i != victim {
                self.core.main.push_back(at);
            }
        }
        self.drop_slot(sample[victim], false);
    }
}
