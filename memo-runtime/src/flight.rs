//! Per-key single-flight: concurrent misses of one key run the computation once.
//!
//! The first caller to miss a key becomes its *leader* and registers a [`RawFlight`] for it; callers
//! that miss the same key meanwhile wait on that flight alone, so unrelated keys never share a lock
//! or a wake-up. The table lock is held only to add or remove a flight, never across a computation,
//! and a hit never looks at this table.
//!
//! Waiters are woken through wakers ([`RawFlight::poll_value`]): a task's, or a sync caller's that
//! parks its thread meanwhile (`block::wait`), so sync and async callers share one table.
//!
//! If the leader panics, or its future is dropped (an async caller cancelled), its [`RawLeader`] guard
//! marks the flight abandoned; the waiters wake up and one of them becomes the next leader. A leader
//! whose computation failed hands its waiters a copy of the error ([`RawLeader::fail`]) where the error
//! can be cloned, and abandons the flight otherwise. A sync
//! leader that calls back into its own key is told so ([`RawJoin::Reentrant`]) instead of waiting for
//! itself. A store shared with other handles or processes, whose changes do not detach this
//! table's flights, may have changed since the leader began: its value is then not handed over
//! (the waiters look at the store again; see [`RawLeader::finish`]).
//!
//! The table, its locks, joining, settling and waiting are compiled once, here: they hold keys
//! as [`Erased`] boxes, compared through a plain function, and values as [`Erased`] boxes too,
//! copied out by their [`Handed`]. Boxes are allocated, filled and freed here as well; only a
//! compare, a clone and the drop glue of each type are its own ([`Boxing`], [`FlightKey`],
//! [`Handed`]), so a memoized function with its own key and value types adds little to its crate's
//! build; the miss loop (`call.rs`) holds the untyped [`RawLeader`] and [`RawFlight`].

use crate::call::{Slot, Value};
use std::alloc::Layout;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::PoisonError;
use std::task::{Context, Poll, Waker};

use crate::erased::{self, DropAt, TypeOps};
use crate::spread::shard_of;
use crate::sync::thread::{self, ThreadId};
use crate::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;

/// How many table shards (a power of two): misses of different keys rarely meet on one lock.
const SHARDS: usize = 32;

/// The in-flight computations of one cache, keyed by `K`, settled with a `V`. `repr(C)`: a
/// [`RawFlights`] first, as a cache seen without its types holds it (`cache::MemoryCache`).
#[repr(C)]
pub(crate) struct Flights<K, V> {
    /// Visible to the cache, which types a table of its own parts without a call
    /// (`Cache::memoized`).
    pub(crate) raw: RawFlights,
    /// The table owns `K`s and `V`s: it is `Send` and `Sync` as a lock over them would be.
    pub(crate) _types: PhantomData<std::sync::Mutex<(K, V)>>,
}

/// One computation in progress, shared by its leader and its waiters; it settles with a `V`
/// (the typed view the tests take of a [`RawFlight`]).
#[cfg(test)]
#[repr(transparent)]
pub(crate) struct Flight<V> {
    raw: RawFlight,
    _value: PhantomData<std::sync::Mutex<V>>,
}

/// What a caller that missed should do (the typed view the tests take; the miss loop takes
/// [`RawJoin`]).
#[cfg(test)]
pub(crate) enum Join<'a, K, V> {
    /// Compute, then call [`Leader::finish`].
    Lead(Leader<'a, K, V>),
    /// Wait for the leader with [`Flight::poll_wait`].
    Wait(Arc<Flight<V>>),
    /// This thread is already computing this key further up its stack: compute without caching.
    Reentrant,
}

/// How a failed leader's waiters get its error: a way to box a copy of it (called only if one
/// waits), or none (they try again, one of them as the next leader).
pub(crate) type Handing<'a> = Option<&'a dyn Fn() -> Box<dyn Failure>>;

/// An error a failed leader hands to its waiters, its type erased so that flights (and the
/// caches holding them) need no error type: each waiter takes a clone and downcasts it.
pub(crate) trait Failure: Send {
    fn clone_box(&self) -> Box<dyn Failure>;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

/// How a flight hands over a leader's value of type `V`, without the type: boxed once for the
/// waiters, then cloned into each waiter's slot. One table per value type; the flight's code has
/// no type parameters.
pub(crate) struct Handed {
    /// Boxes a clone of the `V` at a place for the flight to keep; its `ops` copy it out.
    boxing: Boxing,
}

impl Handed {
    /// The one for `V`.
    pub(crate) const fn of<V: Clone + Send + Sync + 'static>() -> Self {
        Self {
            boxing: Boxing::value::<V>(),
        }
    }

    /// `V`'s ops.
    pub(crate) fn ops(&self) -> TypeOps {
        self.boxing.ops
    }
}

/// A leader's value, kept by its flight for the waiters: a `V` boxed (with `V`'s [`TypeOps`], which
/// copy it out) and `V`'s type id, which the waiter's slot must hold.
struct Kept {
    value: Erased,
    type_id: std::any::TypeId,
}

