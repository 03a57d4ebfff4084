//! What `#[cached]` expansions call. Not public API: names and signatures change without notice.
#![allow(
    missing_docs,
    reason = "hidden glue; each item is documented where it is not obvious"
)]
#![allow(clippy::must_use_candidate, reason = "only generated code calls these")]

pub use core::marker::PhantomData;
pub use core::option::Option::{self, None, Some};
pub use core::result::Result::{Err, Ok};
pub use core::time::Duration;

pub use crate::cache::Cache;
pub use crate::cell::{At, CacheCell, Scope, scope, scope_marked, scope_self};
pub use crate::config::{Config, Policy};
pub use crate::lookup::Lookup;

mod fallible;
mod instance;
use fallible::Plain;
pub use fallible::{
    Fallible, FallibleLead, Handover, ShareClone, ShareNone, Sharing, lead_fallible,
};
pub use instance::{
    Instance, Owner, instance, instance_hit, instance_miss, instance_miss_async, instance_try_miss,
    instance_try_miss_async,
};

use crate::block;
use crate::cache::{CacheKind, boxed_memoized};
use crate::call::{self, Begun, LeaderClaim, Lend, Steps};
use crate::cell::{Boxed, Erased};
use crate::flight::Handing;
pub use crate::store::MemoryStore;
use crate::store::{Look, Store, Weight};
use std::any::TypeId;
use std::mem::ManuallyDrop;
use std::time::Instant;

use crate::trace::{Computation, Running};

/// What a cached function returns: cloned out of the cache on every hit.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached function must return a `Clone + Send + Sync + 'static` type",
    label = "this return type is stored in the cache",
    note = "return an owned type; to share one large value without copying it, put it in an `Arc`; a `Result` whose error is not `Clone`: spell it `…Result<…>` (e.g. `Result<T, E>`, `io::Result<T>`), which caches `Ok` values only and asks nothing of the error, and without `cache_err = true`, which stores the error too"
)]
pub trait CacheValue: Clone + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<V: Clone + Send + Sync + 'static> CacheValue for V {}

/// The cache of one memoized function, found (or created from `config`) through `cell`.
///
/// Both the function's body and its `f_cache()` companion call this. It asks of `K` and `V` only
/// what sharing the cache between threads needs; [`hit_or_miss`] checks the rest, so a key or a
/// return type that cannot be cached is reported once, by one message of ours.
///
/// `config` is a function pointer, not a closure type, so this is compiled once per key and value
/// type rather than once per memoized function.
#[inline]
pub fn cache<K: Shared, V: Shared>(
    cell: &'static CacheCell,
    id: &'static str,
    scope: At,
    config: fn() -> Config,
) -> &'static Cache<K, V> {
    // No closures or typed helpers here and below: a debug build compiles each of them (and
    // the std method taking a closure) again for every key and value type.
    let first = cell.first_of(TypeId::of::<Cache<K, V>>());
    let first = if first.is_null() {
        resolve_memoized(
            cell,
            (id, scope),
            TypeId::of::<Cache<K, V>>(),
            (config, Cache::<K, V>::KIND),
        )
    } else {
        first
    };
    // SAFETY: the cell's first cache, registered under `Cache<K, V>`'s type id, is one, boxed by
    // `boxed_memoized` as its `KIND` says or by another call to this function.
    unsafe { &*(first as *const Cache<K, V>) }
}

/// [`cache`] the first time, out of line and compiled once: the cache registered under
/// `type_id`, a `Cache<K, V>`'s, made by `boxed_memoized` from that type's `kind`.
#[cold]
#[inline(never)]
fn resolve_memoized(
    cell: &'static CacheCell,
    (id, scope): (&'static str, At),
    type_id: TypeId,
    made: (fn() -> Config, &'static CacheKind),
) -> *mut () {
    std::ptr::from_ref(cell.resolve_boxed_at(id, scope, type_id, boxed_memoized, made))
        .cast_mut()
        .cast()
}

/// A cache boxed for the cell's registry, which never drops it (`cell::made_once`): in a
/// `ManuallyDrop`, so that the box's vtable compiles no drop for the cache's types.
fn register<C: Send + Sync + 'static>(cache: C) -> Boxed {
    Box::new(ManuallyDrop::new(cache))
}

/// The cache [`register`] boxed.
///
/// # Safety
///
/// `cache` was boxed by `register::<C>` (the registry's key holds `TypeId::of::<C>()`).
#[allow(
    clippy::ptr_as_ptr,
    reason = "a cast: `cast` would be compiled for each type in a debug build"
)]
unsafe fn registered<C>(cache: Erased) -> &'static C {
    // SAFETY: the caller's promise.
    unsafe { &*(std::ptr::from_ref(cache) as *const ManuallyDrop<C>) }
}

/// The codec of `codec = "json"` (`json`), or the binary default.
#[cfg(any(feature = "disk", feature = "redis"))]
const fn codec_of(json: bool) -> crate::Codec {
    if json {
        crate::Codec::Json
    } else {
        crate::Codec::Binary
    }
}

/// [`cache`] for `#[cached(weight = …, on_evict = …)]`: `hooks` sets the weigher and the
/// listener on the new store.
#[inline]
pub fn cache_with<K: Shared, V: Shared>(
    cell: &'static CacheCell,
    id: &'static str,
    scope: At,
    config: fn() -> Config,
    hooks: fn(MemoryStore<K, V>) -> MemoryStore<K, V>,
) -> &'static Cache<K, V> {
    match cell.first() {
        Some(cache) => cache,
        // SAFETY: `new_hooked_cache::<K, V>` boxes a `Cache<K, V>` with `register`.
        None => unsafe {
            registered(cell.resolve_boxed_at(
                id,
                scope,
                TypeId::of::<Cache<K, V>>(),
                new_hooked_cache::<K, V>,
                (config, hooks),
            ))
        },
    }
}

/// How a memoized function's store is made: its configuration, and what sets its `weight`,
/// `on_evict` and `ttl_from` on it.
type Recipe<S> = (fn() -> Config, fn(S) -> S);

#[cold]
#[inline(never)]
fn new_hooked_cache<K: Shared, V: Shared>(
    name: &'static str,
    (config, hooks): Recipe<MemoryStore<K, V>>,
) -> Boxed {
    let config = config();
    register(Cache::<K, V>::from_parts(
        hooks(MemoryStore::new(&config)),
        Some(&config),
        name,
    ))
}

/// The weight of an entry by the user's `weight = …`, which may return any integer.
#[inline]
pub fn weigh<K, V, W: Weight>(weigher: impl FnOnce(&K, &V) -> W, key: &K, value: &V) -> u64 {
    weigher(key, value).into_weight()
}

/// The time to live the user's `ttl_from = …` reads from a value (`None`: the `ttl`).
#[inline]
pub fn ttl_of<V>(ttl_from: impl FnOnce(&V) -> Option<Duration>, value: &V) -> Option<Duration> {
    ttl_from(value)
}

/// The fingerprint of a function's key and value types and its `version`, for the stores outside
/// the process (see `key::fingerprint`).
pub type Fingerprint = fn(u64) -> u64;

/// `version = N` of a function of a crate whose package has this version (`CARGO_PKG_VERSION`)
/// and, for a binary, this name (`CARGO_BIN_NAME`): a function's path names its crate by name
/// alone, and two crates of one name can be linked into one program (a package's library and
/// binary; two semver-incompatible versions of one dependency). Only the part of the package's
/// version that semver keeps compatible counts (`1` of `1.4.2`, `0.3` of `0.3.1`): cargo never
/// links two versions that agree on it, and a release that cargo would take in place of the last
/// keeps its entries. Without either (a build outside cargo), or without a store outside the
/// process, `version` itself. A `const fn`: the expansion takes it in a constant, off the hit path.
#[must_use]
pub const fn crate_version(version: u64, package: Option<&str>, bin: Option<&str>) -> u64 {
    let (package, bin) = match (package, bin) {
        (None, None) => return version,
        (package, bin) => (bytes_of(package), bytes_of(bin)),
    };
    if !cfg!(any(feature = "disk", feature = "redis")) {
        return version;
    }
    // 64-bit FNV-1a, as `key::fnv64`, over the version, the compatible part and the binary.
    let mut hash = fnv(0xcbf2_9ce4_8422_2325, &version.to_le_bytes(), usize::MAX);
    hash = fnv(hash, b"|", usize::MAX);
    hash = fnv(hash, package, compatible_len(package));
    hash = fnv(hash, b"|", usize::MAX);
    fnv(hash, bin, usize::MAX)
}

