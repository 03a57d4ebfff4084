//! The handle of a memoized function: store + single-flight + statistics.

use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::AssertUnwindSafe;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::block;
use crate::call::memory::Pair;
use crate::call::{self, Boxed, Claimed, Item, LeaderClaim, Slot, Value};
#[cfg(any(test, feature = "test-util"))]
use crate::clock::Clock;
use crate::config::Config;
use crate::flight::{Flights, Handing, RawFlights};
use crate::janitor;
use crate::lookup::Lookup;
use crate::refresh::{self, Forcing};
use crate::stats::{Counters, Event, Stats};
use crate::store::{Claim, Lease, MemoryStore, RawMemory, SlabKind, Store};
use crate::trace::Computation;
use crate::writes::Writes;

/// Background refreshes of sync functions running at once, process-wide.
pub(crate) const MAX_REFRESH_THREADS: usize = 16;

/// A concurrent cache with per-key single-flight: what `f_cache()` returns for a memoized `f`,
/// and a cache object of your own from [`Cache::builder`] (in memory, on disk or in Redis).
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
/// use memo::Cache;
///
/// let cache: Cache<String, usize> = Cache::builder().maxsize(100).build();
/// assert_eq!(cache.get_or_compute("hello", |name| name.len()), 5);
/// assert_eq!(cache.get_or_compute("hello", |_| unreachable!("cached")), 5);
/// assert!(cache.invalidate("hello"));
/// assert_eq!(cache.stats().misses, 1);
/// ```
#[repr(C)]
pub struct Cache<K, V, S = MemoryStore<K, V>> {
    /// First, then `flights` and `store` (`repr(C)`): a cache in memory starts as a
    /// [`MemoryCache`] does, for the miss loop's code compiled once (`call/memory.rs`).
    head: Head,
    flights: Flights<K, V>,
    /// Read directly by the memoized call's typed steps: an accessor is one more function per
    /// key and value type in a debug build.
    pub(crate) store: S,
    /// The value each background refresh running now replaces, served to the callers that find
    /// the store's entry expired meanwhile (see [`hit_renewing`](Self::hit_renewing)), with
    /// when the refresh started; few at once.
    renewing: parking_lot::Mutex<Vec<(K, V, Instant)>>,
}

/// The parts of a memoized function's cache in memory, which hold no entries yet, without its
/// key and value types: built by code compiled once, then moved into its [`Cache`]
/// ([`Cache::memoized`]).
pub(crate) struct MemoryParts {
    head: Head,
    flights: RawFlights,
    store: RawMemory,
}

impl MemoryParts {
    /// The parts of the cache that `config` makes, named `name`, whose store holds slots of
    /// `kind` (`MemoryStore::SLOT_KIND`).
    #[inline(never)]
    pub(crate) fn new(name: &'static str, config: &Config, kind: SlabKind) -> Self {
        #[cfg(feature = "switch")]
        crate::switch::read_environment();
        Self {
            head: Head::new(name, Some(config)),
            flights: RawFlights::new(),
            store: RawMemory::new(config, kind),
        }
    }
}

impl Cache<(), ()> {
    /// The cache of a memoized function, of `parts` made for its store's slots, before it is
    /// typed in place ([`boxed_memoized`]). Nothing here may depend on the key and value types
    /// but their layout ([`Cache::LAID_OUT_AS_UNTYPED`]).
    fn memoized(parts: MemoryParts) -> Self {
        let MemoryParts {
            head,
            flights,
            store,
        } = parts;
        // The one call first, while every part is untyped: a call that could unwind with a typed
        // part would compile that part's drop for the key and value types.
        let store = MemoryStore::from_raw(store);
        Self {
            head,
            flights: Flights {
                raw: flights,
                _types: std::marker::PhantomData,
            },
            store,
            renewing: const { parking_lot::Mutex::new(Vec::new()) },
        }
    }
}

impl<K, V> Cache<K, V> {
    /// Evaluated where a cache in memory is built as a `Cache<(), ()>` ([`boxed_memoized`]): its
    /// fields, and its store's, sit at the same offsets whatever the key and value types.
    const LAID_OUT_AS_UNTYPED: () = {
        type Untyped = Cache<(), ()>;
        assert!(size_of::<Self>() == size_of::<Untyped>());
        assert!(align_of::<Self>() == align_of::<Untyped>());
        assert!(std::mem::offset_of!(Self, head) == std::mem::offset_of!(Untyped, head));
        assert!(std::mem::offset_of!(Self, flights) == std::mem::offset_of!(Untyped, flights));
        assert!(std::mem::offset_of!(Self, store) == std::mem::offset_of!(Untyped, store));
        assert!(std::mem::offset_of!(Self, renewing) == std::mem::offset_of!(Untyped, renewing));
        let () = MemoryStore::<K, V>::LAID_OUT_AS_UNTYPED;
    };

    /// What building this cache asks of its types ([`boxed_memoized`]), as constants.
    pub(crate) const KIND: &'static CacheKind = &CacheKind {
        slots: {
            let () = Self::LAID_OUT_AS_UNTYPED;
            MemoryStore::<K, V>::SLOT_KIND
        },
        empty_renewing: empty_vec_bytes::<(K, V, Instant)>(),
    };
}

/// What building a memoized function's `Cache<K, V>` in memory asks of `K` and `V`, as constants
/// ([`Cache::KIND`]): so that the code that builds it ([`boxed_memoized`]) is compiled once.
pub(crate) struct CacheKind {
    /// Its store's slots.
    slots: SlabKind,
    /// An empty `renewing`: a `Vec` whose dangling pointer is aligned for its items.
    empty_renewing: VecBytes,
}

/// The bytes of a `Vec` of some type (all have one size).
type VecBytes = [MaybeUninit<u8>; size_of::<Vec<()>>()];

/// The bytes of an empty `Vec<T>`, whose pointer, dangling, is an address without provenance.
const fn empty_vec_bytes<T>() -> VecBytes {
    union Bytes<T> {
        vec: ManuallyDrop<Vec<T>>,
        bytes: VecBytes,
    }
    assert!(size_of::<Vec<T>>() == size_of::<VecBytes>());
    // SAFETY: both fields have one size (checked); any bytes are `MaybeUninit<u8>`s.
    unsafe {
        Bytes {
            vec: ManuallyDrop::new(Vec::<T>::new()),
        }
        .bytes
    }
}

/// A memoized function's cache in memory named `name`, of the types `kind` is of (the `Cache<K,
/// V>` whose [`KIND`](Cache::KIND) it is), boxed for the cell's registry as `private::register`
/// boxes a cache: built and boxed as a `Cache<(), ()>`, which is laid out as every `Cache<K, V>`
/// (`LAID_OUT_AS_UNTYPED`), whose shards hold slots of `K` and `V`. Its new parts hold the same
/// bytes whatever the types (no entries, no listener), but for the empty `renewing`, written from
/// `kind`. Compiled once.
#[cold]
#[inline(never)]
pub(crate) fn boxed_memoized(
    name: &'static str,
    (config, kind): (fn() -> Config, &'static CacheKind),
) -> crate::cell::Boxed {
    let cache = Box::into_raw(Box::new(ManuallyDrop::new(Cache::memoized(
        MemoryParts::new(name, &config(), kind.slots),
    ))));
    let untyped = cache.cast::<Cache<(), ()>>();
    // SAFETY: `renewing` of the new cache holds nothing to drop; an empty `Vec` of `kind`'s
    // item type takes its place, as the box becomes a `Cache<K, V>`'s.
    unsafe {
        let renewing = &(*untyped).renewing;
        renewing
            .data_ptr()
            .cast::<VecBytes>()
            .write(kind.empty_renewing);
        Box::from_raw(cache as *mut (dyn Send + Sync))
    }
}

/// How long a cache built by `config` serves the old value of a key whose background refresh
/// runs past its expiry: one time to live when `config` renews entries, else not at all.
fn renew_for(config: &Config) -> Duration {
    if config.renews() {
        config.ttl.unwrap_or_default()
    } else {
        Duration::ZERO
    }
}

/// A cache apart from its key and value types, with what the miss loop (`call.rs`) does with
/// it: built and compiled once, not once per key and value type as the cache's own methods
/// are.
pub(crate) struct Head {
    /// `module::function` of a memoized function, for metrics; empty for a hand-made cache.
    pub(crate) name: &'static str,
    /// Misses and refreshes, counted off the hit path: kept out of line, so the fields a hit
    /// reads stay together.
    pub(crate) counters: Box<Counters>,
    /// What [`reset_stats`](Cache::reset_stats) saw last; [`stats`](Cache::stats) counts from it.
    baseline: parking_lot::Mutex<Stats>,
    janitor: Once,
    /// Forced refreshes running now, on any thread: while 0, lookups skip the thread-local check.
    refreshing: AtomicUsize,
    /// How long after its refresh started an old value may still be served while the refresh
    /// runs (see `Cache::renewing`): one time to live (none for a cache that does not renew), so
    /// a refresh that hangs or starves leaves callers to compute, as before, instead of serving
    /// its old value for ever.
    renew_for: Duration,
    /// How many background refreshes have ended: a caller that missed the store and found no
    /// refresh running looks again if one ended meanwhile (its value was stored before).
    renewals_ended: AtomicU64,
    /// What an invalidation refuses: the stores of values computed before it.
    pub(crate) writes: Box<Writes>,
    /// The typed operations of the miss loop over this cache as a [`MemoryCache`]: set by the
    /// first miss of a memoized function over memory (`call::memory::steps`), where its key's
    /// and value's bounds are known; null before, and for every other cache.
    pub(crate) pair: AtomicPtr<Pair>,
    /// This cache's store (a `MemoryStore<K, V>`) for the typed insert of [`Pair`], set before
    /// `pair`: made from the whole cache, so that it reaches every field of the store, where a
    /// `&MemoryCache` covers only the cache's untyped start.
    pub(crate) store: AtomicPtr<()>,
    /// The function that uses this cache through `cache = …` (the first to call), and which
    /// instance of it (a generic function's instances are as many functions); unset before.
    pub(crate) owner: std::sync::OnceLock<(&'static crate::private::Owner, std::any::TypeId)>,
}

/// A memoized function's cache in memory without its key and value types: the start of every
/// `Cache<K, V>` (`repr(C)`, both; asserted in [`Cache::untyped`]), which the miss loop reaches
/// through one vtable for every key and value type (`call/memory.rs`).
#[repr(C)]
pub(crate) struct MemoryCache {
    pub(crate) head: Head,
    pub(crate) flights: RawFlights,
    pub(crate) store: RawMemory,
}

impl<K, V> Cache<K, V> {
    /// This cache without its types.
    #[allow(
        clippy::ptr_as_ptr,
        clippy::ref_as_ptr,
        reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
    )]
    pub(crate) fn untyped(&self) -> &MemoryCache {
        const {
            // A `Flights<K, V>` starts with its `RawFlights` (`repr(C)`), a `MemoryStore<K, V>`
            // with its `RawMemory`.
            let () = MemoryStore::<K, V>::STARTS_RAW;
            assert!(std::mem::offset_of!(Self, head) == std::mem::offset_of!(MemoryCache, head));
            assert!(
                std::mem::offset_of!(Self, flights) == std::mem::offset_of!(MemoryCache, flights)
            );
            assert!(std::mem::offset_of!(Self, store) == std::mem::offset_of!(MemoryCache, store));
        }
        // SAFETY: the fields of a `MemoryCache` start a `Cache<K, V>` at the same offsets
        // (asserted above), each the untyped start of its own.
        unsafe { &*(self as *const Self as *const MemoryCache) }
    }
}

