//! The handle of a memoized function: store + single-flight + statistics.

use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::config::Config;
use crate::flight::{Flight, Flights, Join, Leader};
use crate::janitor;
use crate::lookup::{KeyPart, Lookup};
use crate::stats::{Counters, Event, Stats};
use crate::store::{Claim, Lease, MemoryStore, Store};
use crate::trace::Computation;

/// Background refreshes of sync functions running at once, process-wide.
pub(crate) const MAX_REFRESH_THREADS: usize = 16;

/// Where a miss stands after [`Cache::begin`].
pub(crate) enum Step<'a, K, V> {
    /// A value is there (stored meanwhile, or handed over): return it.
    Done(V),
    /// Compute, then [`Cache::finish`]; no leader when a sync caller re-entered its own key.
    /// The lease is the store's claim on the key (other processes wait while it is held).
    Compute(Option<Leader<'a, K, V>>, Lease),
    /// Another caller computes: wait on its flight, then [`Cache::waited`].
    Wait(Arc<Flight<V>>),
}

/// A concurrent cache with per-key single-flight: what `f_cache()` returns for a memoized `f`.
///
/// `K` is the owned key (for `fn f(name: &str, n: u32)`, `(String, u32)`), `V` the function's return
/// type. Lookups take borrowed forms (`invalidate("alice")` on a `String`-keyed cache).
///
/// # Concurrent calls on the same key
///
/// [`get_or_compute`](Self::get_or_compute) (and every memoized call) runs the computation once for
/// all callers that miss one key at the same time; the others wait for that one result. Callers of
/// other keys never wait for it, and hits never wait for any computation. If the computing caller
/// panics, the panic reaches that caller and one of the waiters computes instead.
///
/// # Examples
///
/// ```
/// use memo_runtime::{Cache, Config};
///
/// let cache: Cache<String, usize> = Cache::new(Config::new().maxsize(100));
/// assert_eq!(cache.get_or_compute("hello", |name| name.len()), 5);
/// assert_eq!(cache.get_or_compute("hello", |_| unreachable!("cached")), 5);
/// assert!(cache.invalidate("hello"));
/// assert_eq!(cache.stats().misses, 1);
/// ```
pub struct Cache<K, V, S = MemoryStore<K, V>> {
    store: S,
    flights: Flights<K, V>,
    /// Misses and refreshes, counted off the hit path: kept out of line, so the fields a hit
    /// reads stay together.
    counters: Box<Counters>,
    /// `module::function` of a memoized function, for metrics; empty for a hand-made cache.
    name: &'static str,
    /// What [`reset_stats`](Cache::reset_stats) saw last; [`stats`](Cache::stats) counts from it.
    baseline: parking_lot::Mutex<Stats>,
    janitor: Once,
}

impl<K, V> Cache<K, V> {
    /// An in-memory cache configured by `config`.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self::with_store(MemoryStore::new(&config))
    }

    /// Reads time from `clock` from now on: tests pass a [`Clock::mock`] and expire entries by
    /// advancing it instead of sleeping.
    pub fn set_clock(&self, clock: Clock) {
        self.store.set_clock(clock);
    }
}

