//! A call that missed: it finds a value stored meanwhile, joins the computation another caller
//! leads, or leads it. One loop for every such call, sync or async, over every store.
//!
//! What differs between stores is behind [`Steps`]: the store's reads, claim and write, awaited
//! (a store in memory, or a disk's front, answers at once: its futures are ready when first
//! polled). A sync caller drives the same futures on its own thread
//! ([`wait`](crate::block::wait)), parking while it waits for another caller or another
//! process, and runs the body in its own frame between [`begin`] and [`finish`], so that no
//! function here is generic over a body.
//!
//! Nor over the key and value types: the loop holds them lent without their types ([`Item`],
//! [`Slot`], [`Value`]) and reaches the typed code (compare, clone, the store's steps) through
//! [`Steps`], one object per cache. So the loop and its state machines are compiled once, not
//! once per memoized function's key and value types (issue 18).

use std::any::TypeId;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub(crate) mod memory;

use crate::cache::{Cache, Head};
use crate::flight::{Failure, Handed, RawJoin, RawLeader};
use crate::stats::Event;
use crate::store::{Lease, Store};

/// A boxed future that borrows for `'a`: how a [`Steps`] object returns its awaited steps.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A key (or value) lent to the loop: a `&T` whose type only the cache's [`Steps`] know, which
/// they check by its `TypeId` as they take it back. Not `&dyn Any`, whose vtable compiles a
/// `type_id` function for every type lent (issue 18); and its pointer is cast with `as`, where
/// `NonNull::cast` and `as_ref` would be compiled for each type in a debug build.
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    ptr: *const (),
    type_id: TypeId,
    _lent: PhantomData<&'a ()>,
}

// SAFETY: an `Item` is a `&T` of a `T: Sync` (`Item::of`), which is `Send` and `Sync`.
unsafe impl Send for Item<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for Item<'_> {}

#[allow(
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
)]
impl Item<'_> {
    /// `item`, lent.
    pub(crate) fn of<T: Sync + 'static>(item: &T) -> Item<'_> {
        // SAFETY: `T: Sync`.
        unsafe { Item::lent(item) }
    }

    /// `item`, lent where its bounds are not stated (see [`Lend`]).
    ///
    /// # Safety
    ///
    /// `T` is `Sync`.
    #[inline]
    unsafe fn lent<T: 'static>(item: &T) -> Item<'_> {
        Item {
            ptr: item as *const T as *const (),
            type_id: TypeId::of::<T>(),
            _lent: PhantomData,
        }
    }
}

#[allow(
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
)]
impl<'a> Item<'a> {
    /// The `T` at `ptr`, lent, where `type_id` is `T`'s.
    ///
    /// # Safety
    ///
    /// `ptr` points to a `T: Sync` of that type id, borrowed for `'a`.
    pub(crate) unsafe fn at(ptr: *const (), type_id: TypeId) -> Self {
        Self {
            ptr,
            type_id,
            _lent: PhantomData,
        }
    }

    /// The place lent and its type's id, for code compiled once that checks the type itself.
    pub(crate) fn raw(self) -> (*const (), TypeId) {
        (self.ptr, self.type_id)
    }

    /// The `T` lent.
    fn get<T: 'static>(self) -> &'a T {
        if self.type_id != TypeId::of::<T>() {
            not_its_types()
        }
        // SAFETY: made by `of::<T>` (the type id says so) from a `&'a T`.
        unsafe { &*(self.ptr as *const T) }
    }
}

/// Where the loop puts a value (or takes an owned key from): the caller's `Option<V>` (or
/// `Option<K>`), lent as an [`Item`] is.
pub(crate) struct Slot<'a> {
    ptr: *mut (),
    /// Of the `T` in the `Option<T>`.
    type_id: TypeId,
    _lent: PhantomData<&'a mut ()>,
}

// SAFETY: a `Slot` is a `&mut Option<T>` of a `T: Send` (`Slot::of`), which is `Send`.
unsafe impl Send for Slot<'_> {}

