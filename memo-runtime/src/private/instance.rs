//! `#[cached(cache = self.lookups)]`: a function whose cache is held elsewhere (a field: one per
//! instance of its type). The expansion looks the borrowed key up here, and a miss runs the body
//! under the cache object's own single-flight, with the hash the lookup made (a sync call hashes
//! its key once).
//!
//! One cache serves one function: a second function given the same cache (two methods with
//! `cache = self.cache`) would read the first one's values under the same keys, so it computes
//! every call without it ([`Owner`], said once).

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

use crate::cache::Cache;
use crate::lookup::Lookup;
use crate::store::Store;

/// A function whose cache is `cache = …`'s: a `static` of its expansion, whose address tells it
/// apart (its atomic keeps two such statics from being merged into one). The instances of a
/// generic function share it, and are told apart by a closure's type ([`instance`]).
pub struct Owner {
    /// The function's path, for the warning.
    pub(crate) name: &'static str,
    /// Whether this function was told that its cache is another's.
    pub(crate) warned: AtomicBool,
}

impl Owner {
    /// The owner mark of the function `name`.
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            warned: AtomicBool::new(false),
        }
    }
}

/// The cache of a `cache = …` function, and whether it is that function's own (the first
/// function to call with it), as [`instance`] found.
pub struct Instance<'a, K, V, S> {
    cache: &'a Cache<K, V, S>,
    owned: bool,
}

/// `cache` as the function `owner` may use it: see [`Owner`]. `body` is a closure of the
/// function's body (`&|| ()`), whose type tells apart the instances of a generic function,
/// which share `owner`: each is a function of its own.
#[inline]
pub fn instance<'a, K, V, S, F>(
    cache: &'a Cache<K, V, S>,
    owner: &'static Owner,
    body: &F,
) -> Instance<'a, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    Instance {
        cache,
        owned: cache.head().is_owned_by(owner, crate::cell::type_id(body)),
    }
}

/// A counted hit by the borrowed key (no owned key is built); on a miss, the key's hash (by
/// [`Store::hash_of`]), for [`instance_miss`] or [`instance_try_miss`]. A cache that is another
/// function's is not read.
#[inline]
pub fn instance_hit<K, V, S, L>(instance: &Instance<'_, K, V, S>, key: &L) -> Result<V, u64>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
    L: Lookup<Key = K>,
{
    let cache = instance.cache;
    let hash = cache.store().hash_of(key);
    if !instance.owned {
        return Err(hash);
    }
    cache.hit(hash, key).ok_or(hash)
}

/// A miss of `key` (of hash `hash`, as [`instance_hit`] gave it): `body` runs once for the
/// concurrent callers of `key`, and its value is stored where `keep` says (`Some`, unless
/// `cache_none`); a value not kept is returned to this caller alone.
pub fn instance_miss<K, V, S>(
    instance: &Instance<'_, K, V, S>,
    hash: u64,
    key: K,
    body: impl FnOnce() -> V,
    keep: fn(&V) -> bool,
) -> V
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    if !instance.owned {
        return body();
    }
    let kept = instance.cache.try_compute(hash, key, || kept(body(), keep));
    kept.unwrap_or_else(|value| value)
}

/// [`instance_miss`] of a function returning a `Result`: an `Err` is returned to this caller
/// and not stored ([`Cache::try_get_or_insert_with`]).
pub fn instance_try_miss<K, V, S, E>(
    instance: &Instance<'_, K, V, S>,
    hash: u64,
    key: K,
    body: impl FnOnce() -> Result<V, E>,
) -> Result<V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    if !instance.owned {
        return body();
    }
    instance.cache.try_compute(hash, key, body)
}

/// [`instance_miss`] for an `async fn`.
pub async fn instance_miss_async<K, V, S, F>(
    instance: Instance<'_, K, V, S>,
    key: K,
    body: F,
    keep: fn(&V) -> bool,
) -> V
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
    F: Future<Output = V>,
{
    if !instance.owned {
        return body.await;
    }
    let kept = Kept {
        body: Box::pin(body),
        keep,
    };
    match instance.cache.try_get_or_insert_with_async(key, kept).await {
        Ok(value) | Err(value) => value,
    }
}

/// [`instance_try_miss`] for an `async fn`: an `Err` is returned to this caller and not
/// stored ([`Cache::try_get_or_insert_with_async`]).
pub async fn instance_try_miss_async<K, V, S, E, F>(
    instance: Instance<'_, K, V, S>,
    key: K,
    body: F,
) -> Result<V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
    F: Future<Output = Result<V, E>>,
{
    if !instance.owned {
        return body.await;
    }
    instance.cache.try_get_or_insert_with_async(key, body).await
}

/// `body`'s value as `Ok` where `keep` stores it, else as `Err` (returned, not stored). A named
/// future rather than an `async` block, so that the caller's future is proved `Send` when the
/// body's is (rust-lang/rust#100013).
struct Kept<F: Future> {
    body: Pin<Box<F>>,
    keep: fn(&F::Output) -> bool,
}

impl<F: Future> Future for Kept<F> {
    type Output = Result<F::Output, F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let keep = self.keep;
        self.body.as_mut().poll(cx).map(|value| kept(value, keep))
    }
}

/// `value` as `Ok` where `keep` stores it, else as `Err`: returned to its caller, not stored.
fn kept<V>(value: V, keep: fn(&V) -> bool) -> Result<V, V> {
    if keep(&value) { Ok(value) } else { Err(value) }
}
