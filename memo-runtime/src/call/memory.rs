//! The steps of a call that missed ([`Steps`]) over a memoized function's cache in memory,
//! compiled once: the loop reaches every such cache as a [`MemoryCache`], through one vtable,
//! and each key and value type adds only its table of typed operations ([`Pair`]): clone a key
//! into a flight, compare keys, clone a value out of an entry, lend it, store an entry (issue 18).

use std::any::TypeId;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{
    Answered, Boxed, Claimed, Item, Lend, Slot, Steps, Stored, Unclaimed, Unmarked, Value,
    not_its_types,
};
use crate::cache::{Cache, Head, MemoryCache};
use crate::erased;
use crate::flight::{FlightKey, Handed, RawJoin};
use crate::stats::Event;
use crate::store::{
    EntryOps, EntryPlace, Lease, MemoryStore, RawMemory, SlotType, StoreHasher, Timed, TypeOf,
};

/// What the steps over a [`MemoryCache`] need of its key and value types `K` and `V`.
pub(crate) struct Pair {
    /// `TypeId`s of `K` and `V` (a function: `TypeId::of` is not `const` before Rust 1.91).
    types: fn() -> [TypeId; 2],
    /// Joins a flight by a lent `K`.
    flight: FlightKey,
    /// The store's slots (`Slot<K, V>`), for its purge and to build an entry; `K`'s ops.
    pub(crate) slot: &'static SlotType,
    /// How a flight hands a `V` to waiters; `V`'s ops.
    handed: &'static Handed,
    /// Stores, in the `MemoryStore<K, V>` at a place, under a key of hash `hash`, the `K` taken
    /// from the `Option<K>` at a place and a clone of the `V` at another, computed in a time:
    /// [`put_in_place`], compiled once, where the entry fits on its stack.
    put: Put,
}

impl Pair {
    /// How an entry is read by a lent `K` into a caller's `Option<V>`.
    fn entry(&self) -> EntryOps {
        EntryOps::of(self.slot, self.handed.ops())
    }
}

/// [`Pair::put`].
type Put = unsafe fn(&Pair, *const (), u64, *mut (), *const (), Duration);

/// The [`Pair`] of `K` and `V`.
struct PairOf<K, V>(PhantomData<fn(K, V)>);

impl<K, V> PairOf<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    const PAIR: &'static Pair = &Pair {
        types: super::types::<K, V>,
        flight: FlightKey::of::<K>(),
        slot: TypeOf::<K, V, StoreHasher>::TYPE,
        handed: Lend::<K, V>::NEW.handed,
        put: if TypeOf::<K, V, StoreHasher>::FITS_PLACE {
            put_in_place
        } else {
            put::<K, V>
        },
    };
}

/// [`Pair::put`] of a pair whose entries fit on the stack ([`EntryPlace`]): the entry is built
/// there by code compiled once.
///
/// # Safety
///
/// `pair` is the pair of the `MemoryStore<K, V>` at `store`, `key` points to an `Option<K>`,
/// borrowed mutably, and `value` to a `V`, all borrowed while the call lasts.
unsafe fn put_in_place(
    pair: &Pair,
    store: *const (),
    hash: u64,
    key: *mut (),
    value: *const (),
    cost: Duration,
) {
    let mut place = EntryPlace::new();
    // SAFETY: the caller's promise.
    let entry = unsafe { pair.slot.fill(&mut place, key, (pair.handed.ops(), value)) };
    let Some(entry) = entry else { not_its_types() };
    // SAFETY: a `MemoryStore<K, V>` starts as its `RawMemory` (`STARTS_RAW`); the entry is of its
    // types, given up.
    unsafe {
        (*store.cast::<RawMemory>()).put_entry(store, hash, (pair.slot, entry), Timed::Cost(cost));
    }
}

/// [`Pair::put`] of a pair whose entries do not fit on the stack.
///
/// # Safety
///
/// As for [`put_in_place`].
#[allow(
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
)]
unsafe fn put<K, V>(
    _: &Pair,
    store: *const (),
    hash: u64,
    key: *mut (),
    value: *const (),
    cost: Duration,
) where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    // SAFETY: the caller's promise.
    let (key, value) = unsafe { (&mut *(key as *mut Option<K>), &*(value as *const V)) };
    let Some(key) = key.take() else {
        not_its_types()
    };
    // SAFETY: the caller's promise.
    unsafe { MemoryStore::put_at(store, hash, key, value.clone(), Timed::Cost(cost)) };
}