impl Slot<'_> {
    /// The `Option<T>` at `ptr`, lent, where `type_id` is `T`'s.
    ///
    /// # Safety
    ///
    /// `ptr` points to an `Option<T: Send>` of that type id, borrowed mutably for `'a`.
    pub(crate) unsafe fn at<'a>(ptr: *mut (), type_id: TypeId) -> Slot<'a> {
        Slot {
            ptr,
            type_id,
            _lent: PhantomData,
        }
    }
}

#[allow(
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
)]
impl Slot<'_> {
    /// `slot`, lent.
    pub(crate) fn of<T: Send + 'static>(slot: &mut Option<T>) -> Slot<'_> {
        // SAFETY: `T: Send`.
        unsafe { Slot::lent(slot) }
    }

    /// `slot`, lent where its bounds are not stated (see [`Lend`]).
    ///
    /// # Safety
    ///
    /// `T` is `Send`.
    #[inline]
    unsafe fn lent<T: 'static>(slot: &mut Option<T>) -> Slot<'_> {
        Slot {
            ptr: slot as *mut Option<T> as *mut (),
            type_id: TypeId::of::<T>(),
            _lent: PhantomData,
        }
    }

    /// The `Option<T>` lent, to fill or take from.
    pub(crate) fn get<T: 'static>(&mut self) -> &mut Option<T> {
        if self.type_id != TypeId::of::<T>() {
            not_its_types()
        }
        // SAFETY: made by `of::<T>` (the type id says so) from a `&'a mut Option<T>`, which
        // this `&mut self` borrows.
        unsafe { &mut *(self.ptr as *mut Option<T>) }
    }

    /// The `Option` lent and its content's type id, for code compiled once that checks the type
    /// itself.
    pub(crate) fn raw(&mut self) -> (*mut (), TypeId) {
        (self.ptr, self.type_id)
    }

    /// The same slot, lent again for a shorter while.
    pub(crate) fn reborrow(&mut self) -> Slot<'_> {
        Slot {
            ptr: self.ptr,
            type_id: self.type_id,
            _lent: PhantomData,
        }
    }

    /// What the `Option<T>` lent holds.
    fn held<T: 'static>(&self) -> Option<&T> {
        if self.type_id != TypeId::of::<T>() {
            not_its_types()
        }
        // SAFETY: as in `get`, read only.
        match unsafe { &*(self.ptr as *const Option<T>) } {
            Some(held) => Some(held),
            None => None,
        }
    }
}

/// A value lent to the loop: the `V`, and how the flight hands a `V` to waiters.
#[derive(Clone, Copy)]
pub(crate) struct Value<'a> {
    pub(crate) item: Item<'a>,
    pub(crate) handed: &'static Handed,
}

impl Value<'_> {
    /// `value`, lent.
    pub(crate) fn of<T: Clone + Send + Sync + 'static>(value: &T) -> Value<'_> {
        Value {
            item: Item::of(value),
            handed: const { &Handed::of::<T>() },
        }
    }
}

/// A leader's claim: its flight (none when a sync caller re-entered its key) and the store's
/// lease.
pub(crate) type LeaderClaim<'a> = (Option<RawLeader<'a>>, Lease);

/// What the leader's look at the store and claim of the key found.
pub(crate) enum Claimed {
    /// A value, put in the caller's slot: stored meanwhile, or by another process.
    Found,
    /// Compute, under this lease of the store's.
    Compute(Lease),
}

/// The steps of a call over one cache, as an object with no type parameters: the entry point,
/// where the key's and value's bounds are known, makes it (a key without `Hash` or serde is
/// reported there, once), and the loop reaches the cache through it. Every [`Item`], [`Value`]
/// and [`Slot`] given to a cache's steps holds that cache's key or value type.
pub(crate) trait Steps: Sync {
    /// What the loop reads of the cache apart from its types: its name (for traces and
    /// metrics) and its counters (the loop counts a miss of a leader that re-entered its key, a
    /// waiter coalesced, a value not kept, a computation that failed).
    fn head(&self) -> &Head;