impl<K, V, S> Cache<K, V, S> {
    /// Names the cache (`module::function`) for metrics and logs.
    #[must_use]
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The name given with [`named`](Self::named); empty if none.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<K, V, S> Cache<K, V, S> {
    /// A cache over `store` (e.g. a [`DiskStore`](crate::DiskStore)).
    #[must_use]
    pub fn with_store(store: S) -> Self {
        #[cfg(feature = "switch")]
        crate::switch::read_environment();
        Self {
            store,
            flights: Flights::default(),
            counters: Box::default(),
            name: "",
            baseline: parking_lot::Mutex::new(Stats::default()),
            janitor: Once::new(),
        }
    }

    /// The store behind this cache.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    /// The cached value for `key`, without computing anything or counting a hit.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: ?Sized + KeyPart<Owned = K>,
    {
        self.store.peek(&key)
    }

    /// Whether a live value is cached for `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: ?Sized + KeyPart<Owned = K>,
    {
        self.get(key).is_some()
    }

    /// Stores `value` under `key` (e.g. to warm the cache), replacing any previous value.
    pub fn insert(&self, key: K, value: V) {
        self.store.insert(key, value);
    }

    /// Removes `key`'s entry, so the next call computes again; `true` if there was one.
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        Q: ?Sized + KeyPart<Owned = K>,
    {
        self.store.remove(&key)
    }

    /// Removes every entry. Statistics are kept.
    pub fn clear(&self) {
        self.store.clear();
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Removes every expired entry now, instead of waiting for the background sweep; returns how many.
    pub fn purge_expired(&self) -> usize {
        self.store.purge_expired()
    }

    /// Counters since the cache was created, or since the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> Stats {
        self.raw_stats().since(&self.baseline.lock())
    }

    /// Starts the counters of [`stats`](Self::stats) from zero again (entries are kept).
    pub fn reset_stats(&self) {
        *self.baseline.lock() = self.raw_stats();
    }

    fn raw_stats(&self) -> Stats {
        self.counters
            .snapshot(self.store.len(), self.store.counts())
    }

    /// The keys of the live entries, where the store can list them (the in-memory store can).
    pub fn keys(&self) -> Vec<K> {
        self.store.keys()
    }

    /// The value for `key`: from the cache, or computed by `compute` (from the key's borrowed
    /// view) once for all concurrent callers, then stored.
    pub fn get_or_compute<L>(&self, key: L, compute: impl FnOnce(L) -> V) -> V
    where
        L: Lookup<Key = K>,
    {
        if let Some(value) = self.hit(&key) {
            return value;
        }
        let owned = key.to_key();
        self.compute(owned, || compute(key), |_| true)
    }

    /// A counted lookup: the hit path of every memoized call.
    #[inline]
    pub(crate) fn hit<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.store.get(key)
    }

    /// The miss path, sync: single-flight around `body`; the value is stored when `keep` says so.
    pub(crate) fn compute(&self, key: K, body: impl FnOnce() -> V, keep: fn(&V) -> bool) -> V {
        loop {
            match self.begin(&key, true) {
                Step::Done(value) => return value,
                Step::Compute(leader, lease) => {
                    let started = Instant::now();
                    let value = body();
                    return self.finish(key, (leader, lease), value, keep, started.elapsed());
                }
                Step::Wait(flight) => {
                    if let Some(value) = self.waited(&key, flight.wait()) {
                        return value;
                    }
                }
            }
        }
    }

