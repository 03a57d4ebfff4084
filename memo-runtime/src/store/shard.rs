//! One shard of the in-memory store: a hash index over a dense slot array, evicted by CLOCK.
//!
//! The slots live in a `Vec`, so the CLOCK hand walks contiguous memory and removing an entry is a
//! `swap_remove` plus one index fix-up. A hit only sets the slot's reference bit, and only when it
//! is clear, so readers sharing the shard's read lock never write to memory on a warm entry.

use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;

use crate::lookup::Lookup;

/// An entry: key, value, expiry stamp (0 = never) and the CLOCK reference bit.
pub(crate) struct Slot<K, V> {
    hash: u64,
    expires: u64,
    referenced: AtomicBool,
    key: K,
    value: V,
}

impl<K, V> Slot<K, V> {
    #[inline]
    fn is_expired(&self, now: u64) -> bool {
        self.expires != 0 && now >= self.expires
    }
}

/// Why an entry left a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Evicted by the bound.
    Evicted,
    /// Its time to live had passed.
    Expired,
}

/// How many slots an insert examines for expired entries, so expired entries leave even when
/// nobody reads them again.
const SWEEP_PER_INSERT: usize = 4;

pub(crate) struct Shard<K, V> {
    /// Indexes into `slots`, keyed by the slot's hash.
    index: HashTable<usize>,
    slots: Vec<Slot<K, V>>,
    /// The CLOCK hand: the next eviction candidate.
    hand: usize,
    /// The expiry sweep's position.
    sweep: usize,
    capacity: usize,
}

