//! The eviction listener: user code told of every entry that leaves a store, and why.
//!
//! A shard collects what leaves it while its write lock is held and the store calls the listener
//! after releasing the lock, so a listener may call back into the cache (a listener run under the
//! lock would wait for its own thread). Without a listener nothing is collected: evicted entries
//! are dropped where they leave, as before, and hits never look at any of this.

/// Why an entry left the cache, as told to an eviction listener.
///
/// `clear()` reports every entry it removes as [`Invalidated`](Self::Invalidated): like
/// `invalidate`, it is the user removing entries, and a listener that tells user removals from
/// the cache's own (`Expired`, `Evicted`) needs no fifth case for it.
///
/// # Examples
///
/// ```
/// use memo::{Config, MemoryStore, RemovalCause, Store};
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// let store: MemoryStore<u32, &str> = MemoryStore::new(&Config::new().maxsize(1))
///     .eviction_listener(move |key, value, cause| log.lock().unwrap().push((key, value, cause)));
/// store.insert(1, "a");
/// store.insert(1, "b"); // replaces "a"
/// store.insert(2, "c"); // evicts 1
/// store.remove(&&2);
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [
///         (1, "a", RemovalCause::Replaced),
///         (1, "b", RemovalCause::Evicted),
///         (2, "c", RemovalCause::Invalidated),
///     ]
/// );
/// assert!(RemovalCause::Evicted.was_evicted());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Its time to live had passed.
    Expired,
    /// Removed to keep the cache within `maxsize` or `max_weight`, or not stored at all (a key the
    /// policy declined, or an entry heavier than its shard's share of `max_weight`).
    Evicted,
    /// Removed by the user: `invalidate`, `remove`, `clear`.
    Invalidated,
    /// A new value for the same key took its place.
    Replaced,
}

impl RemovalCause {
    /// Whether the cache removed the entry on its own (`Expired` or `Evicted`), as moka's
    /// `RemovalCause::was_evicted`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::RemovalCause;
    ///
    /// assert!(RemovalCause::Expired.was_evicted());
    /// assert!(!RemovalCause::Invalidated.was_evicted());
    /// assert!(!RemovalCause::Replaced.was_evicted());
    /// ```
    #[must_use]
    pub const fn was_evicted(self) -> bool {
        matches!(self, Self::Expired | Self::Evicted)
    }
}

/// A store's listener.
pub(crate) type Listener<K, V> = Box<dyn Fn(K, V, RemovalCause) + Send + Sync>;

/// What left a shard during one write, kept for the listener until the lock is released; only
/// collected when the store has a listener.
///
/// Laid out as [`RawRemoved`] (`repr(C)`, two pointers that are null when nothing is collected),
/// so that a shard is built without its types.
#[repr(C)]
pub(crate) struct Removed<K, V> {
    /// How an entry is kept: set by [`collect`](Self::collect) only, so that a store without a
    /// listener compiles no code that keeps entries (`Vec::push` and its growth) for its key and
    /// value types.
    keep: Option<Keep<K, V>>,
    /// Boxed: a null pointer until something is kept.
    #[allow(
        clippy::box_collection,
        reason = "one pointer, null until something is kept, so that untyped code can build it"
    )]
    entries: Option<Box<Vec<(K, V, RemovalCause)>>>,
}

/// [`Removed`] without its types, collecting nothing: what a shard built by untyped code holds.
#[repr(C)]
pub(crate) struct RawRemoved {
    keep: Option<fn()>,
    entries: Option<std::ptr::NonNull<u8>>,
}

impl RawRemoved {
    /// Nothing collected, nothing to collect.
    pub(crate) const NONE: Self = Self {
        keep: None,
        entries: None,
    };
}

/// Keeps one entry that left.
#[allow(clippy::box_collection, reason = "the field it fills")]
type Keep<K, V> = fn(&mut Option<Box<Vec<(K, V, RemovalCause)>>>, K, V, RemovalCause);

impl<K, V> Removed<K, V> {
    /// Starts collecting (the store has a listener).
    pub(crate) fn collect(&mut self) {
        self.keep = Some(|entries, key, value, cause| {
            entries
                .get_or_insert_with(Box::default)
                .push((key, value, cause));
        });
    }

    /// Notes that `key`'s entry left; dropped here when nobody listens. Out of line: called
    /// from several places of a shard's typed side, it would be copied into each.
    #[inline(never)]
    pub(crate) fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        if let Some(keep) = self.keep {
            keep(&mut self.entries, key, value, cause);
        }
    }

    /// What was collected since the last call.
    pub(crate) fn take(&mut self) -> Vec<(K, V, RemovalCause)> {
        self.entries
            .as_deref_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}