const fn bytes_of(text: Option<&str>) -> &[u8] {
    match text {
        Some(text) => text.as_bytes(),
        None => b"",
    }
}

/// `hash` taking the first `len` of `bytes` (all of them, at most).
const fn fnv(mut hash: u64, bytes: &[u8], len: usize) -> u64 {
    let mut i = 0;
    while i < bytes.len() && i < len {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// How much of a version semver keeps compatible: the major (`1` of `1.4.2`), the minor too
/// under 1 (`0.3` of `0.3.1`), all of `0.0.x`.
const fn compatible_len(version: &[u8]) -> usize {
    let major = part_end(version, 0);
    if !(major == 1 && version[0] == b'0') || major >= version.len() {
        return major;
    }
    let minor = part_end(version, major + 1);
    if minor == major + 2 && version[major + 1] == b'0' {
        version.len()
    } else {
        minor
    }
}

/// Where the part of a version starting at `at` ends (at a `.`, `-`, `+`, or the end).
const fn part_end(version: &[u8], mut at: usize) -> usize {
    while at < version.len() && !matches!(version[at], b'.' | b'-' | b'+') {
        at += 1;
    }
    at
}

/// What `store = disk`, `redis` or `tiered` say of their store, as the expansion writes it.
#[derive(Clone, Copy)]
pub struct Remote {
    /// The store's name (`disk("name")`; `default` otherwise).
    pub store: &'static str,
    /// `codec = "json"`.
    pub json: bool,
    /// The key and value types' [`Fingerprint`].
    pub shape: Fingerprint,
    /// `version = N`, told apart by the crate that wrote the function ([`crate_version`]).
    pub version: u64,
    /// `lock = "redlock"`.
    pub redlock: bool,
    /// The value type's `==`, where it has one ([`Compare`]).
    pub equal: Option<Equal>,
}

/// A value type's `==`, erased so that the options of a store, which do not name the type, can
/// carry it ([`Compare`]).
pub type Equal = fn(&dyn core::any::Any, &dyn core::any::Any) -> bool;

/// [`Equal`] of `V`.
fn equal<V: PartialEq + 'static>(a: &dyn core::any::Any, b: &dyn core::any::Any) -> bool {
    matches!((a.downcast_ref::<V>(), b.downcast_ref::<V>()), (Some(a), Some(b)) if a == b)
}

/// The value type's `==`, where it has one, by autoref specialization:
/// `(&Compare::<V>::NEW).equal()`. A store outside the process then stores a value only if it
/// reads back `==` to it (`faithful.rs`); [`Incomparable`] answers `None` for other types.
pub struct Compare<V>(PhantomData<V>);

impl<V> Compare<V> {
    /// The one value, to take a reference of.
    pub const NEW: Self = Self(PhantomData);
}

/// [`Compare`] of a `PartialEq` type.
pub trait Comparable {
    fn equal(&self) -> Option<Equal>;
}

impl<V: PartialEq + 'static> Comparable for Compare<V> {
    #[inline]
    fn equal(&self) -> Option<Equal> {
        Some(equal::<V>)
    }
}

/// [`Compare`] of any other type.
pub trait Incomparable {
    fn equal(&self) -> Option<Equal>;
}

impl<V> Incomparable for &Compare<V> {
    #[inline]
    fn equal(&self) -> Option<Equal> {
        None
    }
}

/// The [`Fingerprint`] of `K` and `V`, by autoref specialization:
/// `(&Shape::<K, V>::NEW).fingerprint()`. Where they cannot be deserialized, [`Unshaped`] answers
/// with one that is never used, so that only [`hit_or_miss_in`] (or its async twin) reports
/// the missing serde: one error, not two.
pub struct Shape<K, V>(PhantomData<(K, V)>);

impl<K, V> Shape<K, V> {
    /// The one value, to take a reference of.
    pub const NEW: Self = Self(PhantomData);
}

/// [`Shape`] of types that can be traced.
pub trait Shaped {
    fn fingerprint(&self) -> Fingerprint;
}

#[cfg(any(feature = "disk", feature = "redis"))]
impl<K: serde::de::DeserializeOwned, V: serde::de::DeserializeOwned> Shaped for Shape<K, V> {
    #[inline]
    fn fingerprint(&self) -> Fingerprint {
        crate::schema::fingerprint::<K, V>
    }
}

/// [`Shape`] of anything else (the build fails elsewhere, or no store outside the process).
pub trait Unshaped {
    fn fingerprint(&self) -> Fingerprint;
}

impl<K, V> Unshaped for &Shape<K, V> {
    #[inline]
    fn fingerprint(&self) -> Fingerprint {
        |version| version
    }
}

/// What a disk cache needs of its keys and values: serde, both ways.
#[cfg(feature = "disk")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored on disk: with `store = disk`, the key and the return type must implement serde's `Serialize` and `Deserialize`",
    label = "stored on disk",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`, or keep this function in memory"
)]
pub trait Persist: Shared + serde::Serialize + serde::de::DeserializeOwned {}

#[cfg(feature = "disk")]
#[diagnostic::do_not_recommend]
impl<T: Shared + serde::Serialize + serde::de::DeserializeOwned> Persist for T {}

#[cfg(feature = "disk")]
pub use crate::store::DiskStore;

/// Without the `disk` feature, `require_disk!` stops the build with one sentence; this alias only
/// keeps the rest of the expansion (which then reaches the memory store's impls) from adding
/// errors of its own.
#[cfg(not(feature = "disk"))]
pub type DiskStore<K, V> = MemoryStore<K, V>;

/// How the store `S` of a memoized function with `store = disk`, `redis` or `tiered` is opened
/// from what the expansion says of it ([`Remote`]). Memory, which stands for a store whose
/// feature is off, ignores `remote`.
pub trait Open<K, V>: Sized {
    fn open(function: &'static str, config: &Config, remote: Remote) -> Self;
}

impl<K, V> Open<K, V> for MemoryStore<K, V> {
    fn open(_: &'static str, config: &Config, _: Remote) -> Self {
        Self::new(config)
    }
}

/// A [`DiskStore`](crate::DiskStore) named `store`, namespaced by the function's path and the
/// fingerprint of its key and return types' serde shapes.
#[cfg(feature = "disk")]
impl<K, V> Open<K, V> for DiskStore<K, V> {
    fn open(function: &'static str, config: &Config, remote: Remote) -> Self {
        // No name: the program's own store; a name is shared by the programs that give it.
        let options = if remote.store == "default" {
            crate::DiskOptions::program()
        } else {
            crate::DiskOptions::new(remote.store)
        };
        options
            .function(function, remote.version)
            .codec(codec_of(remote.json))
            .equal(remote.equal)
            .open_shaped(config, (remote.shape)(remote.version))
    }
}

/// The cache of a memoized function with `store = disk`, `redis` or `tiered`: [`cache_with`]
/// over the store `S` the expansion names, opened by [`Open`]. Serde is asked for by the hit
/// path ([`hit_or_miss_in`]), so that a key without it is reported once.
#[inline]
pub fn store_cache<K: Shared, V: Shared, S: Open<K, V> + Send + Sync + 'static>(
    cell: &'static CacheCell,
    id: &'static str,
    scope: At,
    config: fn() -> Config,
    remote: Remote,
    hooks: fn(S) -> S,
) -> &'static Cache<K, V, S> {
    match cell.first() {
        Some(cache) => cache,
        // SAFETY: `new_store_cache::<K, V, S>` boxes a `Cache<K, V, S>` with `register`.
        None => unsafe {
            registered(cell.resolve_boxed_at(
                id,
                scope,
                TypeId::of::<Cache<K, V, S>>(),
                new_store_cache::<K, V, S>,
                ((config, hooks), remote),
            ))
        },
    }
}

#[cold]
#[inline(never)]
fn new_store_cache<K: Shared, V: Shared, S: Open<K, V> + Send + Sync + 'static>(
    name: &'static str,
    ((config, hooks), remote): (Recipe<S>, Remote),
) -> Boxed {
    let config = config();
    register(Cache::<K, V, S>::from_parts(
        hooks(S::open(name, &config, remote)),
        Some(&config),
        name,
    ))
}

/// Stands for nothing when the `disk` feature is on; a sentence when it is off.
#[cfg(feature = "disk")]
#[doc(hidden)]
#[macro_export]
macro_rules! __memo_require_disk {
    () => {};
}

/// Stands for nothing when the `disk` feature is on; a sentence when it is off.
#[cfg(not(feature = "disk"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __memo_require_disk {
    () => {
        ::core::compile_error!(
            "`store = disk` needs the `disk` feature of memo-kit (the package of `memo`): \
             memo-kit = { version = \"...\", features = [\"disk\"] }"
        );
    };
}

pub use crate::__memo_require_disk as require_disk;

/// What a Redis cache needs of its keys and values: serde, both ways.
#[cfg(feature = "redis")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in Redis: with `store = redis`, the key and the return type must implement serde's `Serialize` and `Deserialize`",
    label = "stored in Redis",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`, or keep this function in memory"
)]
pub trait Share: Shared + serde::Serialize + serde::de::DeserializeOwned {}

