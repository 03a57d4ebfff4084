//! Where a memoized function finds its cache.
//!
//! The expansion of `#[cached] fn f` reaches the cache from two places: `f`'s body and the
//! companion `f_cache()`. Inside an `impl` neither can name the other without knowing it is in an
//! `impl`, and a `static` there cannot name `Self`; so each holds a type-erased [`CacheCell`] and
//! both cells resolve, once, through a process-wide registry keyed by the function's unique id
//! and the cache's type. After that a lookup is one atomic load and a type-id compare.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

type Erased = &'static (dyn Any + Send + Sync);

/// A `static`-friendly slot that resolves to one leaked cache per (function, type).
///
/// # Examples
///
/// ```
/// use memo_runtime::{Cache, CacheCell, Config};
///
/// static BODY: CacheCell = CacheCell::new();
/// static COMPANION: CacheCell = CacheCell::new();
/// let a: &'static Cache<u32, u32> = BODY.get_or_init("doc::f#0", || Cache::new(Config::new()));
/// let b: &'static Cache<u32, u32> = COMPANION.get_or_init("doc::f#0", || Cache::new(Config::new()));
/// assert!(std::ptr::eq(a, b));
/// ```
#[derive(Debug)]
pub struct CacheCell {
    /// The caches resolved here, newest first, with their types: the fast path is one load and a
    /// type-id compare, without a virtual call or a lock. A generic `impl` adds one node per type.
    /// Null until the first call; nodes are only added, never freed.
    resolved: AtomicPtr<Resolved>,
}

/// A cache and the type it was registered under; a node of a cell's list.
struct Resolved {
    type_id: TypeId,
    cache: Erased,
    next: *const Resolved,
}

static REGISTRY: LazyLock<Mutex<HashMap<(&'static str, TypeId), Erased>>> =
    LazyLock::new(Mutex::default);

impl CacheCell {
    /// An empty cell.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::CacheCell;
    ///
    /// static CELL: CacheCell = CacheCell::new();
    /// let cache: &'static Vec<u8> = CELL.get_or_init("doc::new#0", || vec![1, 2]);
    /// assert_eq!(*cache, [1, 2]);
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self {
            resolved: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The cache registered under `id` for type `C`, created by `init` if it is the first.
    ///
    /// A cell must always be asked with the same `id` (each expansion has its own cells).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::CacheCell;
    ///
    /// static CELL: CacheCell = CacheCell::new();
    /// let first: &'static String = CELL.get_or_init("doc::cell#1", || "made".to_string());
    /// let again: &'static String = CELL.get_or_init("doc::cell#1", || unreachable!("made once"));
    /// assert!(std::ptr::eq(first, again));
    /// // Another type under the same id: a cache of its own.
    /// let other: &'static Vec<u8> = CELL.get_or_init("doc::cell#1", || vec![7]);
    /// assert_eq!(*other, [7]);
    /// ```
    #[inline]
    pub fn get_or_init<C: Any + Send + Sync>(
        &self,
        id: &'static str,
        init: impl FnOnce() -> C,
    ) -> &'static C {
        // SAFETY: non-null nodes are leaked `Resolved`s, published with `Release` and never freed.
        if let Some(head) = unsafe { self.resolved.load(Ordering::Acquire).as_ref() }
            && head.type_id == TypeId::of::<C>()
        {
            // SAFETY: the cache was registered under `TypeId::of::<C>()`, so it is a `C`.
            return unsafe { &*std::ptr::from_ref(head.cache).cast::<C>() };
        }
        self.resolve(id, init)
    }

    /// Not the newest type: walk this cell's list, else register (the first call, or a new type
    /// of a generic `impl`).
    #[cold]
    fn resolve<C: Any + Send + Sync>(
        &self,
        id: &'static str,
        init: impl FnOnce() -> C,
    ) -> &'static C {
        let mut node = self.resolved.load(Ordering::Acquire).cast_const();
        // SAFETY: as in `get_or_init`.
        while let Some(resolved) = unsafe { node.as_ref() } {
            if let Some(cache) = resolved.cache.downcast_ref::<C>() {
                return cache;
            }
            node = resolved.next;
        }
        let mut init = Some(init);
        let mut make = || -> Box<dyn Any + Send + Sync> {
            let init = init
                .take()
                .unwrap_or_else(|| unreachable!("a cache is made at most once per call"));
            Box::new(init())
        };
        let erased = self.resolve_erased(id, TypeId::of::<C>(), &mut make);
        erased
            .downcast_ref::<C>()
            .unwrap_or_else(|| unreachable!("registered under its own type id"))
    }

    /// The type-independent part of [`resolve`](Self::resolve), compiled once rather than once
    /// per memoized function.
    fn resolve_erased(
        &self,
        id: &'static str,
        type_id: TypeId,
        make: &mut dyn FnMut() -> Box<dyn Any + Send + Sync>,
    ) -> Erased {
        let key = (id, type_id);
        let found = REGISTRY
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied();
        let erased = found.unwrap_or_else(|| {
            // Build outside the lock: the cache's configuration may call a memoized function.
            let fresh = make();
            *REGISTRY
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_insert_with(|| Box::leak(fresh))
        });
        // Publish on this cell's list, so the next call takes the fast path. A racing thread may
        // add the same type too: a duplicate node is harmless.
        let mut head = self.resolved.load(Ordering::Acquire);
        let node = Box::leak(Box::new(Resolved {
            type_id,
            cache: erased,
            next: head,
        }));
        while let Err(current) =
            self.resolved
                .compare_exchange(head, node, Ordering::AcqRel, Ordering::Acquire)
        {
            head = current;
            node.next = head;
        }
        erased
    }
}

impl Default for CacheCell {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_instance_per_id_and_type() {
        static A: CacheCell = CacheCell::new();
        static B: CacheCell = CacheCell::new();
        static C: CacheCell = CacheCell::new();
        let a1: &'static Vec<u8> = A.get_or_init("t#1", || vec![1]);
        let b1: &'static Vec<u8> = B.get_or_init("t#1", || vec![2]);
        assert!(std::ptr::eq(a1, b1));
        assert_eq!(*b1, [1]);
        // Another type in the same cell (a generic impl): its own instance, shared too.
        let a2: &'static Vec<u16> = A.get_or_init("t#1", || vec![3]);
        let b2: &'static Vec<u16> = B.get_or_init("t#1", || vec![4]);
        assert!(std::ptr::eq(a2, b2));
        // Another id: another instance.
        let c: &'static Vec<u8> = C.get_or_init("t#2", || vec![5]);
        assert_eq!(*c, [5]);
        assert_eq!(*A.get_or_init::<Vec<u8>>("t#1", || unreachable!()), [1]);
    }
}
