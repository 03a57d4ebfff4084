//! One attribute turns a function into a cached function.
//!
//! `#[memo::cached]` stores a function's results in a concurrent in-memory cache keyed by its
//! arguments. Concurrent callers of one missing key run the body once and share the value; callers
//! of other keys never wait for them; hits on a warm entry take no lock and write nothing
//! another thread writes (the README's Limits say the exceptions). `async fn`
//! works the same way, and survives the computing caller being cancelled.
//!
//! # Example
//!
//! ```
//! use memo::cached;
//!
//! #[cached(maxsize = 1024)]
//! fn fib(n: u64) -> u64 {
//!     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
//! }
//!
//! #[cached(ttl = "10s", maxsize = 100)]
//! fn shout(word: &str) -> String {
//!     word.to_uppercase()
//! }
//!
//! assert_eq!(fib(90), 2_880_067_194_370_816_120);
//! assert_eq!(fib_cache().stats().misses, 91);
//! assert_eq!(shout("hi"), "HI");
//! assert_eq!(shout("hi"), "HI");
//! assert_eq!(shout_cache().stats().hits, 1);
//! assert!(shout_cache().invalidate("hi"));
//! ```
//!
//! # Options
//!
//! | option | meaning |
//! |---|---|
//! | `maxsize = N` | keep at most `N` entries; unbounded when omitted |
//! | `maxweight = N`, `weight = \|_, v\| v.len()` | keep the total weight of the entries (as `weight` weighs them: any integer, bytes usually) at most `N`; an entry heavier than its shard's share (`N` split over up to 16 shards of at least 65,536) is not stored |
//! | `on_evict = \|k, v, cause\| ...` | call this with every entry that leaves and its [`RemovalCause`]: `Expired`, `Evicted`, `Invalidated`, `Replaced` (after the cache's lock is released: it may use the cache) |
//! | `policy = "auto"` | which entries a full cache evicts: `"auto"` (S3-FIFO with `TinyLFU` admission, the default), `"lru"`, `"lfu"`, `"fifo"` |
//! | `ttl = "10s"` | entries expire after a duration: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, `"1h30m"`, or any `Duration` expression |
//! | `idle = "10m"` | in place of `ttl`: entries expire this long after their last use |
//! | `jitter = 0.1` | spread each entry's `ttl` by up to ± this fraction |
//! | `ttl_from = \|v\| v.max_age` | each value's own time to live, read from it (`&V`, or `&T` of a `Result<T, E>`; returns `Option<Duration>`, `None` for the `ttl`, which it needs): an HTTP response's `max-age`, a token's expiry; on every store; not with `jitter`, `stale`, `refresh` ([`TtlFrom`]) |
//! | `stale = "30s"` | past the `ttl`, serve the old value this long while one caller refreshes it in the background |
//! | `refresh = "early"`, `beta = 1.0` | refresh hot entries in the background just before they expire (`XFetch`) |
//! | `key = expr` | key by an expression over the arguments instead of all of them |
//! | `key_type = T` | the type of `key = expr` when it is not an argument or a tuple of arguments |
//! | `cache_err = true` | also cache `Err` results, storing the whole `Result` (by default only `Ok` values are stored: see [Results](#results)) |
//! | `cache_none = true` | also cache `None` results (by default only `Some` is stored) |
//! | `store = disk` / `disk("name")` | keep entries on disk, kept across runs and shared by the processes of one program (with `disk("name")`, by every program naming it: an entry by the functions of one path, such as a library's) (feature `disk`); `memory` is the default |
//! | `store = redis` | keep entries in Redis (feature `redis`): the server of `MEMO_REDIS_URL` (`redis+cluster://…` for Redis Cluster), shared by processes, one computation per missing key across them; every hit is a `GET` |
//! | `store = tiered` | `store = redis` with a local copy bounded by `maxsize`: hits from memory, copies in other processes dropped by pub/sub on a new value or an `invalidate` |
//! | `codec = "json"` | with `store = disk`, `redis` or `tiered`: values as JSON instead of compact binary (postcard) |
//! | `lock = "redlock"` | with `store = redis` or `tiered`: take the stampede lock on a majority of the independent servers of `MEMO_REDLOCK_URLS` (Redlock) instead of the store's one server |
//! | `version = N` | with `store = disk`, `redis` or `tiered`: part of every entry's namespace, to set old entries aside by hand (the key and value types' serde shapes are always part of it, so a build whose types changed misses instead of decoding the old layout) |
//! | `cache = self.lookups` | use this [`Cache`] (a field: one per instance) instead of the function's own; the key leaves out `self` |
//! | `crate = path` | where to find `memo`, for crates that re-export it |
//!
//! # Results
//!
//! A function whose return type is spelled `…Result<…>` (`Result<T, E>`, `io::Result<T>`,
//! `anyhow::Result<T>`, `std::result::Result<T, E>`) caches its `Ok` values only: its cache holds
//! `T` (`f_cache()` is a `Cache<K, T>`, and disk and Redis encode `T`), so `E` needs neither
//! `Clone` nor serde, and an error is returned to its caller, never stored. Callers waiting on a
//! call of the same key that fails get a clone of its error (counted as `coalesced`) when
//! `E: Clone + Send`; otherwise they run the body themselves, one at a time. A background refresh
//! (`stale`, `refresh`) that fails keeps the old value.
//!
//! ```
//! use memo::cached;
//!
//! #[cached(ttl = "10s")]
//! fn read(path: &str) -> std::io::Result<String> {
//!     std::fs::read_to_string(path)
//! }
//!
//! assert!(read("/no/such/file").is_err());
//! let cache: &memo::Cache<String, String> = read_cache(); // `Ok` values only
//! assert_eq!((cache.len(), cache.stats().misses), (0, 1));
//! ```
//!
//! The return type is read by its name: an alias of another name (`type Res<T> = Result<T, E>`)
//! is cached as a whole value, `Ok` only, which must be `Clone` (and serde outside memory), as
//! with `cache_err = true`; a type of your own named `Result` is refused with a message.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `disk` | no | `store = disk`: a persistent store on SQLite (bundled) in `$MEMO_CACHE_DIR` or the OS cache directory, shared safely by processes (single-flight across them), values encoded with serde; [`DiskStore`], [`Codec`] |
//! | `tokio` | no | `stale` / `refresh = "early"` on `async fn`: the refresh runs as a task on the caller's tokio runtime |
//! | `metrics` | no | `memo_hits_total`, `memo_misses_total`, … per function (label `fn`) through the `metrics` facade, published off the hit path; `memo_load_seconds` histogram |
//! | `tracing` | no | a `memo.compute` span per computation (`function`, `outcome`) and a warning per failed background refresh; nothing on plain hits |
//! | `switch` | no | `memo::disable()` / `memo::enable()` and `MEMO_DISABLE=1`: bypass every cache while debugging (one load per call) |
//! | `test-util` | no | `Clock::mock()` and `f_cache().set_clock(..)`: test expiry by moving time by hand instead of sleeping (`tests/testing_recipe.rs`); `testing::isolate()`: caches private to one test; for dev-dependencies (a check on every call) |
//! | `redis` | no | [`redis`]: the Redis layer in bytes (client for sync and async code, circuit breaker, distributed single-flight lock on one server or, as Redlock, on a majority of several, Redis Cluster, `rediss://`); `store = redis` and `store = tiered` build on it ([`RedisStore`], [`TieredStore`], [`RedisOptions`]) |
//!
//! # Testing
//!
//! A memoized function's cache is shared by the whole process, and so by tests running in
//! parallel. [`testing::isolate()`] (feature `test-util`, in `[dev-dependencies]`) gives the calls
//! of one test's thread caches of their own, `store = disk` functions a fresh directory, and
//! `store = redis` functions a key prefix of the scope's own (and with
//! [`.redis_url(&server.url())`](testing::Isolated::redis_url), a server), until the guard is
//! dropped. Threads the test starts, and tasks of a multi-thread runtime, use the process-wide
//! caches; a `#[tokio::test]` (current-thread) runs on the test's thread:
//!
//! ```
//! # #[cfg(feature = "test-util")] {
//! use memo::cached;
//!
//! #[cached]
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! // #[test]
//! fn squares_once() {
//!     let _scope = memo::testing::isolate();
//!     square(3);
//!     square(3);
//!     let stats = square_cache().stats(); // this test's calls only
//!     assert_eq!((stats.misses, stats.hits), (1, 1));
//! }
//! # squares_once();
//! # squares_once();
//! # }
//! ```
//!
//! [`testing::RedisServer`] (feature `redis`) starts a private `redis-server` per test, and
//! `f_cache().set_clock(Clock::mock().0)` (feature `test-util`) moves time by hand.
//!
//! # The cache handle
//!
//! Every memoized `f` gets a companion `f_cache()` (in an `impl`, `Self::f_cache()`) with `f`'s
//! visibility. It returns the [`Cache`] behind `f`: [`stats`](Cache::stats), [`len`](Cache::len),
//! [`clear`](Cache::clear), [`invalidate`](Cache::invalidate), [`insert`](Cache::insert). Its key
//! type is the owned form of the arguments: one argument → its owned type (`&str` → `String`,
//! `&[T]` → `Vec<T>`, `&T` → `T`); several → the tuple of them; a method → `Self` first;
//! `key = expr` → that expression's type.
//!
//! # The cache object
//!
//! The same [`Cache`] can be built and called directly, as diskcache's `Cache`, cachetools'
//! `TTLCache` or moka's `Cache` are: [`Cache::builder`] for memory, disk ([`DiskCache`]) and
//! Redis ([`RedisCache`]), with [`get`](Cache::get), [`insert_with_ttl`](Cache::insert_with_ttl),
//! [`remove`](Cache::remove), [`get_or_insert_with`](Cache::get_or_insert_with) (single-flight)
//! and its `try_` and `_async` forms:
//!
//! ```
//! use std::time::Duration;
//!
//! let cache: memo::Cache<String, u64> =
//!     memo::Cache::builder().maxsize(10_000).ttl(Duration::from_secs(300)).build();
//! assert_eq!(cache.get_or_insert_with("answer".to_string(), || 42), 42);
//! assert_eq!(cache.get("answer"), Some(42));
//! ```