impl<E: Clone + Send + 'static> Failure for E {
    fn clone_box(&self) -> Box<dyn Failure> {
        Box::new(self.clone())
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            raw: RawFlights::new(),
            _types: PhantomData,
        }
    }
}

impl<K: Hash + Eq + Clone + 'static, V> Flights<K, V> {
    /// Leads the computation of `key`, or joins the one already running. `hash` is the key's
    /// hash by the cache's store: a call hashes its key once, and any good hash picks a shard.
    ///
    /// With `by_thread`, a flight led by this very thread is [`Join::Reentrant`]. Async callers
    /// pass `false`: tasks move between threads and share them, so a thread says nothing there.
    #[cfg(test)]
    pub(crate) fn join(&self, hash: u64, key: &K, by_thread: bool) -> Join<'_, K, V> {
        match self.join_raw(hash, key, by_thread) {
            RawJoin::Lead(raw) => Join::Lead(Leader {
                raw,
                _types: PhantomData,
            }),
            RawJoin::Wait(flight) => Join::Wait(Flight::typed(flight)),
            RawJoin::Reentrant => Join::Reentrant,
        }
    }

    /// Leads the computation of `key` (of hash `hash`, by the cache's store), or joins the one
    /// already running; with `by_thread`, a flight led by this very thread is
    /// [`RawJoin::Reentrant`] (async callers pass `false`: tasks move between threads). Without
    /// the types, for the miss loop: the leader settles with [`RawLeader::finish`] and a waiter
    /// takes the value with [`RawFlight::poll_value`], both with this table's `V`.
    pub(crate) fn join_raw(&self, hash: u64, key: &K, by_thread: bool) -> RawJoin<'_> {
        // SAFETY: `key` is a `K` of this table, with its `FlightKey`.
        unsafe {
            self.raw.join_lent(
                hash,
                std::ptr::from_ref(key).cast(),
                &const { FlightKey::of::<K>() },
                by_thread,
            )
        }
    }

    /// Takes the computation of `key` (of hash `hash`) in progress out of the table: it goes on
    /// for its leader and waiters, and later callers start another (the key was invalidated).
    pub(crate) fn detach(&self, hash: u64, key: &K) {
        // SAFETY: `key` is a `K` of this table, compared with its `K`s by `K`'s equality.
        unsafe {
            self.raw.detach(
                hash,
                std::ptr::from_ref(key).cast(),
                const { FlightKey::of::<K>() }.boxing.ops,
            );
        }
    }

    /// Number of computations in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.raw.shards.iter().map(|s| lock(s).len()).sum()
    }
}

#[cfg(test)]
impl<V: Clone + Send + 'static> Flight<V> {
    /// Waits for the leader on this thread, parked, as a sync caller does; `None` if it gave
    /// up (panicked) or failed.
    #[cfg(test)]
    pub(crate) fn wait(&self) -> Option<V> {
        let waited = std::future::poll_fn(|cx| self.poll_wait(cx));
        #[cfg(loom)]
        return ::loom::future::block_on(waited);
        #[cfg(not(loom))]
        return crate::block::wait(waited);
    }

    /// Waits for the leader as a task: ready with the leader's value, or `None` if it gave up
    /// (panicked, or its future was dropped) and the caller must try again.
    pub(crate) fn poll_wait(&self, cx: &Context<'_>) -> Poll<Option<V>> {
        let mut out = None;
        self.raw
            .poll_value(cx, &mut Slot::of(&mut out))
            .map(|_| out)
    }
}

#[cfg(test)]
impl<V> Flight<V> {
    /// A copy of the failed leader's error, once the flight settled so; `None` otherwise.
    #[cfg(not(loom))]
    pub(crate) fn failure(&self) -> Option<Box<dyn Failure>> {
        self.raw.failure()
    }

    /// The typed view of a flight of a `Flights<_, V>` table.
    fn typed(raw: Arc<RawFlight>) -> Arc<Self> {
        // SAFETY: `Flight<V>` is a transparent `RawFlight`, and a flight of a table keyed for
        // `V` holds (or will hold) only a `V`.
        unsafe { Arc::from_raw(Arc::into_raw(raw).cast::<Self>()) }
    }
}

/// The duty to settle a flight (the typed view the tests take of a [`RawLeader`]).
#[cfg(test)]
pub(crate) struct Leader<'a, K, V> {
    raw: RawLeader<'a>,
    _types: PhantomData<&'a Flights<K, V>>,
}

#[cfg(all(test, not(loom)))]
impl<K, V> Leader<'_, K, V> {
    /// The computation failed: the waiters take a copy of `failure()`'s error, or, without one
    /// (an error that cannot be cloned), try again, one of them as the next leader.
    pub(crate) fn fail(self, failure: Handing<'_>) {
        self.raw.fail(failure, &|| 0);
    }
}

#[cfg(test)]
impl<K, V: Clone + Send + Sync + 'static> Leader<'_, K, V> {
    /// Hands `value` to the waiters and retires the flight.
    pub(crate) fn finish(self, value: &V) {
        self.raw.finish(Value::of(value), &|| 0);
    }
}