#[cfg(feature = "redis")]
#[diagnostic::do_not_recommend]
impl<T: Shared + serde::Serialize + serde::de::DeserializeOwned> Share for T {}

#[cfg(feature = "redis")]
pub use crate::store::{RedisStore, TieredStore};

/// Without the `redis` feature, `require_redis!` stops the build with one sentence; these
/// aliases only keep the rest of the expansion from adding errors of its own.
#[cfg(not(feature = "redis"))]
pub type RedisStore<K, V> = MemoryStore<K, V>;

#[cfg(not(feature = "redis"))]
pub type TieredStore<K, V> = MemoryStore<K, V>;

/// A [`RedisStore`](crate::RedisStore) named `store`, namespaced by the function's path and the
/// fingerprint of its key and return types' serde shapes, on the process-wide client of
/// `MEMO_REDIS_URL`.
#[cfg(feature = "redis")]
impl<K, V> Open<K, V> for RedisStore<K, V> {
    fn open(function: &'static str, config: &Config, remote: Remote) -> Self {
        redis_options(function, remote).open_shaped(config, (remote.shape)(remote.version))
    }
}

/// [`RedisStore`]'s store behind an in-memory L1 bounded by `maxsize`.
#[cfg(feature = "redis")]
impl<K, V> Open<K, V> for TieredStore<K, V>
where
    K: Share + std::hash::Hash + Eq + Clone,
    V: Shared + Clone,
{
    fn open(function: &'static str, config: &Config, remote: Remote) -> Self {
        redis_options(function, remote).open_tiered_shaped(config, (remote.shape)(remote.version))
    }
}

/// The options of a memoized function's Redis store: its name, namespace, codec and lock.
#[cfg(feature = "redis")]
fn redis_options(function: &str, remote: Remote) -> crate::RedisOptions {
    let options = crate::RedisOptions::new(remote.store)
        .function(function, remote.version)
        .codec(codec_of(remote.json))
        .equal(remote.equal);
    if remote.redlock {
        options.redlock()
    } else {
        options
    }
}

/// Stands for nothing when the `redis` feature is on; a sentence when it is off.
#[cfg(feature = "redis")]
#[doc(hidden)]
#[macro_export]
macro_rules! __memo_require_redis {
    () => {};
}

/// Stands for nothing when the `redis` feature is on; a sentence when it is off.
#[cfg(not(feature = "redis"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __memo_require_redis {
    () => {
        ::core::compile_error!(
            "`store = redis` and `store = tiered` need the `redis` feature of memo-kit (the \
             package of `memo`): memo-kit = { version = \"...\", features = [\"redis\"] }"
        );
    };
}

pub use crate::__memo_require_redis as require_redis;

/// The configuration of `#[cached(maxsize = MAXSIZE, ttl = "TTL_MS ms")]` with literal values
/// (0 for an option not given; a literal 0 is rejected by the macro): one function per distinct
/// pair, shared by every function that uses it.
#[must_use]
pub const fn preset<const MAXSIZE: usize, const TTL_MS: u64>() -> Config {
    let config = Config::new();
    let config = if MAXSIZE == 0 {
        config
    } else {
        config.maxsize(MAXSIZE)
    };
    if TTL_MS == 0 {
        config
    } else {
        config.ttl(Duration::from_millis(TTL_MS))
    }
}

/// What a cache shared by all threads needs of its keys and values.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached function's keys and return type must be `Send + Sync + 'static`",
    label = "stored in a cache shared by all threads",
    note = "use thread-safe types: `Arc` for `Rc`, `Mutex` or atomics for `Cell`/`RefCell`"
)]
pub trait Shared: Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Send + Sync + 'static> Shared for T {}

/// The hit path of a memoized call: the cached value, or the [`Miss`] to compute it.
///
/// This is the one place that states the bounds on the key and the value, so a key or return type
/// that cannot be cached produces one error, not one per use.
// Forced in optimized builds: left to itself, LLVM calls it out of line and returns the `Result`
// through memory, which measured about 1 ns more per hit (benches/peers.rs). Not forced in debug
// builds, where it would copy the whole hit path into every memoized function.
#[allow(clippy::inline_always, reason = "measured on the hit path")]
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline)]
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_miss<L, V>(cache: &'static Cache<L::Key, V>, key: L) -> Result<V, Miss<L::Key, V>>
where
    L: Lookup,
    V: CacheValue,
{
    // The lookup is forced inline too: out of line, it measured 0.8 ns more per hit.
    answer(
        cache,
        (&key, None),
        #[cfg_attr(not(debug_assertions), inline(always))]
        |hash, key| cache.hit(hash, key),
        call::memory::steps,
    )
}

/// [`hit_or_miss`] after a [`QuickHit`] that found nothing: `hashed` is the key's hash it made
/// ([`UNHASHED`] if it made none), so that the call hashes its key once (issue 19). The store is
/// read by its code compiled once (`MemoryStore::get_cold`): the quick try was the hit path, and
/// a function with a quick try has no `ttl`, so only a race with an insert, a reader off the
/// gate's fast path or an entry the cache object gave a time to live finds a value here.
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_miss_hashed<L, V>(
    cache: &'static Cache<L::Key, V>,
    key: L,
    hashed: u64,
) -> Result<V, Miss<L::Key, V>>
where
    L: Lookup,
    V: CacheValue,
{
    let hashed = (hashed != UNHASHED).then_some(hashed);
    answer(
        cache,
        (&key, hashed),
        |hash, key| cache.store().get_cold(hash, key),
        call::memory::steps,
    )
}

/// The first try of a memoized function whose entries never expire (no `ttl`), by autoref
/// specialization: `(&Quick(lookup, PhantomData::<V>)).quick_hit(&CELL)`.
///
/// Where the key and value can be cached, [`QuickHit`] gives the value of a plain hit, or
/// `Err` for anything else, which [`out_of_line`] then takes through [`cache`] and
/// [`hit_or_miss_hashed`] (the first call, a miss, a forced refresh, switched-off caches, an
/// entry with a time to live, a reader off the gate's fast path). The `Err` holds the key's hash
/// ([`UNHASHED`] before the first call), so that a miss hashes once (issue 19). Where they
/// cannot, [`QuickNone`] answers `Err(UNHASHED)`, so that only [`hit_or_miss_hashed`] reports
/// them: one error, not two.
///
/// Nothing on the hit's path is a call, so a function whose key compares without one (integers,
/// tuples of them) keeps every value in scratch registers: no saved registers, no frame, and the
/// rest is a tail call. That measured about 1 ns of 6.8 per hit (benches/peers.rs).
pub struct Quick<L, V>(pub L, pub PhantomData<V>);

/// What a [`QuickHit`] that made no hash (no cache yet) hands on. A plain `u64` rather than an
/// `Option`: a tag would be one more register kept through the probe, which costs every hit a
/// saved register (`benches/peers.rs`). A key whose hash is 0 is hashed again: still right.
pub const UNHASHED: u64 = 0;

/// [`Quick`] for a key and value that can be cached.
pub trait QuickHit<V> {
    fn quick_hit(&self, cell: &'static CacheCell) -> Result<V, u64>;
}

impl<L: Lookup, V: CacheValue> QuickHit<V> for Quick<L, V> {
    #[allow(clippy::inline_always, reason = "measured on the hit path")]
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline)]
    fn quick_hit(&self, cell: &'static CacheCell) -> Result<V, u64> {
        let Some(cache): Option<&'static Cache<L::Key, V>> = cell.first() else {
            return Err(UNHASHED);
        };
        let store = cache.store();
        let hash = store.hash_of(&self.0);
        #[cfg(feature = "switch")]
        if crate::switch::is_disabled() {
            return Err(hash);
        }
        if cache.may_be_forced() {
            return Err(hash);
        }
        store.get_untimed(hash, &self.0).ok_or(hash)
    }
}

