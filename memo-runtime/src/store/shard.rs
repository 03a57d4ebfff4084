//! One shard of the in-memory store: entries held inline in a hash table, evicted by CLOCK.
//!
//! Keeping the entries in the table itself (not in a side array behind an index) makes a hit one
//! probe and one cache line fewer. A hit only sets the entry's reference bit, and only when it is
//! clear, so readers sharing the shard's read lock do not write to a warm entry.
//!
//! Eviction runs the CLOCK hand over the table a batch at a time: when the shard is full, one pass
//! in bucket order, starting where the last one stopped, clears the reference bits it passes and
//! evicts unreferenced entries until a batch is free. Expired entries met on the way always go.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;

use super::Counts;
use crate::lookup::Lookup;

/// An entry: key, value, expiry stamp (0 = never) and the CLOCK reference bit.
struct Slot<K, V> {
    key: K,
    value: V,
    /// When the time to live ends (0 = never); the entry may be served stale for the shard's
    /// `grace` after that.
    expires: u64,
    /// When to start an early refresh (0 = never): drawn once per value (see `Stamp`).
    refresh_at: u64,
    referenced: AtomicBool,
    /// Set by the one caller that refreshes this entry while others keep being served.
    refreshing: AtomicBool,
}

impl<K, V> Slot<K, V> {
    /// Past its time to live and its grace: gone for good.
    #[inline]
    fn is_expired(&self, now: u64, grace: u64) -> bool {
        self.expires != 0 && now >= self.expires.saturating_add(grace)
    }

    /// Makes this caller the one that refreshes the entry; `false` if another already is.
    fn claim_refresh(&self) -> bool {
        !self.refreshing.load(Ordering::Relaxed) && !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

/// When a new value expires and when its early refresh is due (0 = never, for each).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stamp {
    pub(crate) expires: u64,
    pub(crate) refresh_at: u64,
}

/// How a shard serves entries near the end of their time to live.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Renewal {
    /// How long past its time to live an entry may be served while it is refreshed (ns).
    pub(crate) grace: u64,
}

/// A full shard frees this share of its capacity at once (at least one entry), so the cost of a
/// pass over the table is spread over that many inserts.
const BATCH_DIVISOR: usize = 32;

pub(crate) struct Shard<K, V> {
    table: HashTable<Slot<K, V>>,
    capacity: usize,
    renewal: Renewal,
    /// Where the CLOCK hand stopped, as a position in bucket order.
    hand: usize,
    /// Inserts since expired entries were last swept out, and whether any entry can expire.
    since_sweep: usize,
    expiring: bool,
    /// Entries this shard removed on its own; written under the write lock only.
    counts: Counts,
}