/// What code compiled once needs of a table's key type `K` to join a flight
/// ([`RawFlights::join_lent`]).
pub(crate) struct FlightKey {
    /// Boxes a clone of the `K` at a place: the flight's own key; its `ops` compare keys.
    boxing: Boxing,
}

impl FlightKey {
    /// The one for `K`.
    pub(crate) const fn of<K: Clone + Eq + 'static>() -> Self {
        Self {
            boxing: Boxing::key::<K>(),
        }
    }
}

/// What an [`Erased`] box needs of its value's type `T`: its layout, its [`TypeOps`] (a clone into
/// the box; a key's compare too), a drop. Plain data and two functions per type; the boxing
/// itself is compiled once.
pub(crate) struct Boxing {
    layout: Layout,
    ops: TypeOps,
    drop: DropAt,
}

impl Boxing {
    /// The one for a key type `T`, whose ops compare.
    const fn key<T: Clone + Eq>() -> Self {
        Self {
            layout: Layout::new::<T>(),
            ops: erased::key_ops::<T>,
            drop: erased::drop_at::<T>(),
        }
    }

    /// The one for a value type `T`.
    const fn value<T: Clone>() -> Self {
        Self {
            layout: Layout::new::<T>(),
            ops: erased::value_ops::<T>,
            drop: erased::drop_at::<T>(),
        }
    }
}

/// An owned value whose type only the typed side knows: a `Box<T>` without its `T`.
struct Erased {
    ptr: NonNull<()>,
    boxing: &'static Boxing,
}

// SAFETY: built only by the typed wrappers, whose markers carry the `Send` bounds of their `K`
// and `V`; the value is reached only under a lock (compared, cloned) or by its owner.
unsafe impl Send for Erased {}
// SAFETY: as for `Send`.
unsafe impl Sync for Erased {}

impl Erased {
    /// A box of a clone of the value at `value`.
    ///
    /// # Safety
    ///
    /// `value` points to a value of `boxing`'s type, borrowed while the call lasts.
    unsafe fn cloned(value: *const (), boxing: &'static Boxing) -> Self {
        // Freed if the clone panics.
        let memory = Memory::new(boxing.layout);
        // SAFETY: `memory` has room for the value, uninitialised; the caller's promise for the
        // rest.
        unsafe { erased::clone_to(boxing.ops, value, memory.ptr.as_ptr().cast()) };
        Self {
            ptr: memory.keep(),
            boxing,
        }
    }
}

impl Drop for Erased {
    fn drop(&mut self) {
        // Freed even if the value's drop panics.
        let _memory = Memory {
            ptr: self.ptr.cast(),
            layout: self.boxing.layout,
        };
        // SAFETY: `ptr` holds a value of `boxing`'s type (`cloned`); this is its one
        // drop.
        unsafe { (self.boxing.drop)(self.ptr.as_ptr()) }
    }
}

/// Memory for one value of `layout` (none for a zero-sized one), freed when dropped unless kept.
struct Memory {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Memory {
    fn new(layout: Layout) -> Self {
        let ptr = if layout.size() == 0 {
            // A dangling pointer, aligned: a zero-sized value needs no memory.
            NonNull::new(std::ptr::without_provenance_mut(layout.align()))
        } else {
            // SAFETY: the size is not zero.
            NonNull::new(unsafe { std::alloc::alloc(layout) })
        };
        Self {
            ptr: ptr.unwrap_or_else(|| std::alloc::handle_alloc_error(layout)),
            layout,
        }
    }

    /// The memory, no longer freed here: its owner frees it.
    fn keep(self) -> NonNull<()> {
        ManuallyDrop::new(self).ptr.cast()
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated by `new` with this layout, and freed once.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
        }
    }
}

/// One shard of the in-flight table: a key's hash and the key → its flight.
type Table = Mutex<HashTable<Entry>>;

struct Entry {
    hash: u64,
    key: Erased,
    flight: Arc<RawFlight>,
}

/// [`Flights`] without its types.
pub(crate) struct RawFlights {
    /// Dropped by [`RawFlights`]' own `drop`, so that a typed table's drop is a call to it
    /// rather than a copy of it per key and value type.
    shards: ManuallyDrop<Box<[Table]>>,
}

impl Drop for RawFlights {
    #[inline(never)]
    fn drop(&mut self) {
        // SAFETY: dropped once, here; the field is not used after.
        unsafe { ManuallyDrop::drop(&mut self.shards) }
    }
}

/// One computation in progress, shared by its leader and its waiters, without its value's
/// type.
pub(crate) struct RawFlight {
    state: Mutex<Waiting>,
    leader: ThreadId,
}

struct Waiting {
    state: State,
    /// Tasks to wake when the flight settles.
    wakers: Vec<Waker>,
}