impl Head {
    /// The head of a cache named `name`, built by `config` (`None`: a cache that does not
    /// renew).
    #[inline(never)]
    fn new(name: &'static str, config: Option<&Config>) -> Self {
        Self {
            name,
            counters: Box::default(),
            baseline: parking_lot::Mutex::new(Stats::default()),
            janitor: Once::new(),
            refreshing: AtomicUsize::new(0),
            renew_for: config.map_or(Duration::ZERO, renew_for),
            renewals_ended: AtomicU64::new(0),
            writes: Box::new(Writes::new()),
            pair: AtomicPtr::new(std::ptr::null_mut()),
            store: AtomicPtr::new(std::ptr::null_mut()),
            owner: std::sync::OnceLock::new(),
        }
    }

    /// Whether the function `owner`, in its instance `instance` (the `TypeId` of a closure of
    /// its body: a generic function's instances differ), may use this cache through
    /// `cache = …`: the first to ask owns it. Another gets `false` (it would read the first
    /// one's values under the same keys), said once.
    pub(crate) fn is_owned_by(
        &self,
        owner: &'static crate::private::Owner,
        instance: std::any::TypeId,
    ) -> bool {
        // One load where the cache is owned already: a call that owns it writes nothing.
        let held = *self.owner.get_or_init(|| (owner, instance));
        if std::ptr::eq(held.0, owner) && held.1 == instance {
            return true;
        }
        if owner.warned.swap(true, Ordering::Relaxed) {
            return false;
        }
        let first = held.0.name;
        if std::ptr::eq(held.0, owner) {
            crate::trace::warn(&format_args!(
                "two instances of the generic `{first}` use one cache (`cache = …`): they would \
                 read each other's values under the same keys, so the later one computes every \
                 call; give each instance a cache of its own"
            ));
            return false;
        }
        crate::trace::warn(&format_args!(
            "`{}` uses the cache `{first}` uses (`cache = …`): the two would read each other's \
             values under the same keys, so `{}` computes every call; give each function a cache \
             of its own",
            owner.name, owner.name
        ));
        false
    }

    /// The leader's last step when its computation failed (an `Err` of a function whose cache
    /// holds only `Ok` values): nothing is stored; the waiters get a copy of the error from
    /// `failure`, or without it (or after a change `changes()` counts) try again; the store's
    /// claim ends.
    pub(crate) fn failed(
        &self,
        (leader, lease): LeaderClaim<'_>,
        failure: Handing<'_>,
        cost: Duration,
        changes: &dyn Fn() -> u64,
    ) {
        #[cfg(feature = "metrics")]
        crate::metrics::record_load(self.name, cost);
        #[cfg(not(feature = "metrics"))]
        let _ = cost;
        self.counters.record(Event::LoadError);
        if let Some(leader) = leader {
            leader.fail(failure, changes);
        }
        drop(lease);
    }

    /// A forced refresh ended (see [`Cache::refresh`]): counted, and when it `failed` the
    /// failure too (see [`refresh_failed`](Self::refresh_failed)).
    pub(crate) fn refresh_ended(&self, failed: bool) {
        self.counters.record(Event::Refresh);
        if failed {
            self.refresh_failed();
        }
    }

    /// A refresh failed (an error, a panic, nothing to run on): counted and reported. The old
    /// value stays, and the caller lets the store refresh the key again.
    pub(crate) fn refresh_failed(&self) {
        crate::trace::refresh_failed(self.name);
        self.counters.record(Event::RefreshFailure);
    }
}

impl<K, V> Cache<K, V> {
    /// An in-memory cache configured by `config`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, String> = Cache::new(Config::new().maxsize(2));
    /// for n in 0..5 {
    ///     cache.insert(n, n.to_string());
    /// }
    /// assert_eq!(cache.len(), 2); // held within `maxsize`
    /// assert_eq!(cache.stats().evictions, 3);
    /// ```
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self::from_parts(MemoryStore::new(&config), Some(&config), "")
    }

    /// Reads time from `clock` from now on: tests pass a [`Clock::mock`] and expire entries by
    /// advancing it instead of sleeping (feature `test-util`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "test-util")] {
    /// use memo::{Cache, Clock, Config};
    /// use std::time::Duration;
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new().ttl(Duration::from_secs(60)));
    /// let (clock, mock) = Clock::mock();
    /// cache.set_clock(clock);
    /// cache.insert(1, 10);
    /// mock.increment(Duration::from_secs(59));
    /// assert_eq!(cache.get(&1), Some(10));
    /// mock.increment(Duration::from_secs(2));
    /// assert_eq!(cache.get(&1), None); // expired, without sleeping
    /// # }
    /// ```
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_clock(&self, clock: Clock) {
        self.store.set_clock(clock);
    }
}

impl<K, V, S> Cache<K, V, S> {
    /// A cache over `store`: for a store built by hand (a [`MemoryStore`] with a weigher or an
    /// eviction listener, a `TieredStore`); [`Cache::builder`] builds the others.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config, MemoryStore};
    ///
    /// let store = MemoryStore::new(&Config::new().max_weight(10))
    ///     .weigher(|_: &u32, text: &String| text.len() as u64);
    /// let cache = Cache::with_store(store);
    /// cache.insert(1, "tea".to_string());
    /// assert_eq!(cache.weight(), Some(3));
    /// ```
    #[must_use]
    pub fn with_store(store: S) -> Self {
        Self::from_parts(store, None, "")
    }

    /// [`with_store`](Self::with_store), [`named`](Self::named) `name`, and serving the old
    /// value of a key whose background refresh runs past its expiry for up to one time to live
    /// when `config` renews entries (`stale`, `refresh = "early"`). All in one place: a cache
    /// moved from call to call is copied each time, in code compiled for every key and value
    /// type.
    pub(crate) fn from_parts(store: S, config: Option<&Config>, name: &'static str) -> Self {
        // Left, not dropped, should a call below panic: so no code to drop a store is compiled
        // for making a memoized function's cache, which is never dropped (see `undropped`). The
        // store is taken out last, after every call.
        let store = ManuallyDrop::new(store);
        #[cfg(feature = "switch")]
        crate::switch::read_environment();
        let head = Head::new(name, config);
        let flights = Flights::default();
        Self {
            head,
            flights,
            store: ManuallyDrop::into_inner(store),
            // Made by the compiler, not by a call that might panic with the store out.
            renewing: const { parking_lot::Mutex::new(Vec::new()) },
        }
    }

