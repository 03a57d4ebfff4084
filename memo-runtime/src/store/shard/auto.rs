//! The default policy: S3-FIFO (Yang et al., SOSP '23) with a `TinyLFU` door on its main queue.
//!
//! New keys enter the small queue. When room is needed and the small queue holds its share, its
//! oldest entry leaves: to the main queue if it was hit meanwhile, otherwise out, remembered by
//! the ghost. Otherwise the main queue's CLOCK hand evicts: an entry with uses loses one (credited
//! to the frequency sketch) and goes round again, one without leaves.
//!
//! The door: a key the ghost remembers comes back to the main queue. When main holds its share,
//! the hand's entry decides. Without uses, it gives way only to a key the sketch counts more often
//! (`TinyLFU`, Einziger et al., 2017); with uses, it loses one and goes round, and the key takes
//! the place of the small queue's oldest entry if that one has no uses. Otherwise the key is not
//! stored this time and the ghost remembers it afresh. In a loop over more keys than the cache
//! holds, every key is asked for alike, so the cached part stays (near the optimum, where CLOCK
//! and S3-FIFO churn); scans and one-hit wonders pass through the small queue.
//! With a small queue of more than half the shard (recency pays), the sketch's duel is skipped.
//!
//! A key outside the ghost's window (or forgotten by it), but recalled as one that came back
//! before (recurring, see `ghost.rs`), meets the hand's entry too, whatever the small queue
//! holds: it takes the place of an unused entry, and past a used one it joins the small queue
//! like a new key. A disk trace such as P3 asks for many keys again and again at intervals
//! longer than the ghost reaches.
//!
//! While the shard first fills, every key joins the small queue, which then holds far more than
//! its share until its entries move on to main or out. A key returning meanwhile takes the place
//! of the small queue's oldest entry and joins main; but when a loop over a little more keys than
//! the shard holds comes round again, that oldest entry is the next key it asks for, which comes
//! back in turn and pushes out the next: the whole pass would miss. So once 64 misses in a row
//! were returning keys (the ghost counts them), a returning key finding the small queue past its
//! share is not stored, and the ghost remembers it afresh: the small queue keeps the part of the
//! loop it holds, and the loop loses only the keys it cannot hold.
//!
//! The small queue's share starts at 3 % and adapts to the workload (`climb.rs`): the store's
//! climber widens it, up to 80 %, while a wider one raises the hit ratio, as when the popular
//! keys keep changing and only a wide small queue keeps a new one until it is asked for again;
//! elsewhere it stays at 3 %.
//!
//! How far back a key may have left the small queue and still count as returning adapts (see
//! `ghost.rs`): main also tells the ghost what it evicts, and keys back soon after that narrow
//! the window. The shares (small queue 3 %, 3 banked uses) and the door were chosen in the policy
//! lab (`benches/hitratio/lab.rs`, `door-s3-g50-c3-drain-exact-tlfu-m1000`, with the adaptive
//! window `-ad10_200_50_1_5_0_n1`) over the Zipf, loop, scan and ARC traces of
//! `benches/hitratio.rs`, against moka and `quick_cache`; a shard under 1,000 entries banks 15
//! uses (`cap`), chosen on the `tune` rows.

use super::climb::LEAST_CAPACITY;
use super::{MAIN, Ops, USES};
use crate::store::ghost::Recall;
use crate::store::sketch::Sketch;

/// Uses a main entry can bank: up to three laps of the hand without a hit.
pub(super) const CAP: u8 = 3;

/// Uses a main entry of a shard of fewer than [`LEAST_CAPACITY`] entries can bank: as many as
/// the sketch counts. Such a shard is a whole store whose small queue keeps its 3 % (`climb.rs`),
/// so frequency is all it goes by, and more banked uses tell the frequent keys from the
/// lukewarm ones (see `docs/performance.md`).
pub(super) const SMALL_CAP: u8 = 15;

/// The uses a main entry of a shard of `capacity` entries can bank.
pub(super) const fn cap(capacity: usize) -> u8 {
    if capacity < LEAST_CAPACITY {
        SMALL_CAP
    } else {
        CAP
    }
}

/// The small queue's share of a shard to start with: 3 %, at least one entry (the climber moves
/// it, `climb.rs`).
pub(super) fn small_target(capacity: usize) -> usize {
    (capacity / 33).max(1)
}

/// The capacity the ghost is built for: the shard's (it remembers up to twice as many keys that
/// left the small queue, and half as many that main evicted; see `ghost.rs`).
pub(super) const fn ghost_size(capacity: usize) -> usize {
    capacity
}

/// How a missed key fared against the entry under main's hand.
enum Duel {
    /// The entry was expired, or unused and beaten: it left, the key takes its place in main.
    Won,
    /// The entry was unused and not beaten: it stays where it is.
    Lost,
    /// The entry was used: it lost one use and went round.
    Passed,
}