enum State {
    Running,
    /// The leader's result, for the waiters that were there to see it: a `V` of the table's.
    Done(Kept),
    /// The leader's computation failed: a copy of its error for each waiter.
    Failed(Box<dyn Failure>),
    /// The leader panicked or was cancelled, or its value may be older than a change a waiter
    /// began after ([`RawLeader::finish`]): the waiters look again, and one may compute.
    Abandoned,
}

/// What a caller that missed should do: lead, wait for the leader with
/// [`RawFlight::poll_value`], or (this thread already computes this key further up its stack)
/// compute without caching.
pub(crate) enum RawJoin<'a> {
    Lead(RawLeader<'a>),
    Wait(Arc<RawFlight>),
    Reentrant,
}

/// The duty to settle a flight. Dropped unfinished (the computation panicked, or the future
/// computing it was dropped), it abandons the flight so that a waiter takes over.
pub(crate) struct RawLeader<'a> {
    flights: &'a RawFlights,
    hash: u64,
    flight: Arc<RawFlight>,
    finished: bool,
    /// The generation of the key's stripe when the lead began (`crate::writes`), set by the
    /// miss loop: its value is stored only if no invalidation came since.
    pub(crate) generation: u64,
    /// The store's count of the changes made by its other handles and other processes, as it
    /// stood when the lead began (`Store::changes_seen`), set by the miss loop: such a change
    /// does not detach this flight, so its value is handed to the waiters only if the count
    /// has not moved once nobody can join any more.
    pub(crate) changes: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held except user `Eq`/`Clone`, which leaves no
    // half-state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RawFlights {
    /// Out of line: compiled once here, not in each key and value type's cache constructor.
    #[inline(never)]
    pub(crate) fn new() -> Self {
        Self {
            shards: ManuallyDrop::new((0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect()),
        }
    }

    /// The table of `hash`, by [`shard_of`]: bits of the hash itself would crowd consecutive
    /// integer keys onto a few tables in some processes.
    fn shard(&self, hash: u64) -> &Table {
        &self.shards[shard_of(hash, SHARDS - 1)]
    }

    /// [`Flights::join_raw`] of the key at `key`, a `K` of this table, which `of` (for `K`)
    /// clones into the flight if it leads.
    ///
    /// # Safety
    ///
    /// `key` points to a `K`, borrowed while the call lasts, of the table's key type, and `of`
    /// is `FlightKey::of::<K>()`.
    pub(crate) unsafe fn join_lent(
        &self,
        hash: u64,
        key: *const (),
        of: &'static FlightKey,
        by_thread: bool,
    ) -> RawJoin<'_> {
        // SAFETY: the caller's promise.
        let key = unsafe { Erased::cloned(key, &of.boxing) };
        self.join(hash, key, by_thread)
    }

    /// Joins the flight of a key equal to `key` by its [`TypeOps`], or registers `key` (of hash
    /// `hash`) and leads it.
    fn join(&self, hash: u64, key: Erased, by_thread: bool) -> RawJoin<'_> {
        let ops = key.boxing.ops;
        let mut table = lock(self.shard(hash));
        // SAFETY: every key in this table is of its key type (`join_raw` and `join_lent` add
        // them), as is `key`, which this call owns while it compares, under the table's lock.
        let same = |e: &Entry| {
            e.hash == hash && unsafe { erased::eq(ops, e.key.ptr.as_ptr(), key.ptr.as_ptr()) }
        };
        if let Some(entry) = table.find(hash, same) {
            let join = if by_thread && entry.flight.leader == thread::current().id() {
                RawJoin::Reentrant
            } else {
                RawJoin::Wait(Arc::clone(&entry.flight))
            };
            drop(table);
            drop(key);
            return join;
        }
        let flight = Arc::new(RawFlight {
            state: Mutex::new(Waiting {
                state: State::Running,
                wakers: Vec::new(),
            }),
            leader: thread::current().id(),
        });
        let entry = Entry {
            hash,
            key,
            flight: Arc::clone(&flight),
        };
        table.insert_unique(hash, entry, |e| e.hash);
        drop(table);
        RawJoin::Lead(RawLeader {
            flights: self,
            hash,
            flight,
            finished: false,
            generation: 0,
            changes: 0,
        })
    }

    /// [`Flights::detach`] of the key at `key`, which `ops` compare with the table's.
    ///
    /// # Safety
    ///
    /// `key` points to a `K` of the table's key type, borrowed while the call lasts, and `ops`
    /// are `erased::key_ops::<K>`.
    unsafe fn detach(&self, hash: u64, key: *const (), ops: TypeOps) {
        let mut table = lock(self.shard(hash));
        // SAFETY: the caller's promise; every key in the table is a `K`.
        let same =
            |e: &Entry| e.hash == hash && unsafe { erased::eq(ops, e.key.ptr.as_ptr(), key) };
        let detached = table
            .find_entry(hash, same)
            .ok()
            .map(|entry| entry.remove().0);
        drop(table);
        // The key copy drops outside the lock (a user `Drop`).
        drop(detached);
    }

    /// Takes the computations in progress of the keys of hash `hash` out of the table, as
    /// [`Flights::detach`] does, without the key (an insert's went into the store): one of
    /// another key of the same hash goes too, and goes on for its callers while later ones
    /// start another.
    pub(crate) fn detach_hash(&self, hash: u64) {
        let mut table = lock(self.shard(hash));
        let mut detached = Vec::new();
        while let Ok(entry) = table.find_entry(hash, |e| e.hash == hash) {
            detached.push(entry.remove().0);
        }
        drop(table);
        // The key copies drop outside the lock (a user `Drop`).
        drop(detached);
    }

    /// Takes every computation in progress out of the table (the cache was cleared).
    pub(crate) fn detach_all(&self) {
        for shard in self.shards.iter() {
            let detached = std::mem::take(&mut *lock(shard));
            drop(detached);
        }
    }

    /// Unregisters `flight`, handing its key back.
    fn remove(&self, hash: u64, flight: &Arc<RawFlight>) -> Option<Erased> {
        let mut table = lock(self.shard(hash));
        let entry = table
            .find_entry(hash, |e| Arc::ptr_eq(&e.flight, flight))
            .ok()?;
        Some(entry.remove().0.key)
    }
}

