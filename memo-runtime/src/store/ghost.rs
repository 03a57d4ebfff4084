//! The ghost of the default policy: which keys left the shard lately and how long ago, remembered
//! by fingerprint (not as entries), and how far back a key may have left the small queue and
//! still come back to the main queue.
//!
//! Two aged filters remember departures: the keys that left the small queue (over a little more
//! than twice as many departures as the shard holds) and those evicted from main (over half as
//! many). The window, how many of the small queue's latest departures count as recent, adapts on
//! misses alone, the way ARC (Megiddo and Modha, FAST '03) sizes its lists: each key back from
//! the small queue's ghost widens it by one; each key back soon after main evicted it narrows it
//! by [`DOWN`], between a tenth of the shard and 2.1 times it. Where returns from afar pay (the
//! long loops of a disk trace such as the ARC paper's P3), main seldom regrets an eviction and
//! the window grows; under Zipf, main's lukewarm keys come back often and it shrinks. The rule
//! was chosen in the policy lab (`benches/hitratio/lab.rs`, `door-…-ad10_200_50_1_5_0_n1`), the
//! widest window and the slack of the filter then on the real store. The ghost also counts how
//! many misses in a row were returning keys: 64 or more, and the shard is serving a loop.
//!
//! A third filter remembers keys that came back before: each key the small queue's departures
//! recall, inside the window or not, over 1.2 times the shard's capacity of such recalls. As
//! only returning keys are added, it reaches much further back than the departures: a key asked
//! for again and again at long intervals, missed each time as the ghost forgot it, is recalled
//! as recurring (see `auto.rs` for what it may then displace). On P3 at 20,000 that took the hit
//! ratio from about 11.9 to about 12.4, and every other trace of `benches/hitratio.rs` gained or
//! held.
//!
//! Each filter is a table of 16-bit slots in buckets of 4: a 12-bit fingerprint over a 4-bit
//! epoch (a fourteenth of the filter's span). A key may sit in either of two buckets; a full pair
//! gives up its oldest slot, so the filter forgets in about the order keys left. At 2 bytes a
//! slot the ghost costs about 8.1 bytes per entry of the shard (4.7 for the small queue's
//! departures, 1 for main's, 2.4 for the recurring keys), each filter allocated on its first
//! addition. A new key mistaken for a remembered one (a chance of about 1 in 512) only enters the
//! main queue a little early, or nudges the window.

/// Slots per bucket.
const WAYS: usize = 4;
/// The epoch in a slot's low bits; the fingerprint is above it.
const EPOCH: u16 = 0xF;
/// Epochs a filter remembers: one more and a slot counts as empty (ages wrap at 16).
const EPOCHS: u64 = 14;

/// Keys added lately, each with the epoch of its last addition.
struct Aged {
    /// Allocated on the first addition (a store bounded far above what it holds pays nothing).
    slots: Box<[u16]>,
    size: usize,
    /// Additions so far, and how many make an epoch.
    adds: u64,
    epoch_len: u64,
    /// The next slot to clear if expired (16 per addition: all of them within an epoch, so that
    /// no age wraps round).
    sweep: usize,
}