    /// Whether the store's [`claim`](Self::claim) reads the value itself (Redis, tiered), so
    /// that the loop need not [`look`](Self::look) before it.
    fn claim_reads(&self) -> bool;

    /// Leads the computation of `key` (of hash `hash`), or joins the one running. `by_thread`:
    /// a sync caller, which may re-enter its own key.
    fn join(&self, hash: u64, key: Item<'_>, by_thread: bool) -> RawJoin<'_>;

    /// A look at the store (counted as a hit when found): `true` with the value put in `out`.
    fn look<'k>(&'k self, hash: u64, key: Item<'k>, out: &'k mut Slot<'_>) -> Boxed<'k, bool>;

    /// The new leader's claim of the key in the store; a value found is put in `out`.
    fn claim<'k>(&'k self, hash: u64, key: Item<'k>, out: &'k mut Slot<'_>) -> Boxed<'k, Claimed>;

    /// The value [`claim`](Self::claim) put in `out`, lent.
    fn found<'a>(&self, out: &'a Slot<'_>) -> Option<Value<'a>>;

    /// Stores `value` under the key taken from `key` (an awaited write, ready at once but for a
    /// store outside the process), then ends the store's claim `lease`.
    fn store<'a>(
        &'a self,
        hash: u64,
        key: &mut Slot<'_>,
        value: Value<'_>,
        cost: Duration,
        lease: Lease,
    ) -> Boxed<'a, ()>;

    /// A refresh of the key in `key` (of hash `hash`) failed: the store lets a later read
    /// refresh it again.
    fn release_refresh(&self, hash: u64, key: &Slot<'_>);

    /// Ends the claim `lease` holds of a computation whose result is not stored, before the
    /// callers that joined it take that result ([`Store::release_async`]). In memory, a drop.
    fn release(&self, lease: Lease) -> Boxed<'_, ()> {
        drop(lease);
        Box::pin(Stored)
    }

    /// A forced refresh of `key` (of hash `hash`) begins: the store's mark, which its write
    /// goes with ([`Store::mark_refresh_async`](crate::Store::mark_refresh_async)).
    fn mark_refresh<'k>(&'k self, hash: u64, key: Item<'k>) -> Boxed<'k, Lease>;

    /// The store's count of the changes its other handles and other processes made, as far as
    /// it has seen them ([`Store::changes_seen`]): a leader hands its value to the callers that
    /// joined it only while the count stays what it was when the lead began. In memory, 0.
    fn changes(&self) -> u64 {
        0
    }
}

/// A [`Store::LOCAL`] store's mark of a forced refresh, which marks nothing: as [`Answered`].
pub(crate) struct Unmarked;

impl Future for Unmarked {
    type Output = Lease;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Lease> {
        Poll::Ready(Lease::none())
    }
}

/// A cache's steps were lent a key or a value of other types than its own: a bug of the loop.
/// One function rather than an `expect` per type (which a debug build compiles for each).
#[cold]
fn not_its_types() -> ! {
    panic!("a cache's steps are lent its own key and value types")
}

/// The output of a [`Store::LOCAL`] store's future, which is ready when first polled. Its
/// steps then return a ready future of a type every cache shares, rather than one of their
/// own: fewer functions compiled for each key and value type.
#[inline]
fn at_once<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a local store's futures are ready when first polled"),
    }
}

/// A [`Store::LOCAL`] store's look, already taken: a unit struct, so that boxing it allocates
/// nothing, of one type for every cache.
struct Answered<const FOUND: bool>;

impl<const FOUND: bool> Future for Answered<FOUND> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<bool> {
        Poll::Ready(FOUND)
    }
}

/// A [`Store::LOCAL`] store's claim, which claims nothing: as [`Answered`].
struct Unclaimed;

impl Future for Unclaimed {
    type Output = Claimed;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Claimed> {
        Poll::Ready(Claimed::Compute(Lease::none()))
    }
}