impl RawLeader<'_> {
    /// Unregisters the flight and drops its key; `true` if someone waits on it (after removal
    /// nobody new can join).
    fn unregister(&self) -> bool {
        drop(self.flights.remove(self.hash, &self.flight));
        Arc::strong_count(&self.flight) > 1
    }

    /// Unregisters the flight and settles it: as failed with `failed()`'s error, which the
    /// waiters take a copy of (built only if one waits), or as abandoned (they try again),
    /// also when `changes()`, read after the unregistering as in [`finish`](Self::finish),
    /// moved from [`changes`](Self::changes).
    fn retire(&self, failed: Handing<'_>, changes: &dyn Fn() -> u64) {
        let waited = self.unregister();
        let failed = failed.filter(|_| waited && changes() == self.changes);
        self.flight
            .settle(failed.map_or(State::Abandoned, |failed| State::Failed(failed())));
    }

    /// The computation failed: the waiters take a copy of `failure()`'s error, or, without one
    /// (an error that cannot be cloned) or after a change `changes()` counts, try again, one of
    /// them as the next leader.
    pub(crate) fn fail(mut self, failure: Handing<'_>, changes: &dyn Fn() -> u64) {
        self.retire(failure, changes);
        self.finished = true;
    }

    /// Hands `value`, a `V` of the leader's table, to the waiters and retires the flight; unless
    /// `changes()`, the store's count of changes by others now, is not [`changes`](Self::changes):
    /// then a waiter may have begun after such a change (one of the key, which would have made
    /// the value older than it), and the waiters look at the store again instead.
    ///
    /// Call it after the value is stored, so a caller arriving after the flight is gone finds it.
    pub(crate) fn finish(mut self, value: Value<'_>, changes: &dyn Fn() -> u64) {
        // After removal nobody new can join: if no one is waiting, skip the clone. The count is
        // read after it too, so that it covers every change a waiter began after.
        if self.unregister() {
            if changes() == self.changes {
                let (ptr, type_id) = value.item.raw();
                // SAFETY: `value` lends a `V` with its `Handed` (`Value::of`).
                let boxed = unsafe { Erased::cloned(ptr, &value.handed.boxing) };
                self.flight.settle(State::Done(Kept {
                    value: boxed,
                    type_id,
                }));
            } else {
                self.flight.settle(State::Abandoned);
            }
        }
        // Only now: if dropping the key or cloning the value panicked, `drop` abandons the
        // flight and the waiters move on instead of waiting for ever.
        self.finished = true;
    }
}

impl Drop for RawLeader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.retire(None, &|| 0);
        }
    }
}