    /// This cache as the miss path, the janitor and the metrics hold it (`&dyn Steps`,
    /// `&dyn Purge`): through `ManuallyDrop`, whose vtables hold a drop that does nothing. The
    /// cache of a memoized function is never dropped (`cell::made_once`), so no code to drop
    /// one is compiled for its key and value types.
    #[allow(
        clippy::ptr_as_ptr,
        clippy::ref_as_ptr,
        reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
    )]
    pub(crate) fn undropped(&self) -> &ManuallyDrop<Self> {
        // SAFETY: `ManuallyDrop<T>` is `repr(transparent)` over `T`, and a shared reference to
        // it drops nothing.
        unsafe { &*(self as *const Self as *const ManuallyDrop<Self>) }
    }

    /// The store behind this cache.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Store;
    ///
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder().build();
    /// cache.insert(1, 10);
    /// assert_eq!(cache.store().len(), 1);
    /// ```
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Names the cache (`module::function`) for logs and metrics: its load times are recorded
    /// under this name, and [`publish_metrics`](Self::publish_metrics) publishes its counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new()).named("shop::price");
    /// assert_eq!(cache.name(), "shop::price");
    /// ```
    #[must_use]
    pub fn named(mut self, name: &'static str) -> Self {
        self.head.name = name;
        self
    }

    /// The name given with [`named`](Self::named); empty if none.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// assert_eq!(cache.name(), "");
    /// assert_eq!(cache.named("shop::price").name(), "shop::price");
    /// ```
    pub fn name(&self) -> &'static str {
        self.head.name
    }

    /// The in-flight computations of this cache's keys.
    pub(crate) fn flights(&self) -> &Flights<K, V> {
        &self.flights
    }

    /// Runs `call`, a call of the memoized function, recomputing its value instead of returning
    /// the cached one, and stores the new value (counted in [`Stats::refreshes`], not as a hit or a
    /// miss). Only the outermost lookup in this cache is forced: recursive calls inside the body
    /// hit as usual. A value the cache does not keep (an `Err`) leaves the old one in place.
    /// A computation of the key begun before (a background refresh, another caller's miss)
    /// still answers its callers, but its value, read from older sources, is not stored over
    /// the new one.
    ///
    /// For an `async fn`, see [`refresh_async`](Self::refresh_async).
    ///
    /// # Examples
    ///
    /// With `#[cached] fn price(item: &str) -> u32`, `price_cache().refresh(|| price("tea"))`; with
    /// a hand-made cache:
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<String, u32> = Cache::new(Config::new());
    /// let price = |runs: u32| cache.get_or_compute("tea", |_| runs);
    /// assert_eq!(price(1), 1);
    /// assert_eq!(price(2), 1); // a hit
    /// assert_eq!(cache.refresh(|| price(3)), 3); // computed again
    /// assert_eq!(price(4), 3); // the new value is cached
    /// assert_eq!(cache.stats().refreshes, 1);
    /// ```
    pub fn refresh<R>(&self, call: impl FnOnce() -> R) -> R {
        let _forcing = Forcing::start(self.address(), &self.head.refreshing);
        call()
    }

    /// [`refresh`](Self::refresh) for an `async fn`: `f_cache().refresh_async(f(args)).await`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    /// use std::task::{Context, Poll, Waker};
    ///
    /// let cache: Cache<String, u32> = Cache::new(Config::new());
    /// cache.insert("tea".to_string(), 1);
    /// // An `async fn`'s call: it looks its key up when first polled.
    /// let price = async { cache.get_or_compute("tea", |_| 2) };
    /// let mut refresh = std::pin::pin!(cache.refresh_async(price));
    /// let polled = refresh.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    /// assert_eq!(polled, Poll::Ready(2));
    /// assert_eq!(cache.get("tea"), Some(2));
    /// ```
    pub async fn refresh_async<F: Future>(&self, call: F) -> F::Output {
        let mut call = std::pin::pin!(call);
        let mut first = true;
        // An `async fn` looks its key up in its first poll: mark only that one.
        std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) {
                let _forcing = Forcing::start(self.address(), &self.head.refreshing);
                call.as_mut().poll(cx)
            } else {
                call.as_mut().poll(cx)
            }
        })
        .await
    }

    /// Whether this lookup is a forced refresh (see [`refresh`](Self::refresh)).
    #[inline]
    pub(crate) fn forced(&self) -> bool {
        self.head.forced()
    }

    /// Whether a forced refresh of this cache may be under way on some thread: the cheap half of
    /// [`forced`](Self::forced), which makes no call.
    #[inline]
    pub(crate) fn may_be_forced(&self) -> bool {
        self.head.refreshing.load(Ordering::Relaxed) != 0
    }

    /// What marks this cache in the thread-local of [`refresh`](Self::refresh): its head's
    /// address.
    fn address(&self) -> usize {
        self.head.address()
    }
}

impl Head {
    /// [`Cache::forced`], compiled once.
    pub(crate) fn forced(&self) -> bool {
        self.refreshing.load(Ordering::Relaxed) != 0 && refresh::take(self.address())
    }