/// A key's fingerprint (never 0, which marks an empty slot) and its two buckets, from bits of its
/// hash mixed anew, so that the bits the store used to pick the shard do not weaken them.
#[allow(clippy::cast_possible_truncation, reason = "bits of the mixed hash")]
fn place(hash: u64, buckets: usize) -> (u16, usize, usize) {
    let mixed = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let fingerprint = ((mixed >> 52) as u16).max(1) << 4;
    let other = (hash ^ (hash >> 29)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let reduce = |bits: u64| (((bits >> 32) * buckets as u64) >> 32) as usize;
    (fingerprint, reduce(mixed << 12), reduce(other))
}

impl Aged {
    /// Room for `size` keys, remembered for about `size` additions; none for 0.
    fn new(size: usize) -> Self {
        Self {
            slots: Box::default(),
            size,
            adds: 0,
            epoch_len: (size as u64).div_ceil(EPOCHS).max(1),
            sweep: 0,
        }
    }

    fn buckets(&self) -> usize {
        self.slots.len() / WAYS
    }

    #[allow(clippy::cast_possible_truncation, reason = "an epoch mod 16")]
    fn epoch(&self) -> u16 {
        (self.adds / self.epoch_len) as u16 & EPOCH
    }

    /// How many epochs ago this slot was written; more than `EPOCHS` for an empty one.
    fn age_of(&self, slot: u16) -> u64 {
        if slot == 0 {
            return u64::MAX;
        }
        u64::from(self.epoch().wrapping_sub(slot) & EPOCH)
    }

    /// Where the key with this fingerprint sits in buckets `a` and `b`, if it is remembered.
    fn find(&self, fingerprint: u16, a: usize, b: usize) -> Option<usize> {
        [a, b]
            .into_iter()
            .flat_map(|bucket| bucket * WAYS..(bucket + 1) * WAYS)
            .find(|&i| {
                let slot = self.slots[i];
                slot & !EPOCH == fingerprint && self.age_of(slot) <= EPOCHS
            })
    }

    /// How many additions ago the key with this hash was last added (to within an epoch), if it
    /// is remembered; `forget` forgets it.
    fn age(&mut self, hash: u64, forget: bool) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let (fingerprint, a, b) = place(hash, self.buckets());
        let i = self.find(fingerprint, a, b)?;
        let epochs = self.age_of(self.slots[i]);
        if forget {
            self.slots[i] = 0;
        }
        Some(epochs * self.epoch_len + self.epoch_len / 2)
    }

    /// Remembers the key with this hash as added now.
    fn add(&mut self, hash: u64) {
        if self.slots.is_empty() {
            if self.size == 0 {
                return;
            }
            self.slots = vec![0; self.size.div_ceil(WAYS).max(2) * WAYS].into_boxed_slice();
        }
        self.adds += 1;
        let buckets = self.buckets();
        // Clear 16 slots past `EPOCHS`, before they wrap round to a young age: all of them
        // within 14 / 16 of an epoch.
        for _ in 0..16 {
            self.sweep = (self.sweep + 1) % self.slots.len();
            let slot = self.slots[self.sweep];
            if slot != 0 && self.age_of(slot) > EPOCHS {
                self.slots[self.sweep] = 0;
            }
        }
        let (fingerprint, a, b) = place(hash, buckets);
        let slot = fingerprint | self.epoch();
        if let Some(i) = self.find(fingerprint, a, b) {
            self.slots[i] = slot;
            return;
        }
        // The oldest slot of the two buckets (an empty one first) makes room.
        let oldest = [a, b]
            .into_iter()
            .flat_map(|bucket| bucket * WAYS..(bucket + 1) * WAYS)
            .max_by_key(|&i| self.age_of(self.slots[i]))
            .expect("two buckets");
        self.slots[oldest] = slot;
    }

    fn clear(&mut self) {
        self.slots = Box::default();
        self.adds = 0;
        self.sweep = 0;
    }
}

/// How much a key back soon after main evicted it narrows the window (a return widens it by 1).
const DOWN: usize = 5;

/// How many returning keys in a row make a loop (see `auto.rs`): a disk trace such as P3 has runs
/// of returning keys, shorter than that but for a few.
const LOOP: u32 = 64;

pub(crate) struct Ghost {
    /// Keys that left the small queue, over twice the shard's capacity.
    small: Aged,
    /// Keys evicted from main, over half the shard's capacity.
    main: Aged,
    /// How many of the small queue's latest departures come back to main, and its bounds.
    window: usize,
    least: usize,
    most: usize,
    /// The window to start from: half the shard.
    start: usize,
    /// How many misses in a row were returning keys.
    run: u32,
    /// Keys that came back before: each one the small queue's departures recalled (inside the
    /// window or not), over 1.2 times the shard's capacity of such recalls. Only returning keys
    /// are added, so it spans far more requests than `small`.
    recurring: Aged,
}