/// A [`Store::LOCAL`] store's write, already made: as [`Answered`].
struct Stored;

impl Future for Stored {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

/// The value in a caller's `Option<V>`, lent ([`Steps::found`]).
#[allow(
    clippy::manual_map,
    reason = "`map` would compile a closure per value type"
)]
fn value_found<'a, V: Clone + Send + Sync + 'static>(out: &'a Slot<'_>) -> Option<Value<'a>> {
    match out.held::<V>() {
        Some(value) => Some(Value::of(value)),
        None => None,
    }
}

/// The owned key a cache's steps were given.
fn take<T: 'static>(key: &mut Slot<'_>) -> T {
    let Some(key) = key.get().take() else {
        not_its_types()
    };
    key
}

/// On a cache seen through `ManuallyDrop` ([`Cache::undropped`]), so that the vtable holds a drop
/// that does nothing.
impl<K, V, S> Steps for ManuallyDrop<Cache<K, V, S>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Store<K, V>,
{
    fn head(&self) -> &Head {
        Cache::head(self)
    }

    fn claim_reads(&self) -> bool {
        Cache::store(self).claim_reads()
    }

    fn join(&self, hash: u64, key: Item<'_>, by_thread: bool) -> RawJoin<'_> {
        self.flights().join_raw(hash, key.get::<K>(), by_thread)
    }

    fn look<'k>(&'k self, hash: u64, key: Item<'k>, out: &'k mut Slot<'_>) -> Boxed<'k, bool> {
        let (key, out) = (key.get::<K>(), out.get::<V>());
        if S::LOCAL {
            *out = at_once(Cache::store(self).get_async(hash, &key));
            return if out.is_some() {
                Box::pin(Answered::<true>)
            } else {
                Box::pin(Answered::<false>)
            };
        }
        Box::pin(async move {
            *out = Cache::store(self).get_async(hash, &key).await;
            out.is_some()
        })
    }

    fn claim<'k>(&'k self, hash: u64, key: Item<'k>, out: &'k mut Slot<'_>) -> Boxed<'k, Claimed> {
        if S::LOCAL {
            // Nothing to claim, nothing another process stored: compute.
            self.head().counters.record(Event::Miss);
            return Box::pin(Unclaimed);
        }
        let (key, out) = (key.get::<K>(), out.get::<V>());
        Box::pin(async move { self.claimed(Cache::store(self).claim_async(hash, key).await, out) })
    }

    fn found<'a>(&self, out: &'a Slot<'_>) -> Option<Value<'a>> {
        value_found::<V>(out)
    }

    fn store<'a>(
        &'a self,
        hash: u64,
        key: &mut Slot<'_>,
        value: Value<'_>,
        cost: Duration,
        lease: Lease,
    ) -> Boxed<'a, ()> {
        let (key, value) = (take::<K>(key), value.item.get::<V>().clone());
        let stored = Cache::store(self).insert_claimed_async(hash, key, value, cost, lease);
        if S::LOCAL {
            at_once(stored);
            return Box::pin(Stored);
        }
        Box::pin(stored)
    }

    fn mark_refresh<'k>(&'k self, hash: u64, key: Item<'k>) -> Boxed<'k, Lease> {
        if S::LOCAL {
            return Box::pin(Unmarked);
        }
        let key = key.get::<K>();
        Box::pin(Cache::store(self).mark_refresh_async(hash, key))
    }

    fn release_refresh(&self, _: u64, key: &Slot<'_>) {
        let Some(key) = key.held::<K>() else {
            not_its_types()
        };
        Cache::store(self).release_refresh(&key);
    }

    fn release(&self, lease: Lease) -> Boxed<'_, ()> {
        if S::LOCAL {
            drop(lease);
            return Box::pin(Stored);
        }
        Box::pin(Cache::store(self).release_async(lease))
    }

    fn changes(&self) -> u64 {
        if S::LOCAL {
            return 0;
        }
        Cache::store(self).changes_seen()
    }
}

