//! The statistics of a cache: the [`Stats`] snapshot, and the striped counters of what happens off
//! the hit path (misses, coalesced waits, refreshes, load errors). Hits are counted by the store,
//! on the line the reading thread writes anyway (`store/gate.rs`); evictions and expiries by the
//! shards that make them.
//!
//! Each thread bumps the counters of its own [stripe](crate::stripe) with a plain load and store;
//! no other thread writes there, so no cache line bounces between cores. Threads without a stripe
//! of their own share one and pay an atomic add instead. Reading the statistics sums the stripes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::Counts;
use crate::stripe::{self, STRIPES};

/// A snapshot of one cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// # Examples
///
/// ```
/// use memo::{Cache, Config};
///
/// let cache: Cache<u32, u32> = Cache::new(Config::new());
/// cache.insert(1, 10);
/// assert_eq!(cache.get(&1), Some(10));
/// assert_eq!(cache.stats().len, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that ran the function body.
    pub misses: u64,
    /// Calls that found another caller computing the same key and shared its result.
    pub coalesced: u64,
    /// Entries removed to keep the cache within its bound.
    pub evictions: u64,
    /// Entries removed because their time to live had passed.
    pub expired: u64,
    /// Computations whose result was not stored (an `Err` or a `None` under the default rules).
    pub load_errors: u64,
    /// Refreshes started: in the background (`stale`, early refresh) or forced
    /// ([`Cache::refresh`](crate::Cache::refresh)).
    pub refreshes: u64,
    /// Refreshes whose result was not kept (an error, a panic): the old value stays.
    pub refresh_failures: u64,
    /// Failures of the store's backend (feature `disk`: a full or read-only disk, a value that
    /// did not decode; feature `redis`: a refused connection, a timed-out command, an error
    /// reply); each call went on as if uncached.
    pub backend_errors: u64,
    /// Backend requests not even tried, because the backend is known to be down (Redis: the
    /// circuit breaker is open, or the call had spent its one command timeout); each call went
    /// on as if uncached. Counted apart from `backend_errors`, so that real failures stand out.
    pub skipped: u64,
    /// Entries held when the snapshot was taken (expired ones not yet freed included); with
    /// `store = redis`, 0 and with `tiered` the local copies: [`Cache::len`](crate::Cache::len)
    /// counts Redis's with a `SCAN`.
    pub len: usize,
    /// Their total weight, when the cache weighs entries (`#[cached(weight = …)]`,
    /// [`MemoryStore::weigher`](crate::MemoryStore::weigher)); `None` otherwise.
    pub weight: Option<u64>,
}

impl Stats {
    /// What happened between `earlier` and this snapshot (`len` and `weight` are this snapshot's).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// cache.get_or_compute(&1, |n| n + 1);
    /// let before = cache.stats();
    /// cache.get_or_compute(&1, |n| n + 1); // a hit
    /// cache.get_or_compute(&2, |n| n + 1); // a miss
    /// let delta = cache.stats().since(&before);
    /// assert_eq!((delta.hits, delta.misses, delta.len), (1, 1, 2));
    /// ```
    #[must_use]
    pub const fn since(&self, earlier: &Self) -> Self {
        Self {
            hits: self.hits.saturating_sub(earlier.hits),
            misses: self.misses.saturating_sub(earlier.misses),
            coalesced: self.coalesced.saturating_sub(earlier.coalesced),
            evictions: self.evictions.saturating_sub(earlier.evictions),
            expired: self.expired.saturating_sub(earlier.expired),
            load_errors: self.load_errors.saturating_sub(earlier.load_errors),
            refreshes: self.refreshes.saturating_sub(earlier.refreshes),
            refresh_failures: self
                .refresh_failures
                .saturating_sub(earlier.refresh_failures),
            backend_errors: self.backend_errors.saturating_sub(earlier.backend_errors),
            skipped: self.skipped.saturating_sub(earlier.skipped),
            len: self.len,
            weight: self.weight,
        }
    }

    /// Hits over all calls (`hits / (hits + misses + coalesced)`), or 0 before the first call.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// assert_eq!(cache.stats().hit_ratio(), 0.0);
    /// for _ in 0..4 {
    ///     cache.get_or_compute(&1, |n| n + 1);
    /// }
    /// assert_eq!(cache.stats().hit_ratio(), 0.75); // 1 miss, then 3 hits
    /// ```
    #[must_use]
    #[allow(
        clippy::cast_precision_loss,
        reason = "a ratio does not need 64-bit precision"
    )]
    pub fn hit_ratio(&self) -> f64 {
        let calls = self.hits + self.misses + self.coalesced;
        if calls == 0 {
            0.0
        } else {
            self.hits as f64 / calls as f64
        }
    }
}

