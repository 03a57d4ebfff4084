//! The default store: concurrent, sharded, bounded by count, with per-entry expiry.

use std::hash::BuildHasher;
use std::sync::LazyLock;

use super::gate::{Gate, Locked, ReadGuard, WriteGuard};
use super::shard::{Renewal, Shard, Stamp};
use super::{Counts, Store};
#[cfg(any(test, feature = "test-util"))]
use crate::clock::Clock;
use crate::clock::{ClockCell, duration_nanos};
use crate::config::Config;
use crate::lookup::Lookup;

/// Keeps a shard's writer flag on cache lines of its own, so two shards never share one.
#[repr(align(128))]
struct Padded<T>(T);

type PaddedShard<K, V> = Padded<Locked<Shard<K, V>>>;

/// A concurrent in-memory store, split into shards.
///
/// A hit writes no memory that another thread writes: it marks its own stripe of the store's
/// gate (`store/gate.rs`) while it reads a shard, so hits on any keys run in parallel on all cores;
/// inserts and counts exclude the readers of one shard. The bound is split exactly over the
/// shards, so `len() <= maxsize` holds at every instant.
///
/// # Examples
///
/// ```
/// use memo_runtime::{Config, MemoryStore, Store};
///
/// let store: MemoryStore<String, u32> = MemoryStore::new(&Config::new().maxsize(100));
/// store.insert("a".to_string(), 1);
/// assert_eq!(store.get(&"a"), Some(1));
/// assert!(store.remove(&"a"));
/// assert!(store.is_empty());
/// ```
pub struct MemoryStore<K, V> {
    shards: Box<[PaddedShard<K, V>]>,
    gate: Gate,
    /// `shards.len() - 1`; the shard is picked from the hash's middle bits.
    mask: usize,
    hasher: foldhash::fast::RandomState,
    /// Time to live in nanoseconds; 0 for none.
    ttl: u64,
    /// The fraction each entry's time to live is spread by.
    jitter: Option<f64>,
    /// `β` of early refresh; 0 for none.
    renewal_beta: f64,
    clock: ClockCell,
}

impl<K, V> MemoryStore<K, V> {
    /// A store bounded and expired as `config` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::{Config, MemoryStore, Store};
    /// use std::time::Duration;
    ///
    /// let config = Config::new().maxsize(2).ttl(Duration::from_secs(60));
    /// let store: MemoryStore<u32, u32> = MemoryStore::new(&config);
    /// for n in 0..3 {
    ///     store.insert(n, n * 10);
    /// }
    /// assert_eq!(store.len(), 2);
    /// assert_eq!(store.counts().evicted, 1);
    /// assert!(store.has_ttl());
    /// ```
    #[must_use]
    pub fn new(config: &Config) -> Self {
        let count = shard_count(config.maxsize);
        let renewal = if config.renews() {
            Renewal {
                grace: config.stale.map_or(0, duration_nanos),
            }
        } else {
            Renewal::default()
        };
        let shards = (0..count)
            .map(|i| {
                let capacity = config.maxsize.map_or(usize::MAX, |max| {
                    // Split exactly: the first `max % count` shards hold one more.
                    max / count + usize::from(i < max % count)
                });
                Padded(Locked::new(Shard::new(capacity, renewal, config.policy)))
            })
            .collect();
        Self {
            shards,
            gate: Gate::default(),
            mask: count - 1,
            hasher: foldhash::fast::RandomState::default(),
            ttl: config.ttl.map_or(0, |ttl| duration_nanos(ttl).max(1)),
            jitter: config.jitter.filter(|j| *j > 0.0 && config.ttl.is_some()),
            renewal_beta: if config.renews() {
                config.refresh_early.unwrap_or(0.0)
            } else {
                0.0
            },
            clock: ClockCell::default(),
        }
    }