    /// [`Cache::address`].
    fn address(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    /// The cached value for `key`, or `None` (absent or expired); computes nothing.
    ///
    /// A lookup like moka's `get` and cachetools' `cache[key]`: counted in [`stats`](Self::stats)
    /// as a hit or a miss, and a use of the entry for the eviction policy. To look without
    /// either, [`peek`](Self::peek).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<String, u32> = memo::Cache::builder().build();
    /// cache.insert("tea".to_string(), 3);
    /// assert_eq!(cache.get("tea"), Some(3)); // a `&str` finds a `String` key
    /// assert_eq!(cache.get("milk"), None);
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses), (1, 1));
    /// ```
    pub fn get<L>(&self, key: L) -> Option<V>
    where
        L: Lookup<Key = K>,
    {
        let value = self.store.get(&key);
        if value.is_none() {
            self.head.counters.record(Event::Miss);
        }
        value
    }

    /// The cached value for `key`, without counting a hit or a miss and without marking the
    /// entry used (so it does not keep the entry from eviction): for inspection.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Policy};
    ///
    /// let cache: Cache<u32, &str> = Cache::builder().maxsize(2).policy(Policy::Lru).build();
    /// cache.insert(1, "one");
    /// cache.insert(2, "two");
    /// assert_eq!(cache.peek(&1), Some("one")); // not a use: 1 stays the least recently used
    /// cache.insert(3, "three");
    /// assert!(!cache.contains_key(&1));
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    pub fn peek<L>(&self, key: L) -> Option<V>
    where
        L: Lookup<Key = K>,
    {
        self.store.peek(&key)
    }

    /// Whether a live value is cached for `key`; like [`peek`](Self::peek), neither counted nor
    /// a use of the entry (as cachetools' `key in cache`).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<String, u32> = memo::Cache::builder().build();
    /// assert!(!cache.contains_key("tea"));
    /// cache.insert("tea".to_string(), 3);
    /// assert!(cache.contains_key("tea"));
    /// ```
    pub fn contains_key<L>(&self, key: L) -> bool
    where
        L: Lookup<Key = K>,
    {
        self.peek(key).is_some()
    }

    /// Stores `value` under `key` (e.g. to warm the cache), replacing any previous value.
    ///
    /// As after [`invalidate`](Self::invalidate), a computation of `key` begun before (a
    /// miss's, a refresh's) still answers its own callers, but its value, read from older
    /// sources, is not stored over this one, and later callers do not wait for it. On disk,
    /// Redis and tiered this holds across processes too: the write takes the key's lock away
    /// with it (in the same transaction, or the same round trip).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<String, u32> = Cache::new(Config::new());
    /// cache.insert("tea".to_string(), 3);
    /// cache.insert("tea".to_string(), 4); // replaces 3
    /// assert_eq!(cache.get_or_compute("tea", |_| unreachable!("inserted")), 4);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let hash = self.supersede(&key);
        self.store.insert(key, value);
        self.flights.raw.detach_hash(hash);
    }

    /// Stores `value` under `key` to expire after `ttl`, in place of the cache's own time to
    /// live (none, or the `ttl` it was built with), replacing any previous value; as
    /// [`insert`](Self::insert), over any computation of `key` begun before.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache: memo::Cache<String, u32> = memo::Cache::builder().build(); // no `ttl` of its own
    /// cache.insert_with_ttl("token".to_string(), 7, Duration::from_millis(20));
    /// assert_eq!(cache.get("token"), Some(7));
    /// std::thread::sleep(Duration::from_millis(30));
    /// assert_eq!(cache.get("token"), None); // expired
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        let hash = self.supersede(&key);
        self.store.insert_with_ttl(key, value, ttl);
        self.flights.raw.detach_hash(hash);
    }

    /// Removes `key`'s entry, so the next call computes again; `true` if there was a live one.
    ///
    /// A computation of `key` begun before (a miss's, a refresh's) still answers the callers
    /// waiting for it, but its value is not stored and later callers do not wait for it; a
    /// store of such a value under way finishes first, then the entry is removed. On disk, Redis
    /// and tiered this holds across processes too, except for a computation that ran without the
    /// key's lock (`docs/cache-object.md` says which).
    ///
    /// The name memoized functions' handles use (`f_cache().invalidate(..)`, as `cached` does);
    /// [`remove`](Self::remove) does the same and returns the value. An expired entry counts as
    /// gone: `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<String, u32> = memo::Cache::builder().build();
    /// cache.insert("tea".to_string(), 3);
    /// assert!(cache.invalidate("tea"));
    /// assert!(!cache.invalidate("tea")); // already gone
    /// assert_eq!(cache.get_or_compute("tea", |_| 4), 4); // computed again
    ///
    /// // A key of several parts, as a function of several arguments has: the borrowed tuple.
    /// let pairs: memo::Cache<(String, u32), u32> = memo::Cache::builder().build();
    /// pairs.insert(("tea".to_string(), 2), 6);
    /// assert_eq!(pairs.get(("tea", &2)), Some(6));
    /// assert!(pairs.invalidate(("tea", &2)));
    /// assert!(!pairs.contains_key(&("tea".to_string(), 2))); // or the owned key, by reference
    /// ```
    pub fn invalidate<L>(&self, key: L) -> bool
    where
        L: Lookup<Key = K>,
    {
        let hash = self.outdate(&key);
        let removed = self.store.remove(&key);
        self.flights.raw.detach_hash(hash);
        removed
    }

    /// Removes `key`'s entry and returns its value, if it held a live one (as moka's `remove`
    /// and a dict's `pop`). The disk and Redis stores read the value, then remove it.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<String, u32> = memo::Cache::builder().build();
    /// cache.insert("tea".to_string(), 3);
    /// assert_eq!(cache.remove("tea"), Some(3));
    /// assert_eq!(cache.remove("tea"), None); // already gone
    /// ```
    pub fn remove<L>(&self, key: L) -> Option<V>
    where
        L: Lookup<Key = K>,
    {
        let hash = self.outdate(&key);
        let taken = self.store.take(&key);
        self.flights.raw.detach_hash(hash);
        taken
    }

    /// Before `key`'s entry is removed: a computation of it in progress is no longer joined by
    /// later callers, and neither its value nor a running refresh's is stored (see
    /// [`crate::writes`]; those storing now finish first, so the removal comes after them); an
    /// old value of `key` is no longer served in place of a refresh (see
    /// [`hit_renewing`](Self::hit_renewing)). Returns the key's hash.
    ///
    /// The caller detaches the flights of that hash again once the store's change returned (as
    /// do [`insert`](Self::insert) and [`clear`](Self::clear)): a miss that began in between
    /// (after this detach, before the change) may have found the old value in the store (its
    /// look, or its claim) and hands it to whoever joins it; left in the table, it was joined by
    /// a call begun after the invalidate returned, which took that older value.
    fn outdate<L>(&self, key: &L) -> u64
    where
        L: Lookup<Key = K>,
    {
        let hash = self.store.hash_of(key);
        self.outdate_hashed(hash, &key.to_key(), true);
        hash
    }

    /// Before a value is put in `key`'s place by hand ([`insert`](Self::insert)): as
    /// [`outdate`](Self::outdate), so that a computation of `key` begun before (a miss's, a
    /// refresh's), which read older sources, neither stores its value over the new one nor is
    /// joined by later callers, and the old value is no longer served in place of a refresh.
    /// In memory and on disk the stores under way (a few microseconds, on other threads) are
    /// waited for (on disk, one not waited for queued its older value after the insert's, and
    /// a read after the insert returned was served it); a store over the network is not: an
    /// insert made from a task would wait for a store of another task of its runtime, which
    /// cannot run meanwhile. Returns the key's hash, for the second detach (see `outdate`).
    fn supersede(&self, key: &K) -> u64 {
        let hash = self.store.hash_of(&key);
        self.outdate_hashed(hash, key, S::STORES_AT_ONCE);
        hash
    }

    /// [`outdate`](Self::outdate) and [`supersede`](Self::supersede) of `key` (of hash `hash`):
    /// the stores of `key` under way are waited for if `waits`, else only refused.
    fn outdate_hashed(&self, hash: u64, key: &K, waits: bool) {
        self.flights.detach(hash, key);
        if waits {
            self.head.writes.invalidate(hash);
        } else {
            self.head.writes.refuse_older(hash);
        }
        if !self.head.renew_for.is_zero() {
            self.renewing.lock().retain(|(k, _, _)| k != key);
        }
    }

    /// Removes every entry. Statistics are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// cache.get_or_compute(&1, |n| n * 10);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// assert_eq!(cache.stats().misses, 1); // statistics are kept
    /// ```
    pub fn clear(&self) {
        // As `outdate`, for every key.
        self.flights.raw.detach_all();
        self.head.writes.invalidate_all();
        self.renewing.lock().clear();
        self.store.clear();
        // Again: a miss begun meanwhile may have read a value the clear removed (`outdate`).
        self.flights.raw.detach_all();
    }

    /// How many live entries are held (expired ones are freed first, and not counted).
    ///
    /// With `store = redis`, the values in the store's namespace, counted with `SCAN`: a walk of
    /// the server's whole keyspace, for inspection rather than a hot path.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// cache.insert(1, 10);
    /// cache.insert(2, 20);
    /// cache.insert(2, 21);
    /// assert_eq!(cache.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        // Expired entries not yet freed are freed first, so that they are not counted.
        self.store.purge_expired();
        self.store.len()
    }

    /// The total weight of the entries held, when the store weighs them (a
    /// [`MemoryStore::weigher`], `#[cached(weight = …)]`); `None` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config, MemoryStore};
    ///
    /// let store = MemoryStore::new(&Config::new().max_weight(100))
    ///     .weigher(|_: &u32, text: &String| text.len() as u64);
    /// let cache = Cache::with_store(store);
    /// cache.insert(1, "tea".to_string());
    /// cache.insert(2, "coffee".to_string());
    /// assert_eq!(cache.weight(), Some(9));
    /// assert_eq!(cache.stats().weight, Some(9));
    /// assert_eq!(Cache::<u32, u32>::new(Config::new()).weight(), None);
    /// ```
    pub fn weight(&self) -> Option<u64> {
        self.store.weight()
    }

    /// Whether no entry is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// assert!(cache.is_empty());
    /// cache.insert(1, 10);
    /// assert!(!cache.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every expired entry now, instead of waiting for the background sweep; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    /// use std::time::Duration;
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new().ttl(Duration::from_secs(60)));
    /// cache.insert(1, 10);
    /// assert_eq!(cache.purge_expired(), 0); // still live
    /// # #[cfg(feature = "test-util")] {
    /// let (clock, mock) = memo::Clock::mock(); // feature `test-util`
    /// cache.set_clock(clock);
    /// mock.increment(Duration::from_secs(61));
    /// assert_eq!(cache.stats().len, 1); // expired, but still held
    /// assert_eq!(cache.purge_expired(), 1);
    /// assert!(cache.is_empty());
    /// # }
    /// ```
    pub fn purge_expired(&self) -> usize {
        self.store.purge_expired()
    }

    /// The settings the cache was built with (what `functools`' `cache_parameters()` tells):
    /// for a memoized function, its options.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config, Policy};
    /// use std::time::Duration;
    ///
    /// let cache: Cache<u32, u32> =
    ///     Cache::new(Config::new().maxsize(100).ttl(Duration::from_secs(300)).policy(Policy::Lru));
    /// let config = cache.config();
    /// assert_eq!(config.maxsize, Some(100));
    /// assert_eq!(config.ttl, Some(Duration::from_secs(300)));
    /// assert_eq!(config.policy, Policy::Lru);
    /// assert_eq!(cache.backend(), "memory");
    /// ```
    pub fn config(&self) -> Config {
        self.store.config()
    }

    /// Where the entries live: `"memory"`, `"disk"`, `"redis"` or `"tiered"`: the store this
    /// cache was built with. A disk store whose directory was refused keeps its entries in
    /// memory and is still `"disk"` here: its `store().is_persistent()` is false, and the
    /// refusal is counted in `stats().backend_errors`.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder().build();
    /// assert_eq!(cache.backend(), "memory");
    /// ```
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Counters since the cache was created, or since the last [`reset_stats`](Self::reset_stats).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// cache.get_or_compute(&1, |n| n + 1); // a miss
    /// cache.get_or_compute(&1, |n| n + 1); // a hit
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses, stats.len), (1, 1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        self.raw_stats().since(&self.head.baseline.lock())
    }

    /// Publishes this cache's counters now (feature `metrics`), labelled `fn` = its
    /// [`name`](Self::named), as every memoized function's are each second: a cache object may
    /// be dropped, so no thread reads it unless it asks (call this before each scrape, or on a
    /// timer). A cache without a name publishes nothing. The counters are counted since the
    /// cache was made: [`reset_stats`](Self::reset_stats) starts `stats()` again, not them
    /// (a scrape's counters only grow).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let prices: Cache<u32, u32> = Cache::new(Config::new()).named("shop::price");
    /// prices.get_or_compute(&1, |n| n * 3);
    /// prices.publish_metrics(); // memo_misses_total{fn="shop::price"} 1, memo_entries 1, …
    /// ```
    #[cfg(feature = "metrics")]
    pub fn publish_metrics(&self) {
        let name = self.head.name;
        if !name.is_empty() {
            crate::metrics::publish_one(name, &self.raw_stats(), self.backend());
        }
    }

    /// Starts the counters of [`stats`](Self::stats) from zero again (entries are kept). The
    /// counters published as metrics (feature `metrics`) go on from where they were: a scrape's
    /// counters never go down.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<u32, u32> = Cache::new(Config::new());
    /// cache.get_or_compute(&1, |n| n + 1);
    /// cache.reset_stats();
    /// assert_eq!(cache.stats().misses, 0);
    /// cache.get_or_compute(&1, |n| n + 1); // the entry was kept: a hit
    /// assert_eq!(cache.stats().hits, 1);
    /// ```
    pub fn reset_stats(&self) {
        *self.head.baseline.lock() = self.raw_stats();
    }

    fn raw_stats(&self) -> Stats {
        self.head.counters.snapshot(
            self.store.held(),
            self.store.weight(),
            self.store.counts(),
            self.store.skipped(),
        )
    }

    /// The keys of the live entries, where the store can list them: in memory and on disk all,
    /// with `store = tiered` those with a copy in this process, with `store = redis` none.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<String, u32> = Cache::new(Config::new());
    /// cache.insert("tea".to_string(), 3);
    /// cache.insert("coffee".to_string(), 4);
    /// let mut keys = cache.keys();
    /// keys.sort();
    /// assert_eq!(keys, ["coffee", "tea"]);
    /// ```
    pub fn keys(&self) -> Vec<K> {
        self.store.keys()
    }

    /// The live entries, each key with its value, where the store can list its keys (as
    /// [`keys`](Self::keys)): moka's `iter()`, cachetools' `items()`. A snapshot, read key by
    /// key, neither counted nor a use of the entries (as [`peek`](Self::peek)); an entry removed
    /// while it is read is left out.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<String, u32> = memo::Cache::builder().build();
    /// cache.insert("tea".to_string(), 3);
    /// cache.insert("coffee".to_string(), 4);
    /// let mut entries = cache.entries();
    /// entries.sort();
    /// assert_eq!(entries, [("coffee".to_string(), 4), ("tea".to_string(), 3)]);
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    pub fn entries(&self) -> Vec<(K, V)> {
        self.store
            .keys()
            .into_iter()
            .filter_map(|key| self.store.peek(&&key).map(|value| (key, value)))
            .collect()
    }

    /// Removes every entry for which `keep` answers `false`, as
    /// [`HashMap::retain`](std::collections::HashMap::retain) does; returns how many were
    /// removed. moka's `invalidate_entries_if` with the answer reversed.
    ///
    /// Each removal is an [`invalidate`](Self::invalidate) (a computation of that key in
    /// progress stores nothing; the eviction listener is told `Invalidated`). `keep` runs on a
    /// snapshot ([`entries`](Self::entries)), outside the store's locks, so it may call the
    /// cache; a key first stored after the snapshot is kept, and a value stored for a listed key
    /// after the snapshot is removed with it (computed again at its next call). Only the
    /// entries the store can list: in memory and on disk all, with `store = tiered` those with
    /// a copy in this process, with `store = redis` none.
    ///
    /// # Examples
    ///
    /// ```
    /// let sessions: memo::Cache<(u32, String), String> = memo::Cache::builder().build();
    /// sessions.insert((7, "web".to_string()), "a".to_string());
    /// sessions.insert((7, "phone".to_string()), "b".to_string());
    /// sessions.insert((8, "web".to_string()), "c".to_string());
    /// // Log user 7 out everywhere.
    /// assert_eq!(sessions.retain(|(user, _), _| *user != 7), 2);
    /// assert_eq!(sessions.keys(), [(8, "web".to_string())]);
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        self.entries()
            .into_iter()
            .filter(|(key, value)| !keep(key, value) && self.invalidate(key))
            .count()
    }

    /// The value for `key`: from the cache, or computed by `compute` (from the key's borrowed
    /// view) once for all concurrent callers, then stored.
    ///
    /// # Examples
    ///
    /// A key of several parts is looked up by a tuple of references (see [`Lookup`]):
    ///
    /// ```
    /// use memo::{Cache, Config};
    ///
    /// let cache: Cache<(String, u32), String> = Cache::new(Config::new());
    /// let label = |name: &str, n: u32| {
    ///     cache.get_or_compute((name, &n), |(name, n)| format!("{name}#{n}"))
    /// };
    /// assert_eq!(label("tea", 2), "tea#2"); // computed
    /// assert_eq!(label("tea", 2), "tea#2"); // a hit, found without building a `String`
    /// assert_eq!(cache.stats().misses, 1);
    /// ```
    pub fn get_or_compute<L>(&self, key: L, compute: impl FnOnce(L) -> V) -> V
    where
        L: Lookup<Key = K>,
    {
        let hash = self.store.hash_of(&key);
        if self.forced() {
            let owned = key.to_key();
            let since = self.forced_since(hash, &owned);
            return self.forced_refresh(hash, owned, compute(key), since);
        }
        if let Some(value) = self.hit(hash, &key) {
            return value;
        }
        let owned = key.to_key();
        self.compute(hash, owned, || compute(key), |_| true)
    }

    /// The value for `key`: from the cache, or made by `init` once for all concurrent callers
    /// of `key` (the others wait for it), then stored. Counted as a hit or a miss. moka's
    /// `get_with`; [`get_or_compute`](Self::get_or_compute) looks up by a borrowed key.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<u32, String> = memo::Cache::builder().maxsize(100).build();
    /// assert_eq!(cache.get_or_insert_with(7, || "seven".to_string()), "seven");
    /// assert_eq!(cache.get_or_insert_with(7, || unreachable!("cached")), "seven");
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses), (1, 1));
    /// ```
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        let hash = self.store.hash_of(&&key);
        if self.forced() {
            let since = self.forced_since(hash, &key);
            return self.forced_refresh(hash, key, init(), since);
        }
        if let Some(value) = self.hit(hash, &&key) {
            return value;
        }
        self.compute(hash, key, init, |_| true)
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for a computation that can fail: an
    /// `Err` is returned to this caller and not stored (moka's `try_get_with`). Callers that
    /// were waiting for this one then compute in turn, one at a time.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<String, u64> = memo::Cache::builder().build();
    /// let parsed = cache.try_get_or_insert_with("x".to_string(), || "x".parse::<u64>());
    /// assert!(parsed.is_err());
    /// assert!(!cache.contains_key("x")); // the error was not stored
    /// let parsed = cache.try_get_or_insert_with("42".to_string(), || "42".parse::<u64>());
    /// assert_eq!(parsed, Ok(42));
    /// assert_eq!(cache.get("42"), Some(42));
    /// ```
    pub fn try_get_or_insert_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        let hash = self.store.hash_of(&&key);
        if let Some(value) = self.hit(hash, &&key) {
            return Ok(value);
        }
        self.try_compute(hash, key, init)
    }

    /// The miss of [`try_get_or_insert_with`](Self::try_get_or_insert_with), for a key whose
    /// hash (by [`Store::hash_of`]) the caller's lookup made.
    pub(crate) fn try_compute<E>(
        &self,
        hash: u64,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        let mut found = None;
        let Some(claim) = self.lead_blocking(hash, &key, &mut found) else {
            return Ok(Self::found(found));
        };
        let started = Instant::now();
        match init() {
            Ok(value) => {
                let cost = started.elapsed();
                self.finish_blocking(hash, key, claim, &value, true, cost);
                Ok(value)
            }
            Err(err) => Err(self.count_failure(err)),
        }
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for async code: `init` is awaited once
    /// for all concurrent callers of `key`; the others await its value. A disk or Redis store
    /// is read, claimed and written with awaited calls, never blocking the executor's thread.
    /// If the computing caller's future is dropped, a waiting caller computes instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # runtime.block_on(async {
    /// let cache: memo::Cache<u32, String> = memo::Cache::builder().build();
    /// let page = cache.get_or_insert_with_async(1, async { "page 1".to_string() }).await;
    /// assert_eq!(page, "page 1");
    /// assert_eq!(cache.get(&1).as_deref(), Some("page 1"));
    /// # });
    /// ```
    pub async fn get_or_insert_with_async(&self, key: K, init: impl Future<Output = V>) -> V {
        let computed = self.get_or_make_async(key, init, Ok::<V, std::convert::Infallible>);
        match computed.await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with) for async code, as
    /// [`get_or_insert_with_async`](Self::get_or_insert_with_async): an `Err` is returned to
    /// this caller and not stored.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # runtime.block_on(async {
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder().build();
    /// let failed = cache.try_get_or_insert_with_async(1, async { Err("down") }).await;
    /// assert_eq!(failed, Err("down"));
    /// let ok = cache.try_get_or_insert_with_async(1, async { Ok::<_, &str>(10) }).await;
    /// assert_eq!(ok, Ok(10));
    /// # });
    /// ```
    pub async fn try_get_or_insert_with_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        self.get_or_make_async(key, init, std::convert::identity)
            .await
    }

    /// The async forms' one body: `made` tells what `init`'s output makes (a value to store, or
    /// an error). A function rather than an `async` block around `init`, which would keep the
    /// caller's future from being proved `Send` (rust-lang/rust#100013).
    async fn get_or_make_async<R, E>(
        &self,
        key: K,
        init: impl Future<Output = R>,
        made: fn(R) -> Result<V, E>,
    ) -> Result<V, E> {
        let lookup = &key;
        let hash = self.store.hash_of(&lookup);
        // A store in this process answers at once: its typed hit path, not the miss's look.
        let hit = if S::LOCAL {
            self.store.get_hashed(hash, &lookup)
        } else {
            let hit: Boxed<'_, Option<V>> = Box::pin(self.store.get_async(hash, &lookup));
            hit.await
        };
        if let Some(value) = hit {
            return Ok(value);
        }
        let mut found = None;
        let lead: Boxed<'_, Option<LeaderClaim<'_>>> = Box::pin(call::lead(
            self.undropped(),
            hash,
            Item::of(&key),
            Slot::of(&mut found),
            false,
        ));
        let Some(claim) = lead.await else {
            return Ok(Self::found(found));
        };
        let started = Instant::now();
        match made(init.await) {
            Ok(value) => {
                let cost = started.elapsed();
                let mut key = Some(key);
                let finish: Boxed<'_, ()> = Box::pin(call::finish(
                    self.undropped(),
                    hash,
                    Slot::of(&mut key),
                    claim,
                    Value::of(&value),
                    true,
                    cost,
                ));
                finish.await;
                Ok(value)
            }
            Err(err) => Err(self.count_failure(err)),
        }
    }

    /// A computation of the object's failed: counted; dropping the leader and the lease (by
    /// the caller) lets a waiting caller compute.
    fn count_failure<E>(&self, err: E) -> E {
        self.head.counters.record(Event::LoadError);
        err
    }

    /// A counted lookup of a key whose hash (by [`Store::hash_of`]) is `hash`: the hit path of
    /// every memoized call.
    #[allow(clippy::inline_always, reason = "measured on the hit path")]
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline)]
    pub(crate) fn hit<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<V> {
        self.store.get_hashed(hash, key)
    }

    /// The miss path, sync: single-flight around `body`; the value is stored when `keep` says so.
    pub(crate) fn compute(
        &self,
        hash: u64,
        key: K,
        body: impl FnOnce() -> V,
        keep: fn(&V) -> bool,
    ) -> V {
        let mut found = None;
        let Some(claim) = self.lead_blocking(hash, &key, &mut found) else {
            return Self::found(found);
        };
        let started = Instant::now();
        let value = body();
        let cost = started.elapsed();
        self.finish_blocking(hash, key, claim, &value, keep(&value), cost);
        value
    }

    /// [`call::lead`] for a caller on its own thread (which may re-enter its key): `None` once
    /// a value is in `found`, or the claim under which to compute.
    fn lead_blocking(&self, hash: u64, key: &K, found: &mut Option<V>) -> Option<LeaderClaim<'_>> {
        let lead = call::lead(self.undropped(), hash, Item::of(key), Slot::of(found), true);
        block::wait(lead)
    }

    /// [`call::finish`] for a leader on its own thread: stores `value` if it is `kept`, and
    /// hands it to the waiters; `cost` is what computing it took.
    fn finish_blocking(
        &self,
        hash: u64,
        key: K,
        claim: LeaderClaim<'_>,
        value: &V,
        kept: bool,
        cost: Duration,
    ) {
        let mut key = Some(key);
        let (key, value) = (Slot::of(&mut key), Value::of(value));
        block::wait(call::finish(
            self.undropped(),
            hash,
            key,
            claim,
            value,
            kept,
            cost,
        ));
    }

    /// The value [`call::lead`] put in the caller's slot when it ended with one.
    fn found(found: Option<V>) -> V {
        let Some(found) = found else {
            unreachable!("the loop ends with a value or a claim")
        };
        found
    }

    /// What the new leader's claim of a key found: a value another process computed while
    /// this one waited (put in `out`), or the lease under which to compute. Not generic over the
    /// store's future, so that each store's claim adds only its own.
    pub(crate) fn claimed(&self, claim: Claim<V>, out: &mut Option<V>) -> Claimed {
        match claim {
            Claim::Found(value) => {
                self.head.counters.record(Event::Coalesced);
                *out = Some(value);
                Claimed::Found
            }
            Claim::Compute(lease) => {
                self.missed();
                Claimed::Compute(lease)
            }
        }
    }

    /// A call that computes: counted as a miss.
    pub(crate) fn missed(&self) {
        self.head.counters.record(Event::Miss);
    }

    /// What the miss loop reads of this cache apart from its types.
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }

    /// The hit path of a function with `stale` or early refresh: a value, and when it is due,
    /// `start_refresh` is handed its owned key (this one caller starts the background refresh).
    ///
    /// While that refresh runs, the value it replaces is served even past the time to live (and
    /// past `stale`), so that no caller waits for a refresh started before the expiry: the store
    /// misses, and the caller finds the value here instead of joining the refresh. Only for one
    /// time to live after the refresh started: a refresh that hangs, or a task that never gets to
    /// run, leaves callers to compute.
    pub(crate) fn hit_renewing<L: Lookup<Key = K>>(
        &self,
        hash: u64,
        key: &L,
        start_refresh: impl Fn(K, Option<Instant>) + Copy,
    ) -> Option<V> {
        let since = self.renewals_ended();
        let faults = self.store.faults();
        let read = (hash, self.generation(hash));
        let found = self.store.get_renewing_hashed(hash, key);
        self.renewal_hit(key, read, found, start_refresh)
            .or_else(|| {
                // A refresh that ended after the read stored its value: read again. Not after
                // a read the backend failed (a frozen server): the call's deadline may be
                // spent, and a second read would add a second timeout to it.
                if !self.renewal_ended_since(since) || self.store.faults() != faults {
                    return None;
                }
                let read = (hash, self.generation(hash));
                let found = self.store.get_renewing_hashed(hash, key);
                self.renewal_hit(key, read, found, start_refresh)
            })
    }

    /// The generation of the stripe of keys of hash `hash` (see [`crate::writes`]), taken
    /// before a read whose value may be served in place of a refresh.
    #[inline]
    pub(crate) fn generation(&self, hash: u64) -> u64 {
        self.head.writes.generation(hash)
    }

    /// A count of the background refreshes ended, taken before a read of the store: see
    /// [`renewal_ended_since`](Self::renewal_ended_since).
    #[inline]
    pub(crate) fn renewals_ended(&self) -> u64 {
        self.head.renewals_ended.load(Ordering::Acquire)
    }

    /// Whether a background refresh ended since `since` ([`renewals_ended`](Self::renewals_ended)),
    /// asked after the store missed and [`renewal_hit`](Self::renewal_hit) found no refresh
    /// running: one that ended between the two stored its value, so the store is read again. (A
    /// refresh stores its value, then leaves `renewing`, then counts.)
    #[cold]
    pub(crate) fn renewal_ended_since(&self, since: u64) -> bool {
        self.renewals_ended() != since
    }

    /// [`hit_renewing`](Self::hit_renewing) of what the store answered (`found`: the value, and
    /// whether this caller refreshes it), for a store read awaited by the caller. `read`: the
    /// key's hash and its stripe's [`generation`](Self::generation) before the read; the value
    /// is not served in place of the refresh if the key may have been invalidated since.
    /// `start_refresh` is handed the owned key and when the refresh started, which names its
    /// record in `renewing` (see [`renewed`](Self::renewed)): `None` where it has none.
    pub(crate) fn renewal_hit<L: Lookup<Key = K>>(
        &self,
        key: &L,
        (hash, generation): (u64, u64),
        found: Option<(V, bool)>,
        start_refresh: impl FnOnce(K, Option<Instant>),
    ) -> Option<V> {
        let Some((value, due)) = found else {
            return self.renewed_meanwhile(key);
        };
        if due {
            // The read claimed the key's refresh for this caller. Until the refresh starts,
            // user code runs (the key's and the value's `Clone`): a panic there gives the claim
            // back, or no read would refresh the key again.
            let claim = Unstarted {
                store: &self.store,
                key,
                _types: PhantomData,
            };
            let owned = key.to_key();
            let mut record = None;
            if !self.head.renew_for.is_zero() {
                let started = Instant::now();
                let mut renewing = self.renewing.lock();
                // Under the lock an invalidation takes to forget the key's old values, after it
                // moved the generation on: either it forgets this one, or this one is not kept.
                if self.head.writes.unchanged(hash, generation) {
                    renewing.push((owned.clone(), value.clone(), started));
                    record = Some(started);
                }
            }
            std::mem::forget(claim);
            start_refresh(owned, record);
        }
        Some(value)
    }

    /// The value a background refresh of `key` running now replaces, counted as a hit.
    #[cold]
    #[inline(never)]
    fn renewed_meanwhile<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        let renewing = self.renewing.lock();
        let value = renewing.iter().find_map(|(k, v, started)| {
            (key.matches(k) && started.elapsed() < self.head.renew_for).then(|| v.clone())
        })?;
        drop(renewing);
        self.head.counters.record(Event::Hit);
        Some(value)
    }

    /// A background refresh of `key` whose record in `renewing` is `since` (when it started;
    /// `None` for none) ended (its value stored, or given up): its old value is no longer
    /// served in its place. Its own record goes, not another refresh's of the key: an
    /// invalidation dropped the record of a refresh begun before it, and a refresh of the new
    /// value may have one already.
    fn renewed(&self, key: &K, since: Option<Instant>) {
        if let Some(since) = since {
            let mut renewing = self.renewing.lock();
            if let Some(at) = renewing
                .iter()
                .position(|(k, _, started)| k == key && *started == since)
            {
                renewing.remove(at);
            }
        }
        self.head.renewals_ended.fetch_add(1, Ordering::Release);
    }

    /// Gives back the store's claim of `key`'s refresh, taken by the read that started the
    /// refresh whose record is `since`, unless `key` was invalidated (or replaced) since: in
    /// memory the claim then went with the entry it was taken on, and the one the key holds now
    /// may be another refresh's. The refresh's record in `renewing` says which (an invalidation
    /// drops it); a refresh without one gives the claim back, as does one over a store whose
    /// claims are not its entries' (disk, Redis: their own marks of the keys they refresh).
    fn give_back_refresh(&self, key: &K, since: Option<Instant>) {
        let outdated = S::LOCAL
            && since.is_some_and(|since| {
                !self
                    .renewing
                    .lock()
                    .iter()
                    .any(|(k, _, started)| k == key && *started == since)
            });
        if !outdated {
            self.store.release_refresh(&key);
        }
    }

    /// Recomputes `key` on a thread of its own; the old value is served meanwhile, and stays if
    /// the new one is not kept (an error), `refresh` gives none (it failed) or panics. At most
    /// [`MAX_REFRESH_THREADS`] run at once in the process: past that the claim is given back and a
    /// later read tries again, so a burst of expiring keys cannot spawn a thread each.
    pub(crate) fn spawn_refresh(
        &'static self,
        key: K,
        since: Option<Instant>,
        refresh: fn(K) -> Option<V>,
        keep: fn(&V) -> bool,
    ) {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        /// Gives the refresh's place back however its thread ends (a listener or weigher that
        /// panics in the store's insert unwinds it): leaked, places would run out for good.
        struct Place;
        impl Drop for Place {
            fn drop(&mut self) {
                RUNNING.fetch_sub(1, Ordering::AcqRel);
            }
        }
        // Before a place is taken: a key's `Clone` that panics takes none, and gives the read's
        // claim of the refresh back.
        let owned = &key;
        let claim = Unstarted {
            store: &self.store,
            key: &owned,
            _types: PhantomData,
        };
        let retry = key.clone();
        std::mem::forget(claim);
        if RUNNING.fetch_add(1, Ordering::AcqRel) >= MAX_REFRESH_THREADS {
            RUNNING.fetch_sub(1, Ordering::AcqRel);
            self.store.release_refresh(&&key);
            self.renewed(&key, since);
            return;
        }
        self.head.counters.record(Event::Refresh);
        let spawned = std::thread::Builder::new()
            .name("memo-refresh".into())
            .spawn(move || {
                let _place = Place;
                let compute = |key: K| {
                    let trace = Computation::start(self.head.name, "refresh");
                    let computed =
                        std::panic::catch_unwind(AssertUnwindSafe(|| trace.run(|| refresh(key))));
                    let computed = computed.ok().flatten();
                    trace.outcome(if matches!(&computed, Some(v) if keep(v)) {
                        "refresh"
                    } else {
                        "error"
                    });
                    std::future::ready(computed)
                };
                block::wait(self.refresh_in_background(key, since, compute, keep));
            });
        if spawned.is_err() {
            RUNNING.fetch_sub(1, Ordering::AcqRel);
            self.refresh_failed(&retry, since);
            self.renewed(&retry, since);
        }
    }

    /// A task claims the key from the store ([`Store::claim_refresh_async`]), runs the refresh
    /// as a task of its own (a panic ends only that one), then stores its value (or, when it
    /// errs or panics, keeps the old one) with the store's awaited write.
    #[cfg(feature = "tokio")]
    pub(crate) fn spawn_refresh_task(
        &'static self,
        key: K,
        since: Option<Instant>,
        refresh: fn(K) -> crate::private::BoxFuture<Option<V>>,
        keep: fn(&V) -> bool,
    ) {
        self.head.counters.record(Event::Refresh);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not called from within a tokio runtime: nothing to run the refresh on.
            self.refresh_failed(&key, since);
            self.renewed(&key, since);
            return;
        };
        let spawner = runtime.clone();
        let compute = move |key: K| async move { spawner.spawn(refresh(key)).await.ok().flatten() };
        runtime.spawn(self.refresh_in_background(key, since, compute, keep));
    }

    /// A background refresh of `key`, sync or async: claims the key from the store (when
    /// another process holds it, that one refreshes, and its value replaces this one), computes
    /// it with `compute`, stores the value if kept (an awaited write, ending the claim) or else
    /// keeps the old one; then the old value is no longer served in the new one's place.
    fn refresh_in_background<F>(
        &self,
        key: K,
        since: Option<Instant>,
        compute: impl FnOnce(K) -> F,
        keep: fn(&V) -> bool,
    ) -> impl Future<Output = ()>
    where
        F: Future<Output = Option<V>>,
    {
        // Made now, not at the first poll: a task dropped before it ran (its runtime shut down)
        // ends the refresh too, and gives its claim back.
        let mut ends = Renewal {
            cache: self,
            key,
            since,
            settled: false,
        };
        async move {
            let key = ends.key.clone();
            let hash = self.store.hash_of(&&key);
            // Before the refresh reads its sources: an invalidation from now on refuses its value.
            let generation = self.head.writes.generation(hash);
            let claim: Boxed<'_, Option<Lease>> = Box::pin(self.store.claim_refresh_async(&key));
            if let Some(lease) = claim.await {
                let started = Instant::now();
                match compute(key.clone()).await {
                    Some(value) if keep(&value) => {
                        let cost = started.elapsed();
                        if let Some(writing) = self.head.writes.begin(hash, generation) {
                            let store = || -> Boxed<'_, ()> {
                                Box::pin(self.store.insert_claimed_async(
                                    hash,
                                    key.clone(),
                                    value,
                                    cost,
                                    lease,
                                ))
                            };
                            writing.during(store).await;
                        } else {
                            // The key was invalidated meanwhile: its value is not stored, and a
                            // later read may refresh it again.
                            drop(lease);
                            self.give_back_refresh(&key, since);
                        }
                    }
                    _ => {
                        drop(lease);
                        self.refresh_failed(&key, since);
                    }
                }
            }
            ends.settle();
        }
    }

    /// A refresh of `key`, started at `since`, failed (an error, a panic, nothing to run on):
    /// the old value stays; counted and reported, and a later read may try again.
    fn refresh_failed(&self, key: &K, since: Option<Instant>) {
        self.head.refresh_failed();
        self.give_back_refresh(key, since);
    }

    /// The start of a forced refresh of the cache object's own: see [`call::Since::now`].
    fn forced_since(&self, hash: u64, key: &K) -> call::Since {
        block::wait(call::Since::now(
            self.undropped(),
            hash,
            call::Item::of(key),
        ))
    }

    /// The end of a forced refresh of the cache object's own (`get_or_compute`,
    /// `get_or_insert_with`): stores `value`, and returns it.
    fn forced_refresh(&self, hash: u64, key: K, value: V, since: call::Since) -> V {
        let mut key = Some(key);
        block::wait(call::refreshed(
            self.undropped(),
            hash,
            Slot::of(&mut key),
            Some(Value::of(&value)),
            true,
            since,
        ));
        value
    }

    /// Lets the background sweep free this cache's expired entries.
    /// Also registers the cache with the metrics publisher (feature `metrics`), once.
    ///
    /// Inline, so that its trait objects are made where the miss makes its [`call::Steps`]:
    /// each place that makes one compiles the cache's drop again (a vtable holds it).
    #[inline]
    pub(crate) fn watch_expiry(&'static self) {
        if !self.head.janitor.is_completed() {
            #[cfg(feature = "metrics")]
            watch_once(
                &self.head.janitor,
                self.undropped(),
                self.store.has_ttl(),
                self.undropped(),
            );
            #[cfg(not(feature = "metrics"))]
            watch_once(&self.head.janitor, self.undropped(), self.store.has_ttl());
        }
    }
}

