//! Where cached values live: the [`Store`] trait, the in-memory [`MemoryStore`], (feature
//! `disk`) the persistent `DiskStore` and (feature `redis`) the shared `RedisStore`.

#[cfg(feature = "disk")]
mod disk;
#[cfg(any(feature = "disk", feature = "redis"))]
mod fills;
mod gate;
mod ghost;
mod lifetime;
pub(crate) mod listener;
mod memory;
#[cfg(test)]
pub(crate) mod racing;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod refresh_marks;
// Not public API: the names of a Redis store's keys, which memo-cli reads.
#[cfg(feature = "redis")]
#[doc(hidden)]
pub mod redis_names;
mod shard;
mod sketch;
#[cfg(feature = "redis")]
mod tiered;
mod weight;

// Not public API: what memo-cli reads a store's directory with.
#[cfg(feature = "disk")]
#[doc(hidden)]
pub use disk::admin as disk_admin;
#[cfg(feature = "disk")]
pub use disk::{DiskOptions, DiskStore, default_root};
pub use lifetime::TtlFrom;
#[cfg(any(feature = "disk", feature = "redis"))]
pub(crate) use lifetime::chosen;
pub use listener::RemovalCause;
pub use memory::MemoryStore;
pub(crate) use memory::{RawMemory, StoreHasher, Timed};
#[cfg(feature = "redis")]
pub use redis::{RedisOptions, RedisStore};
pub(crate) use shard::EntryOps;
pub(crate) use shard::{EntryPlace, Look, SlabKind, SlotType, TypeOf};
#[cfg(feature = "redis")]
pub use tiered::TieredStore;
pub use weight::{Weigher, Weight};

use crate::config::Config;
use crate::lookup::Lookup;

/// What a store counts itself: hits, and entries it removed on its own.
///
/// # Examples
///
/// ```
/// use memo::{Config, MemoryStore, Store};
///
/// let store: MemoryStore<String, u32> = MemoryStore::new(&Config::new().maxsize(1));
/// store.insert("tea".to_string(), 3);
/// store.insert("coffee".to_string(), 4); // evicts "tea"
/// assert_eq!(store.get(&"coffee"), Some(4));
/// let counts = store.counts();
/// assert_eq!((counts.hits, counts.evicted, counts.expired), (1, 1, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[doc(hidden)]
pub struct Counts {
    /// Lookups by [`Store::get`] that found a live value.
    pub hits: u64,
    /// Removed to keep the store within its bound.
    pub evicted: u64,
    /// Removed because their time to live had passed.
    pub expired: u64,
    /// Failures of the backend (a full disk, a damaged value): each time the call went on as if
    /// uncached.
    pub errors: u64,
}

/// What a store answers a caller that is about to compute a key that missed; see
/// [`Store::claim_async`].
#[doc(hidden)]
pub enum Claim<V> {
    /// Another process stored the value meanwhile: use it instead of computing.
    Found(V),
    /// Compute the value and store it; hold the lease until it is stored (or the computation
    /// failed), then drop it.
    Compute(Lease),
}

/// A claim on one key, held by the caller computing it: dropping it (after the value is stored,
/// or when the computation failed, panicked or was cancelled) lets other processes' callers go on.
///
/// # Examples
///
/// ```
/// use memo_runtime::store::Lease;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let released = Arc::new(AtomicBool::new(false));
/// let flag = Arc::clone(&released);
/// let lease = Lease::new(move || flag.store(true, Ordering::Relaxed));
/// drop(lease);
/// assert!(released.load(Ordering::Relaxed));
/// drop(Lease::none()); // what stores without cross-process coordination hand out
/// ```
#[must_use = "the claim ends when the lease is dropped"]
#[doc(hidden)]
pub struct Lease(Option<Held>);

/// What a [`Lease`] holds.
enum Held {
    /// A release to run on drop.
    Release(Box<dyn FnOnce() + Send>),
    /// The store's own claim (its drop releases it), which the store takes back when the value
    /// is stored ([`Store::insert_claimed_async`]).
    #[cfg_attr(
        not(any(feature = "redis", feature = "disk")),
        allow(dead_code, reason = "made by the Redis and disk stores")
    )]
    Claim(Box<dyn std::any::Any + Send>),
}