/// How a miss whose types are not bounded (`private.rs`: its key and value are reported once,
/// at the entry point) lends them to the loop: made where the bounds are known, so that one
/// existing proves them. Keys, values and slots are lent by inlined methods (no function of
/// their own per type in an optimized build).
pub(crate) struct Lend<K, V> {
    /// How the flight hands a `V` to waiters.
    pub(crate) handed: &'static Handed,
    /// The type ids of `K` and `V`, which the lent places carry (one function, not a call of
    /// `TypeId::of` per place lent).
    types: fn() -> [TypeId; 2],
    _types: PhantomData<fn(K, V)>,
}

impl<K: Send + Sync + 'static, V: Clone + Send + Sync + 'static> Lend<K, V> {
    /// The one for `K` and `V`.
    pub(crate) const NEW: &'static Self = &Self {
        handed: &Handed::of::<V>(),
        types: types::<K, V>,
        _types: PhantomData,
    };
}

/// The type ids of `K` and `V` (a function: `TypeId::of` is not `const` before Rust 1.91).
pub(crate) fn types<K: 'static, V: 'static>() -> [TypeId; 2] {
    [TypeId::of::<K>(), TypeId::of::<V>()]
}

// Casts, not `cast` or `from_ref`, which a debug build would compile for each type.
#[allow(
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
)]
impl<K: 'static, V: 'static> Lend<K, V> {
    /// The key, lent.
    #[inline]
    pub(crate) fn key<'a>(&self, key: &'a K) -> Item<'a> {
        // SAFETY: `K: Sync`, as `NEW`, the only way to a `Lend`, requires; its id is `K`'s.
        unsafe { Item::at(key as *const K as *const (), (self.types)()[0]) }
    }

    /// The caller's owned key, to take.
    #[inline]
    pub(crate) fn key_slot<'a>(&self, key: &'a mut Option<K>) -> Slot<'a> {
        // SAFETY: `K: Send`, as `NEW` requires; its id is `K`'s.
        unsafe { Slot::at(key as *mut Option<K> as *mut (), (self.types)()[0]) }
    }

    /// The value, lent.
    #[inline]
    pub(crate) fn value<'a>(&self, value: &'a V) -> Value<'a> {
        Value {
            // SAFETY: `V: Sync`, as `NEW` requires; its id is `V`'s.
            item: unsafe { Item::at(value as *const V as *const (), (self.types)()[1]) },
            handed: self.handed,
        }
    }

    /// The caller's slot for a value found.
    #[inline]
    pub(crate) fn value_slot<'a>(&self, found: &'a mut Option<V>) -> Slot<'a> {
        // SAFETY: `V: Send`, as `NEW` requires; its id is `V`'s.
        unsafe { Slot::at(found as *mut Option<V> as *mut (), (self.types)()[1]) }
    }
}