/// The end of a background refresh of `key`, however it ends (its value stored or given up, a
/// panic in the store's insert, its task dropped): its old value is no longer served in the new
/// one's place ([`Cache::renewed`]).
struct Renewal<'a, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    cache: &'a Cache<K, V, S>,
    key: K,
    /// When the refresh started: its record in `renewing` (`None` for none).
    since: Option<Instant>,
    /// Whether the refresh ran to its end, which gave the key's claim back itself. Dropped
    /// before (its task dropped, a panic in the store's insert), it failed: the claim is given
    /// back here, so that a later read refreshes the key again.
    settled: bool,
}

impl<K, V, S> Renewal<'_, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    /// The refresh ran to its end.
    fn settle(&mut self) {
        self.settled = true;
    }
}

impl<K, V, S> Drop for Renewal<'_, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    fn drop(&mut self) {
        if !self.settled {
            self.cache.refresh_failed(&self.key, self.since);
        }
        self.cache.renewed(&self.key, self.since);
    }
}

/// A store's claim of a key's background refresh, taken by a read, that no refresh took over
/// yet: given back if dropped (a panic before the refresh started); forgotten once it starts.
struct Unstarted<'a, K, V, S: Store<K, V>, L: Lookup<Key = K>> {
    store: &'a S,
    key: &'a L,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V, S: Store<K, V>, L: Lookup<Key = K>> Drop for Unstarted<'_, K, V, S, L> {
    fn drop(&mut self) {
        self.store.release_refresh(self.key);
    }
}