impl RawFlight {
    fn settle(&self, state: State) {
        let wakers = {
            let mut waiting = lock(&self.state);
            waiting.state = state;
            std::mem::take(&mut waiting.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Ready once the flight settles (the lock held, for the typed side to clone); pending
    /// while it runs, its waker registered once.
    fn poll_wait(&self, cx: &Context<'_>) -> Poll<MutexGuard<'_, Waiting>> {
        let mut waiting = lock(&self.state);
        if let State::Running = waiting.state {
            if !waiting.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.wakers.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(waiting)
    }

    /// Waits for the leader as a task: ready once it settles, `true` with a copy of its value
    /// put in `out` (an `Option` of the table's `V`), taken under the flight's lock as a
    /// `Mutex<V>` would, or `false` if it gave up (panicked, or its future was dropped) or
    /// failed.
    pub(crate) fn poll_value(&self, cx: &Context<'_>, out: &mut Slot<'_>) -> Poll<bool> {
        self.poll_wait(cx).map(|settled| match &settled.state {
            State::Done(kept) => {
                let (ptr, type_id) = out.raw();
                assert!(
                    type_id == kept.type_id,
                    "a flight's waiters wait for its value type"
                );
                // SAFETY: `kept.value` is a boxed `V` with `V`'s ops; `out` lends an `Option<V>`
                // (its type id says so), which holds `None` while it waits.
                let value = &kept.value;
                unsafe { erased::clone_into(value.boxing.ops, value.ptr.as_ptr(), ptr) };
                true
            }
            _ => false,
        })
    }

    /// A copy of the failed leader's error, once the flight settled so; `None` otherwise.
    pub(crate) fn failure(&self) -> Option<Box<dyn Failure>> {
        match &lock(&self.state).state {
            State::Failed(failure) => Some(failure.clone_box()),
            _ => None,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    impl<K: Hash + Eq + Clone + 'static, V> Flights<K, V> {
        /// [`Flights::join`], hashing `key` as a store would.
        #[allow(
            clippy::needless_pass_by_value,
            reason = "the tests pass keys as literals"
        )]
        fn join_key(&self, key: K, by_thread: bool) -> Join<'_, K, V> {
            use std::hash::BuildHasher;
            let hash = foldhash::fast::FixedState::default().hash_one(&key);
            self.join(hash, &key, by_thread)
        }
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_leader_many_waiters() {
        let flights = Flights::<u32, String>::default();
        let runs = AtomicUsize::new(0);
        let joined = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| match flights.join_key(7, true) {
                    Join::Lead(leader) => {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Finish only once every other caller is waiting on this flight.
                        while joined.load(Ordering::SeqCst) < 15 {
                            thread::yield_now();
                        }
                        leader.finish(&"seven".to_string());
                    }
                    Join::Wait(flight) => {
                        joined.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(flight.wait().as_deref(), Some("seven"));
                    }
                    Join::Reentrant => unreachable!(),
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
    }

    /// `detach_hash` sets aside the flights of every key of the hash (an insert's key went
    /// into the store), not another hash's; a detached flight still answers its waiters.
    #[test]
    fn detach_hash_sets_aside_the_flights_of_that_hash_only() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(first) = flights.join(7, &1, false) else {
            panic!("first key leads")
        };
        let Join::Wait(waiter) = flights.join(7, &1, false) else {
            panic!("its second caller waits")
        };
        let Join::Lead(_same_hash) = flights.join(7, &2, false) else {
            panic!("another key of the hash leads")
        };
        let Join::Lead(_other) = flights.join(8, &3, false) else {
            panic!("a key of another hash leads")
        };
        flights.raw.detach_hash(7);
        assert_eq!(flights.len(), 1, "the other hash's flight stays");
        assert!(matches!(flights.join(7, &1, false), Join::Lead(_)));
        assert!(matches!(flights.join(7, &2, false), Join::Lead(_)));
        first.finish(&5);
        assert_eq!(waiter.wait(), Some(5), "joined before the detach");
    }

    #[test]
    fn abandoned_flight_wakes_waiters() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join_key(1, true) else {
            panic!("first caller leads")
        };
        let (joined, has_joined) = std::sync::mpsc::channel();
        let waited = thread::scope(|s| {
            let waiter = s.spawn(|| {
                let Join::Wait(flight) = flights.join_key(1, true) else {
                    panic!("second caller waits")
                };
                joined.send(()).unwrap();
                flight.wait()
            });
            has_joined.recv().unwrap();
            drop(leader);
            waiter.join().unwrap()
        });
        assert_eq!(waited, None);
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join_key(1, true), Join::Lead(_)));
    }

    #[test]
    fn a_failed_flight_hands_its_waiters_a_copy_of_the_error() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join_key(1, false) else {
            panic!("first caller leads")
        };
        let Join::Wait(flight) = flights.join_key(1, false) else {
            panic!("second caller waits")
        };
        let error = String::from("failed");
        leader.fail(Some(&|| Box::new(error.clone())));
        assert_eq!(flight.wait(), None, "no value");
        let copy = flight.failure().expect("the error").into_any();
        assert_eq!(
            copy.downcast_ref::<String>().map(String::as_str),
            Some("failed")
        );
        assert_eq!(flights.len(), 0);
        assert!(
            matches!(flights.join_key(1, false), Join::Lead(_)),
            "nothing stays"
        );
    }