    /// The first step of a miss: lead the computation, wait for another caller's, or find that a
    /// value landed meanwhile. `by_thread` detects a sync caller re-entering its own key.
    ///
    /// The leader also claims the key from the store ([`Store::claim`]), so that callers in
    /// other processes sharing the store wait for it too.
    pub(crate) fn begin(&self, key: &K, by_thread: bool) -> Step<'_, K, V> {
        match self.flights.join(key.clone(), by_thread) {
            Join::Lead(leader) => {
                // A value may have landed between the caller's miss and its taking the lead.
                if let Some(value) = self.store.get(&key) {
                    leader.finish(&value);
                    return Step::Done(value);
                }
                match self.store.claim(key) {
                    Claim::Found(value) => {
                        // Another process computed it while this one waited.
                        self.counters.record(Event::Coalesced);
                        leader.finish(&value);
                        Step::Done(value)
                    }
                    Claim::Compute(lease) => {
                        self.counters.record(Event::Miss);
                        Step::Compute(Some(leader), lease)
                    }
                }
            }
            Join::Wait(flight) => Step::Wait(flight),
            Join::Reentrant => {
                self.counters.record(Event::Miss);
                Step::Compute(None, Lease::none())
            }
        }
    }

    /// The leader's last step: store `value` if `keep` says so, then hand it to the waiters and
    /// end the store's claim.
    ///
    /// Callers that were waiting get the leader's value either way: they asked at the same time.
    pub(crate) fn finish(
        &self,
        key: K,
        (leader, lease): (Option<Leader<'_, K, V>>, Lease),
        value: V,
        keep: fn(&V) -> bool,
        cost: Duration,
    ) -> V {
        #[cfg(feature = "metrics")]
        crate::metrics::record_load(self.name, cost);
        if keep(&value) {
            if let Some(leader) = leader {
                self.store.insert_timed(key, value.clone(), cost);
                leader.finish(&value);
            }
        } else {
            self.counters.record(Event::LoadError);
            if let Some(leader) = leader {
                leader.finish(&value);
            }
        }
        // After the value is stored: other processes find it once the claim is gone.
        drop(lease);
        value
    }

    /// A waiter's last step: the leader's value, or (it gave up) a value stored meanwhile; `None`
    /// means begin again, perhaps as the new leader.
    pub(crate) fn waited(&self, key: &K, waited: Option<V>) -> Option<V> {
        match waited {
            Some(value) => {
                self.counters.record(Event::Coalesced);
                Some(value)
            }
            None => self.hit(&key),
        }
    }

    /// The hit path of a function with `stale` or early refresh: a value, and when it is due,
    /// `start_refresh` is handed its owned key (this one caller starts the background refresh).
    pub(crate) fn hit_renewing<L: Lookup<Key = K>>(
        &self,
        key: &L,
        start_refresh: impl FnOnce(K),
    ) -> Option<V> {
        let (value, due) = self.store.get_renewing(key)?;
        if due {
            start_refresh(key.to_key());
        }
        Some(value)
    }

    /// Recomputes `key` on a thread of its own; the old value is served meanwhile, and stays if
    /// the new one is not kept (an error) or the computation panics. At most
    /// [`MAX_REFRESH_THREADS`] run at once in the process: past that the claim is given back and a
    /// later read tries again, so a burst of expiring keys cannot spawn a thread each.
    pub(crate) fn spawn_refresh(&'static self, key: K, refresh: fn(K) -> V, keep: fn(&V) -> bool) {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        if RUNNING.fetch_add(1, Ordering::AcqRel) >= MAX_REFRESH_THREADS {
            RUNNING.fetch_sub(1, Ordering::AcqRel);
            self.store.release_refresh(&&key);
            return;
        }
        self.counters.record(Event::Refresh);
        let retry = key.clone();
        let spawned = std::thread::Builder::new()
            .name("memo-refresh".into())
            .spawn(move || {
                let started = Instant::now();
                let trace = Computation::start(self.name, "refresh");
                let computed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    trace.run(|| refresh(key.clone()))
                }));
                trace.outcome(if matches!(&computed, Ok(v) if keep(v)) {
                    "refresh"
                } else {
                    "error"
                });
                self.refreshed(key, computed.ok(), keep, started);
                RUNNING.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            RUNNING.fetch_sub(1, Ordering::AcqRel);
            self.refreshed(retry, None, keep, Instant::now());
        }
    }

    /// Runs the refresh as its own task, and a second task that stores its value (or, when it
    /// errs or panics, keeps the old one): a panic ends only the first task.
    #[cfg(feature = "tokio")]
    pub(crate) fn spawn_refresh_task(
        &'static self,
        key: K,
        refresh: fn(K) -> crate::private::BoxFuture<V>,
        keep: fn(&V) -> bool,
    ) {
        self.counters.record(Event::Refresh);
        let started = Instant::now();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not called from within a tokio runtime: nothing to run the refresh on.
            self.refreshed(key, None, keep, started);
            return;
        };
        let computing = runtime.spawn(refresh(key.clone()));
        runtime.spawn(async move {
            let computed = computing.await.ok();
            self.refreshed(key, computed, keep, started);
        });
    }

    /// The end of a background refresh: store the new value if it is kept; otherwise (an error,
    /// a panic, nothing to run on) keep the old one, count and report the failure, and let a
    /// later read try again.
    fn refreshed(&self, key: K, computed: Option<V>, keep: fn(&V) -> bool, started: Instant) {
        match computed {
            Some(value) if keep(&value) => self.store.insert_timed(key, value, started.elapsed()),
            _ => {
                crate::trace::refresh_failed(self.name);
                self.counters.record(Event::RefreshFailure);
                self.store.release_refresh(&&key);
            }
        }
    }

    /// Lets the background sweep free this cache's expired entries.
    /// Also registers the cache with the metrics publisher (feature `metrics`), once.
    pub(crate) fn watch_expiry(&'static self) {
        self.janitor.call_once(|| {
            if self.store.has_ttl() {
                janitor::watch(self);
            }
            #[cfg(feature = "metrics")]
            crate::metrics::observe(self);
        });
    }
}

impl<K, V, S> janitor::Purge for Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    fn purge_expired(&self) -> usize {
        self.store.purge_expired()
    }
}

#[cfg(feature = "metrics")]
impl<K, V, S> crate::metrics::Observed for Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn stats(&self) -> Stats {
        Cache::stats(self)
    }

    fn backend(&self) -> &'static str {
        self.store.backend()
    }
}

impl<K, V, S> std::fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}