/// [`Cache::watch_expiry`] without the cache's types: compiled once, not once per key and value
/// type.
#[inline(never)]
fn watch_once(
    once: &Once,
    purge: &'static dyn janitor::Purge,
    has_ttl: bool,
    #[cfg(feature = "metrics")] observed: &'static dyn crate::metrics::Observed,
) {
    once.call_once(|| {
        if has_ttl {
            janitor::watch(purge);
        }
        #[cfg(feature = "metrics")]
        crate::metrics::observe(observed);
    });
}

impl MemoryCache {
    /// [`Cache::watch_expiry`] of a memoized function's cache in memory, compiled once (its
    /// purge through the function's `Pair`, set by its first miss before this); `observed` is
    /// the typed cache for the metrics publisher.
    pub(crate) fn watch_expiry(
        &'static self,
        #[cfg(feature = "metrics")] observed: &'static dyn crate::metrics::Observed,
    ) {
        if !self.head.janitor.is_completed() {
            watch_once(
                &self.head.janitor,
                self,
                self.store.expires(),
                #[cfg(feature = "metrics")]
                observed,
            );
        }
    }
}

impl janitor::Purge for MemoryCache {
    fn purge_expired(&self) -> usize {
        // Set before the pair, which `pair` reads with `Acquire`.
        let store = self.head.store.load(Ordering::Relaxed);
        // SAFETY: this cache's store, which starts as its `RawMemory`, and its slots' type.
        unsafe { self.store.purge_expired(store, self.pair().slot) }
    }
}

