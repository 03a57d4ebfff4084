//! What `#[cached]` expansions call. Not public API: names and signatures change without notice.

pub use core::result::Result::{Err, Ok};
pub use core::time::Duration;

pub use crate::cache::Cache;
pub use crate::cell::CacheCell;
pub use crate::config::Config;
pub use crate::lookup::Lookup;

/// What a cached function returns: cloned out of the cache on every hit.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached function must return a `Clone + Send + Sync + 'static` type",
    label = "this return type is stored in the cache",
    note = "return an owned type; to share one large value without copying it, return `Arc<{Self}>`"
)]
pub trait CacheValue: Clone + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<V: Clone + Send + Sync + 'static> CacheValue for V {}

/// The hit path of a memoized call: the cached value, or the [`Miss`] to compute it.
///
/// This is the one place that states the bounds on the key and the value, so a key or return type
/// that cannot be cached produces one error, not one per use.
#[inline]
#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the borrowed view in place"
)]
pub fn hit_or_miss<L, V>(cache: &'static Cache<L::Key, V>, key: L) -> Result<V, Miss<L::Key, V>>
where
    L: Lookup,
    V: CacheValue,
{
    match cache.hit(&key) {
        Some(value) => Ok(value),
        None => Err(Miss {
            cache,
            key: key.to_key(),
            run: run::<L::Key, V>,
        }),
    }
}

type RunMiss<K, V> = fn(&'static Cache<K, V>, K, &mut dyn FnMut() -> V, fn(&V) -> bool) -> V;

/// A call that missed, holding its owned key; [`Miss::compute`] runs the body under single-flight.
pub struct Miss<K: 'static, V: 'static> {
    cache: &'static Cache<K, V>,
    key: K,
    /// The bounded code, instantiated by [`hit_or_miss`] where the bounds are known.
    run: RunMiss<K, V>,
}

impl<K: 'static, V: 'static> Miss<K, V> {
    /// Runs `body` once for all concurrent callers of this key; stores the value if `keep` says so.
    pub fn compute(self, body: impl FnOnce() -> V, keep: fn(&V) -> bool) -> V {
        let mut body = Some(body);
        #[allow(
            clippy::missing_panics_doc,
            reason = "the runtime calls the body at most once"
        )]
        let mut once = || body.take().expect("the body runs at most once")();
        (self.run)(self.cache, self.key, &mut once, keep)
    }
}

fn run<K, V>(
    cache: &'static Cache<K, V>,
    key: K,
    body: &mut dyn FnMut() -> V,
    keep: fn(&V) -> bool,
) -> V
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: CacheValue,
{
    cache.watch_expiry();
    cache.compute(key, body, keep)
}

/// `keep` for functions returning `Result`: only `Ok` is stored.
#[must_use]
pub fn ok<T, E>(value: &Result<T, E>) -> bool {
    value.is_ok()
}

/// `keep` for functions returning `Option`: only `Some` is stored.
#[must_use]
pub fn some<T>(value: &Option<T>) -> bool {
    value.is_some()
}

/// `keep` for everything else, and for `cache_err`/`cache_none`.
#[must_use]
pub fn always<V>(_: &V) -> bool {
    true
}