// The crate docs link the items of every feature (docs.rs documents them all); a build of the
// docs with fewer features keeps the links' text.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(all(feature = "disk", feature = "redis")),
    allow(rustdoc::broken_intra_doc_links)
)]

/// Memoizes a function: `#[cached]`, `#[cached(maxsize = 1000, ttl = "5m", key = ...)]`.
///
/// The options are in the [crate docs](crate#options). The function keeps its signature; a
/// companion `f_cache()` returns its [`Cache`] handle.
///
/// # Examples
///
/// ```
/// use memo::cached;
///
/// #[cached(maxsize = 1_000, ttl = "10m")]
/// fn word_count(text: &str) -> usize {
///     text.split_whitespace().count()
/// }
///
/// assert_eq!(word_count("a b c"), 3); // computed
/// assert_eq!(word_count("a b c"), 3); // cached: keyed by the owned `String`
/// let stats = word_count_cache().stats();
/// assert_eq!((stats.misses, stats.hits), (1, 1));
/// assert!(word_count_cache().invalidate("a b c"));
/// ```
#[doc(inline)]
pub use memo_macros::cached;
#[cfg(any(feature = "disk", feature = "redis"))]
pub use memo_runtime::Codec;
#[cfg(feature = "test-util")]
pub use memo_runtime::MockClock;
#[cfg(feature = "redis")]
pub use memo_runtime::redis;
pub use memo_runtime::store::{TtlFrom, Weigher, Weight};
#[cfg(any(feature = "redis", feature = "test-util"))]
pub use memo_runtime::testing;
pub use memo_runtime::{
    Cache, CacheBuilder, Clock, Config, KeyPart, Lookup, MemoryStore, Policy, RemovalCause, Stats,
    Store, UnknownPolicy, warm,
};
#[cfg(feature = "disk")]
pub use memo_runtime::{DiskCache, DiskOptions, DiskStore};
#[cfg(feature = "metrics")]
pub use memo_runtime::{METRICS_PERIOD, publish_metrics};
#[cfg(feature = "redis")]
pub use memo_runtime::{RedisCache, RedisOptions, RedisStore, Tiered, TieredCache, TieredStore};
#[cfg(feature = "switch")]
pub use memo_runtime::{disable, enable, is_disabled};

// Not public API: what `#[cached]` expansions call.
#[doc(hidden)]
pub use memo_runtime::private as __private;

/// The README's example, compiled and run as a doctest so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The cache object's guide, its examples compiled and run as doctests.
#[cfg(all(doctest, feature = "disk", feature = "redis"))]
#[doc = include_str!("../docs/cache-object.md")]
struct CacheObjectDoctests;