impl<K, V, S> janitor::Purge for ManuallyDrop<Cache<K, V, S>>
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
impl<K, V, S> crate::metrics::Observed for ManuallyDrop<Cache<K, V, S>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    fn name(&self) -> &'static str {
        self.head.name
    }

    /// Counted since the cache was made: [`reset_stats`](Cache::reset_stats) starts `stats()`
    /// again, not the published counters, which only grow.
    fn stats(&self) -> Stats {
        self.raw_stats()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::racing::Racing;
    use std::sync::atomic::AtomicBool;

    /// A memoized function's cache, built as a `Cache<(), ()>` and typed in place, works as one
    /// built for its types: its `renewing` is aligned for its items, whatever their alignment,
    /// and its store holds, serves and invalidates entries.
    #[test]
    fn a_cache_built_untyped_and_typed_in_place_works_as_its_types() {
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[repr(align(32))]
        struct Aligned(u64);
        fn check<K, V>(key: &K, value: &V)
        where
            K: Clone + Hash + Eq + Send + Sync + std::fmt::Debug + 'static,
            V: Clone + PartialEq + Send + Sync + std::fmt::Debug + 'static,
        {
            let config = || Config::new().maxsize(10);
            let boxed = boxed_memoized("typed in place", (config, Cache::<K, V>::KIND));
            // SAFETY: `boxed_memoized` boxes a `ManuallyDrop<Cache<K, V>>`; leaked, as the registry
            // keeps it.
            #[allow(clippy::cast_ptr_alignment, reason = "the box's own type")]
            let cache = unsafe { &*Box::into_raw(boxed).cast::<ManuallyDrop<Cache<K, V>>>() };
            let dangling = cache.renewing.lock().as_ptr().addr();
            assert_eq!(dangling % align_of::<(K, V, Instant)>(), 0);
            cache
                .renewing
                .lock()
                .push((key.clone(), value.clone(), Instant::now()));
            cache.renewing.lock().clear();
            assert_eq!(cache.get_or_compute(key, |_| value.clone()), *value);
            assert_eq!(cache.get(key).as_ref(), Some(value));
            assert!(cache.invalidate(key));
            assert_eq!(cache.len(), 0);
        }
        check(&Aligned(3), &());
        check(&"k".to_string(), &"v".to_string());
    }

    /// A caller whose read misses while a background refresh runs is served the old value; one
    /// whose read misses just before the refresh ends (stores its value, leaves `renewing`) and
    /// who looks at `renewing` just after reads the new value: it never computes.
    #[test]
    fn a_refresh_that_ends_between_a_read_and_the_look_at_renewing_is_read() {
        let config = Config::new()
            .ttl(Duration::from_secs(60))
            .refresh_early(1.0);
        let store = Racing::new(&config);
        let cache: &'static Cache<u32, u32, Racing<u32, u32>> =
            Box::leak(Box::new(Cache::from_parts(store, Some(&config), "")));
        let not_due = |_: u32, _| panic!("no refresh is due");
        let hash = cache.store.hash_of(&&1);
        let started = Instant::now();
        cache.renewing.lock().push((1, 10, started));
        assert_eq!(cache.hit_renewing(hash, &&1, not_due), Some(10), "running");
        cache.store.on_miss(move || {
            cache.store.inner.insert(1, 20);
            cache.renewed(&1, Some(started));
        });
        assert_eq!(cache.hit_renewing(hash, &&1, not_due), Some(20), "ended");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 0), "{stats:?}");
    }

    /// An invalidation between a read that found the value due (its caller refreshes it) and
    /// that value's serving in the refresh's place: it is not served after the invalidation.
    #[test]
    fn an_invalidation_between_a_due_read_and_its_serving_in_place_of_the_refresh_wins() {
        let config = Config::new()
            .ttl(Duration::from_secs(60))
            .refresh_early(1e12);
        let cache: &'static Cache<u32, u32> = Box::leak(Box::new(Cache::new(config)));
        let hash = cache.store.hash_of(&&1);
        cache.store.insert_timed(1, 10, Duration::from_secs(1));
        let read = (hash, cache.generation(hash));
        let found = cache.store.get_renewing_hashed(hash, &&1);
        assert_eq!(found, Some((10, true)));
        assert!(cache.invalidate(&1u32));
        let mut refreshes = 0;
        let served = cache.renewal_hit(&&1, read, found, |_, _| refreshes += 1);
        assert_eq!(
            served,
            Some(10),
            "read before the invalidation: its caller's"
        );
        assert_eq!(refreshes, 1);
        let after = cache.hit_renewing(hash, &&1, |_, _| panic!("nothing to refresh"));
        assert_eq!(after, None, "served after the invalidation");
    }

    /// A computation begun before an invalidation (or a `clear`): a caller after it computes
    /// anew rather than joining it, and its value is not stored; its own caller gets it.
    #[test]
    fn a_computation_begun_before_an_invalidation_is_neither_joined_nor_stored() {
        let invalidate = |cache: &Cache<u32, u32>| assert!(!cache.invalidate(&1u32));
        let clear = |cache: &Cache<u32, u32>| cache.clear();
        for outdate in [&invalidate as &(dyn Fn(&Cache<u32, u32>) + Sync), &clear] {
            let cache = Cache::new(Config::new().ttl(Duration::from_secs(60)));
            let (started, release) = (AtomicBool::new(false), AtomicBool::new(false));
            std::thread::scope(|scope| {
                let leader = scope.spawn(|| {
                    cache.get_or_insert_with(1, || {
                        started.store(true, Ordering::SeqCst);
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        1
                    })
                });
                while !started.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                outdate(&cache);
                let (sent, next) = std::sync::mpsc::channel();
                let cache = &cache;
                scope.spawn(move || sent.send(cache.get_or_insert_with(1, || 2)).unwrap());
                let next = next.recv_timeout(Duration::from_secs(10));
                release.store(true, Ordering::SeqCst);
                assert_eq!(next, Ok(2), "joined the computation begun before");
                assert_eq!(leader.join().unwrap(), 1);
            });
            assert_eq!(cache.get(&1), Some(2), "the value begun before was stored");
            assert_eq!(cache.stats().misses, 2);
        }
    }

    /// A computation begun before an `insert` (or `insert_with_ttl`) of its key: its value,
    /// computed from what it read before, is not stored over the inserted one (its own caller
    /// gets it).
    #[test]
    fn a_computation_begun_before_an_insert_does_not_store_over_it() {
        let insert = |cache: &Cache<u32, u32>| cache.insert(1, 20);
        let with_ttl =
            |cache: &Cache<u32, u32>| cache.insert_with_ttl(1, 20, Duration::from_secs(60));
        for put in [&insert as &(dyn Fn(&Cache<u32, u32>) + Sync), &with_ttl] {
            let cache = Cache::new(Config::new().ttl(Duration::from_secs(60)));
            let (started, release) = (AtomicBool::new(false), AtomicBool::new(false));
            std::thread::scope(|scope| {
                let leader = scope.spawn(|| {
                    cache.get_or_insert_with(1, || {
                        started.store(true, Ordering::SeqCst);
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        10
                    })
                });
                while !started.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                put(&cache);
                release.store(true, Ordering::SeqCst);
                assert_eq!(leader.join().unwrap(), 10);
            });
            assert_eq!(
                cache.get(&1),
                Some(20),
                "the older value overwrote the insert"
            );
        }
    }

    /// A background refresh during which the key is inserted anew: as after an invalidation,
    /// the refresh's older value is not stored over the inserted one.
    #[test]
    fn a_refresh_begun_before_an_insert_does_not_store_over_it() {
        let config = Config::new()
            .ttl(Duration::from_secs(60))
            .refresh_early(1e12);
        let cache: &'static Cache<u32, u32> = Box::leak(Box::new(Cache::new(config)));
        cache.insert(1, 10);
        let compute = |_| {
            cache.insert(1, 30);
            std::future::ready(Some(20))
        };
        block::wait(cache.refresh_in_background(1, None, compute, |_| true));
        assert_eq!(cache.get(&1), Some(30), "the value went backwards");
    }

    /// An eviction listener that invalidates, called inside a miss's store: the invalidation
    /// does not wait for the store it runs in.
    #[test]
    fn a_listener_that_invalidates_from_inside_a_store_does_not_wait_for_it() {
        static CACHE: std::sync::OnceLock<&'static Cache<u32, u32>> = std::sync::OnceLock::new();
        let cache: &'static Cache<u32, u32> = CACHE.get_or_init(|| {
            Box::leak(Box::new(
                Cache::builder()
                    .maxsize(1)
                    .eviction_listener(|_, _, _| {
                        if let Some(cache) = CACHE.get() {
                            cache.invalidate(&2u32);
                        }
                    })
                    .build(),
            ))
        });
        cache.insert(1, 10);
        let (sent, stored) = std::sync::mpsc::channel();
        std::thread::spawn(move || sent.send(cache.get_or_insert_with(2, || 20)).unwrap());
        assert_eq!(stored.recv_timeout(Duration::from_secs(10)), Ok(20), "hung");
    }

    /// A background refresh during which the key is invalidated and then stored anew: the
    /// refresh's value, computed from what it read before, is not stored over the newer one.
    #[test]
    fn a_refresh_begun_before_an_invalidation_does_not_store_its_value() {
        let config = Config::new()
            .ttl(Duration::from_secs(60))
            .refresh_early(1e12);
        let cache: &'static Cache<u32, u32> = Box::leak(Box::new(Cache::new(config)));
        cache.insert(1, 10);
        let compute = |_| {
            assert!(cache.invalidate(&1u32));
            cache.insert(1, 30);
            std::future::ready(Some(20))
        };
        block::wait(cache.refresh_in_background(1, None, compute, |_| true));
        assert_eq!(cache.get(&1), Some(30), "the value went backwards");
    }

    /// A background refresh begun before an invalidation, which ends (refused) while a second
    /// refresh of the key's new value runs: it leaves that refresh's claim and its old value's
    /// record alone, so that no third refresh starts and callers past the new value's expiry
    /// are still served while the second one runs. (It gave back "its" claim by key, the second
    /// refresh's, so the next read started a third; and dropped the key's first record in
    /// `renewing`, the second refresh's: the invalidation had dropped its own.)
    #[test]
    fn a_refresh_refused_by_an_invalidation_leaves_the_next_refresh_alone() {
        let config = Config::new()
            .ttl(Duration::from_secs(60))
            .refresh_early(1e12);
        let cache: &'static Cache<u32, u32> = Box::leak(Box::new(Cache::new(config)));
        let hash = cache.store.hash_of(&&1);
        cache.store.insert_timed(1, 10, Duration::from_secs(1));
        let records = std::cell::RefCell::new(Vec::new());
        let start = |_: u32, record| records.borrow_mut().push(record);
        let started = || records.borrow().len();
        assert_eq!(cache.hit_renewing(hash, &&1, start), Some(10));
        assert_eq!(started(), 1, "the first refresh is due and claimed");
        let compute = |_| {
            assert!(cache.invalidate(&1u32));
            cache.store.insert_timed(1, 30, Duration::from_secs(1));
            // The new value's own refresh, claimed by a read and running meanwhile.
            assert_eq!(cache.hit_renewing(hash, &&1, start), Some(30));
            assert_eq!(started(), 2, "the second refresh is due and claimed");
            std::future::ready(Some(20))
        };
        let first = records.borrow()[0];
        assert!(first.is_some(), "the first refresh has a record");
        block::wait(cache.refresh_in_background(1, first, compute, |_| true));
        assert_eq!(cache.peek(&1), Some(30), "the refused value was stored");
        let third = cache.store.get_renewing_hashed(hash, &&1);
        assert_eq!(
            third,
            Some((30, false)),
            "a third refresh claimed the key while the second runs"
        );
        assert_eq!(
            cache.renewing.lock().len(),
            1,
            "the second refresh's record was dropped"
        );
    }

    /// A forced refresh during which the key is invalidated and then stored anew: as a
    /// background refresh, its value is not stored over the newer one (its caller gets it).
    #[test]
    fn a_forced_refresh_begun_before_an_invalidation_does_not_store_its_value() {
        let cache: Cache<u32, u32> = Cache::new(Config::new());
        cache.insert(1, 10);
        let refreshed = cache.refresh(|| {
            cache.get_or_compute(&1, |_| {
                assert!(cache.invalidate(&1u32));
                cache.insert(1, 30);
                20
            })
        });
        assert_eq!(refreshed, 20);
        assert_eq!(cache.get(&1), Some(30), "the value went backwards");
    }

    /// Background refreshes whose store's insert panics (an eviction listener): each gives its
    /// place back and stops serving the old value, so refreshes go on past the process's limit
    /// of places.
    #[test]
    fn a_refresh_whose_insert_panics_gives_its_place_back() {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        #[allow(clippy::unnecessary_wraps, reason = "a refresh's signature")]
        fn refresh(key: u32) -> Option<u32> {
            RUNS.fetch_add(1, Ordering::SeqCst);
            Some(key)
        }
        let cache: &'static Cache<u32, u32> = Box::leak(Box::new(
            Cache::builder()
                .ttl(Duration::from_secs(60))
                .eviction_listener(|_, _, cause| {
                    assert!(cause != crate::RemovalCause::Replaced, "the listener fails");
                })
                .build(),
        ));
        for run in 1..=2 * MAX_REFRESH_THREADS {
            cache.invalidate(&1u32);
            cache.insert(1, 0);
            let started = Instant::now();
            cache.renewing.lock().push((1, 0, started));
            cache.spawn_refresh(1, Some(started), refresh, |_| true);
            let deadline = Instant::now() + Duration::from_secs(10);
            while RUNS.load(Ordering::SeqCst) < run || !cache.renewing.lock().is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "refresh {run} never ran or never ended"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