impl Lease {
    /// No claim at all: nothing happens on drop.
    pub const fn none() -> Self {
        Self(None)
    }

    /// A claim that `release` ends.
    pub fn new(release: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Held::Release(Box::new(release))))
    }

    /// A claim held as `claim`, which ends when it is dropped, and which the store that made it
    /// takes back with [`take`](Self::take) to store the value (and end the claim) its own way.
    #[cfg_attr(
        not(any(feature = "redis", feature = "disk")),
        allow(dead_code, reason = "used by the Redis and disk stores")
    )]
    pub(crate) fn holding<T: std::any::Any + Send>(claim: T) -> Self {
        Self(Some(Held::Claim(Box::new(claim))))
    }

    /// The claim [`holding`](Self::holding) made, if this lease holds a `T`; else the lease.
    #[cfg_attr(
        not(any(feature = "redis", feature = "disk")),
        allow(dead_code, reason = "used by the Redis and disk stores")
    )]
    pub(crate) fn take<T: std::any::Any>(mut self) -> Result<T, Self> {
        match self.0.take() {
            Some(Held::Claim(claim)) => match claim.downcast::<T>() {
                Ok(claim) => Ok(*claim),
                Err(claim) => Err(Self(Some(Held::Claim(claim)))),
            },
            other => Err(Self(other)),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.0.take() {
            Some(Held::Release(release)) => release(),
            Some(Held::Claim(claim)) => drop(claim),
            None => {}
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lease").field(&self.0.is_some()).finish()
    }
}

/// A place that holds cached values, shared by all threads.
///
/// A [`Cache`](crate::Cache) adds single-flight and statistics on top of a store; the store only
/// keeps entries, bounds them and expires them.
///
/// # Examples
///
/// Code generic over the store, here given the in-memory one:
///
/// ```
/// use memo::{Config, MemoryStore, Store};
///
/// fn prefill<S: Store<String, usize>>(store: &S, words: &[&str]) {
///     for word in words {
///         store.insert(word.to_string(), word.len());
///     }
/// }
///
/// let store: MemoryStore<String, usize> = MemoryStore::new(&Config::new());
/// prefill(&store, &["tea", "coffee"]);
/// assert_eq!(store.peek(&"coffee"), Some(6)); // `peek` counts no hit
/// assert_eq!(store.get(&"tea"), Some(3)); // `get` does
/// assert_eq!(store.len(), 2);
/// ```
///
/// The trait is sealed: memo's stores implement it, and the methods not shown here are the
/// protocol between a [`Cache`](crate::Cache) and its store, which may change in any release.
///
/// Its lookups take a reference to a [`Lookup`] (a borrowed view): `store.get(&"tea")` or
/// `store.get(&key.as_str())` for a `String` key, `store.get(&&key)` for any key. The
/// [`Cache`](crate::Cache)'s own methods take the borrowed form directly (`cache.get("tea")`,
/// `cache.get(&key)`) and are the ones to call.
pub trait Store<K, V>: Send + Sync + sealed::Sealed {
    /// The live value stored under `key`, if any, counted as a hit when found.
    ///
    /// Stores count hits themselves, where a hit is cheapest to count (the in-memory store counts
    /// on a cache line the reading thread writes anyway).
    fn get<L: Lookup<Key = K>>(&self, key: &L) -> Option<V>;

    #[doc(hidden)]
    /// The hash this store finds `key` by: a call hashes its key once, with this, and hands the
    /// hash to the store's lookup ([`get_hashed`](Self::get_hashed)), the cache's single-flight
    /// and the store's insert ([`insert_claimed_async`](Self::insert_claimed_async)). The default, for a
    /// store that hashes nothing itself: a hasher of the process's own.
    fn hash_of<L: Lookup<Key = K>>(&self, key: &L) -> u64 {
        process_hash(key)
    }

    #[doc(hidden)]
    /// [`get`](Self::get) of a key whose [`hash_of`](Self::hash_of) is `hash`.
    fn get_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<V> {
        let _ = hash;
        self.get(key)
    }

    #[doc(hidden)]
    /// [`get_hashed`](Self::get_hashed), and `true` beside the value when the caller has become
    /// the one to refresh it in the background (stores that renew entries; the others never
    /// ask).
    fn get_renewing_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        self.get_hashed(hash, key).map(|value| (value, false))
    }

    #[doc(hidden)]
    /// The value this process holds for `key` (of hash `hash`), read without waiting, for an
    /// awaited hit path that tries it before its awaited read: the local copy of a tiered
    /// store. The default, for stores that are read over the network or not awaited: none.
    fn get_local<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<V> {
        let _ = (hash, key);
        None
    }

    #[doc(hidden)]
    /// [`get_local`](Self::get_local), and whether the value is due for a background refresh.
    fn get_local_due<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        let _ = (hash, key);
        None
    }

    #[doc(hidden)]
    /// [`get_renewing_hashed`](Self::get_renewing_hashed) for async callers (Redis: `GET` and
    /// `PTTL` in one round trip). The default answers at once.
    fn get_renewing_async<'a>(
        &'a self,
        hash: u64,
        key: &'a K,
    ) -> impl Future<Output = Option<(V, bool)>> + Send + 'a
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + 'a,
    {
        std::future::ready(self.get_renewing_hashed(hash, &key))
    }

    #[doc(hidden)]
    /// Like [`insert`](Self::insert), noting how long the value took to compute (for early
    /// refresh).
    fn insert_timed(&self, key: K, value: V, cost: std::time::Duration) {
        let _ = cost;
        self.insert(key, value);
    }

    #[doc(hidden)]
    /// A background refresh of `key` failed: let a later caller try again.
    fn release_refresh<L: Lookup<Key = K>>(&self, key: &L) {
        let _ = key;
    }

    #[doc(hidden)]
    /// Called before a background refresh of `key` computes: a store shared by processes takes
    /// the key's claim without waiting, so that one process refreshes it; `None` when another
    /// holds it (that one refreshes, and this process goes on serving the current value). The
    /// lease goes to [`insert_claimed_async`](Self::insert_claimed_async) with the new value.
    /// The default claims nothing, at once.
    fn claim_refresh_async<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Option<Lease>> + Send + 'a
    where
        V: 'a,
    {
        let _ = key;
        std::future::ready(Some(Lease::none()))
    }

    #[doc(hidden)]
    /// Called when a forced refresh of `key` (of hash `hash`) begins, before its body runs: a
    /// store shared by processes marks the key as being refreshed since now (Redis: its lock
    /// name, taken over with a token of the refresh's own; the disk: its lock row, likewise),
    /// so that a computation of it begun
    /// before, in any process, stores nothing, and the refresh's own write, given this lease,
    /// goes through only while the mark holds (a later refresh or an invalidation takes it).
    /// Dropping the lease (the body failed, panicked, was cancelled) gives the mark back. The
    /// default marks nothing, at once.
    fn mark_refresh_async<'a>(
        &'a self,
        hash: u64,
        key: &'a K,
    ) -> impl Future<Output = Lease> + Send + 'a
    where
        V: 'a,
    {
        let _ = (hash, key);
        std::future::ready(Lease::none())
    }

    /// Like [`get`](Self::get), without counting: for inspection.
    fn peek<L: Lookup<Key = K>>(&self, key: &L) -> Option<V>;

    /// Stores `value` under `key`, replacing any previous value.
    fn insert(&self, key: K, value: V);

    #[doc(hidden)]
    /// [`get_hashed`](Self::get_hashed) for async callers: a store that answers over the network
    /// awaits it (the async paths of `store = redis` and `tiered` call it). The default answers
    /// at once.
    fn get_async<'a, L: Lookup<Key = K> + Sync>(
        &'a self,
        hash: u64,
        key: &'a L,
    ) -> impl Future<Output = Option<V>> + Send + 'a
    where
        V: Send + 'a,
    {
        std::future::ready(self.get_hashed(hash, key))
    }

    #[doc(hidden)]
    /// Whether the store is this process's alone and answers at once: the futures of its
    /// [`get_async`](Self::get_async) and [`insert_claimed_async`](Self::insert_claimed_async)
    /// are ready when first polled, and it has nothing to claim (a miss does not call its
    /// [`claim_async`](Self::claim_async)). The cache then takes those steps without futures of
    /// its own.
    const LOCAL: bool = false;

    #[doc(hidden)]
    /// Whether the future of its [`insert_claimed_async`](Self::insert_claimed_async) has stored
    /// the value (or queued it, to be read back at once) before it is first polled: a store
    /// under way then ends within microseconds on its own thread, and `Cache::insert` waits for
    /// it, as an invalidation does, so that its older value does not land after the insert.
    /// The default: [`LOCAL`](Self::LOCAL) stores only.
    const STORES_AT_ONCE: bool = Self::LOCAL;

    #[doc(hidden)]
    /// Whether [`claim_async`](Self::claim_async) reads the value itself (in the round trip that takes the
    /// lock), so that the cache need not look again before claiming. The default: no.
    fn claim_reads(&self) -> bool {
        false
    }

    #[doc(hidden)]
    /// A count that moves (never back) whenever this handle sees a change made by another
    /// handle of its entries or by another process: what keeps a computation begun before such
    /// a change (which does not detach this cache's computations, as its own `invalidate` and
    /// `insert` do) from handing its older value to callers that began after it. Read by a
    /// miss, never by a hit. Redis (and tiered) count their computations' writes refused for a
    /// lost lock, which another process's change of the key takes. The default, for a store
    /// nobody else changes: 0.
    fn changes_seen(&self) -> u64 {
        0
    }

    #[doc(hidden)]
    /// Ends the claim `lease` holds of a computation whose result is not stored (an `Err`, a
    /// `None`), before the callers that joined it take that result: a store shared by
    /// processes releases its lock now, and a lock that another's change took away counts in
    /// [`changes_seen`](Self::changes_seen), as a refused write does, so that they look again
    /// (they may have begun after that change). The default drops the lease.
    fn release_async(&self, lease: Lease) -> impl Future<Output = ()> + Send + '_ {
        drop(lease);
        std::future::ready(())
    }

    #[doc(hidden)]
    /// Called by the one caller in this process that is about to compute `key` after a miss
    /// (the [`Cache`](crate::Cache) has already made the others of this process wait for it):
    /// a store shared by several processes makes the callers of other processes wait too, or
    /// hands back the value one of them stored meanwhile. Awaited, so that an async caller
    /// waiting for another process leaves its executor's thread free; a sync caller drives it
    /// on its own thread.
    ///
    /// The default claims nothing, at once. The disk store takes a lock row with a lease
    /// (holder and expiry) and waits, polling, while another process holds it; Redis takes a
    /// lock with `SET NX PX` (reading the value in the same round trip). A claim whose holder
    /// died expires with its lease, and a waiter then takes over: a lost claim costs a second
    /// computation, never a wrong value. `hash` is the key's [`hash_of`](Self::hash_of), for a
    /// store with a copy in memory (tiered).
    fn claim_async<'a>(
        &'a self,
        hash: u64,
        key: &'a K,
    ) -> impl Future<Output = Claim<V>> + Send + 'a
    where
        V: Send + 'a,
    {
        let _ = (hash, key);
        std::future::ready(Claim::Compute(Lease::none()))
    }

    #[doc(hidden)]
    /// Stores the value the holder of a claim computed (as [`insert_timed`](Self::insert_timed)),
    /// then ends the claim: the lease its [`claim_async`](Self::claim_async) (or
    /// [`claim_refresh_async`](Self::claim_refresh_async)) gave. Awaited: a store outside the
    /// process writes over the network. A store whose lease carries what it needs (the key's
    /// names, the lock) stores and releases without working it out again, and one that hashes
    /// files the key by `hash` (its [`hash_of`](Self::hash_of)). The default inserts at once,
    /// then drops the lease.
    fn insert_claimed_async<'a>(
        &'a self,
        hash: u64,
        key: K,
        value: V,
        cost: std::time::Duration,
        lease: Lease,
    ) -> impl Future<Output = ()> + Send + 'a
    where
        K: Send + 'a,
        V: Send + 'a,
    {
        let _ = hash;
        self.insert_timed(key, value, cost);
        drop(lease);
        std::future::ready(())
    }

    #[doc(hidden)]
    /// [`insert`](Self::insert) for async callers. The default stores at once.
    fn insert_async<'a>(&'a self, key: K, value: V) -> impl Future<Output = ()> + Send + 'a
    where
        K: Send + 'a,
        V: Send + 'a,
    {
        self.insert(key, value);
        std::future::ready(())
    }

    #[doc(hidden)]
    /// Stores `value` under `key` to expire after `ttl`, whatever the store's own time to live.
    fn insert_with_ttl(&self, key: K, value: V, ttl: std::time::Duration);

    /// Removes `key`'s entry; `true` if there was a live one (an expired entry is removed too,
    /// and counts as gone already).
    fn remove<L: Lookup<Key = K>>(&self, key: &L) -> bool;

    #[doc(hidden)]
    /// Removes `key`'s entry and returns its live value. The default reads, then removes: a
    /// value stored between the two is removed and not returned.
    fn take<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        let value = self.peek(key);
        let removed = self.remove(key);
        value.filter(|_| removed)
    }

    /// Removes every entry.
    fn clear(&self);

    /// How many entries are held (expired entries not yet removed included).
    fn len(&self) -> usize;

    #[doc(hidden)]
    /// How many entries are held, as far as the store knows without a scan: what statistics
    /// and the metrics gauge report each second. The default: [`len`](Self::len).
    fn held(&self) -> usize {
        self.len()
    }

    /// The keys of the live entries; empty for stores that cannot list them.
    fn keys(&self) -> Vec<K> {
        Vec::new()
    }

    /// Whether the store holds no entries.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[doc(hidden)]
    /// Whether entries expire (and [`purge_expired`](Self::purge_expired) has work to do).
    fn has_ttl(&self) -> bool {
        false
    }

    #[doc(hidden)]
    /// Removes the entries whose time to live has passed; returns how many.
    fn purge_expired(&self) -> usize {
        0
    }

    #[doc(hidden)]
    /// The kind of store, for metrics labels: `memory`, `disk`, ….
    fn backend(&self) -> &'static str {
        "memory"
    }

    #[doc(hidden)]
    /// What the store was built with (its bound, time to live, policy).
    fn config(&self) -> Config;

    /// The total weight of the entries held, when the store weighs them (see
    /// [`MemoryStore::weigher`]); `None` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Config, MemoryStore, Store};
    ///
    /// let store: MemoryStore<u32, String> = MemoryStore::new(&Config::new());
    /// assert_eq!(store.weight(), None); // not weighed
    /// let store = store.weigher(|_, text| text.len() as u64);
    /// store.insert(1, "tea".to_string());
    /// assert_eq!(store.weight(), Some(3));
    /// ```
    fn weight(&self) -> Option<u64> {
        None
    }

    #[doc(hidden)]
    /// Hits so far, and how many entries the store removed on its own.
    fn counts(&self) -> Counts {
        Counts::default()
    }

    #[doc(hidden)]
    /// Backend requests not tried so far because the backend is known to be down (a remote
    /// store's open circuit breaker): [`Stats::skipped`](crate::Stats::skipped), kept apart from
    /// [`Counts::errors`] so that real failures stand out.
    fn skipped(&self) -> u64 {
        0
    }

    #[doc(hidden)]
    /// How many requests to the backend have failed or not been sent so far (errors and
    /// [`skipped`](Self::skipped)): a call that sees it move across its read does not read
    /// again, as its deadline may be spent. 0 for a store with no backend to fail.
    fn faults(&self) -> u64 {
        0
    }
}

/// `key`'s hash by a hasher seeded once per process: [`Store::hash_of`] of a store that hashes
/// nothing itself (Redis), so that its calls still hash once, for the single-flight.
fn process_hash<L: Lookup>(key: &L) -> u64 {
    use std::hash::BuildHasher;
    static HASHER: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
    HASHER.get_or_init(Default::default).hash_one(key)
}

/// Keeps [`Store`] to memo's own stores.
mod sealed {
    pub trait Sealed {}
    impl<K, V> Sealed for super::MemoryStore<K, V> {}
    #[cfg(test)]
    impl<K, V> Sealed for super::racing::Racing<K, V> {}
    #[cfg(feature = "disk")]
    impl<K, V> Sealed for super::DiskStore<K, V> {}
    #[cfg(feature = "redis")]
    impl<K, V> Sealed for super::RedisStore<K, V> {}
    #[cfg(feature = "redis")]
    impl<K, V> Sealed for super::TieredStore<K, V> {}
}