/// The steps of a memoized function's cache in memory, `cache`: its [`MemoryCache`], with its
/// [`Pair`] set on the first call.
#[allow(
    clippy::ref_as_ptr,
    reason = "a cast: `from_ref` would be compiled for each type in a debug build"
)]
pub(crate) fn steps<K, V>(cache: &'static Cache<K, V>) -> &'static dyn Steps
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let untyped = cache.untyped();
    let head = &untyped.head;
    // Written once (a racing first miss writes the same), so later misses only read them.
    if head.pair.load(Ordering::Relaxed).is_null() {
        let store = &raw const cache.store as *mut ();
        head.store.store(store, Ordering::Relaxed);
        head.pair.store(
            std::ptr::from_ref(PairOf::<K, V>::PAIR).cast_mut(),
            Ordering::Release,
        );
    }
    untyped
}

impl MemoryCache {
    /// The typed operations of this cache's key and value types.
    pub(crate) fn pair(&self) -> &'static Pair {
        let pair = self.head.pair.load(Ordering::Acquire);
        // SAFETY: a `MemoryCache` is reached as steps only through `steps`, which set its pair
        // (a constant) before.
        match unsafe { pair.as_ref() } {
            Some(pair) => pair,
            None => unreachable!("a memory cache's steps are reached after its pair is set"),
        }
    }

    /// The type ids of this cache's key and value types, by its pair (set by `steps`): what
    /// `hit_or_lead` lends its places with, with no function of its own per type to lend them.
    pub(crate) fn types(&self) -> [TypeId; 2] {
        (self.pair().types)()
    }

    /// How a flight hands this cache's values to waiters, by its pair (set by `steps`).
    pub(crate) fn handed(&self) -> &'static Handed {
        self.pair().handed
    }

    /// The pair, if `key` and `value` (the type ids of an `Item` or `Slot`, `None` where no value
    /// is lent) are this cache's key and value types.
    fn checked(&self, key: TypeId, value: Option<TypeId>) -> &'static Pair {
        let pair = self.pair();
        let [k, v] = (pair.types)();
        if key != k || value.is_some_and(|value| value != v) {
            not_its_types()
        }
        pair
    }
}

impl Steps for MemoryCache {
    fn head(&self) -> &Head {
        &self.head
    }

    fn claim_reads(&self) -> bool {
        false
    }