/// [`Quick`] for anything else: no quick hit.
pub trait QuickNone<V> {
    fn quick_hit(&self, cell: &'static CacheCell) -> Result<V, u64>;
}

impl<L, V> QuickNone<V> for &Quick<L, V> {
    #[inline]
    fn quick_hit(&self, _: &'static CacheCell) -> Result<V, u64> {
        Err(UNHASHED)
    }
}

/// Runs `rest` out of line, handing it `hashed`: the path of a memoized call after [`Quick`]
/// found nothing, with the hash the try made (or [`UNHASHED`]).
///
/// Called last, with the function's arguments moved into `rest`, it compiles to a jump when
/// they fit in registers, so the caller needs no frame of its own; the hash goes beside them,
/// not in the closure, which would then travel through memory.
#[cold]
#[inline(never)]
pub fn out_of_line<R>(hashed: u64, rest: impl FnOnce(u64) -> R) -> R {
    rest(hashed)
}

/// The bounds of a memoized function's store: its impl states them (serde outside the
/// process), so that a key or return type without them is reported once, by
/// [`hit_or_miss_in`] (or its twins). What stores do differently is all in [`Store`].
pub trait Backend<K, V>: Store<K, V> + 'static {}

/// Memory, which also stands for a store whose feature is off.
impl<K, V> Backend<K, V> for MemoryStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
}

#[cfg(feature = "disk")]
impl<K, V> Backend<K, V> for DiskStore<K, V>
where
    K: Persist + std::hash::Hash + Eq + Clone,
    V: Persist + Clone,
{
}

#[cfg(feature = "redis")]
impl<K, V> Backend<K, V> for RedisStore<K, V>
where
    K: Share + std::hash::Hash + Eq + Clone,
    V: Share + Clone,
{
}

#[cfg(feature = "redis")]
impl<K, V> Backend<K, V> for TieredStore<K, V>
where
    K: Share + std::hash::Hash + Eq + Clone,
    V: Share + Clone,
{
}

/// [`hit_or_miss`] over another store (`store = disk`, `redis`, `tiered`): the one place that
/// asks for its bounds ([`Backend`]), so a key or return type without serde gets one message of
/// ours.
#[inline]
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_miss_in<L, V, S>(
    cache: &'static Cache<L::Key, V, S>,
    key: L,
) -> Result<V, Miss<L::Key, V>>
where
    L: Lookup,
    V: CacheValue,
    S: Backend<L::Key, V>,
{
    answer(
        cache,
        (&key, None),
        |hash, key| cache.hit(hash, key),
        any_steps,
    )
}

/// [`hit_or_miss_in`] of an `async fn` over a store read over the network (`redis`, `tiered`):
/// what the process holds first, then an awaited read, so the executor's thread is free
/// meanwhile.
///
/// Not an `async fn`: the future is proven `Send` here, over any store, so that the caller's
/// check need not see through the store's read, which rustc cannot do for a generic store
/// (rust-lang/rust#100013). The borrowed view ends before the future, which holds the owned key.
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_miss_async_in<L, V, S>(
    cache: &'static Cache<L::Key, V, S>,
    key: L,
) -> impl Future<Output = Result<V, Miss<L::Key, V>>> + Send
where
    L: Lookup,
    V: CacheValue,
    S: Backend<L::Key, V>,
{
    let first = answer(
        cache,
        (&key, None),
        |hash, key| cache.store().get_local(hash, key),
        any_steps,
    );
    async move {
        let miss = match first {
            Err(miss) if miss.mode == Mode::Lookup => miss,
            other => return other,
        };
        match cache.store().get_async(miss.hash, &&miss.key).await {
            Some(value) => Ok(value),
            None => Err(miss),
        }
    }
}

/// The hit path of a function with `stale = …` or `refresh = "early"`: like [`hit_or_miss`], and
/// a value that is due is refreshed in the background by `refresh` (the function's body, run
/// from the owned key; `None` where it failed, a `Result`'s `Err`) while this caller, and
/// others, are served the current value. Any store whose reads answer at once.
#[inline]
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_renew<L, V, S>(
    cache: &'static Cache<L::Key, V, S>,
    key: L,
    refresh: fn(L::Key) -> Option<V>,
    keep: fn(&V) -> bool,
) -> Result<V, Miss<L::Key, V>>
where
    L: Lookup,
    V: CacheValue,
    S: Backend<L::Key, V>,
{
    let renew = |hash, key: &L| {
        cache.hit_renewing(hash, key, |owned, since| {
            cache.spawn_refresh(owned, since, refresh, keep);
        })
    };
    answer(cache, (&key, None), renew, any_steps)
}

/// An `async fn` body as a `'static` future, for a background refresh.
pub type BoxFuture<V> = core::pin::Pin<Box<dyn Future<Output = V> + Send>>;

/// [`hit_or_renew`] for an `async fn` over a store whose reads answer at once (memory, disk):
/// the refresh runs as a task on the caller's tokio runtime. Without the `tokio` feature it is
/// never called (`require_tokio!` stops the build first), only declared so that the build stops
/// with that one sentence.
#[inline]
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_renew_async<L, V, S>(
    cache: &'static Cache<L::Key, V, S>,
    key: L,
    refresh: fn(L::Key) -> BoxFuture<Option<V>>,
    keep: fn(&V) -> bool,
) -> Result<V, Miss<L::Key, V>>
where
    L: Lookup,
    V: CacheValue,
    S: Backend<L::Key, V>,
{
    #[cfg(feature = "tokio")]
    return answer(
        cache,
        (&key, None),
        |hash, key| {
            cache.hit_renewing(hash, key, |owned, since| {
                cache.spawn_refresh_task(owned, since, refresh, keep);
            })
        },
        any_steps,
    );
    #[cfg(not(feature = "tokio"))]
    {
        let _ = (refresh, keep);
        hit_or_miss_in(cache, key)
    }
}

/// [`hit_or_renew_async`] over a store read over the network (`redis`, `tiered`): what the
/// process holds first, then an awaited read that says whether the value is due; the refresh
/// runs as a task. Not an `async fn`, for the reason [`hit_or_miss_async_in`] gives.
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_renew_async_in<L, V, S>(
    cache: &'static Cache<L::Key, V, S>,
    key: L,
    refresh: fn(L::Key) -> BoxFuture<Option<V>>,
    keep: fn(&V) -> bool,
) -> impl Future<Output = Result<V, Miss<L::Key, V>>> + Send
where
    L: Lookup,
    V: CacheValue,
    S: Backend<L::Key, V>,
{
    #[cfg(not(feature = "tokio"))]
    {
        let _ = (refresh, keep);
        hit_or_miss_async_in(cache, key)
    }
    #[cfg(feature = "tokio")]
    {
        let start = move |owned, since| cache.spawn_refresh_task(owned, since, refresh, keep);
        let since = cache.renewals_ended();
        let local = |hash, key: &L| {
            let read = (hash, cache.generation(hash));
            cache.renewal_hit(
                key,
                read,
                Some(cache.store().get_local_due(hash, key)?),
                start,
            )
        };
        let first = answer(cache, (&key, None), local, any_steps);
        async move {
            let miss = match first {
                Err(miss) if miss.mode == Mode::Lookup => miss,
                other => return other,
            };
            let faults = cache.store().faults();
            let read = (miss.hash, cache.generation(miss.hash));
            let found = cache.store().get_renewing_async(miss.hash, &miss.key).await;
            if let Some(value) = cache.renewal_hit(&&miss.key, read, found, start) {
                return Ok(value);
            }
            // A refresh that ended after the read stored its value: read again, unless the
            // read failed (see `Cache::hit_renewing`).
            if cache.renewal_ended_since(since) && cache.store().faults() == faults {
                let read = (miss.hash, cache.generation(miss.hash));
                let found = cache.store().get_renewing_async(miss.hash, &miss.key).await;
                if let Some(value) = cache.renewal_hit(&&miss.key, read, found, start) {
                    return Ok(value);
                }
            }
            Err(miss)
        }
    }
}