/// Where a call stands once [`begin`] answered.
pub(crate) enum Begun<'a> {
    /// A value, put in the caller's slot, and how the call got it (for its trace): `hit`
    /// (stored meanwhile, or another process's) or `coalesced` (the leader's).
    Value(&'static str),
    /// The leader failed, and left this copy of its error for the caller, which asked for one.
    Failed(Box<dyn Failure>),
    /// Compute, then [`finish`] (or [`Steps::failed`]).
    Lead(LeaderClaim<'a>),
}

/// The loop of a call that missed `key` (of hash `hash`): begin; a value (put in `out`) ends
/// it, and a lead is returned for the caller to run the body. A waiter takes the leader's
/// value, or (the leader failed) a copy of its error when the caller `takes_errors`, or else
/// looks at the store and begins again, perhaps as the next leader.
pub(crate) async fn begin<'a>(
    steps: &'a dyn Steps,
    hash: u64,
    key: Item<'_>,
    mut out: Slot<'_>,
    by_thread: bool,
    takes_errors: bool,
) -> Begun<'a> {
    loop {
        match steps.join(hash, key, by_thread) {
            RawJoin::Lead(mut leader) => {
                // Before the computation reads its sources: an invalidation from now on refuses
                // its value, and a change by another handle or process keeps it from the
                // callers that join (they may have begun after that change).
                leader.generation = steps.head().writes.generation(hash);
                leader.changes = steps.changes();
                // A value may have landed between the caller's miss and its taking the lead (a
                // store whose claim reads the value looks there, in the same round trip). The
                // claim makes callers in other processes sharing the store wait too.
                let looked = !steps.claim_reads() && steps.look(hash, key, &mut out).await;
                let claimed = if looked {
                    Claimed::Found
                } else {
                    steps.claim(hash, key, &mut out).await
                };
                return match claimed {
                    Claimed::Found => {
                        if let Some(value) = steps.found(&out) {
                            leader.finish(value, &|| steps.changes());
                        }
                        Begun::Value("hit")
                    }
                    Claimed::Compute(lease) => Begun::Lead((Some(leader), lease)),
                };
            }
            RawJoin::Reentrant => {
                steps.head().counters.record(Event::Miss);
                return Begun::Lead((None, Lease::none()));
            }
            RawJoin::Wait(flight) => {
                if std::future::poll_fn(|cx| flight.poll_value(cx, &mut out)).await {
                    steps.head().counters.record(Event::Coalesced);
                    return Begun::Value("coalesced");
                }
                if takes_errors && let Some(failure) = flight.failure() {
                    steps.head().counters.record(Event::Coalesced);
                    return Begun::Failed(failure);
                }
                // The leader gave up: look at the store again, unless its claim reads it (the
                // waiter then begins again at once).
                if !steps.claim_reads() && steps.look(hash, key, &mut out).await {
                    return Begun::Value("coalesced");
                }
            }
        }
    }
}

/// [`begin`] for a caller that takes no error: `None` once a value is in `out`, or the claim
/// under which to compute.
pub(crate) async fn lead<'a>(
    steps: &'a dyn Steps,
    hash: u64,
    key: Item<'_>,
    mut out: Slot<'_>,
    by_thread: bool,
) -> Option<LeaderClaim<'a>> {
    loop {
        match begin(steps, hash, key, out.reborrow(), by_thread, false).await {
            Begun::Value(_) => return None,
            Begun::Lead(claim) => return Some(claim),
            // Not asked for (`false`): this caller takes no error.
            Begun::Failed(_) => {}
        }
    }
}

/// When a forced refresh started: its time (for its cost), the generation of its key's
/// stripe (an invalidation since refuses its value: see [`crate::writes`]), and the store's
/// mark of the key (a later refresh or an invalidation in another process takes it, refusing
/// the value there too), given back when this is dropped without a write.
pub(crate) struct Since {
    at: Instant,
    generation: u64,
    mark: Lease,
}

impl Since {
    /// Now, for a forced refresh of `key` (of hash `hash`) over the cache of `steps`. The
    /// computations of its stripe begun before (a background refresh, a miss) read older
    /// sources: as after an invalidation, their values are no longer stored, so that none
    /// replaces the refresh's newer one; the store's mark does the same across processes.
    pub(crate) async fn now(steps: &dyn Steps, hash: u64, key: Item<'_>) -> Self {
        let head = steps.head();
        head.writes.invalidate(hash);
        let generation = head.writes.generation(hash);
        let mark = steps.mark_refresh(hash, key).await;
        Self {
            at: Instant::now(),
            generation,
            mark,
        }
    }
}

/// The end of a forced refresh (`f_cache().refresh(..)`, a computation run whether or not the
/// key was cached): stores `value` under the key taken from `key` if it is `kept` (an awaited
/// write, as [`finish`]'s), unless the key's stripe was invalidated `since` it started; `value`
/// is `None` when the computation failed. Nobody waits for a forced refresh, so there is no
/// flight to settle and no claim to end.
pub(crate) async fn refreshed(
    steps: &dyn Steps,
    hash: u64,
    mut key: Slot<'_>,
    value: Option<Value<'_>>,
    kept: bool,
    since: Since,
) {
    let stored = value.filter(|_| kept);
    refresh_ended(steps, hash, &key, stored.is_none());
    if let Some(value) = stored
        && let Some(writing) = steps.head().writes.begin(hash, since.generation)
    {
        let cost = since.at.elapsed();
        writing
            .during(|| steps.store(hash, &mut key, value, cost, since.mark))
            .await;
    }
}