    /// Reads time from `clock` from now on (tests use [`Clock::mock`]; feature `test-util`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "test-util")] {
    /// use memo_runtime::{Clock, Config, MemoryStore, Store};
    /// use std::time::Duration;
    ///
    /// let config = Config::new().ttl(Duration::from_secs(5));
    /// let store: MemoryStore<String, u32> = MemoryStore::new(&config);
    /// let (clock, mock) = Clock::mock();
    /// store.set_clock(clock);
    /// store.insert("tea".to_string(), 3);
    /// mock.increment(Duration::from_secs(6));
    /// assert_eq!(store.get(&"tea"), None);
    /// assert_eq!(store.purge_expired(), 1);
    /// # }
    /// ```
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_clock(&self, clock: Clock) {
        self.clock.set(clock);
    }

    #[inline]
    fn hash<T: std::hash::Hash + ?Sized>(&self, key: &T) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard for `hash`, by number.
    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        // The table uses the low bits and its tags the top seven; take the shard from the middle.
        #[allow(clippy::cast_possible_truncation, reason = "masked to the shard count")]
        let shard = (hash >> 32) as usize & self.mask;
        shard
    }

    #[inline]
    fn read(&self, shard: usize) -> ReadGuard<'_, Shard<K, V>> {
        self.gate.read(shard, &self.shards[shard].0)
    }

    fn write(&self, shard: usize) -> WriteGuard<'_, Shard<K, V>> {
        self.gate.write(shard, &self.shards[shard].0)
    }

    /// When an early refresh of a value that took `cost` to compute is due: `XFetch` (Vattani et
    /// al., VLDB 2015) refreshes when `now − cost·β·ln(rand) ≥ expiry`. The draw is made once per
    /// value, not on every read, so a key read a million times a second is still refreshed once
    /// per time to live, just ahead of its expiry (later for cheap values, earlier for slow ones).
    fn refresh_at(&self, expires: u64, cost: std::time::Duration) -> u64 {
        if expires == 0 || self.renewal_beta <= 0.0 {
            return 0;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a probabilistic margin need not be exact to the nanosecond"
        )]
        let margin =
            (duration_nanos(cost) as f64 * self.renewal_beta * -crate::random::unit().ln()) as u64;
        expires.saturating_sub(margin.min(self.ttl)).max(1)
    }

    /// This entry's time to live: the configured one, spread by the jitter.
    fn entry_ttl(&self) -> u64 {
        match self.jitter {
            None => self.ttl,
            Some(fraction) => {
                // Uniform in ttl × [1 - fraction, 1 + fraction).
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "a spread time to live need not be exact to the nanosecond"
                )]
                let spread = (self.ttl as f64
                    * (1.0 + fraction * (2.0 * crate::random::unit() - 1.0)))
                    as u64;
                spread.max(1)
            }
        }
    }

    /// Stores `value` to expire at `expires` (a reading of this store's clock; 0 for never),
    /// for a front that mirrors the expiry of the store behind it.
    #[cfg(feature = "disk")]
    pub(crate) fn insert_expiring(&self, key: K, value: V, expires: u64)
    where
        K: std::hash::Hash + Eq,
    {
        let hash = self.hash(&key);
        let now = self.now();
        let stamp = Stamp {
            expires,
            refresh_at: 0,
        };
        self.write(self.shard_of(hash))
            .insert(&self.hasher, hash, key, value, stamp, now);
    }

    /// The current reading of this store's clock (0 when entries never expire).
    #[inline]
    fn now(&self) -> u64 {
        if self.ttl == 0 { 0 } else { self.clock.now() }
    }
}

/// Enough shards that two threads rarely meet on one lock, few enough that each keeps a useful
/// share of a small bound: a shard's policy sees only the keys of its shard, and below about a
/// thousand entries a shard's hit ratio falls (OLTP at 1,000 entries: 35.3 % in 16 shards, 37.1 %
/// in one; `benches/hitratio.rs`). Hits never wait for one another whatever the count (readers
/// mark their own stripe of the gate); only writers share a shard's lock.
fn shard_count(maxsize: Option<usize>) -> usize {
    static CPUS: LazyLock<usize> =
        LazyLock::new(|| std::thread::available_parallelism().map_or(4, usize::from));
    let mut count = (*CPUS * 32).next_power_of_two().clamp(64, 1024);
    if let Some(max) = maxsize {
        while count > 1 && max / count < MIN_SHARD {
            count /= 2;
        }
    }
    count
}