impl Ops<'_> {
    /// Makes room for a new key if the shard is full; the new entry's `uses` byte (which ring it
    /// joins), or `None` when the door turns it away.
    pub(super) fn admit_auto(&mut self, hash: u64, now: u64) -> Option<u8> {
        self.core.sketch.increment(hash);
        let recall = self.core.ghost.recall(hash);
        let joins = if recall == Recall::New { 0 } else { MAIN };
        if self.len() < self.core.capacity {
            return Some(joins);
        }
        match recall {
            // Back from further than the ghost reaches, but not for the first time: the key takes
            // the place of main's entry if that one is unused; past a used one it joins the small
            // queue as a new key does.
            Recall::Recurring => {
                if let Some(Duel::Won) = self.duel(now, |_, _| true) {
                    return Some(MAIN);
                }
                self.evict_auto(now);
                return Some(0);
            }
            // The door stands only where main would give up an entry anyway: when the small
            // queue is within its share.
            Recall::Returning if self.core.small_len < self.core.small_target => {
                // TinyLFU: in a loop all are asked for alike, and the cached part stays. But with
                // a small queue of more than half the shard (recency pays, `shadow.rs`), a
                // returning key takes an unused entry's place whatever the sketch counts: there the
                // sketch still counts the keys of a hot set that moved on, and turns away those
                // hot now (`tune/shift20k/10000` 72.31–72.33 → 72.43–72.44, LRU 72.53).
                let wide = self.core.small_target > self.core.capacity / 2;
                let more_often =
                    |sketch: &Sketch, front| wide || sketch.estimate(hash) > sketch.estimate(front);
                match self.duel(now, more_often) {
                    Some(Duel::Won) => return Some(MAIN),
                    Some(Duel::Lost) => {
                        self.core.ghost.add(hash);
                        return None;
                    }
                    Some(Duel::Passed) => {
                        return self.take_the_oldest_small_place(hash, now);
                    }
                    None => {}
                }
            }
            Recall::Returning
                if self.core.small_len > self.core.small_target && self.core.ghost.looping() =>
            {
                // The shard filled lately, every key in the small queue, and a loop over more
                // keys than it holds is back: each returning key would push out the small
                // queue's oldest entry, the very key the loop asks for next, and the whole pass
                // would miss. Not stored, the key leaves the small queue as it is, the part of
                // the loop it holds.
                self.core.ghost.add(hash);
                return None;
            }
            Recall::Returning | Recall::New => {}
        }
        self.evict_auto(now);
        Some(joins)
    }

    /// The door of main: a missed key meets the entry under main's hand (`None` if main is
    /// empty). An expired entry leaves; a used one loses a use and goes round; an unused one gives
    /// way if `beats(sketch, its hash)` says the key should have its place.
    fn duel(&mut self, now: u64, beats: impl FnOnce(&Sketch, u64) -> bool) -> Option<Duel> {
        if self.len() <= self.core.small_len {
            return None;
        }
        let (front, index) = self.pop_hashed(true)?;
        if self.expired_at(index, now) {
            self.drop_hashed(front, index, true);
            return Some(Duel::Won);
        }
        let uses = self.uses_mut(index);
        if *uses & USES > 0 {
            *uses -= 1;
            self.core.main.push_back(index);
            self.core.sketch.increment(front);
            return Some(Duel::Passed);
        }
        if !beats(&self.core.sketch, front) {
            self.core.main.push_front(index);
            return Some(Duel::Lost);
        }
        self.drop_hashed(front, index, false);
        self.core.ghost.evicted_from_main(front);
        Some(Duel::Won)
    }

    /// A returning key turned away by main takes the place of the small queue's oldest entry if
    /// that one is unused (so a loop drains the small queue into main); else it is not stored and
    /// the ghost remembers it afresh.
    fn take_the_oldest_small_place(&mut self, hash: u64, now: u64) -> Option<u8> {
        if let Some((oldest, index)) = self.pop_hashed(false) {
            if self.expired_at(index, now) {
                self.drop_hashed(oldest, index, true);
                return Some(MAIN);
            }
            if *self.uses_mut(index) & USES == 0 {
                self.drop_hashed(oldest, index, false);
                self.core.ghost.add(oldest);
                return Some(MAIN);
            }
            self.core.small.push_front(index);
        }
        self.core.ghost.add(hash);
        None
    }

    /// Frees one place: from the small queue when it holds its share (or main is empty), else
    /// from main.
    pub(super) fn evict_auto(&mut self, now: u64) {
        loop {
            let main_len = self.len().saturating_sub(self.core.small_len);
            if self.core.small_len >= self.core.small_target || main_len == 0 {
                let Some((hash, index)) = self.pop_hashed(false) else {
                    if main_len == 0 {
                        return self.evict_any();
                    }
                    // The small queue's count was off; main has entries.
                    self.core.small_len = 0;
                    continue;
                };
                if self.expired_at(index, now) {
                    return self.drop_hashed(hash, index, true);
                }
                let uses = self.uses_mut(index);
                if *uses & USES > 0 {
                    *uses = MAIN;
                    self.core.small_len -= 1;
                    self.core.main.push_back(index);
                    continue;
                }
                self.drop_hashed(hash, index, false);
                self.core.ghost.add(hash);
                return;
            }
            let Some((hash, index)) = self.pop_hashed(true) else {
                return self.evict_any();
            };
            if self.expired_at(index, now) {
                return self.drop_hashed(hash, index, true);
            }
            let uses = self.uses_mut(index);
            if *uses & USES > 0 {
                *uses -= 1;
                self.core.main.push_back(index);
                self.core.sketch.increment(hash);
                continue;
            }
            self.drop_hashed(hash, index, false);
            self.core.ghost.evicted_from_main(hash);
            return;
        }
    }
}