    fn join(&self, hash: u64, key: Item<'_>, by_thread: bool) -> RawJoin<'_> {
        let pair = self.checked(key.type_id, None);
        // SAFETY: `key` lends a `K` (checked), and `pair.flight` is `FlightKey::of::<K>()`.
        unsafe {
            self.flights
                .join_lent(hash, key.ptr, &pair.flight, by_thread)
        }
    }

    fn look<'k>(&'k self, hash: u64, key: Item<'k>, out: &'k mut Slot<'_>) -> Boxed<'k, bool> {
        let pair = self.checked(key.type_id, Some(out.type_id));
        // The slot's `Option<V>` holds `None`: the loop looks only while it has no value.
        // SAFETY: this cache's store, with its types' operations; `key` lends a `K` and `out` an
        // `Option<V>` (both checked).
        let found = unsafe {
            self.store.get_lent(
                hash,
                key.ptr,
                &pair.entry(),
                NonNull::new_unchecked(out.ptr.cast()),
            )
        };
        if found {
            Box::pin(Answered::<true>)
        } else {
            Box::pin(Answered::<false>)
        }
    }

    fn claim<'k>(&'k self, _: u64, _: Item<'k>, _: &'k mut Slot<'_>) -> Boxed<'k, Claimed> {
        // Nothing to claim, nothing another process stored: compute.
        self.head.counters.record(Event::Miss);
        Box::pin(Unclaimed)
    }

    fn found<'a>(&self, out: &'a Slot<'_>) -> Option<Value<'a>> {
        let pair = self.pair();
        let [_, value_type] = (pair.types)();
        if out.type_id != value_type {
            not_its_types()
        }
        // SAFETY: `out` lends an `Option<V>` (checked).
        let value = unsafe { erased::some_in(pair.handed.ops(), out.ptr) };
        // SAFETY: `value`, if not null, points to the `V` that `out` lends.
        (!value.is_null()).then(|| Value {
            item: unsafe { Item::at(value, value_type) },
            handed: pair.handed,
        })
    }

    fn store<'a>(
        &'a self,
        hash: u64,
        key: &mut Slot<'_>,
        value: Value<'_>,
        cost: Duration,
        lease: Lease,
    ) -> Boxed<'a, ()> {
        let pair = self.checked(key.type_id, Some(value.item.type_id));
        // Set before the pair, which `checked` read with `Acquire`.
        let store = self.head.store.load(Ordering::Relaxed);
        // SAFETY: this cache's `MemoryStore<K, V>`; `key` lends an `Option<K>` and `value` a
        // `V` (both checked).
        unsafe { (pair.put)(pair, store, hash, key.ptr, value.item.ptr, cost) };
        drop(lease);
        Box::pin(Stored)
    }

    fn mark_refresh<'k>(&'k self, _: u64, _: Item<'k>) -> Boxed<'k, Lease> {
        Box::pin(Unmarked)
    }

    fn release_refresh(&self, hash: u64, key: &Slot<'_>) {
        let pair = self.checked(key.type_id, None);
        // SAFETY: `key` lends an `Option<K>` (checked).
        let key = unsafe { erased::some_in(pair.slot.key_ops(), key.ptr) };
        if key.is_null() {
            not_its_types()
        }
        // SAFETY: this cache's store, with its types' operations; `key` points to a `K`.
        unsafe { self.store.release_refresh_lent(hash, key, &pair.entry()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::block;
    use crate::call;
    use crate::store::Store;

    fn leaked() -> &'static Cache<u64, String> {
        Box::leak(Box::new(Cache::new(Config::new().maxsize(100))))
    }

    #[test]
    fn a_miss_looks_leads_and_stores_and_the_next_caller_finds_the_value() {
        let cache = leaked();
        let steps = steps(cache);
        let (key, hash) = (7_u64, cache.store().hash_of(&&7_u64));
        let lead = |found: &mut Option<String>| {
            block::wait(call::lead(
                steps,
                hash,
                Item::of(&key),
                Slot::of(found),
                true,
            ))
        };
        let mut found = None::<String>;
        let claim = lead(&mut found).expect("nothing stored yet: lead");
        let (mut owned, value) = (Some(key), "seven".to_string());
        block::wait(call::finish(
            steps,
            hash,
            Slot::of(&mut owned),
            claim,
            Value::of(&value),
            true,
            Duration::ZERO,
        ));
        assert_eq!(owned, None, "the key was taken into the store");
        assert_eq!(cache.store().peek(&&7_u64).as_deref(), Some("seven"));
        assert!(
            lead(&mut found).is_none(),
            "the look found the stored value"
        );
        assert_eq!(found.as_deref(), Some("seven"));
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.hits), (1, 1));
    }

    /// Leads a miss of `key` in `cache` and finishes it with `value`, the caller's owned key in
    /// `owned`, as a memoized call does: through the pair's `put`.
    fn lead_and_finish<K, V>(cache: &'static Cache<K, V>, key: &K, owned: &mut Option<K>, value: &V)
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let steps = steps(cache);
        let hash = cache.store().hash_of(&key);
        let mut found = None::<V>;
        let claim = block::wait(call::lead(
            steps,
            hash,
            Item::of(key),
            Slot::of(&mut found),
            true,
        ))
        .expect("nothing stored yet: lead");
        block::wait(call::finish(
            steps,
            hash,
            Slot::of(owned),
            claim,
            Value::of(value),
            true,
            Duration::ZERO,
        ));
    }

    /// [`lead_and_finish`] in a new cache: the store holds the value and the key was taken from
    /// the caller.
    fn stored<K, V>(key: &K, value: &V) -> &'static Cache<K, V>
    where
        K: Hash + Eq + Clone + Send + Sync + std::fmt::Debug + 'static,
        V: Clone + Send + Sync + PartialEq + std::fmt::Debug + 'static,
    {
        let cache: &'static Cache<K, V> =
            Box::leak(Box::new(Cache::new(Config::new().maxsize(100))));
        let mut owned = Some(key.clone());
        lead_and_finish(cache, key, &mut owned, value);
        assert_eq!(owned, None, "the key was taken into the store");
        assert_eq!(cache.store().peek(&key).as_ref(), Some(value));
        cache
    }

    /// An entry that fits on the stack is built there by code compiled once; one too large or
    /// too aligned for it goes through its types' own insert. Either way the store holds what
    /// was given, and each key and value is dropped once.
    #[test]
    fn a_miss_stores_entries_on_the_stack_or_by_their_types() {
        use std::sync::Arc;
        #[derive(Clone, Debug, PartialEq)]
        struct Large([u64; 40]);
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[repr(align(32))]
        struct Aligned(u64);
        type Of<K, V> = TypeOf<K, V, StoreHasher>;
        const {
            assert!(Of::<(u64, Arc<()>), Arc<()>>::FITS_PLACE);
            assert!(!Of::<u64, Large>::FITS_PLACE);
            assert!(!Of::<Aligned, String>::FITS_PLACE);
        }

        let (key, value) = (Arc::new(()), Arc::new(()));
        let cache = stored(&(7, Arc::clone(&key)), &Arc::clone(&value));
        assert_eq!((Arc::strong_count(&key), Arc::strong_count(&value)), (2, 2));
        assert!(cache.invalidate(&(7, Arc::clone(&key))));
        assert_eq!((Arc::strong_count(&key), Arc::strong_count(&value)), (1, 1));

        let cache = stored(&3_u64, &Large([3; 40]));
        assert_eq!(cache.get(&3), Some(Large([3; 40])));

        let cache = stored(&Aligned(5), &"five".to_string());
        assert_eq!(cache.get(&Aligned(5)).as_deref(), Some("five"));
    }

    /// A value whose clone panics while a miss's entry is built on the stack leaves the key
    /// with the caller and nothing in the store, and drops nothing twice.
    #[test]
    fn a_value_whose_clone_panics_leaves_the_key_with_the_caller() {
        use std::sync::Arc;
        #[derive(Debug, PartialEq)]
        struct Panicky(Arc<()>);
        impl Clone for Panicky {
            fn clone(&self) -> Self {
                panic!("a clone that panics")
            }
        }
        const { assert!(TypeOf::<(u64, Arc<()>), Panicky, StoreHasher>::FITS_PLACE) };
        let cache: &'static Cache<(u64, Arc<()>), Panicky> =
            Box::leak(Box::new(Cache::new(Config::new().maxsize(100))));
        let (held, value) = (Arc::new(()), Panicky(Arc::new(())));
        let key = (7, Arc::clone(&held));
        let mut owned = Some(key.clone());
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lead_and_finish(cache, &key, &mut owned, &value);
        }));
        assert!(finished.is_err(), "the clone panicked");
        assert_eq!(owned.as_ref(), Some(&key), "the key is still the caller's");
        assert_eq!(cache.len(), 0);
        drop((owned, key));
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "each copy of the key dropped once"
        );
        assert_eq!(Arc::strong_count(&value.0), 1);
    }

    /// The janitor purges a memoized function's cache through its view compiled once, as
    /// `watch_expiry` registers it, and the listener hears of what left.
    #[test]
    fn the_janitor_purges_a_memory_cache_by_its_view_and_tells_the_listener() {
        use crate::janitor::Purge;
        use crate::store::RemovalCause;
        use std::sync::{Arc, Mutex};
        let heard = Arc::new(Mutex::new(Vec::new()));
        let store = MemoryStore::new(&Config::new().maxsize(100)).eviction_listener({
            let heard = Arc::clone(&heard);
            move |key: u64, _: String, cause| heard.lock().unwrap().push((key, cause))
        });
        let cache: &'static Cache<u64, String> = Box::leak(Box::new(Cache::with_store(store)));
        let (clock, mock) = crate::Clock::mock();
        cache.set_clock(clock);
        let _ = steps(cache); // as the first miss does: the pair, which the purge reads
        cache.insert_with_ttl(1, "one".to_string(), Duration::from_secs(1));
        cache.insert(2, "two".to_string());
        assert_eq!(cache.untyped().purge_expired(), 0, "nothing expired yet");
        mock.increment(Duration::from_secs(2));
        assert_eq!(cache.untyped().purge_expired(), 1);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&2).as_deref(), Some("two"));
        assert_eq!(*heard.lock().unwrap(), [(1, RemovalCause::Expired)]);
    }

    #[test]
    #[should_panic(expected = "its own key and value types")]
    fn a_key_of_another_type_panics() {
        let cache = leaked();
        let key = 7_u32;
        let _ = steps(cache).join(0, Item::of(&key), true);
    }

    #[test]
    #[should_panic(expected = "its own key and value types")]
    fn a_value_of_another_type_panics() {
        let cache = leaked();
        let (key, mut found) = (7_u64, None::<u32>);
        drop(steps(cache).look(0, Item::of(&key), &mut Slot::of(&mut found)));
    }
}
