//! One shard of the in-memory store: a hash index over a dense slot array, evicted by CLOCK.
//!
//! The slots live in a `Vec`, so the CLOCK hand walks contiguous memory and removing an entry is a
//! `swap_remove` plus one index fix-up. A hit only sets the slot's reference bit, and only when it
//! is clear, so readers sharing the shard's read lock never write to memory on a warm entry.

use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;

use super::Removals;
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

/// How many slots an insert examines for expired entries, so expired entries leave even when
/// nobody reads them again.
const SWEEP_PER_INSERT: usize = 4;

pub(crate) struct Shard<K, V> {
    /// Indexes into `slots`, keyed by the slot's hash (`u32`: a smaller index stays in cache).
    index: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    /// The CLOCK hand: the next eviction candidate.
    hand: usize,
    /// The expiry sweep's position.
    sweep: usize,
    capacity: usize,
    /// Entries this shard removed on its own; written under the write lock only.
    removals: Removals,
}

impl<K, V> Shard<K, V> {
    pub(crate) const fn new(capacity: usize) -> Self {
        Self {
            index: HashTable::new(),
            slots: Vec::new(),
            hand: 0,
            sweep: 0,
            capacity,
            removals: Removals {
                evicted: 0,
                expired: 0,
            },
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn removals(&self) -> Removals {
        self.removals
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
            .find(hash, |&i| key.matches(&self.slots[i as usize].key))?;
        let slot = &self.slots[i as usize];
        if slot.is_expired(now) {
            return None;
        }
        // Write only when the bit is clear: a warm entry's cache line stays shared between readers.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(&slot.value)
    }

    /// Inserts or replaces, evicting or expiring entries to make room.
    pub(crate) fn insert(&mut self, hash: u64, key: K, value: V, expires: u64, now: u64)
    where
        K: Eq,
    {
        if self.capacity == 0 {
            return;
        }
        if let Some(&i) = self
            .index
            .find(hash, |&i| self.slots[i as usize].key == key)
        {
            let slot = &mut self.slots[i as usize];
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
                self.removals.expired += 1;
            } else {
                self.sweep += 1;
            }
        }
        if self.slots.len() >= self.capacity {
            self.evict_one(now);
        }
        let i = index_of(self.slots.len());
        self.slots.push(Slot {
            hash,
            expires,
            referenced: AtomicBool::new(false),
            key,
            value,
        });
        let slots = &self.slots;
        self.index
            .insert_unique(hash, i, |&j| slots[j as usize].hash);
    }

    /// Removes `key`'s entry; `true` if there was one.
    pub(crate) fn remove<L>(&mut self, hash: u64, key: &L) -> bool
    where
        L: Lookup<Key = K>,
    {
        match self
            .index
            .find(hash, |&i| key.matches(&self.slots[i as usize].key))
        {
            Some(&i) => {
                self.remove_at(i as usize);
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
        self.removals.expired += purged as u64;
        if purged > 0 && self.slots.len() < self.slots.capacity() / 4 {
            // Give the memory back after a mass expiry.
            self.slots.shrink_to(self.slots.len() * 2);
            let slots = &self.slots;
            self.index
                .shrink_to(slots.len(), |&j| slots[j as usize].hash);
        }
        purged
    }

    /// Second-chance CLOCK: expired entries go first, then the first entry not used since the
    /// hand last passed it. Ends within two sweeps of the slots.
    fn evict_one(&mut self, now: u64) {
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let slot = &mut self.slots[self.hand];
            if slot.is_expired(now) {
                self.remove_at(self.hand);
                self.removals.expired += 1;
                return;
            }
            if *slot.referenced.get_mut() {
                *slot.referenced.get_mut() = false;
                self.hand += 1;
            } else {
                self.remove_at(self.hand);
                self.removals.evicted += 1;
                return;
            }
        }
    }

    /// Removes slot `i`, moving the last slot into its place.
    fn remove_at(&mut self, i: usize) {
        let hash = self.slots[i].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == i) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        if i != last {
            let moved = self.slots[last].hash;
            if let Some(j) = self.index.find_mut(moved, |&j| j as usize == last) {
                *j = index_of(i);
            }
        }
        self.slots.swap_remove(i);
    }
}

/// A slot position as stored in the index.
fn index_of(i: usize) -> u32 {
    // 2^32 entries in one shard would take hundreds of gigabytes first.
    u32::try_from(i).unwrap_or_else(|_| unreachable!("a shard holds fewer than 2^32 entries"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `k` and returns what left the shard to make room.
    fn put(shard: &mut Shard<u64, u64>, k: u64, expires: u64, now: u64) -> Removals {
        let before = shard.removals();
        // A deliberately poor hash, so collisions in the index get exercised too.
        shard.insert(k % 7, k, k * 10, expires, now);
        let after = shard.removals();
        Removals {
            evicted: after.evicted - before.evicted,
            expired: after.expired - before.expired,
        }
    }

    const NONE: Removals = Removals {
        evicted: 0,
        expired: 0,
    };

    fn get(shard: &Shard<u64, u64>, k: u64, now: u64) -> Option<u64> {
        shard.get(k % 7, &&k, now).copied()
    }

    #[test]
    fn keeps_referenced_entries_and_evicts_cold_ones() {
        let mut shard = Shard::new(3);
        for k in 0..3 {
            assert_eq!(put(&mut shard, k, 0, 0), NONE);
        }
        assert_eq!(get(&shard, 0, 0), Some(0));
        assert_eq!(get(&shard, 2, 0), Some(20));
        assert_eq!(
            put(&mut shard, 3, 0, 0),
            Removals {
                evicted: 1,
                expired: 0
            }
        );
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
        assert_eq!(
            put(&mut shard, 3, 0, 100),
            Removals {
                evicted: 0,
                expired: 1
            }
        );
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
        assert_eq!(shard.removals().expired, 500);
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
        assert_eq!(shard.removals(), NONE);
        shard.insert(1, 1, 99, 0, 0);
        assert_eq!(shard.removals(), NONE, "nothing leaves on replace");
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
