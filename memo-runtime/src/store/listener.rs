//! The eviction listener: user code told of every entry that leaves a store, and why.
//!
//! A shard collects what leaves it while its write lock is held and the store calls the listener
//! after releasing the lock, so a listener may call back into the cache (a listener run under the
//! lock would wait for its own thread). Without a listener nothing is collected: evicted entries
//! are dropped where they leave, as before, and hits never look at any of this.

use std::marker::PhantomData;
use std::ptr::NonNull;

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
/// Laid out as [`RawRemoved`] (`repr(C)`, null pointers when nothing is collected), so that a
/// shard is built without its types; what it keeps is dropped by [`Kept`], so that dropping a
/// shard is compiled once.
#[repr(C)]
pub(crate) struct Removed<K, V> {
    /// How an entry is kept: set by [`collect`](Self::collect) only, so that a store without a
    /// listener compiles no code that keeps entries (`Vec::push` and its growth) for its key and
    /// value types; without it, what leaves is dropped by code compiled once (the shard's).
    keep: Option<KeepAt>,
    /// A `Vec<(K, V, RemovalCause)>`, boxed once something is kept.
    entries: Kept,
    /// It owns what it keeps.
    _entries: PhantomData<Vec<(K, V, RemovalCause)>>,
}

// SAFETY: `entries` holds a `Vec<(K, V, RemovalCause)>` (or nothing), owned: sent and shared as
// that vector would be.
unsafe impl<K: Send, V: Send> Send for Removed<K, V> {}
// SAFETY: as for `Send`.
unsafe impl<K: Sync, V: Sync> Sync for Removed<K, V> {}

/// [`Removed`] without its types, collecting nothing: what a shard built by untyped code holds.
#[repr(C)]
pub(crate) struct RawRemoved {
    keep: Option<KeepAt>,
    entries: Kept,
}

impl RawRemoved {
    /// Nothing collected, nothing to collect.
    pub(crate) const NONE: Self = Self {
        keep: None,
        entries: Kept::NONE,
    };

    /// Keeps the entry at `entry` for the listener as `cause`, moving it out, if entries are
    /// collected (`true`); otherwise leaves it for the caller to drop (`false`). Untyped: a
    /// store without a listener compiles nothing of this per key and value type.
    ///
    /// # Safety
    ///
    /// This is the `removed` of a `Shard<K, V>`, and `entry` points to an entry of that shard's
    /// slot type (`Slot<K, V>`), owned by the caller, which no longer owns it when `true` comes
    /// back.
    pub(crate) unsafe fn give(&mut self, entry: NonNull<u8>, cause: RemovalCause) -> bool {
        let Some(keep) = self.keep else {
            return false;
        };
        // SAFETY: `keep` was set for this shard's slot type (`Removed::collect`, called by
        // `Shard::listen`), which `entry` is, by the caller's promise.
        unsafe { keep(&mut self.entries, entry, cause) };
        true
    }
}

const _: () = {
    assert!(size_of::<Removed<u8, u8>>() == size_of::<RawRemoved>());
    assert!(align_of::<Removed<u8, u8>>() == align_of::<RawRemoved>());
};

/// A boxed vector of the entries a shard's write removed, without their type, with the function
/// that drops it: the one owner of the box, dropped in code compiled once.
#[repr(transparent)]
pub(crate) struct Kept(Option<(NonNull<u8>, DropVec)>);

/// Drops the boxed vector of a [`Kept`], which it was set with.
type DropVec = unsafe fn(NonNull<u8>);

impl Kept {
    const NONE: Self = Self(None);
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some((vec, drop)) = self.0 {
            // SAFETY: `drop` is the drop of the vector's type, set with it (`Removed::keep`), and
            // it runs once: its owner goes away.
            unsafe { drop(vec) };
        }
    }
}

/// Keeps one entry that left, moved out of its slot, in a shard's [`Kept`] (see
/// [`RawRemoved::give`]).
///
/// # Safety
///
/// The `Kept` is of a `Removed<K, V>` and the entry, owned by the caller and moved out by the
/// call, is of the slot type of a `Shard<K, V>` (the function's own, set by `Shard::listen`).
pub(crate) type KeepAt = unsafe fn(&mut Kept, NonNull<u8>, RemovalCause);

impl<K, V> Removed<K, V> {
    /// Starts collecting (the store has a listener) by `keep`, which moves an entry out of its
    /// slot and keeps it with [`keep`](Self::keep).
    pub(crate) fn collect(&mut self, keep: KeepAt) {
        self.keep = Some(keep);
    }

    /// Keeps an entry in `kept`, boxing a vector for it first if none is yet.
    pub(crate) fn keep(kept: &mut Kept, key: K, value: V, cause: RemovalCause) {
        /// # Safety
        ///
        /// `vec` came from `Box::into_raw` of a `Box<Vec<(K, V, RemovalCause)>>`, dropped once.
        unsafe fn drop_vec<K, V>(vec: NonNull<u8>) {
            // SAFETY: the caller's promise.
            drop(unsafe { Box::from_raw(vec.cast::<Vec<(K, V, RemovalCause)>>().as_ptr()) });
        }
        let (vec, _) = *kept.0.get_or_insert_with(|| {
            let vec = Box::leak(Box::<Vec<(K, V, RemovalCause)>>::default());
            (NonNull::from(vec).cast(), drop_vec::<K, V>)
        });
        // SAFETY: a `Kept` of a `Removed<K, V>` holds a `Vec<(K, V, RemovalCause)>`, reached
        // through the `&mut` of its only owner.
        unsafe { vec.cast::<Vec<(K, V, RemovalCause)>>().as_mut() }.push((key, value, cause));
    }

    /// What was collected since the last call.
    pub(crate) fn take(&mut self) -> Vec<(K, V, RemovalCause)> {
        self.entries.0.map_or_else(Vec::new, |(vec, _)| {
            // SAFETY: as in `keep`.
            std::mem::take(unsafe { vec.cast::<Vec<(K, V, RemovalCause)>>().as_mut() })
        })
    }
}