    #[test]
    fn a_failure_without_waiters_copies_nothing() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join_key(1, true) else {
            panic!("first caller leads")
        };
        leader.fail(Some(&|| unreachable!("nobody waits")));
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn async_callers_are_never_reentrant() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join_key(1, false) else {
            panic!("first caller leads")
        };
        assert!(matches!(flights.join_key(1, false), Join::Wait(_)));
        leader.finish(&1);
    }

    #[test]
    fn a_task_waiting_is_woken_when_the_flight_settles() {
        use std::sync::atomic::AtomicBool;
        use std::task::Wake;

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join_key(1, false) else {
            panic!("first caller leads")
        };
        let Join::Wait(flight) = flights.join_key(1, false) else {
            panic!("second caller waits")
        };
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let cx = Context::from_waker(&waker);
        assert_eq!(flight.poll_wait(&cx), Poll::Pending);
        assert_eq!(
            flight.poll_wait(&cx),
            Poll::Pending,
            "polled twice, registered once"
        );
        leader.finish(&42);
        assert!(flag.0.load(Ordering::SeqCst));
        assert_eq!(flight.poll_wait(&cx), Poll::Ready(Some(42)));
    }

    #[test]
    fn reentrant_join_is_detected() {
        let flights = Flights::<u32, u32>::default();
        let Join::Lead(leader) = flights.join_key(1, true) else {
            panic!("first caller leads")
        };
        assert!(matches!(flights.join_key(1, true), Join::Reentrant));
        assert!(matches!(flights.join_key(2, true), Join::Lead(_)));
        leader.finish(&1);
    }

    /// A value that counts its clones and drops, of a given size and alignment.
    struct Counted<T>(T, &'static AtomicUsize, &'static AtomicUsize);

    impl<T: Clone> Clone for Counted<T> {
        fn clone(&self) -> Self {
            self.1.fetch_add(1, Ordering::Relaxed);
            Self(self.0.clone(), self.1, self.2)
        }
    }

    impl<T> Drop for Counted<T> {
        fn drop(&mut self) {
            self.2.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[repr(align(64))]
    #[derive(Clone, PartialEq, Eq, Debug)]
    struct Aligned([u8; 3]);

    /// Boxes of clones made without their type drop their value once, whatever its size and
    /// alignment (none, a zero-sized one; more than the allocator's usual, 64).
    fn erased_boxes_of<T: Clone + PartialEq + std::fmt::Debug + Send + 'static>(value: &T) {
        let clones: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let drops: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let counts = || {
            (
                clones.load(Ordering::Relaxed),
                drops.load(Ordering::Relaxed),
            )
        };
        let boxing = &const { Boxing::value::<Counted<T>>() };
        let original = Counted(value.clone(), clones, drops);
        // SAFETY: `original` is a `Counted<T>`, of that boxing, borrowed meanwhile.
        let first = unsafe { Erased::cloned(std::ptr::from_ref(&original).cast(), boxing) };
        assert_eq!(first.ptr.as_ptr().addr() % std::mem::align_of::<T>(), 0);
        assert_eq!(counts(), (1, 0));
        drop(original);
        // SAFETY: `first` holds a `Counted<T>`, borrowed meanwhile.
        let copy = unsafe { Erased::cloned(first.ptr.as_ptr(), boxing) };
        assert_eq!(counts(), (2, 1));
        // SAFETY: `copy` holds a `Counted<T>`.
        let inner = unsafe { &*copy.ptr.as_ptr().cast::<Counted<T>>() };
        assert_eq!(&inner.0, value);
        drop(first);
        assert_eq!(counts(), (2, 2));
        drop(copy);
        assert_eq!(counts(), (2, 3), "each box dropped its value once");
    }

    #[test]
    fn erased_boxes_drop_their_value_once() {
        erased_boxes_of(&String::from("key"));
        erased_boxes_of(&());
        erased_boxes_of(&Aligned([1, 2, 3]));
    }

    /// A key whose every value hashes alike: the table tells them apart by equality alone.
    #[derive(Clone, PartialEq, Eq)]
    struct Colliding(u32);

    impl std::hash::Hash for Colliding {
        fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
    }

    #[test]
    fn keys_of_one_hash_are_told_apart_by_equality() {
        let flights = Flights::<Colliding, u32>::default();
        let Join::Lead(one) = flights.join_key(Colliding(1), true) else {
            panic!("first key leads")
        };
        let Join::Lead(two) = flights.join_key(Colliding(2), true) else {
            panic!("another key of the same hash leads too")
        };
        assert!(matches!(
            flights.join_key(Colliding(1), false),
            Join::Wait(_)
        ));
        assert_eq!(flights.len(), 2);
        one.finish(&1);
        two.finish(&2);
        assert_eq!(flights.len(), 0);
    }

    #[test]
    fn keys_and_values_handed_over_are_dropped() {
        let flights = Flights::<Arc<u32>, Arc<String>>::default();
        let (key, value) = (Arc::new(1), Arc::new("one".to_string()));
        let Join::Lead(leader) = flights.join_key(Arc::clone(&key), true) else {
            panic!("first caller leads")
        };
        let Join::Wait(flight) = flights.join_key(Arc::clone(&key), false) else {
            panic!("second caller waits")
        };
        assert_eq!(
            Arc::strong_count(&key),
            2,
            "the waiter's key is dropped, the leader's kept"
        );
        leader.finish(&value);
        assert_eq!(Arc::strong_count(&key), 1, "the key leaves with the flight");
        assert_eq!(flight.wait().as_deref().map(String::as_str), Some("one"));
        assert_eq!(Arc::strong_count(&value), 2, "the flight's copy");
        drop(flight);
        assert_eq!(Arc::strong_count(&value), 1, "and it goes with the flight");
    }

    /// A value whose clone panics: handing it to a waiter fails half-way through `finish`.
    struct Unclonable;

    impl Clone for Unclonable {
        fn clone(&self) -> Self {
            panic!("no clones")
        }
    }

    #[test]
    fn a_panic_while_finishing_still_releases_the_waiters() {
        let flights = Flights::<u32, Unclonable>::default();
        let Join::Lead(leader) = flights.join_key(1, true) else {
            panic!("first caller leads")
        };
        let (joined, has_joined) = std::sync::mpsc::channel();
        let waited = thread::scope(|s| {
            let waiter = s.spawn(|| {
                let Join::Wait(flight) = flights.join_key(1, true) else {
                    panic!("second caller waits")
                };
                joined.send(()).unwrap();
                flight.wait().is_some()
            });
            has_joined.recv().unwrap();
            let finish = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                leader.finish(&Unclonable);
            }));
            assert!(finish.is_err());
            waiter.join().unwrap()
        });
        assert!(!waited, "the waiter is told to try again, not left waiting");
    }
}