impl<K, V> Shard<K, V> {
    pub(crate) const fn new(capacity: usize, renewal: Renewal) -> Self {
        Self {
            table: HashTable::new(),
            capacity,
            renewal,
            hand: 0,
            since_sweep: 0,
            expiring: false,
            counts: Counts {
                hits: 0,
                evicted: 0,
                expired: 0,
                errors: 0,
            },
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The keys of entries that have not expired for good.
    pub(crate) fn keys(&self, now: u64) -> impl Iterator<Item = &K> {
        let grace = self.renewal.grace;
        self.table
            .iter()
            .filter(move |slot| !slot.is_expired(now, grace))
            .map(|slot| &slot.key)
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Empties the shard, handing back the entries so that the caller drops them after releasing
    /// the shard (their `Drop` may be user code).
    #[must_use = "drop the entries outside the shard's write guard"]
    pub(crate) fn take_all(&mut self) -> impl Sized + use<K, V> {
        self.hand = 0;
        self.since_sweep = 0;
        std::mem::take(&mut self.table)
    }

    /// The live value for `key`, marking it recently used. Takes `&self`: runs under a read lock.
    #[inline]
    pub(crate) fn get<L>(&self, hash: u64, key: &L, now: u64) -> Option<&V>
    where
        L: Lookup<Key = K>,
    {
        self.live(hash, key, now).map(|slot| &slot.value)
    }

    /// Like [`get`](Self::get), and `true` beside the value when this caller has become the one
    /// to refresh it: the entry is past its time to live (within the grace), or due early.
    pub(crate) fn get_renewing<L>(&self, hash: u64, key: &L, now: u64) -> Option<(&V, bool)>
    where
        L: Lookup<Key = K>,
    {
        let slot = self.live(hash, key, now)?;
        let due = slot.expires != 0
            && (now >= slot.expires || (slot.refresh_at != 0 && now >= slot.refresh_at));
        Some((&slot.value, due && slot.claim_refresh()))
    }

    /// The entry for `key` unless it expired for good, marked recently used.
    #[inline]
    fn live<L>(&self, hash: u64, key: &L, now: u64) -> Option<&Slot<K, V>>
    where
        L: Lookup<Key = K>,
    {
        let slot = self.table.find(hash, |slot| key.matches(&slot.key))?;
        if slot.is_expired(now, self.renewal.grace) {
            return None;
        }
        // Write only when the bit is clear: a warm entry's cache line stays shared between readers.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot)
    }

    /// A refresh of `key` failed: let a later caller try again.
    pub(crate) fn release_refresh<L>(&self, hash: u64, key: &L)
    where
        L: Lookup<Key = K>,
    {
        if let Some(slot) = self.table.find(hash, |slot| key.matches(&slot.key)) {
            slot.refreshing.store(false, Ordering::Release);
        }
    }

    /// Inserts or replaces, making room first when the shard is full.
    pub(crate) fn insert<S: BuildHasher>(
        &mut self,
        hasher: &S,
        hash: u64,
        key: K,
        value: V,
        stamp: Stamp,
        now: u64,
    ) where
        K: Hash + Eq,
    {
        let Stamp {
            expires,
            refresh_at,
        } = stamp;
        if self.capacity == 0 {
            return;
        }
        self.expiring |= expires != 0;
        if let Some(slot) = self.table.find_mut(hash, |slot| slot.key == key) {
            slot.value = value;
            slot.expires = expires;
            slot.refresh_at = refresh_at;
            *slot.refreshing.get_mut() = false;
            return;
        }
        self.since_sweep += 1;
        if self.expiring && self.since_sweep > self.table.len() / 8 {
            // Expired entries leave even when nobody reads them and the shard is not full.
            self.purge_expired(now);
        }
        if self.table.len() >= self.capacity {
            self.make_room(now);
        }
        let slot = Slot {
            key,
            value,
            expires,
            refresh_at,
            referenced: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
        };
        self.table
            .insert_unique(hash, slot, |slot| hasher.hash_one(&slot.key));
    }

    /// Removes `key`'s entry; `true` if there was one.
    pub(crate) fn remove<L>(&mut self, hash: u64, key: &L) -> bool
    where
        L: Lookup<Key = K>,
    {
        match self.table.find_entry(hash, |slot| key.matches(&slot.key)) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Removes every expired entry and returns how many left.
    pub(crate) fn purge_expired(&mut self, now: u64) -> usize {
        self.since_sweep = 0;
        let before = self.table.len();
        let grace = self.renewal.grace;
        self.table.retain(|slot| !slot.is_expired(now, grace));
        let purged = before - self.table.len();
        self.counts.expired += purged as u64;
        purged
    }

    /// One CLOCK batch: from the hand to the end of the table, then from the start, clear the
    /// reference bits passed and evict unreferenced entries until a batch is free. Three laps at
    /// most: by the third, every bit the hand passed is clear.
    fn make_room(&mut self, now: u64) {
        let target = (self.capacity / BATCH_DIVISOR).max(1);
        let mut freed = 0;
        let mut counts = Counts::default();
        let mut hand = self.hand;
        let grace = self.renewal.grace;
        for lap in 0..3 {
            if freed >= target {
                break;
            }
            let mut position = 0;
            self.table.retain(|slot| {
                let here = position;
                position += 1;
                if slot.is_expired(now, grace) {
                    counts.expired += 1;
                    freed += 1;
                    return false;
                }
                if freed >= target || (lap == 0 && here < self.hand) {
                    return true;
                }
                if *slot.referenced.get_mut() {
                    *slot.referenced.get_mut() = false;
                    return true;
                }
                freed += 1;
                counts.evicted += 1;
                hand = here;
                false
            });
        }
        self.hand = hand;
        self.counts.evicted += counts.evicted;
        self.counts.expired += counts.expired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately poor hash, so collisions in the table get exercised too.
    #[derive(Default)]
    struct Poor;

    impl BuildHasher for Poor {
        type Hasher = PoorHasher;
        fn build_hasher(&self) -> PoorHasher {
            PoorHasher(0)
        }
    }

    struct PoorHasher(u64);

    impl std::hash::Hasher for PoorHasher {
        fn finish(&self) -> u64 {
            self.0 % 7
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(b));
            }
        }
    }

    /// Inserts `k` and returns what left the shard to make room.
    fn put(shard: &mut Shard<u64, u64>, k: u64, expires: u64, now: u64) -> Counts {
        let before = shard.counts();
        shard.insert(
            &Poor,
            Poor.hash_one(k),
            k,
            k * 10,
            Stamp {
                expires,
                refresh_at: 0,
            },
            now,
        );
        let after = shard.counts();
        Counts {
            hits: 0,
            evicted: after.evicted - before.evicted,
            expired: after.expired - before.expired,
            errors: 0,
        }
    }

    fn get(shard: &Shard<u64, u64>, k: u64, now: u64) -> Option<u64> {
        shard.get(Poor.hash_one(k), &&k, now).copied()
    }

    const NONE: Counts = Counts {
        hits: 0,
        evicted: 0,
        expired: 0,
        errors: 0,
    };

    #[test]
    fn keeps_referenced_entries_and_evicts_cold_ones() {
        let mut shard = Shard::new(3, Renewal::default());
        for k in 0..3 {
            assert_eq!(put(&mut shard, k, 0, 0), NONE);
        }
        assert_eq!(get(&shard, 0, 0), Some(0));
        assert_eq!(get(&shard, 2, 0), Some(20));
        assert_eq!(
            put(&mut shard, 3, 0, 0),
            Counts {
                hits: 0,
                evicted: 1,
                expired: 0,
                errors: 0,
            }
        );
        assert_eq!(get(&shard, 1, 0), None, "the one unreferenced entry leaves");
        assert_eq!(shard.len(), 3);
        for k in [0, 2, 3] {
            assert_eq!(get(&shard, k, 0), Some(k * 10));
        }
    }

    #[test]
    fn a_full_lap_of_referenced_entries_still_frees_room() {
        let mut shard = Shard::new(4, Renewal::default());
        for k in 0..4 {
            put(&mut shard, k, 0, 0);
            get(&shard, k, 0);
        }
        assert_eq!(
            put(&mut shard, 9, 0, 0),
            Counts {
                hits: 0,
                evicted: 1,
                expired: 0,
                errors: 0,
            }
        );
        assert_eq!(shard.len(), 4);
        assert_eq!(get(&shard, 9, 0), Some(90));
    }

    #[test]
    fn the_hand_moves_on_so_cold_entries_anywhere_are_evicted() {
        let mut shard = Shard::new(64, Renewal::default());
        for k in 0..64 {
            put(&mut shard, k, 0, 0);
        }
        // Keep re-referencing a hot set; insert a stream of new keys: the hot set survives and
        // every cold original is evicted eventually, wherever it sits in the table.
        for k in 1_000..1_400 {
            for hot in 0..8 {
                get(&shard, hot, 0);
            }
            put(&mut shard, k, 0, 0);
        }
        for hot in 0..8 {
            assert_eq!(get(&shard, hot, 0), Some(hot * 10), "hot key {hot}");
        }
        for cold in 8..64 {
            assert_eq!(get(&shard, cold, 0), None, "cold key {cold}");
        }
    }

    #[test]
    fn expired_entries_are_invisible_and_evicted_first() {
        let mut shard = Shard::new(2, Renewal::default());
        put(&mut shard, 1, 100, 0);
        put(&mut shard, 2, 0, 0);
        assert_eq!(get(&shard, 1, 99), Some(10));
        assert_eq!(get(&shard, 1, 100), None);
        let _ = get(&shard, 2, 100);
        assert_eq!(
            put(&mut shard, 3, 0, 100),
            Counts {
                hits: 0,
                evicted: 0,
                expired: 1,
                errors: 0,
            }
        );
        assert_eq!(get(&shard, 2, 100), Some(20));
        assert_eq!(get(&shard, 3, 100), Some(30));
    }

    #[test]
    fn inserts_sweep_expired_entries_out_of_a_shard_that_is_not_full() {
        let mut shard = Shard::new(usize::MAX, Renewal::default());
        for k in 0..1000 {
            put(&mut shard, k, 50, 0);
        }
        for k in 1000..1200 {
            put(&mut shard, k, 0, 60);
        }
        assert_eq!(shard.counts().expired, 1000);
        assert_eq!(shard.len(), 200);
    }

    #[test]
    fn purge_frees_expired_entries() {
        let mut shard = Shard::new(usize::MAX, Renewal::default());
        for k in 0..1000 {
            put(&mut shard, k, if k % 2 == 0 { 50 } else { 0 }, 0);
        }
        assert_eq!(shard.purge_expired(50), 500);
        assert_eq!(shard.counts().expired, 500);
        assert_eq!(shard.len(), 500);
        for k in 0..1000 {
            assert_eq!(
                get(&shard, k, 50),
                (k % 2 == 1).then_some(k * 10),
                "key {k}"
            );
        }
    }

    #[test]
    fn replace_and_remove() {
        let mut shard = Shard::new(4, Renewal::default());
        put(&mut shard, 1, 0, 0);
        assert_eq!(put(&mut shard, 1, 0, 0), NONE, "nothing leaves on replace");
        shard.insert(&Poor, Poor.hash_one(1_u64), 1, 99, Stamp::default(), 0);
        assert_eq!(get(&shard, 1, 0), Some(99));
        assert!(shard.remove(Poor.hash_one(1_u64), &&1));
        assert!(!shard.remove(Poor.hash_one(1_u64), &&1));
        assert_eq!(shard.len(), 0);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut shard = Shard::new(0, Renewal::default());
        put(&mut shard, 1, 0, 0);
        assert_eq!(shard.len(), 0);
    }
}