/// What the ghost recalls of a missed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recall {
    /// Nothing (or it left the small queue too long ago and never came back before).
    New,
    /// It left the small queue within the window: it comes back to main.
    Returning,
    /// It is outside the window, but came back before: asked for again and again, at intervals
    /// longer than the ghost reaches (the disk trace P3 of the ARC paper has many such keys).
    Recurring,
}

impl Ghost {
    /// A ghost for a shard of `capacity` entries; none (remembering nothing) for 0.
    pub(crate) fn new(capacity: usize) -> Self {
        let most = capacity.saturating_mul(21) / 10;
        Self {
            // An eighth more slots than the window's widest, as a full pair of buckets gives up
            // its oldest slot a little early.
            small: Aged::new(most.saturating_add(most / 8)),
            main: Aged::new(capacity.div_ceil(2)),
            window: capacity.div_ceil(2),
            least: capacity.div_ceil(10),
            most,
            start: capacity.div_ceil(2),
            run: 0,
            recurring: Aged::new(capacity.saturating_mul(6) / 5),
        }
    }

    /// On a miss: whether the key with this hash left the small queue lately enough to come back
    /// to main, or came back before. Adjusts the window on the way.
    pub(crate) fn recall(&mut self, hash: u64) -> Recall {
        if self.main.age(hash, true).is_some() {
            self.window = self.window.saturating_sub(DOWN).max(self.least);
        }
        let age = self.small.age(hash, false);
        let recurring = self.recurring.age(hash, false).is_some();
        if age.is_some() || recurring {
            self.recurring.add(hash);
        }
        let returning = age.is_some_and(|age| {
            self.window = (self.window + 1).min(self.most);
            age <= self.window as u64
        });
        self.run = if returning {
            self.run.saturating_add(1)
        } else {
            0
        };
        match (returning, recurring) {
            (true, _) => Recall::Returning,
            (false, true) => Recall::Recurring,
            (false, false) => Recall::New,
        }
    }

    /// Whether the latest [`LOOP`] misses were all returning keys, as in a loop over more keys
    /// than the shard holds.
    pub(crate) fn looping(&self) -> bool {
        self.run >= LOOP
    }

    /// Remembers a key with this hash that left the small queue (or was turned away).
    pub(crate) fn add(&mut self, hash: u64) {
        self.small.add(hash);
    }

    /// Remembers a key with this hash that main evicted.
    pub(crate) fn evicted_from_main(&mut self, hash: u64) {
        self.main.add(hash);
    }

    /// Forgets every key.
    pub(crate) fn clear(&mut self) {
        self.small.clear();
        self.main.clear();
        self.recurring.clear();
        self.window = self.start;
        self.run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(k: u64) -> u64 {
        k.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29) ^ k
    }

    #[test]
    fn remembers_the_latest_keys_with_their_age_and_forgets_older_ones() {
        let mut aged = Aged::new(1400);
        for k in 0..1400 {
            aged.add(mix(k));
        }
        let found = (0..1400)
            .filter(|&k| aged.age(mix(k), false).is_some())
            .count();
        // At full load a few leave early: a full pair of buckets gives up its oldest slot.
        assert!(found > 1200, "{found} of 1400");
        let age = aged.age(mix(1399), false).expect("the latest");
        assert!(age < 100, "{age}");
        let age = aged.age(mix(0), false).unwrap_or(1400);
        assert!(age > 1200, "{age}");
        // Added again, key 0 outlives the keys added before it.
        for k in 1400..2100 {
            aged.add(mix(k));
        }
        aged.add(mix(0));
        for k in 2100..2800 {
            aged.add(mix(k));
        }
        assert!(aged.age(mix(0), false).is_some());
        let stale = (1..1400)
            .filter(|&k| aged.age(mix(k), false).is_some())
            .count();
        assert!(stale < 100, "{stale} of the older keys");
        assert!(aged.age(mix(0), true).is_some());
        assert!(aged.age(mix(0), false).is_none(), "forgotten");
        aged.clear();
        assert!(!(1400..2800).any(|k| aged.age(mix(k), false).is_some()));
    }