/// A forced refresh of the key in `key` (of hash `hash`) ended: counted. When it `failed` (its
/// computation failed, or its value is not kept) the old value stays; the failure is counted
/// and reported, and a later read may refresh the key again.
pub(crate) fn refresh_ended(steps: &dyn Steps, hash: u64, key: &Slot<'_>, failed: bool) {
    steps.head().refresh_ended(failed);
    if failed {
        steps.release_refresh(hash, key);
    }
}

/// The leader's last step: stores `value` (taking the owned key from `key`) if `kept` (an
/// awaited write, ready at once but for a store outside the process), then hands it to the
/// waiters and ends the store's claim.
///
/// Callers that were waiting get the leader's value either way: they asked at the same time;
/// unless another handle or process changed the store since the lead began (which does not
/// detach this flight, as an invalidation here does): a waiter may have begun after that
/// change, so they all look at the store again ([`RawLeader::finish`]).
pub(crate) async fn finish(
    steps: &dyn Steps,
    hash: u64,
    mut key: Slot<'_>,
    (leader, lease): LeaderClaim<'_>,
    value: Value<'_>,
    kept: bool,
    cost: Duration,
) {
    #[cfg(feature = "metrics")]
    crate::metrics::record_load(steps.head().name, cost);
    if kept {
        if let Some(leader) = leader {
            // Stored, then the claim ended: other processes find the value once it is gone.
            // Not stored if the key's stripe was invalidated since the lead began (its waiters
            // joined before: they asked at the same time).
            match steps.head().writes.begin(hash, leader.generation) {
                Some(writing) => {
                    writing
                        .during(|| steps.store(hash, &mut key, value, cost, lease))
                        .await;
                }
                None => drop(lease),
            }
            leader.finish(value, &|| steps.changes());
            return;
        }
    } else {
        steps.head().counters.record(Event::LoadError);
        if let Some(leader) = leader {
            // Released first: a lock another process's change took away keeps this result from
            // the callers that joined.
            steps.release(lease).await;
            leader.finish(value, &|| steps.changes());
            return;
        }
    }
    drop(lease);
}

/// [`Head::failed`] for a caller whose computation failed with an error its waiters may take
/// (`shared`): the store's claim is released first, so that a lock another process's change
/// took away keeps that error from them.
pub(crate) async fn release_failed<'a>(
    steps: &dyn Steps,
    (leader, lease): LeaderClaim<'a>,
    shared: bool,
) -> LeaderClaim<'a> {
    if shared && leader.is_some() {
        steps.release(lease).await;
        return (leader, Lease::none());
    }
    (leader, lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_lent_comes_back_as_its_own_type() {
        let (key, mut slot) = (7_u64, None::<String>);
        assert_eq!(*Item::of(&key).get::<u64>(), 7);
        let mut lent = Slot::of(&mut slot);
        *lent.get::<String>() = Some("seven".to_string());
        assert_eq!(lent.held::<String>().map(String::as_str), Some("seven"));
        assert_eq!(slot.as_deref(), Some("seven"));
        let value = "eight".to_string();
        assert_eq!(Value::of(&value).item.get::<String>(), "eight");
    }

    #[test]
    #[should_panic(expected = "its own key and value types")]
    fn a_key_taken_back_as_another_type_panics() {
        let key = 7_u32;
        let _ = Item::of(&key).get::<u64>();
    }

    #[test]
    #[should_panic(expected = "its own key and value types")]
    fn a_slot_filled_as_another_type_panics() {
        let mut slot = None::<u32>;
        let _ = Slot::of(&mut slot).get::<u64>();
    }
}