/// One line, as `functools`' `cache_info()` prints: the calls and the hit ratio, the entries,
/// then each other count that is not zero.
///
/// # Examples
///
/// ```
/// use memo::{Cache, Config};
///
/// let cache: Cache<u32, u32> = Cache::new(Config::new());
/// for _ in 0..4 {
///     cache.get_or_compute(&1, |n| n + 1);
/// }
/// assert_eq!(cache.stats().to_string(), "hits 3, misses 1 (hit ratio 75.0 %), entries 1");
/// ```
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hits {}, misses {} (hit ratio {:.1} %), entries {}",
            self.hits,
            self.misses,
            self.hit_ratio() * 100.0,
            self.len
        )?;
        if let Some(weight) = self.weight {
            write!(f, ", weight {weight}")?;
        }
        let others = [
            ("coalesced", self.coalesced),
            ("evictions", self.evictions),
            ("expired", self.expired),
            ("load errors", self.load_errors),
            ("refreshes", self.refreshes),
            ("refresh failures", self.refresh_failures),
            ("backend errors", self.backend_errors),
            ("skipped", self.skipped),
        ];
        for (name, count) in others {
            if count > 0 {
                write!(f, ", {name} {count}")?;
            }
        }
        Ok(())
    }
}

/// What a counter counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    /// A hit the store did not count: a value served while its background refresh runs.
    Hit,
    Miss,
    Coalesced,
    Refresh,
    RefreshFailure,
    LoadError,
}

const EVENTS: usize = 6;

/// One stripe per cache line pair, so neighbouring stripes never share a line (nor its prefetch twin).
#[repr(align(128))]
struct Stripe([AtomicU64; EVENTS]);

impl Stripe {
    const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; EVENTS])
    }
}

/// A cache's striped counters: one stripe per thread that holds a claim, plus one shared.
pub(crate) struct Counters {
    owned: [Stripe; STRIPES],
    shared: Stripe,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            owned: [const { Stripe::new() }; STRIPES],
            shared: Stripe::new(),
        }
    }
}

impl Counters {
    /// Counts one event on this thread's stripe.
    #[inline]
    pub(crate) fn record(&self, event: Event) {
        self.add(event, 1);
    }

    /// Counts `n` events on this thread's stripe.
    #[inline]
    pub(crate) fn add(&self, event: Event, n: u64) {
        match self.owned.get(stripe::current()) {
            Some(stripe) => {
                // Only this thread writes its stripe, so a plain read-modify-write is exact.
                let counter = &stripe.0[event as usize];
                counter.store(
                    counter.load(Ordering::Relaxed).wrapping_add(n),
                    Ordering::Relaxed,
                );
            }
            None => {
                self.shared.0[event as usize].fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Sums one counter over all stripes.
    pub(crate) fn sum(&self, event: Event) -> u64 {
        self.owned
            .iter()
            .chain([&self.shared])
            .map(|s| s.0[event as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// A snapshot, completed with what the store counts itself (`skipped`: requests it did not
    /// try).
    pub(crate) fn snapshot(
        &self,
        len: usize,
        weight: Option<u64>,
        counts: Counts,
        skipped: u64,
    ) -> Stats {
        Stats {
            hits: counts.hits + self.sum(Event::Hit),
            misses: self.sum(Event::Miss),
            coalesced: self.sum(Event::Coalesced),
            evictions: counts.evicted,
            expired: counts.expired,
            load_errors: self.sum(Event::LoadError),
            refreshes: self.sum(Event::Refresh),
            refresh_failures: self.sum(Event::RefreshFailure),
            backend_errors: counts.errors,
            skipped,
            len,
            weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_are_exact() {
        let counters = Arc::new(Counters::default());
        // More threads than stripes, alive at once, so the overflow stripe is used too.
        let barrier = Arc::new(std::sync::Barrier::new(STRIPES + 16));
        let threads: Vec<_> = (0..STRIPES + 16)
            .map(|_| {
                let counters = Arc::clone(&counters);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..1000 {
                        counters.record(Event::Coalesced);
                    }
                    counters.add(Event::Miss, 2);
                    barrier.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = counters.snapshot(7, None, Counts::default(), 0);
        assert_eq!(stats.coalesced, (STRIPES as u64 + 16) * 1000);
        assert_eq!(stats.misses, (STRIPES as u64 + 16) * 2);
        assert_eq!(stats.len, 7);
    }

    #[test]
    fn display_names_the_counts_that_are_not_zero() {
        let stats = Stats {
            hits: 1,
            misses: 3,
            coalesced: 0,
            evictions: 2,
            backend_errors: 5,
            len: 7,
            weight: Some(70),
            ..Stats::default()
        };
        assert_eq!(
            stats.to_string(),
            "hits 1, misses 3 (hit ratio 25.0 %), entries 7, weight 70, evictions 2, backend errors 5"
        );
        assert_eq!(
            Stats::default().to_string(),
            "hits 0, misses 0 (hit ratio 0.0 %), entries 0"
        );
    }

    #[test]
    fn hit_ratio_of_no_calls_is_zero() {
        assert!(Stats::default().hit_ratio().abs() < f64::EPSILON);
        let s = Stats {
            hits: 3,
            misses: 1,
            ..Stats::default()
        };
        assert!((s.hit_ratio() - 0.75).abs() < 1e-9);
    }
}