/// The miss loop's steps over `cache`, whatever its store, compiled for its key, value and
/// store types (a memoized function's cache in memory takes [`call::memory::steps`] instead).
fn any_steps<K, V, S>(cache: &'static Cache<K, V, S>) -> &'static dyn Steps
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V> + 'static,
{
    cache.undropped()
}

/// What every hit path shares: the key hashed by the store (once per call: the miss carries the
/// hash; `hashed` if the caller made it), the global switch (feature `switch`), then `found`'s
/// value, or the [`Miss`] to compute it over the cache's `steps`.
#[allow(clippy::inline_always, reason = "measured on the hit path")]
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline)]
fn answer<L, V, S>(
    cache: &'static Cache<L::Key, V, S>,
    (key, hashed): (&L, Option<u64>),
    found: impl FnOnce(u64, &L) -> Option<V>,
    steps: fn(&'static Cache<L::Key, V, S>) -> &'static dyn Steps,
) -> Result<V, Miss<L::Key, V>>
where
    L: Lookup,
    V: CacheValue,
    S: Store<L::Key, V> + 'static,
{
    let hash = match hashed {
        Some(hash) => hash,
        None => cache.store().hash_of(key),
    };
    let mode = match unlooked(cache.head()) {
        Some(mode) => mode,
        None => match found(hash, key) {
            Some(value) => return Ok(value),
            None => Mode::Lookup,
        },
    };
    Err(Miss::new(cache, steps(cache), hash, key, mode))
}

/// How a call to the cache of `head` computes without looking at its store, if it does not
/// look: caches are switched off (`memo::disable()`), or this is a forced refresh.
fn unlooked(head: &crate::cache::Head) -> Option<Mode> {
    #[cfg(feature = "switch")]
    if crate::switch::is_disabled() {
        return Some(Mode::Bypass);
    }
    head.forced().then_some(Mode::Refresh)
}

/// `lead(hit_or_miss_hashed(cache, key, hashed), keep)` in one step (the cache and `keep` as
/// one argument, where the expansion reports a value type that cannot be cached): the call of a
/// sync function over memory that returns no `Result`, after its quick try (`hashed`, the hash
/// the try made, or [`UNHASHED`]) or, in a debug build, in place of it. The store is read by
/// its code compiled once, as in [`hit_or_miss_hashed`]; one function, not six, for each key and
/// value type. On a miss the owned key goes into the caller's `owned` and the lead into its
/// `place`, which the [`LeadIn`] borrows while the body runs: only a pointer to them moves.
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
#[allow(
    clippy::result_large_err,
    reason = "once per call that computes, where the body's cost dwarfs a copy"
)]
#[allow(
    clippy::type_complexity,
    reason = "the cache and the keep are one argument for the expansion's error span"
)]
#[allow(
    clippy::ptr_as_ptr,
    reason = "casts: `cast` would be compiled for each type in a debug build"
)]
pub fn hit_or_lead<'k, L, V>(
    (cache, keep): (&'static Cache<L::Key, V>, fn(&V) -> bool),
    key: L,
    hashed: u64,
    (owned, place): (&'k mut Option<L::Key>, &'k mut LeadPlace),
) -> Result<V, LeadIn<'k, V>>
where
    L: Lookup,
    V: CacheValue,
{
    let (untyped, store) = (cache.untyped(), &cache.store);
    // `hash` and `read_cold` rather than the `Store` methods over them: one function less each
    // per key and value type in a debug build.
    let hash = match hashed {
        UNHASHED => store.hash(&key),
        hash => hash,
    };
    let mode = match unlooked(&untyped.head) {
        Some(mode) => mode,
        None => match store.read_cold(hash, &key, Look::Get, None) {
            Some(value) => return Ok(value),
            None => Mode::Lookup,
        },
    };
    // Sets the cache's pair, which the lead and the purge read.
    call::memory::steps(cache);
    untyped.watch_expiry(
        #[cfg(feature = "metrics")]
        cache.undropped(),
    );
    *owned = Some(key.to_key());
    // One pointer to the caller's `Option<K>`, the lent key read through it: a borrow of `owned`
    // taken after the key's would end the key's before the lead reads it (Stacked Borrows).
    let owned = std::ptr::from_mut(owned);
    // SAFETY: `owned` is the caller's `Option<K>`, just written, borrowed for `'k`.
    let Some(key) = (unsafe { &*owned }) else {
        no_value()
    };
    // The owned key and the caller's slot for a value, lent with the pair's types, which `steps`
    // set: casts, not a function per type. The owned key stays in the caller's place, which the
    // lead borrows, so nothing per type moves it.
    let lent = &raw const *key as *const ();
    let mut found = None::<V>;
    // SAFETY: `lent` is the key in `owned`, an `Option<K>`, and `found` an `Option<V>`, of this
    // cache's pair (set by `steps`); the lead keeps `owned`'s address only while the caller's
    // place, borrowed for `'k`, holds it.
    let leads = unsafe {
        RawLead::start_in(
            &mut place.0,
            (untyped, mode, hash),
            (lent, owned as *mut ()),
            &raw mut found as *mut (),
        )
    };
    if leads {
        Err(LeadIn {
            lead: &mut place.0,
            keep,
        })
    } else {
        match found {
            Some(value) => Ok(value),
            None => no_value(),
        }
    }
}

/// Where a sync call over memory ([`hit_or_lead`]) keeps its lead while the body runs: in the
/// memoized function's frame, beside the owned key, so that only a pointer to it moves. Declared
/// after the key, so dropped before it: a panicking body drops the lead, which hands the key's
/// flight to a waiting caller.
pub struct LeadPlace(Option<RawLead>);

impl LeadPlace {
    /// An empty place.
    pub const NEW: Self = Self(None);
}

/// A sync call over memory that runs the body ([`hit_or_lead`] gave it): the lead in the
/// caller's [`LeadPlace`], and what of it is the value's type.
pub struct LeadIn<'k, V: 'static> {
    lead: &'k mut Option<RawLead>,
    keep: fn(&V) -> bool,
}

impl<V: 'static> LeadIn<'_, V> {
    /// Stores `value` as the lead says (the waiting callers get it too), and returns it.
    #[allow(
        clippy::ptr_as_ptr,
        reason = "a cast: `cast` would be compiled for each type in a debug build"
    )]
    pub fn finish(self, value: V) -> V {
        let kept = (self.keep)(&value);
        // SAFETY: `value` is a `V`, of the lead's value type, borrowed for the call.
        unsafe { RawLead::finish(self.lead, &raw const value as *const (), kept) };
        value
    }
}

/// A lead of a sync call over memory without its types (compiled once): what [`Run::finish`]
/// needs besides the body's value.
struct RawLead {
    /// The cache, whose pair gives the types and how a value is handed to waiters.
    cache: &'static crate::cache::MemoryCache,
    hash: u64,
    /// The caller's `Option<K>` with the owned key, to take, beside its [`LeadPlace`].
    key: *mut (),
    run: Run,
}