/// Every interleaving of two or three callers, explored by `loom`:
/// `RUSTFLAGS="--cfg loom" cargo test -p memo-runtime --lib --release loom`.
#[cfg(all(test, loom))]
mod loom {
    use super::*;

    impl<K: Hash + Eq + Clone + 'static, V> Flights<K, V> {
        /// [`Flights::join`], hashing `key` as a store would.
        #[allow(
            clippy::needless_pass_by_value,
            reason = "the tests pass keys as literals"
        )]
        fn join_key(&self, key: K, by_thread: bool) -> Join<'_, K, V> {
            use std::hash::BuildHasher;
            let hash = foldhash::fast::FixedState::default().hash_one(&key);
            self.join(hash, &key, by_thread)
        }
    }
    use ::loom::sync::atomic::{AtomicUsize, Ordering};

    /// What a miss does with the table alone: lead and finish with `value`, or wait, and on an
    /// abandoned flight start over. Returns the value the caller ends with.
    fn call(
        flights: &Flights<u8, u32>,
        runs: &AtomicUsize,
        value: u32,
        abandon_first: bool,
    ) -> u32 {
        loop {
            match flights.join_key(1, true) {
                Join::Lead(leader) => {
                    let run = runs.fetch_add(1, Ordering::SeqCst);
                    if abandon_first && run == 0 {
                        // The computation panicked: the guard abandons the flight.
                        drop(leader);
                        return 0;
                    }
                    leader.finish(&value);
                    return value;
                }
                Join::Wait(flight) => {
                    if let Some(value) = flight.wait() {
                        return value;
                    }
                }
                Join::Reentrant => unreachable!("separate threads"),
            }
        }
    }

    #[test]
    fn loom_a_waiter_gets_the_leaders_value_or_leads_itself() {
        ::loom::model(|| {
            let flights = Arc::new(Flights::<u8, u32>::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let other = {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                thread::spawn(move || call(&flights, &runs, 2, false))
            };
            let mine = call(&flights, &runs, 1, false);
            let theirs = other.join().unwrap();
            let runs = runs.load(Ordering::SeqCst);
            // One run: both share it. Two runs: the second joined after the first had finished.
            assert!(
                (runs == 1 && mine == theirs) || (runs == 2 && mine != theirs),
                "runs {runs}, values {mine} and {theirs}"
            );
            assert_eq!(flights.len(), 0, "no flight left behind");
        });
    }

    #[test]
    fn loom_an_abandoned_flight_hands_over_to_a_waiter() {
        ::loom::model(|| {
            let flights = Arc::new(Flights::<u8, u32>::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let other = {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                thread::spawn(move || call(&flights, &runs, 2, true))
            };
            let mine = call(&flights, &runs, 1, true);
            let theirs = other.join().unwrap();
            // Whoever ran first gave up (0); the other computed its own value, never stuck waiting.
            assert!(
                (mine, theirs) == (0, 2) || (mine, theirs) == (1, 0),
                "values {mine} and {theirs}"
            );
            assert_eq!(runs.load(Ordering::SeqCst), 2);
            assert_eq!(flights.len(), 0);
        });
    }

    /// [`call`] for a task: waits through `poll_wait` and its waker.
    fn call_async(flights: &Flights<u8, u32>, runs: &AtomicUsize) -> u32 {
        loop {
            match flights.join_key(1, false) {
                Join::Lead(leader) => {
                    runs.fetch_add(1, Ordering::SeqCst);
                    leader.finish(&7);
                    return 7;
                }
                Join::Wait(flight) => {
                    let waited =
                        ::loom::future::block_on(std::future::poll_fn(|cx| flight.poll_wait(cx)));
                    if let Some(value) = waited {
                        return value;
                    }
                }
                Join::Reentrant => unreachable!("async callers are never reentrant"),
            }
        }
    }

    #[test]
    fn loom_a_task_waiting_is_woken_by_the_leader() {
        ::loom::model(|| {
            let flights = Arc::new(Flights::<u8, u32>::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let other = {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                thread::spawn(move || call_async(&flights, &runs))
            };
            assert_eq!(call_async(&flights, &runs), 7);
            assert_eq!(other.join().unwrap(), 7, "never left pending");
            assert_eq!(flights.len(), 0);
        });
    }
}