impl<K, V> Shard<K, V> {
    pub(crate) const fn new(capacity: usize) -> Self {
        Self {
            index: HashTable::new(),
            slots: Vec::new(),
            hand: 0,
            sweep: 0,
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn clear(&mut self) -> usize {
        let n = self.slots.len();
        self.index = HashTable::new();
        self.slots = Vec::new();
        self.hand = 0;
        self.sweep = 0;
        n
    }

    /// The live value for `key`, marking it recently used. Takes `&self`: runs under a read lock.
    #[inline]
    pub(crate) fn get<L>(&self, hash: u64, key: &L, now: u64) -> Option<&V>
    where
        L: Lookup<Key = K>,
    {
        let &i = self
            .index
            .find(hash, |&i| key.matches(&self.slots[i].key))?;
        let slot = &self.slots[i];
        if slot.is_expired(now) {
            return None;
        }
        // Write only when the bit is clear: a warm entry's cache line stays shared between readers.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(&slot.value)
    }

    /// Inserts or replaces; `removed` is told about every entry that had to leave.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        expires: u64,
        now: u64,
        mut removed: impl FnMut(Removal),
    ) where
        K: Eq,
    {
        if self.capacity == 0 {
            return;
        }
        if let Some(&i) = self.index.find(hash, |&i| self.slots[i].key == key) {
            let slot = &mut self.slots[i];
            slot.value = value;
            slot.expires = expires;
            return;
        }
        for _ in 0..SWEEP_PER_INSERT.min(self.slots.len()) {
            if self.sweep >= self.slots.len() {
                self.sweep = 0;
            }
            if self.slots[self.sweep].is_expired(now) {
                self.remove_at(self.sweep);
                removed(Removal::Expired);
            } else {
                self.sweep += 1;
            }
        }
        if self.slots.len() >= self.capacity {
            removed(self.evict_one(now));
        }
        let i = self.slots.len();
        self.slots.push(Slot {
            hash,
            expires,
            referenced: AtomicBool::new(false),
            key,
            value,
        });
        let slots = &self.slots;
        self.index.insert_unique(hash, i, |&j| slots[j].hash);
    }

    /// Removes `key`'s entry; `true` if there was one.
    pub(crate) fn remove<L>(&mut self, hash: u64, key: &L) -> bool
    where
        L: Lookup<Key = K>,
    {
        match self.index.find(hash, |&i| key.matches(&self.slots[i].key)) {
            Some(&i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Removes every expired entry and returns how many left.
    pub(crate) fn purge_expired(&mut self, now: u64) -> usize {
        let before = self.slots.len();
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].is_expired(now) {
                // The last slot moves into `i`: look at `i` again.
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        let purged = before - self.slots.len();
        if purged > 0 && self.slots.len() < self.slots.capacity() / 4 {
            // Give the memory back after a mass expiry.
            self.slots.shrink_to(self.slots.len() * 2);
            let slots = &self.slots;
            self.index.shrink_to(slots.len(), |&j| slots[j].hash);
        }
        purged
    }

    /// Second-chance CLOCK: expired entries go first, then the first entry not used since the
    /// hand last passed it. Ends within two sweeps of the slots.
    fn evict_one(&mut self, now: u64) -> Removal {
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let slot = &mut self.slots[self.hand];
            if slot.is_expired(now) {
                self.remove_at(self.hand);
                return Removal::Expired;
            }
            if *slot.referenced.get_mut() {
                *slot.referenced.get_mut() = false;
                self.hand += 1;
            } else {
                self.remove_at(self.hand);
                return Removal::Evicted;
            }
        }
    }

    /// Removes slot `i`, moving the last slot into its place.
    fn remove_at(&mut self, i: usize) {
        let hash = self.slots[i].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        if i != last {
            let moved = self.slots[last].hash;
            if let Some(j) = self.index.find_mut(moved, |&j| j == last) {
                *j = i;
            }
        }
        self.slots.swap_remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(shard: &mut Shard<u64, u64>, k: u64, expires: u64, now: u64) -> Vec<Removal> {
        let mut removed = Vec::new();
        // A deliberately poor hash, so collisions in the index get exercised too.
        shard.insert(k % 7, k, k * 10, expires, now, |r| removed.push(r));
        removed
    }

    fn get(shard: &Shard<u64, u64>, k: u64, now: u64) -> Option<u64> {
        shard.get(k % 7, &&k, now).copied()
    }

    #[test]
    fn keeps_referenced_entries_and_evicts_cold_ones() {
        let mut shard = Shard::new(3);
        for k in 0..3 {
            assert!(put(&mut shard, k, 0, 0).is_empty());
        }
        assert_eq!(get(&shard, 0, 0), Some(0));
        assert_eq!(get(&shard, 2, 0), Some(20));
        assert_eq!(put(&mut shard, 3, 0, 0), vec![Removal::Evicted]);
        assert_eq!(get(&shard, 1, 0), None, "the one unreferenced entry leaves");
        assert_eq!(shard.len(), 3);
        for k in [0, 2, 3] {
            assert_eq!(get(&shard, k, 0), Some(k * 10));
        }
    }

    #[test]
    fn expired_entries_are_invisible_and_evicted_first() {
        let mut shard = Shard::new(2);
        put(&mut shard, 1, 100, 0);
        put(&mut shard, 2, 0, 0);
        assert_eq!(get(&shard, 1, 99), Some(10));
        assert_eq!(get(&shard, 1, 100), None);
        let _ = get(&shard, 2, 100);
        // The sweep on insert removes the expired entry, so nothing is evicted.
        assert_eq!(put(&mut shard, 3, 0, 100), vec![Removal::Expired]);
        assert_eq!(get(&shard, 2, 100), Some(20));
        assert_eq!(get(&shard, 3, 100), Some(30));
    }

    #[test]
    fn purge_frees_expired_entries_and_keeps_the_index_consistent() {
        let mut shard = Shard::new(usize::MAX);
        for k in 0..1000 {
            put(&mut shard, k, if k % 2 == 0 { 50 } else { 0 }, 0);
        }
        assert_eq!(shard.purge_expired(50), 500);
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
        let mut shard = Shard::new(4);
        put(&mut shard, 1, 0, 0);
        shard.insert(1, 1, 99, 0, 0, |_| panic!("nothing leaves on replace"));
        assert_eq!(get(&shard, 1, 0), Some(99));
        assert!(shard.remove(1, &&1));
        assert!(!shard.remove(1, &&1));
        assert_eq!(shard.len(), 0);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut shard = Shard::new(0);
        put(&mut shard, 1, 0, 0);
        assert_eq!(shard.len(), 0);
    }
}