impl RawLead {
    /// [`Run::lead`] of a call over `cache` in `mode` that missed the `K` at `lent` (of hash
    /// `hash`), the key in the `Option<K>` at `key`, into `place`: `true` if the caller computes
    /// (the lead is in `place`), `false` once a value is in the `Option<V>` at `out`.
    ///
    /// # Safety
    ///
    /// `cache`'s pair is set, of `K` and `V`; `key` points to an `Option<K>` holding the key
    /// `lent` points to, that outlives `place`'s lead, and `out` to an `Option<V>` holding `None`,
    /// borrowed while the call lasts.
    #[inline(never)]
    unsafe fn start_in(
        place: &mut Option<Self>,
        (cache, mode, hash): (&'static crate::cache::MemoryCache, Mode, u64),
        (lent, key): (*const (), *mut ()),
        out: *mut (),
    ) -> bool {
        let types = cache.types();
        // SAFETY: the caller's promise.
        let (lent, out) = unsafe {
            (
                call::Item::at(lent, types[0]),
                call::Slot::at(out, types[1]),
            )
        };
        let steps: &'static dyn Steps = cache;
        let Some(run) = Run::lead(steps, mode, (hash, lent), out) else {
            return false;
        };
        *place = Some(Self {
            cache,
            hash,
            key,
            run,
        });
        true
    }

    /// [`Run::finish`] of the lead in `place`, with the `V` at `value`.
    ///
    /// # Safety
    ///
    /// `value` points to a `V` of the lead's value type, borrowed while the call lasts; the
    /// lead's key is still in its place.
    #[inline(never)]
    unsafe fn finish(place: &mut Option<Self>, value: *const (), kept: bool) {
        let Some(Self {
            cache,
            hash,
            key,
            run,
        }) = place.take()
        else {
            no_value()
        };
        let types = cache.types();
        // SAFETY: the caller's promise, and `start_in`'s.
        let (key, item) = unsafe {
            (
                call::Slot::at(key, types[0]),
                call::Item::at(value, types[1]),
            )
        };
        let handed = cache.handed();
        run.finish(cache, hash, key, call::Value { item, handed }, kept);
    }
}

/// Stands for nothing when the `tokio` feature is on; a sentence when it is off.
#[cfg(feature = "tokio")]
#[doc(hidden)]
#[macro_export]
macro_rules! __memo_require_tokio {
    () => {};
}

/// Stands for nothing when the `tokio` feature is on; a sentence when it is off.
#[cfg(not(feature = "tokio"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __memo_require_tokio {
    () => {
        ::core::compile_error!(
            "`stale` and `refresh` on an `async fn` need the `tokio` feature of memo-kit (the \
             package of `memo`): memo-kit = { version = \"...\", features = [\"tokio\"] }"
        );
    };
}

pub use crate::__memo_require_tokio as require_tokio;

/// A call that missed, holding its owned key and its hash; [`lead`] and [`Lead::finish`] (or
/// [`Miss::compute_async`]) run the body under single-flight.
pub struct Miss<K: 'static, V: 'static> {
    /// The cache's steps, as the hit path made them where the bounds are known: the rest of
    /// the call restates none, so a key or value that cannot be cached is reported once.
    steps: &'static dyn Steps,
    /// How the key and value are lent to the steps, made there too.
    lend: &'static Lend<K, V>,
    /// The key's hash by the store ([`Store::hash_of`]), made once by the hit path.
    hash: u64,
    key: K,
    mode: Mode,
}

/// How a [`Miss`] computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Under single-flight, storing the value: an ordinary miss.
    Lookup,
    /// Caches are switched off (`memo::disable()`): run the body, store nothing.
    #[cfg(feature = "switch")]
    Bypass,
    /// A forced refresh (`f_cache().refresh(..)`): run the body, store its value.
    Refresh,
}

/// A sync call that runs the body: [`lead`] gave it, [`Lead::finish`] takes the body's value.
///
/// The body runs in the memoized function's own frame, between the two, so that no runtime
/// function is generic over it: the miss path compiles once per key and value type, not once per
/// memoized function (as a `compute(body)` did: most of the code each function added to a build).
/// A panicking body drops the lead, which hands the key to a waiting caller.
pub struct Lead<K: 'static, V: 'static> {
    steps: &'static dyn Steps,
    lend: &'static Lend<K, V>,
    hash: u64,
    key: K,
    keep: fn(&V) -> bool,
    run: Run,
}

/// What a [`Lead`] is for.
enum Run {
    /// Caches are switched off: return the value, store nothing.
    #[cfg(feature = "switch")]
    Bypass,
    /// A forced refresh, started at this instant: store the value if kept.
    Refresh(Running, call::Since),
    /// The leader's computation, started at this instant: store the value if kept, then release
    /// the claim.
    Compute(Running, LeaderClaim<'static>, Instant),
}

impl<K: 'static, V: 'static> Lead<K, V> {
    /// Stores `value` as the lead says (the waiting callers get it too), and returns it.
    pub fn finish(self, value: V) -> V {
        let Self {
            steps,
            lend,
            hash,
            key,
            keep,
            run,
        } = self;
        let kept = keep(&value);
        let mut key = Some(key);
        run.finish(
            steps,
            hash,
            lend.key_slot(&mut key),
            lend.value(&value),
            kept,
        );
        value
    }

    /// The body failed (see [`lead_fallible`]): nothing is stored; the waiters take a copy of
    /// the error from `failure`, or without it try again.
    fn fail(self, failure: Handing<'_>) {
        let Self {
            steps,
            lend,
            hash,
            key,
            run,
            ..
        } = self;
        run.fail(steps, (hash, &lend.key_slot(&mut Some(key))), failure);
    }
}

/// What [`Run::start`] found.
enum Started {
    /// A value, put in the caller's slot.
    Value,
    /// The leader failed, and left this copy of its error for the caller, which asked for one.
    Failed(Box<dyn crate::flight::Failure>),
    /// Compute, for this.
    Lead(Run),
}

/// A lead's steps with the key and value lent (`call::Item`, `call::Value`, `call::Slot`): compiled once, not
/// once per key and value type (issue 18).
impl Run {
    /// The loop of a sync call that missed `key` (of hash `hash`) in `mode`: a value put in
    /// `out`, a failed leader's error (for a caller that `takes` them), or what the lead is for.
    #[inline(never)]
    fn start(
        steps: &'static dyn Steps,
        mode: Mode,
        (hash, key): (u64, call::Item<'_>),
        out: call::Slot<'_>,
        takes: bool,
    ) -> Started {
        match mode {
            #[cfg(feature = "switch")]
            Mode::Bypass => Started::Lead(Self::Bypass),
            Mode::Refresh => {
                let trace = Computation::start(steps.head().name, "refresh");
                let since = block::wait(call::Since::now(steps, hash, key));
                Started::Lead(Self::Refresh(trace.enter(), since))
            }
            Mode::Lookup => {
                let trace = Computation::start(steps.head().name, "call");
                match block::wait(call::begin(steps, hash, key, out, true, takes)) {
                    Begun::Value(outcome) => {
                        trace.outcome(outcome);
                        Started::Value
                    }
                    Begun::Failed(failure) => {
                        trace.outcome("coalesced");
                        Started::Failed(failure)
                    }
                    Begun::Lead(claim) => {
                        Started::Lead(Self::Compute(trace.enter(), claim, Instant::now()))
                    }
                }
            }
        }
    }

    /// [`Run::start`] for a caller that takes no error (no waiter is handed one): `None` once a
    /// value is in `out`, or what the lead is for.
    #[inline(never)]
    fn lead(
        steps: &'static dyn Steps,
        mode: Mode,
        key: (u64, call::Item<'_>),
        out: call::Slot<'_>,
    ) -> Option<Self> {
        match Self::start(steps, mode, key, out, false) {
            Started::Value => None,
            Started::Lead(run) => Some(run),
            Started::Failed(_) => unreachable!("a caller that takes no error is handed none"),
        }
    }

    /// [`Lead::finish`]: stores `value` (kept) under the key taken from `key`, as the lead says.
    #[inline(never)]
    fn finish(
        self,
        steps: &'static dyn Steps,
        hash: u64,
        key: call::Slot<'_>,
        value: call::Value<'_>,
        kept: bool,
    ) {
        match self {
            #[cfg(feature = "switch")]
            Self::Bypass => {}
            Self::Refresh(running, since) => {
                running
                    .exit()
                    .outcome(if kept { "refresh" } else { "error" });
                block::wait(call::refreshed(steps, hash, key, Some(value), kept, since));
            }
            Self::Compute(running, claim, started) => {
                running.exit().outcome(if kept { "miss" } else { "error" });
                let cost = started.elapsed();
                block::wait(call::finish(steps, hash, key, claim, value, kept, cost));
            }
        }
    }

    /// [`Lead::fail`].
    #[inline(never)]
    fn fail(
        self,
        steps: &'static dyn Steps,
        (hash, key): (u64, &call::Slot<'_>),
        failure: Handing<'_>,
    ) {
        match self {
            #[cfg(feature = "switch")]
            Self::Bypass => {}
            Self::Refresh(running, _) => {
                running.exit().outcome("error");
                call::refresh_ended(steps, hash, key, true);
            }
            Self::Compute(running, claim, started) => {
                running.exit().outcome("error");
                let cost = started.elapsed();
                let claim = block::wait(call::release_failed(steps, claim, failure.is_some()));
                steps
                    .head()
                    .failed(claim, failure, cost, &|| steps.changes());
            }
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static, V: 'static> Miss<K, V> {
    /// The miss of `key` (of hash `hash`), to compute in `mode`: its owned key, and the
    /// cache's steps, made here where the bounds are known.
    // Forced: left to itself, LLVM calls it out of line from some functions' miss, which then
    // grows more than the call saves (the 40-function crate of `docs/compile-cost.md`).
    #[allow(clippy::inline_always, reason = "measured on the size of a build")]
    #[inline(always)]
    fn new<L, S>(
        cache: &'static Cache<K, V, S>,
        steps: &'static dyn Steps,
        hash: u64,
        key: &L,
        mode: Mode,
    ) -> Self
    where
        L: Lookup<Key = K>,
        V: CacheValue,
        S: Store<K, V> + 'static,
    {
        cache.watch_expiry();
        Self {
            steps,
            lend: Lend::NEW,
            hash,
            key: key.to_key(),
            mode,
        }
    }
}

/// What a sync function does with its hit path's answer: the value of a hit, or the value another
/// caller computed meanwhile, or the [`Lead`] under which this caller runs the body (once for all
/// concurrent callers), then hands its value to [`Lead::finish`].
///
/// One call and one `match` in each function, for any store's hit path.
#[allow(
    clippy::result_large_err,
    reason = "once per call that computes, where the body's cost dwarfs a copy"
)]
pub fn lead<K, V>(found: Result<V, Miss<K, V>>, keep: fn(&V) -> bool) -> Result<V, Lead<K, V>> {
    match found {
        Ok(value) => Ok(value),
        Err(miss) => miss.lead(keep),
    }
}

impl<K: 'static, V: 'static> Miss<K, V> {
    /// [`lead`] of this miss.
    #[allow(
        clippy::result_large_err,
        reason = "once per call that computes, where the body's cost dwarfs a copy"
    )]
    fn lead(self, keep: fn(&V) -> bool) -> Result<V, Lead<K, V>> {
        let Self {
            steps,
            lend,
            hash,
            key,
            mode,
        } = self;
        let mut found = None;
        match Run::lead(
            steps,
            mode,
            (hash, lend.key(&key)),
            lend.value_slot(&mut found),
        ) {
            Some(run) => Err(Lead {
                steps,
                lend,
                hash,
                key,
                keep,
                run,
            }),
            None => match found {
                Some(value) => Ok(value),
                None => no_value(),
            },
        }
    }
}

/// The loop ended without a value in the caller's slot: a bug.
#[cold]
#[inline(never)]
fn no_value() -> ! {
    unreachable!("the loop ends with a value")
}

impl<K: 'static, V: 'static> Miss<K, V> {
    /// A miss, under single-flight (see [`lead`]), where a waiter whose leader failed takes its
    /// error by `handover` (where it can be shared), returned as `Ok(Err(error))`.
    #[allow(
        clippy::result_large_err,
        reason = "once per call that computes, where the body's cost dwarfs a copy"
    )]
    fn lead_or<E>(
        self,
        keep: fn(&V) -> bool,
        handover: Handover<E>,
    ) -> Result<Result<V, E>, Lead<K, V>> {
        let Self {
            steps,
            lend,
            hash,
            key,
            mode,
        } = self;
        let mut found = None;
        loop {
            let out = lend.value_slot(&mut found);
            match Run::start(steps, mode, (hash, lend.key(&key)), out, handover.takes()) {
                Started::Value => {
                    let Some(found) = found else {
                        unreachable!("the loop ends with a value")
                    };
                    return Ok(Ok(found));
                }
                // An error of the function's own type, shared; else (never) try again.
                Started::Failed(failure) => {
                    if let Some(error) = handover.unbox(failure) {
                        return Ok(Err(error));
                    }
                }
                Started::Lead(run) => {
                    return Err(Lead {
                        steps,
                        lend,
                        hash,
                        key,
                        keep,
                        run,
                    });
                }
            }
        }
    }

