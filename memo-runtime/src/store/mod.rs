//! Where cached values live: the [`Store`] trait and the in-memory [`MemoryStore`].

mod gate;
mod ghost;
mod memory;
mod shard;
mod sketch;

pub use memory::MemoryStore;

use crate::lookup::Lookup;

/// What a store counts itself: hits, and entries it removed on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Lookups by [`Store::get`] that found a live value.
    pub hits: u64,
    /// Removed to keep the store within its bound.
    pub evicted: u64,
    /// Removed because their time to live had passed.
    pub expired: u64,
}

/// A place that holds cached values, shared by all threads.
///
/// A [`Cache`](crate::Cache) adds single-flight and statistics on top of a store; the store only
/// keeps entries, bounds them and expires them.
pub trait Store<K, V>: Send + Sync {
    /// The live value stored under `key`, if any, counted as a hit when found.
    ///
    /// Stores count hits themselves, where a hit is cheapest to count (the in-memory store counts
    /// on a cache line the reading thread writes anyway).
    fn get<L: Lookup<Key = K>>(&self, key: &L) -> Option<V>;

    /// Like [`get`](Self::get), and `true` beside the value when the caller has become the one to
    /// refresh it in the background (stores that renew entries; the others never ask).
    fn get_renewing<L: Lookup<Key = K>>(&self, key: &L) -> Option<(V, bool)> {
        self.get(key).map(|value| (value, false))
    }

    /// Like [`insert`](Self::insert), noting how long the value took to compute (for early
    /// refresh).
    fn insert_timed(&self, key: K, value: V, cost: std::time::Duration) {
        let _ = cost;
        self.insert(key, value);
    }

    /// A background refresh of `key` failed: let a later caller try again.
    fn release_refresh<L: Lookup<Key = K>>(&self, key: &L) {
        let _ = key;
    }

    /// Like [`get`](Self::get), without counting: for inspection.
    fn peek<L: Lookup<Key = K>>(&self, key: &L) -> Option<V>;

    /// Stores `value` under `key`, replacing any previous value.
    fn insert(&self, key: K, value: V);

    /// Removes `key`'s entry; `true` if there was one.
    fn remove<L: Lookup<Key = K>>(&self, key: &L) -> bool;

    /// Removes every entry.
    fn clear(&self);

    /// How many entries are held (expired entries not yet removed included).
    fn len(&self) -> usize;

    /// The keys of the live entries; empty for stores that cannot list them.
    fn keys(&self) -> Vec<K> {
        Vec::new()
    }

    /// Whether the store holds no entries.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether entries expire (and [`purge_expired`](Self::purge_expired) has work to do).
    fn has_ttl(&self) -> bool {
        false
    }

    /// Removes the entries whose time to live has passed; returns how many.
    fn purge_expired(&self) -> usize {
        0
    }

    /// Hits so far, and how many entries the store removed on its own.
    fn counts(&self) -> Counts {
        Counts::default()
    }
}