    #[test]
    fn no_age_wraps_round() {
        let mut aged = Aged::new(1000);
        aged.add(mix(7));
        for k in 100_000..120_000 {
            aged.add(mix(k));
            assert!(k < 101_100 || aged.age(mix(7), false).is_none(), "{k}");
        }
    }

    #[test]
    fn the_window_widens_on_returns_and_narrows_on_regrets() {
        let mut ghost = Ghost::new(1000);
        let start = ghost.window;
        for k in 0..100 {
            ghost.add(mix(k));
        }
        assert!((0..100).all(|k| ghost.recall(mix(k)) == Recall::Returning));
        assert_eq!(ghost.window, start + 100);
        ghost.evicted_from_main(mix(5000));
        assert_eq!(ghost.recall(mix(5000)), Recall::New);
        assert_eq!(ghost.window, start + 100 - DOWN);
        assert_eq!(ghost.recall(mix(5000)), Recall::New, "counted once");
        assert_eq!(ghost.window, start + 100 - DOWN);
    }

    #[test]
    fn a_run_of_returning_keys_makes_a_loop() {
        let mut ghost = Ghost::new(1000);
        for k in 0..100 {
            ghost.add(mix(k));
        }
        for k in 0..u64::from(LOOP) - 1 {
            assert_eq!(ghost.recall(mix(k)), Recall::Returning);
        }
        assert!(!ghost.looping());
        assert_eq!(ghost.recall(mix(99)), Recall::Returning);
        assert!(ghost.looping());
        assert_eq!(ghost.recall(mix(5000)), Recall::New);
        assert!(!ghost.looping(), "a new key ends the run");
    }

    #[test]
    fn keys_back_before_are_recalled_after_the_small_queue_forgot_them() {
        let mut ghost = Ghost::new(100);
        for k in 0..10 {
            ghost.add(mix(k));
        }
        assert!((0..10).all(|k| ghost.recall(mix(k)) == Recall::Returning));
        // 1,000 departures later the small queue's ghost forgot keys 0..10, and key 1,000.
        for k in 1_000..2_000 {
            ghost.add(mix(k));
        }
        assert_eq!(ghost.recall(mix(1_000)), Recall::New, "left once, long ago");
        assert_eq!(ghost.recall(mix(5_000)), Recall::New, "never seen");
        assert!((0..10).all(|k| ghost.recall(mix(k)) == Recall::Recurring));
        // Recalled again just now, so still known after 50 other keys came back.
        for k in 2_000..2_050 {
            ghost.add(mix(k));
            assert_eq!(ghost.recall(mix(k)), Recall::Returning);
        }
        assert!((0..10).all(|k| ghost.recall(mix(k)) == Recall::Recurring));
        // After 400 more returns, they are forgotten.
        for k in 3_000..3_400 {
            ghost.add(mix(k));
            ghost.recall(mix(k));
        }
        let known = (0..10)
            .filter(|&k| ghost.recall(mix(k)) != Recall::New)
            .count();
        assert_eq!(known, 0);
        ghost.clear();
        assert_eq!(ghost.recall(mix(3_399)), Recall::New);
    }

    #[test]
    fn a_zero_size_ghost_remembers_nothing() {
        let mut ghost = Ghost::new(0);
        ghost.add(1);
        ghost.evicted_from_main(2);
        assert_eq!(ghost.recall(1), Recall::New);
        assert_eq!(ghost.recall(2), Recall::New);
    }
}