    /// [`lead`] and [`Lead::finish`] for an `async fn`: awaits `body` once for all concurrent
    /// callers.
    ///
    /// If this future is dropped while it computes (a timeout, a `select!`), a waiting caller takes
    /// over; a waiter that is dropped holds nobody back. The future is `Send` when `body` is.
    pub async fn compute_async(self, body: impl Future<Output = V>, keep: fn(&V) -> bool) -> V {
        let body = async move { Plain(body.await) };
        self.compute_kept_async(body, keep, Handover::none())
            .await
            .0
    }
}

/// Pins an `async` body's output type to the function's return type, so that `?` and `return`
/// inside it infer as they would in the function itself.
pub const fn returns<V, F: Future<Output = V>>(body: F) -> F {
    body
}

/// Picks what a function's results the cache keeps, from the return type itself (aliases of
/// `Result` and `Option` included), by autoref specialization:
/// `(&&&Outcome::<V>::new()).keep(cache_err, cache_none)` (each method takes `&self`, so the
/// `&&Outcome` impls are found one step before the `&Outcome` fallback).
pub struct Outcome<V>(PhantomData<fn() -> V>);

impl<V> Outcome<V> {
    #[must_use]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<V> Default for Outcome<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// `Result`: keep `Ok` unless `cache_err`.
pub trait KeepResult<T, E> {
    fn keep(&self, cache_err: bool, cache_none: bool) -> fn(&Result<T, E>) -> bool;
}

impl<T, E> KeepResult<T, E> for &&Outcome<Result<T, E>> {
    fn keep(&self, cache_err: bool, _: bool) -> fn(&Result<T, E>) -> bool {
        if cache_err { always } else { Result::is_ok }
    }
}

/// `Option`: keep `Some` unless `cache_none`.
pub trait KeepOption<T> {
    fn keep(&self, cache_err: bool, cache_none: bool) -> fn(&Option<T>) -> bool;
}

impl<T> KeepOption<T> for &&Outcome<Option<T>> {
    fn keep(&self, _: bool, cache_none: bool) -> fn(&Option<T>) -> bool {
        if cache_none { always } else { Option::is_some }
    }
}

/// Everything else: keep every value.
pub trait KeepAny<V> {
    fn keep(&self, cache_err: bool, cache_none: bool) -> fn(&V) -> bool;
}

impl<V> KeepAny<V> for &Outcome<V> {
    fn keep(&self, _: bool, _: bool) -> fn(&V) -> bool {
        always
    }
}

/// Keeps every value: the keep of a `Result` whose `Ok` values alone reach the cache.
pub const fn always<V>(_: &V) -> bool {
    true
}

/// Asserts that a function with `cache_err` returns a `Result`.
#[diagnostic::on_unimplemented(
    message = "`cache_err` only applies to functions returning `Result`, and this one returns `{Self}`",
    label = "`cache_err` needs a `Result` return type"
)]
pub trait IsResult {}

impl<T, E> IsResult for Result<T, E> {}

/// Asserts that a function with `cache_none` returns an `Option`.
#[diagnostic::on_unimplemented(
    message = "`cache_none` only applies to functions returning `Option`, and this one returns `{Self}`",
    label = "`cache_none` needs an `Option` return type"
)]
pub trait IsOption {}

impl<T> IsOption for Option<T> {}

/// Takes a marker rather than a type argument, so the error lands on the option, not the type.
pub const fn require_result<V: IsResult>(_: PhantomData<V>) {}

