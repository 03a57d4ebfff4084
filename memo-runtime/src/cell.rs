//! Where a memoized function finds its cache.
//!
//! The expansion of `#[cached] fn f` reaches the cache from two places: `f`'s body and the
//! companion `f_cache()`. Inside an `impl` neither can name the other without knowing it is in an
//! `impl`, and a `static` there cannot name `Self`; so each holds a type-erased [`CacheCell`] and
//! both cells resolve, once, through a process-wide registry keyed by the function's unique id
//! and the cache's type. After that a lookup is one atomic load and a type-id compare, both of
//! the cell itself.

use std::any::{Any, TypeId};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
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
pub struct CacheCell {
    /// The first cache resolved here, once published (`Release`, after `first_type`): the fast
    /// path reads it and its type from the cell itself, one load and a type-id compare that do
    /// not wait on each other (a list node would add a load before both).
    first: AtomicPtr<()>,
    /// The type of `first`: written once, under the registry's lock, before `first` is published.
    first_type: UnsafeCell<MaybeUninit<TypeId>>,
    /// The caches resolved here, newest first, with their types: where a generic `impl`'s other
    /// types are found. Null until the first call; nodes are only added, never freed.
    resolved: AtomicPtr<Resolved>,
}

// SAFETY: `first_type` is written once, before `first` is published with `Release`, and read
// only after `first` is seen published with `Acquire`; every other field is atomic.
unsafe impl Sync for CacheCell {}

impl std::fmt::Debug for CacheCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCell")
            .field("resolved", &!self.first.load(Ordering::Acquire).is_null())
            .finish_non_exhaustive()
    }
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
            first: AtomicPtr::new(std::ptr::null_mut()),
            first_type: UnsafeCell::new(MaybeUninit::uninit()),
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
        self.first().unwrap_or_else(|| self.resolve(id, init))
    }

    /// The cell's first cache, if it is a `C`: [`get_or_init`](Self::get_or_init)'s fast path,
    /// for callers that keep the slow one out of line themselves.
    #[inline]
    pub(crate) fn first<C: Any + Send + Sync>(&self) -> Option<&'static C> {
        let first = self.first.load(Ordering::Acquire);
        // SAFETY: `first_type` was written before `first` was published (see `Sync`).
        if !first.is_null()
            && unsafe { (*self.first_type.get()).assume_init() } == TypeId::of::<C>()
        {
            // SAFETY: a cache registered under `TypeId::of::<C>()` is a leaked `C`.
            return Some(unsafe { &*first.cast_const().cast::<C>() });
        }
        None
    }

    /// Not the first type: walk this cell's list, else register (the first call, or a new type
    /// of a generic `impl`).
    #[cold]
    fn resolve<C: Any + Send + Sync>(
        &self,
        id: &'static str,
        init: impl FnOnce() -> C,
    ) -> &'static C {
        // SAFETY: non-null nodes are leaked `Resolved`s, published with `Release` and never freed.
        let mut node = self.resolved.load(Ordering::Acquire).cast_const();
        // SAFETY: as in `get_or_init`.
        while let Some(resolved) = unsafe { node.as_ref() } {
            if resolved.type_id == TypeId::of::<C>() {
                // SAFETY: as in `get_or_init`.
                return unsafe { &*std::ptr::from_ref(resolved.cache).cast::<C>() };
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
        {
            // The first type resolved here takes the fast path; the lock keeps its writers apart.
            let _registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
            if self.first.load(Ordering::Acquire).is_null() {
                // SAFETY: `first` is unpublished and the registry's lock is held, so no other
                // thread reads or writes `first_type` now.
                unsafe { (*self.first_type.get()).write(type_id) };
                let cache = std::ptr::from_ref(erased).cast::<()>().cast_mut();
                self.first.store(cache, Ordering::Release);
            }
        }
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

    /// Threads racing on a fresh cell with two types all get the one instance of their type,
    /// whichever type took the cell's fast path.
    #[test]
    fn racing_first_calls_agree() {
        static CELL: CacheCell = CacheCell::new();
        let found: Vec<(usize, usize)> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|t| {
                    s.spawn(move || {
                        if t % 2 == 0 {
                            let v: &'static Vec<u8> = CELL.get_or_init("t#race", || vec![1]);
                            (0, std::ptr::from_ref(v).addr())
                        } else {
                            let v: &'static Vec<u32> = CELL.get_or_init("t#race", || vec![2]);
                            (1, std::ptr::from_ref(v).addr())
                        }
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for kind in [0, 1] {
            let mut addresses = found.iter().filter(|f| f.0 == kind).map(|f| f.1);
            let first = addresses.next().unwrap();
            assert!(addresses.all(|a| a == first), "one instance of type {kind}");
        }
        assert_eq!(
            *CELL.get_or_init::<Vec<u8>>("t#race", || unreachable!()),
            [1]
        );
        assert_eq!(
            *CELL.get_or_init::<Vec<u32>>("t#race", || unreachable!()),
            [2]
        );
    }
}