/// The fewest entries a shard of a bounded store holds, unless the bound is smaller still.
const MIN_SHARD: usize = 1000;

impl<K, V> Store<K, V> for MemoryStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    // The hit path: measured 0.5 ns faster when forced inline into the memoized function.
    #[allow(
        clippy::inline_always,
        reason = "measured on the hit path (benches/peers.rs)"
    )]
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline)]
    fn get<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        let hash = self.hash(key);
        let now = self.now();
        let shard = self.read(self.shard_of(hash));
        let value = shard.get(hash, key, now).cloned();
        if value.is_some() {
            shard.count_hit();
        }
        value
    }

    fn peek<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        let hash = self.hash(key);
        let now = self.now();
        self.read(self.shard_of(hash)).get(hash, key, now).cloned()
    }

    fn insert(&self, key: K, value: V) {
        self.insert_timed(key, value, std::time::Duration::ZERO);
    }

    fn insert_timed(&self, key: K, value: V, cost: std::time::Duration) {
        let hash = self.hash(&key);
        let now = self.now();
        let expires = if self.ttl == 0 {
            0
        } else {
            now.saturating_add(self.entry_ttl())
        };
        let refresh_at = self.refresh_at(expires, cost);
        let stamp = Stamp {
            expires,
            refresh_at,
        };
        self.write(self.shard_of(hash))
            .insert(&self.hasher, hash, key, value, stamp, now);
    }

    fn get_renewing<L: Lookup<Key = K>>(&self, key: &L) -> Option<(V, bool)> {
        let hash = self.hash(key);
        let now = self.now();
        let shard = self.shard_of(hash);
        let found = self.read(shard);
        let value = found
            .get_renewing(hash, key, now)
            .map(|(value, refresh)| (value.clone(), refresh));
        if value.is_some() {
            found.count_hit();
        }
        value
    }

    fn release_refresh<L: Lookup<Key = K>>(&self, key: &L) {
        let hash = self.hash(key);
        self.read(self.shard_of(hash)).release_refresh(hash, key);
    }

    fn remove<L: Lookup<Key = K>>(&self, key: &L) -> bool {
        let hash = self.hash(key);
        self.write(self.shard_of(hash)).remove(hash, key)
    }

    fn clear(&self) {
        for shard in 0..self.shards.len() {
            let entries = self.write(shard).take_all();
            drop(entries);
        }
    }

    fn keys(&self) -> Vec<K> {
        let now = self.now();
        (0..self.shards.len())
            .flat_map(|shard| self.read(shard).keys(now).cloned().collect::<Vec<_>>())
            .collect()
    }

    fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|shard| self.read(shard).len())
            .sum()
    }

    fn has_ttl(&self) -> bool {
        self.ttl != 0
    }

    fn counts(&self) -> Counts {
        let hits = self.gate.hits();
        (0..self.shards.len()).fold(
            Counts {
                hits,
                ..Counts::default()
            },
            |total, shard| {
                let shard = self.read(shard).counts();
                Counts {
                    hits: total.hits,
                    evicted: total.evicted + shard.evicted,
                    expired: total.expired + shard.expired,
                    errors: 0,
                }
            },
        )
    }

    fn purge_expired(&self) -> usize {
        if self.ttl == 0 {
            return 0;
        }
        let mut purged = 0;
        for shard in 0..self.shards.len() {
            let now = self.now();
            purged += self.write(shard).purge_expired(&self.hasher, now);
        }
        purged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use std::time::Duration;

    #[test]
    fn bound_is_split_exactly_over_shards() {
        let policies = [Policy::Auto, Policy::Lru, Policy::Lfu, Policy::Fifo];
        for (max, policy) in [1, 7, 64, 100, 1000, 4097, 100_000]
            .into_iter()
            .flat_map(|max| policies.map(|policy| (max, policy)))
        {
            let store: MemoryStore<u64, u64> =
                MemoryStore::new(&Config::new().maxsize(max).policy(policy));
            let total: usize = (0..store.shards.len())
                .map(|s| store.read(s).capacity())
                .sum();
            assert_eq!(total, max);
            for k in 0..(3 * max as u64) {
                store.insert(k, k);
                assert!(store.len() <= max);
            }
        }
    }

    #[test]
    fn ttl_hides_then_purges_entries() {
        let store: MemoryStore<u64, u64> =
            MemoryStore::new(&Config::new().ttl(Duration::from_secs(10)));
        let (clock, mock) = Clock::mock();
        store.set_clock(clock);
        for k in 0..1000 {
            store.insert(k, k);
        }
        mock.increment(Duration::from_secs(9));
        assert_eq!(store.get(&&5), Some(5));
        mock.increment(Duration::from_secs(1));
        assert_eq!(store.get(&&5), None);
        assert_eq!(store.len(), 1000);
        assert_eq!(store.purge_expired(), 1000);
        assert!(store.is_empty());
    }

    /// Many threads mixing every operation on a small store: the bound holds at every moment and
    /// no lookup ever returns another key's value.
    #[test]
    fn stress_keeps_the_bound_and_never_mixes_keys() {
        const MAX: usize = 64;
        let store: MemoryStore<u64, (u64, u64)> = MemoryStore::new(&Config::new().maxsize(MAX));
        std::thread::scope(|s| {
            for t in 0..8_u64 {
                let store = &store;
                s.spawn(move || {
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for i in 0..20_000_u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = x % 256;
                        match i % 50 {
                            0..=29 => {
                                if let Some((k, v)) = store.get(&&key) {
                                    assert_eq!((k, v), (key, key * 3), "value of another key");
                                }
                            }
                            30..=45 => store.insert(key, (key, key * 3)),
                            46..=48 => {
                                store.remove(&&key);
                            }
                            _ if t == 0 && i % 5_000 == 49 => store.clear(),
                            _ => {}
                        }
                        assert!(store.len() <= MAX);
                    }
                });
            }
        });
        assert!(store.len() <= MAX);
    }

    /// A value whose `Clone` panics on demand, to interrupt a reader in the middle of a hit.
    struct Fragile(bool);

    impl Clone for Fragile {
        fn clone(&self) -> Self {
            assert!(!self.0, "clone failed");
            Fragile(false)
        }
    }

    #[test]
    fn a_reader_that_panics_lets_writers_in() {
        let store: MemoryStore<u64, Fragile> = MemoryStore::new(&Config::new());
        store.insert(1, Fragile(true));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.get(&&1)));
        assert!(caught.is_err());
        // The reader's mark was cleared while unwinding: a writer on that shard gets in.
        store.insert(1, Fragile(false));
        assert!(store.get(&&1).is_some());
    }

    #[test]
    fn jitter_spreads_expiry_around_the_ttl() {
        let config = Config::new().ttl(Duration::from_secs(100)).jitter(0.2);
        let store: MemoryStore<u64, u64> = MemoryStore::new(&config);
        let (clock, mock) = Clock::mock();
        store.set_clock(clock);
        for k in 0..1000 {
            store.insert(k, k);
        }
        let live =
            |store: &MemoryStore<u64, u64>| (0..1000).filter(|k| store.peek(&k).is_some()).count();
        mock.increment(Duration::from_secs(79));
        assert_eq!(live(&store), 1000, "nothing expires before ttl × 0.8");
        mock.increment(Duration::from_secs(21));
        let at_ttl = live(&store);
        assert!(
            (300..700).contains(&at_ttl),
            "about half live at the ttl, got {at_ttl}"
        );
        mock.increment(Duration::from_secs(20));
        assert_eq!(live(&store), 0, "everything expired by ttl × 1.2");
    }
}