pub const fn require_option<V: IsOption>(_: PhantomData<V>) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick try as the expansion writes it (autoref specialization needs the concrete types
    /// at the call).
    macro_rules! quick {
        ($cell:expr, $lookup:expr, $value:ty) => {{
            (&Quick($lookup, PhantomData::<$value>))
                .quick_hit($cell)
                .ok()
        }};
    }

    mod issue19 {
        use super::*;

        #[test]
        fn a_quick_miss_hands_its_hash_on() {
            static CELL: CacheCell = CacheCell::new();
            let first = QuickHit::quick_hit(&Quick(&7_u64, PhantomData::<u64>), &CELL);
            assert_eq!(first, Err(UNHASHED), "no cache yet: nothing hashed");
            let cache: &Cache<u64, u64> = cache(
                &CELL,
                "private::tests::quick#3",
                scope(&|| ()),
                preset::<0, 0>,
            );
            let missed = QuickHit::quick_hit(&Quick(&7_u64, PhantomData::<u64>), &CELL);
            assert_eq!(missed, Err(cache.store().hash_of(&&7_u64)));
        }
    }

    #[test]
    fn a_quick_hit_is_a_counted_hit_on_an_entry_that_never_expires() {
        static CELL: CacheCell = CacheCell::new();
        assert_eq!(
            quick!(&CELL, &7_u64, u64),
            None,
            "no cache before the first call"
        );
        let cache: &Cache<u64, u64> = cache(
            &CELL,
            "private::tests::quick#0",
            scope(&|| ()),
            preset::<0, 0>,
        );
        assert_eq!(quick!(&CELL, &7_u64, u64), None, "a miss");
        cache.insert(7, 49);
        assert_eq!(quick!(&CELL, &7_u64, u64), Some(49));
        assert_eq!(quick!(&CELL, &8_u64, u64), None);
        assert_eq!(
            cache.stats().hits,
            1,
            "a quick hit counts; a quick miss does not"
        );
        let inside = cache.refresh(|| quick!(&CELL, &7_u64, u64));
        assert_eq!(inside, None, "a forced refresh takes the full path");
    }

    #[test]
    fn borrowed_and_tuple_keys_hit_quickly() {
        static CELL: CacheCell = CacheCell::new();
        let cache: &Cache<(String, u32), String> = cache(
            &CELL,
            "private::tests::quick#1",
            scope(&|| ()),
            preset::<100, 0>,
        );
        cache.insert(("a".to_string(), 1), "one".to_string());
        let found = quick!(&CELL, ("a", &1_u32), String);
        assert_eq!(found.as_deref(), Some("one"));
        assert_eq!(quick!(&CELL, ("a", &2_u32), String), None);
    }

    #[test]
    fn an_entry_with_a_time_to_live_takes_the_full_path() {
        static CELL: CacheCell = CacheCell::new();
        let cache: &Cache<u64, u64> = cache(
            &CELL,
            "private::tests::quick#2",
            scope(&|| ()),
            preset::<0, 60_000>,
        );
        cache.insert(1, 2);
        assert_eq!(quick!(&CELL, &1_u64, u64), None);
        assert_eq!(cache.stats().hits, 0);
        assert_eq!(cache.get(&1), Some(2), "the entry is live");
    }

    use std::hash::Hash;

    /// A sync call over memory as the expansion writes it (`hit_or_lead`): the owned key and the
    /// lead in this frame, the body run between the two.
    fn call_as_expanded<K, L>(
        cache: &'static Cache<K, String>,
        lookup: L,
        body: impl FnOnce() -> String,
    ) -> String
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        L: Lookup<Key = K>,
    {
        let mut owned_key = None;
        let mut lead_place = LeadPlace::NEW;
        match hit_or_lead(
            (cache, always),
            lookup,
            UNHASHED,
            (&mut owned_key, &mut lead_place),
        ) {
            Ok(value) => value,
            Err(lead) => lead.finish(body()),
        }
    }

    /// The lead reads the lent key and later takes the owned one, both in the caller's
    /// `Option<K>`: one place reached by two pointers, which Miri checks (`cargo miri test
    /// lead_in_the_callers_frame`). Each copy of the key is dropped once.
    #[test]
    fn a_lead_in_the_callers_frame_reads_and_takes_its_key() {
        use std::sync::Arc;
        static CELL: CacheCell = CacheCell::new();
        let cache: &Cache<(Arc<str>, u64), String> = cache(
            &CELL,
            "private::tests::lead#0",
            scope(&|| ()),
            preset::<100, 0>,
        );
        let name: Arc<str> = Arc::from("seven");
        let computed = call_as_expanded(cache, (&name, &7_u64), || "computed".to_string());
        assert_eq!(computed, "computed");
        let again = call_as_expanded(cache, (&name, &7_u64), || unreachable!("stored"));
        assert_eq!(again, "computed");
        assert_eq!(Arc::strong_count(&name), 2, "the stored key, and ours");
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.hits), (1, 1));
        assert!(cache.invalidate(&(Arc::clone(&name), 7)));
        assert_eq!(
            Arc::strong_count(&name),
            1,
            "each copy of the key dropped once"
        );
    }

    /// A key that counts its compares: a caller that finds another's flight of its key compares
    /// the keys, so the leader knows it waits without a timing.
    #[derive(Clone, Debug)]
    struct Counted(std::sync::Arc<()>);

    /// Every `Counted` is equal to every other: all hash alike.
    impl Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
    }

    static COMPARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    impl PartialEq for Counted {
        fn eq(&self, _: &Self) -> bool {
            COMPARED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            true
        }
    }

    impl Eq for Counted {}

    /// A body that panics while another caller waits on its key, in the caller's frame: the
    /// panic drops the lead in its place, and the waiter computes the key itself, then finds it
    /// stored. Each copy of the key is dropped once (the key in the place is the panicking
    /// caller's, dropped after its lead).
    #[test]
    fn a_lead_in_the_callers_frame_that_panics_hands_the_key_to_a_waiter() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, mpsc};
        static CELL: CacheCell = CacheCell::new();
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        // Compares seen when the leader's body starts: none, so the one it waits for is the
        // waiter's, finding its flight.
        static COMPARED_AT_START: AtomicUsize = AtomicUsize::new(usize::MAX);
        let cache: &'static Cache<Counted, String> = cache(
            &CELL,
            "private::tests::lead#1",
            scope(&|| ()),
            preset::<100, 0>,
        );
        let key = Counted(Arc::new(()));
        let (leading, led) = mpsc::channel();
        let leader = std::thread::spawn({
            let key = key.clone();
            move || {
                call_as_expanded(cache, &key, || {
                    RUNS.fetch_add(1, Ordering::SeqCst);
                    COMPARED_AT_START.store(COMPARED.load(Ordering::SeqCst), Ordering::SeqCst);
                    leading.send(()).unwrap();
                    // Until the waiter found this flight.
                    while COMPARED.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                    panic!("the leader's body panics")
                })
            }
        });
        led.recv().unwrap();
        let waiter = std::thread::spawn({
            let key = key.clone();
            move || {
                call_as_expanded(cache, &key, || {
                    RUNS.fetch_add(1, Ordering::SeqCst);
                    "the waiter's".to_string()
                })
            }
        });
        assert!(leader.join().is_err(), "the panic reaches its caller");
        assert_eq!(
            COMPARED_AT_START.load(Ordering::SeqCst),
            0,
            "the waiter came while the leader ran"
        );
        assert_eq!(waiter.join().unwrap(), "the waiter's");
        assert_eq!(RUNS.load(Ordering::SeqCst), 2, "the waiter computed once");
        assert_eq!(
            call_as_expanded(cache, &key, || unreachable!("stored")),
            "the waiter's"
        );
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.hits), (2, 1));
        assert_eq!(Arc::strong_count(&key.0), 2, "the stored key, and ours");
    }

    #[test]
    fn a_key_that_cannot_be_cached_has_no_quick_hit_and_no_error() {
        static CELL: CacheCell = CacheCell::new();
        // `f64` is not `Hash`: the fallback answers, and only `hit_or_miss` would report it.
        assert_eq!(quick!(&CELL, &1.5_f64, u64), None);
    }
}

#[cfg(all(test, any(feature = "disk", feature = "redis")))]
mod crate_version_tests {
    use super::crate_version;

    #[test]
    fn crates_of_one_name_are_told_apart_and_compatible_releases_are_not() {
        let lib = crate_version(0, Some("1.4.2"), None);
        assert_eq!(lib, crate_version(0, Some("1.9.0"), None));
        assert_ne!(lib, crate_version(0, Some("2.0.0"), None));
        assert_ne!(lib, crate_version(0, Some("1.4.2"), Some("app")));
        assert_ne!(lib, crate_version(1, Some("1.4.2"), None));
        let zero = crate_version(0, Some("0.3.1"), None);
        assert_eq!(zero, crate_version(0, Some("0.3.7-beta.1"), None));
        assert_ne!(zero, crate_version(0, Some("0.4.0"), None));
        assert_ne!(
            crate_version(0, Some("0.0.1"), None),
            crate_version(0, Some("0.0.2"), None)
        );
        assert_eq!(crate_version(7, None, None), 7);
    }
}
