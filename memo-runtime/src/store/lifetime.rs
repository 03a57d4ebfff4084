//! A time to live chosen from the value: what [`MemoryStore::ttl_from`](super::MemoryStore::ttl_from)
//! and the other stores' `ttl_from` take.

use std::time::Duration;

/// How long a value lives, read from the value itself (an HTTP response's `max-age`, a token's
/// expiry); `None` leaves it the store's own time to live, the fallback (moka's `Expiry`,
/// cached's `expires = true`).
///
/// It runs on every insert (never on a hit), before the entry's shard is locked: it should be
/// quick. An explicit `insert_with_ttl` wins over it.
///
/// # Examples
///
/// ```
/// use memo::TtlFrom;
/// use std::time::Duration;
///
/// struct Page {
///     max_age: Option<u64>,
/// }
///
/// let ttl_from: TtlFrom<Page> = |page| page.max_age.map(Duration::from_secs);
/// assert_eq!(ttl_from(&Page { max_age: Some(60) }), Some(Duration::from_secs(60)));
/// assert_eq!(ttl_from(&Page { max_age: None }), None); // the store's `ttl`, then
/// ```
pub type TtlFrom<V> = fn(&V) -> Option<Duration>;

/// The time to live `ttl_from` chooses for `value`, if any (the memory store reads its own,
/// untyped, in `Base::put`).
#[cfg(any(feature = "disk", feature = "redis"))]
#[inline]
pub(crate) fn chosen<V>(ttl_from: Option<TtlFrom<V>>, value: &V) -> Option<Duration> {
    // A match rather than `and_then`, which a debug build would compile for each value type.
    match ttl_from {
        Some(ttl_from) => ttl_from(value),
        None => None,
    }
}
