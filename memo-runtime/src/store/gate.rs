//! Reader-writer exclusion for the shards that costs a reader no shared write.
//!
//! A read-write lock makes every reader write the lock word, so two threads hitting the cache
//! pass that cache line back and forth on nearly every hit (measured: two threads got barely more
//! done than one). Here a reader announces itself in its own [stripe](crate::stripe) of the
//! store's [`Gate`] (a line no other thread writes) and then checks that the shard has no writer;
//! a writer raises the shard's flag and then waits until no stripe announces a reader in it. With
//! both sides using sequentially consistent accesses, at least one of them sees the other (the
//! Dekker pattern), so readers and writers exclude each other as with a read-write lock.
//!
//! Threads without a stripe of their own count themselves in the shard's `shared_readers`, an
//! ordinary reader count. A reader that reads again while reading (a key's `Eq` or a value's
//! `Clone` calling back into the store) enters the same shard freely, since its own first read
//! already keeps writers out (its mark, or for a thread without a stripe, the shared count it
//! holds, remembered per thread), and another shard through the shared count. Writers exclude each other with a
//! mutex and are expected to be rare and short (misses).
//!
//! As with any read-write lock, user code that runs inside a read (`Eq`, `Clone`) must not write
//! to the same shard, and user code that runs inside a write (`Eq` and `Hash` of an insert, a
//! weigher, `Drop` of an evicted entry) must not read or write it: that access would wait for its
//! own thread. Such an access is detected and panics instead of hanging.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering};

use crate::stripe::{self, STRIPES};
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use crate::sync::{WriterGuard, WriterLock, lock_writers};

/// A stripe's mark: 0 when outside, `shard + 1` while reading that shard; and, on the line its
/// thread writes anyway, the hits it counted and its last sampled hits (see [`Gate::drain`]).
#[repr(align(128))]
struct Mark {
    reading: AtomicUsize,
    hits: AtomicU64,
    sampled: Record,
}

/// Slots for sampled hits in a [`Record`]; a stripe's last `RING - 1` records are kept until
/// drained, older ones are lost.
pub(crate) const RING: usize = 8;

impl Mark {
    /// Counts a hit by the stripe's owner, the only thread that writes its mark: a plain
    /// read-modify-write is exact.
    #[inline]
    fn count_hit(&self) {
        let hits = self.hits.load(Ordering::Relaxed);
        self.hits.store(hits.wrapping_add(1), Ordering::Relaxed);
    }
}

/// The last sampled hits of a stripe's owner, or of all readers without a mark of their own,
/// for the shadows (`shard/shadow.rs`) to drain. Not modelled by loom: a lossy record, which no
/// exclusion depends on.
struct Record {
    /// Hits recorded: the next goes to `ring[recorded % RING]`.
    recorded: StdAtomicU64,
    drained: StdAtomicU64,
    ring: [StdAtomicU64; RING],
}

impl Record {
    fn new() -> Self {
        Self {
            recorded: StdAtomicU64::new(0),
            drained: StdAtomicU64::new(0),
            ring: std::array::from_fn(|_| StdAtomicU64::new(0)),
        }
    }

    /// Records a hit on a key of hash `hash` if `sampled`, by the stripe's owner: overwrites the
    /// oldest record, never waits. Without a branch (a sampled key is a random one in 8 to 64,
    /// whose branch would mispredict): an unsampled hit writes the next slot, not the count.
    #[inline]
    fn owned(&self, hash: u64, sampled: bool) {
        let n = self.recorded.load(Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation, reason = "below RING")]
        self.ring[(n % RING as u64) as usize].store(hash, Ordering::Relaxed);
        self.recorded
            .store(n.wrapping_add(u64::from(sampled)), Ordering::Release);
    }

    /// Records a sampled hit by any thread (the readers without a mark, who write shared counts
    /// on every hit already). A writer takes its slot before it writes it, so a drain racing
    /// writers may feed a slot's earlier hash in place of the one being written, or a newer one
    /// twice: a hit neither fed nor counted lost now and then, a small error in a sampled score.
    fn shared(&self, hash: u64) {
        let n = self.recorded.fetch_add(1, Ordering::AcqRel);
        #[allow(clippy::cast_possible_truncation, reason = "below RING")]
        self.ring[(n % RING as u64) as usize].store(hash, Ordering::Release);
    }

    /// Hands the hits recorded since the last drain to `feed`; how many were overwritten first.
    fn drain(&self, feed: &mut impl FnMut(u64)) -> u64 {
        let recorded = self.recorded.load(Ordering::Acquire);
        let drained = self.drained.load(Ordering::Relaxed);
        let from = drained.max(recorded.saturating_sub(RING as u64 - 1));
        for n in from..recorded {
            #[allow(clippy::cast_possible_truncation, reason = "below RING")]
            feed(self.ring[(n % RING as u64) as usize].load(Ordering::Acquire));
        }
        self.drained.store(recorded, Ordering::Relaxed);
        from - drained
    }

    /// Hits recorded that wait for a drain.
    fn undrained(&self) -> u64 {
        let recorded = self.recorded.load(Ordering::Relaxed);
        recorded.saturating_sub(self.drained.load(Ordering::Relaxed))
    }
}

/// The per-stripe reader marks of one store.
pub(crate) struct Gate {
    marks: Box<Marks>,
    /// Hits of readers without a mark of their own.
    shared_hits: AtomicU64,
    /// Reads inside a read of the same shard by the same thread: counted only so that leaving
    /// takes the same path as a shared read; nobody waits on this count.
    nested: AtomicUsize,
    /// A hit on a key whose hash has none of these bits set is recorded for the shadows
    /// (`shard/shadow.rs`); all ones: none is (a hash of 0 aside, whose record nobody reads).
    sample: u64,
}

/// The stripes' marks, and the sampled hits of the readers without one (kept here, not in the
/// [`Gate`], whose fields the hit path reads beside the store's).
struct Marks {
    owned: [Mark; STRIPES],
    shared: Record,
}

/// One shard's data with its writer flag. In this order (`repr(C)`): a hit reads the flag and
/// then the first fields of the data, which the shard keeps for it, from the same cache lines.
#[repr(C)]
pub(crate) struct Locked<T> {
    /// Set while a writer waits for readers to leave or writes.
    writing: AtomicBool,
    data: UnsafeCell<T>,
    /// Readers without a stripe of their own, counted the ordinary way.
    shared_readers: AtomicUsize,
    writers: WriterLock<()>,
}

// SAFETY: `data` is only reached through `ReadGuard` (shared, `T: Sync`) and `WriteGuard`
// (exclusive, `T: Send`), which the gate's protocol keeps apart.
unsafe impl<T: Send> Send for Locked<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Locked<T> {}

impl<T> Locked<T> {
    pub(crate) fn new(data: T) -> Self {
        Self {
            writing: AtomicBool::new(false),
            shared_readers: AtomicUsize::new(0),
            writers: WriterLock::new(()),
            data: UnsafeCell::new(data),
        }
    }

    /// The data, through exclusive access to the whole lock (while the store is being built).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Everything of the lock but the data: what the gate's protocol, compiled once for every
    /// `T`, works on.
    #[inline]
    fn door(&self) -> Door<'_> {
        Door {
            writing: &self.writing,
            shared_readers: &self.shared_readers,
            writers: &self.writers,
            address: std::ptr::from_ref(self).addr(),
        }
    }
}

/// A [`Locked`] without its data.
#[derive(Clone, Copy)]
struct Door<'a> {
    writing: &'a AtomicBool,
    shared_readers: &'a AtomicUsize,
    writers: &'a WriterLock<()>,
    /// The `Locked`'s address, by which a thread remembers the shards it reads (see [`HELD`]).
    address: usize,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A gate that no reader or writer has entered (out of line: it is built once per store,
    /// and its stripes' array would be copied into every store's constructor).
    #[inline(never)]
    pub(crate) fn new() -> Self {
        let unmarked = || Mark {
            reading: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            sampled: Record::new(),
        };
        Self {
            marks: Box::new(Marks {
                owned: std::array::from_fn(|_| unmarked()),
                shared: Record::new(),
            }),
            shared_hits: AtomicU64::new(0),
            nested: AtomicUsize::new(0),
            sample: u64::MAX,
        }
    }

    /// Records hits on keys whose hash has none of the bits of `mask` set (see
    /// [`drain`](Self::drain)).
    pub(crate) fn sample(&mut self, mask: u64) {
        self.sample = mask;
    }

    /// Whether a hit on a key of hash `hash` is recorded.
    #[inline]
    pub(crate) fn sampled(&self, hash: u64) -> bool {
        hash & self.sample == 0
    }

    /// Hands the sampled hits recorded since the last drain to `feed`, stripe by stripe and then
    /// the readers' without one; how many were lost, overwritten before this drain. One drainer
    /// at a time (the caller's lock).
    pub(crate) fn drain(&self, mut feed: impl FnMut(u64)) -> u64 {
        let owned = &self.marks.owned[..stripe::high_water().min(STRIPES)];
        (owned.iter().map(|mark| &mark.sampled))
            .chain([&self.marks.shared])
            .map(|record| record.drain(&mut feed))
            .sum()
    }

    /// Sampled hits this thread recorded that wait for a drain (for a thread without a stripe,
    /// those of every reader without a mark).
    pub(crate) fn undrained(&self) -> u64 {
        (self.marks.owned.get(stripe::claimed()))
            .map_or(&self.marks.shared, |mark| &mark.sampled)
            .undrained()
    }
}

/// Shared access to a shard; leaving (dropping its [`Entry`]) clears the reader's mark.
///
/// Not `Send`: the mark belongs to the thread's stripe, so only that thread may clear it.
pub(crate) struct ReadGuard<'a, T> {
    data: &'a T,
    entry: Entry<'a>,
    _this_thread: PhantomData<*const ()>,
}

/// How a reader got in, so that it counts and leaves the same way: dropped, it leaves.
enum Entry<'a> {
    /// Through its stripe's mark.
    Marked(&'a Mark),
    /// Through the shard's reader count; hits go to the gate's shared counter. `held`: the shard
    /// this thread entered this way, forgotten when it leaves (see [`HELD`]).
    Shared {
        readers: &'a AtomicUsize,
        hits: &'a AtomicU64,
        held: Option<usize>,
    },
}

thread_local! {
    /// The shards (their `Locked` addresses) this thread reads through a shared count: a read
    /// inside one of them enters freely instead of waiting for a writer that waits for it.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// The same for reads made after `HELD` was destroyed (from another thread-local's
    /// destructor): without a destructor of its own, it lasts as long as the thread.
    static LATE: [Cell<usize>; LATE_HELD] = const { [const { Cell::new(0) }; LATE_HELD] };
    /// The shard (its `Locked` address) this thread writes, or 0; without a destructor too.
    /// Not under loom, whose threads share one.
    #[cfg(not(loom))]
    static WRITING: Cell<usize> = const { Cell::new(0) };
}

/// Shards a thread may read at once, one inside another, after `HELD` is gone; past them a
/// read is not remembered (a read nested inside it may then wait for a writer).
const LATE_HELD: usize = 4;

/// Panics if this thread writes the shard at `locked`: user code run inside the write reads or
/// writes that shard, and would wait for its own thread for ever.
fn refuse_own_write(locked: usize) {
    #[cfg(not(loom))]
    assert!(
        WRITING.with(Cell::get) != locked,
        "memo: a key's `Eq` or `Hash`, a value's `Drop` or a weigher used the cache it was written to"
    );
    #[cfg(loom)]
    let _ = locked;
}

/// Whether this thread reads the shard at `locked` through a shared count.
fn holds(locked: usize) -> bool {
    HELD.try_with(|held| held.borrow().contains(&locked))
        .unwrap_or_else(|_| LATE.with(|late| late.iter().any(|at| at.get() == locked)))
}

/// Remembers that this thread reads the shard at `locked` through a shared count; whether it
/// could (see [`LATE_HELD`]).
fn hold(locked: usize) -> bool {
    HELD.try_with(|held| held.borrow_mut().push(locked)).is_ok()
        || LATE.with(|late| {
            let free = late.iter().find(|at| at.get() == 0);
            free.inspect(|at| at.set(locked)).is_some()
        })
}

/// Forgets one read of the shard at `locked` that [`hold`] remembered.
fn unhold(locked: usize) {
    let held = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = held.iter().rposition(|&a| a == locked) {
            held.swap_remove(at);
        }
    });
    if held.is_err() {
        LATE.with(|late| {
            if let Some(at) = late.iter().find(|at| at.get() == locked) {
                at.set(0);
            }
        });
    }
}

/// Exclusive access to a shard. Not `Send`, like the reader's guard.
pub(crate) struct WriteGuard<'a, T> {
    locked: &'a Locked<T>,
    _writers: WriterGuard<'a, ()>,
    /// What [`WRITING`] held before this write, put back when it ends.
    #[cfg(not(loom))]
    outer: usize,
    _this_thread: PhantomData<*const ()>,
}

impl Gate {
    /// Runs `find` on shard number `shard` (its `locked`) as a reader and counts a hit when it
    /// finds something: the store's hit path. Goes the way of [`read`](Self::read) when
    /// [`try_hit`](Self::try_hit) cannot.
    #[cfg(test)]
    pub(crate) fn hit<T, R>(
        &self,
        shard: usize,
        locked: &Locked<T>,
        find: impl Fn(&T) -> Option<R>,
    ) -> Option<R> {
        self.hit_as(stripe::current(), shard, locked, 1, find)
    }

    /// [`hit`](Self::hit) by the thread holding stripe `stripe` (see [`read_as`](Self::read_as)).
    #[cfg(test)]
    fn hit_as<T, R>(
        &self,
        stripe: usize,
        shard: usize,
        locked: &Locked<T>,
        hash: u64,
        find: impl Fn(&T) -> Option<R>,
    ) -> Option<R> {
        self.try_hit_as(stripe, shard, locked, hash, &find)
            .unwrap_or_else(|SlowPath| {
                let guard = self.read_as(stripe, shard, locked);
                let found = find(&guard);
                if found.is_some() {
                    self.count_hit(&guard, hash);
                }
                found
            })
    }

    /// [`hit`](Self::hit)'s fast path alone: a thread with a stripe that is not reading already
    /// marks it, checks for a writer, finds, counts and unmarks. [`SlowPath`] for any other
    /// reader, or one that meets a writer: the caller then reads the slower way, out of line, so
    /// that the fast path keeps `find`'s captures in registers.
    // Forced in optimized builds, with `try_hit_as`: out of line, the lookup's captures go
    // through memory (measured 0.4 ns of 8.4 per hit, benches/peers.rs).
    #[allow(clippy::inline_always, reason = "measured on the hit path")]
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline)]
    pub(crate) fn try_hit<T, R>(
        &self,
        shard: usize,
        locked: &Locked<T>,
        hash: u64,
        find: impl FnOnce(&T) -> Option<R>,
    ) -> Result<Option<R>, SlowPath> {
        self.try_hit_as(stripe::claimed(), shard, locked, hash, find)
    }

    /// [`try_hit`](Self::try_hit) by the thread holding stripe `stripe` (see
    /// [`read_as`](Self::read_as)).
    #[allow(clippy::inline_always, reason = "measured on the hit path")]
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline)]
    fn try_hit_as<T, R>(
        &self,
        stripe: usize,
        shard: usize,
        locked: &Locked<T>,
        hash: u64,
        find: impl FnOnce(&T) -> Option<R>,
    ) -> Result<Option<R>, SlowPath> {
        if stripe >= STRIPES {
            return Err(SlowPath);
        }
        // SAFETY: checked just above; `marks` has `STRIPES` entries.
        let mark = unsafe { self.marks.owned.get_unchecked(stripe) };
        if mark.reading.load(Ordering::Relaxed) != 0 {
            return Err(SlowPath);
        }
        mark.reading.store(shard + 1, Ordering::SeqCst);
        loom_seq_cst();
        // Clears the mark however `find` ends (a key's `Eq` may panic).
        let _unmark = Unmark(&mark.reading);
        if locked.writing.load(Ordering::SeqCst) {
            return Err(SlowPath);
        }
        // SAFETY: as in `read_as`.
        let found = find(unsafe { &*locked.data.get() });
        if found.is_some() {
            mark.count_hit();
            mark.sampled.owned(hash, self.sampled(hash));
        }
        Ok(found)
    }

    /// Enters shard number `shard` (its `locked`) as a reader.
    #[inline]
    pub(crate) fn read<'a, T>(&'a self, shard: usize, locked: &'a Locked<T>) -> ReadGuard<'a, T> {
        self.read_as(stripe::current(), shard, locked)
    }

    /// [`read`](Self::read) by the thread holding stripe `stripe` (the loom tests name it: their
    /// threads share one OS thread, and so its thread-locals).
    #[inline]
    fn read_as<'a, T>(
        &'a self,
        stripe: usize,
        shard: usize,
        locked: &'a Locked<T>,
    ) -> ReadGuard<'a, T> {
        let entry = self.enter(stripe, shard, locked.door());
        // SAFETY: `enter` returns once this reader keeps writers out of the shard (see there).
        let data = unsafe { &*locked.data.get() };
        ReadGuard::new(data, entry)
    }

    /// Enters the shard behind `door` as a reader: returns once no writer may write it until
    /// the entry is dropped.
    fn enter<'a>(&'a self, stripe: usize, shard: usize, door: Door<'a>) -> Entry<'a> {
        if let Some(mark) = self.marks.owned.get(stripe)
            && mark.reading.load(Ordering::Relaxed) == 0
        {
            loop {
                mark.reading.store(shard + 1, Ordering::SeqCst);
                loom_seq_cst();
                if !door.writing.load(Ordering::SeqCst) {
                    // A writer sets `writing` before it waits for marks to leave this shard; we
                    // marked first and saw no writer, so none writes until we leave.
                    return Entry::Marked(mark);
                }
                mark.reading.store(0, Ordering::Release);
                refuse_own_write(door.address);
                wait_while(door.writing);
            }
        }
        self.enter_unmarked(stripe, shard, door)
    }

    /// A reader whose mark is taken (a read inside a read) or who has no stripe.
    #[cold]
    fn enter_unmarked<'a>(&'a self, stripe: usize, shard: usize, door: Door<'a>) -> Entry<'a> {
        let marked = (self.marks.owned.get(stripe))
            .is_some_and(|mark| mark.reading.load(Ordering::Relaxed) == shard + 1);
        if marked || holds(door.address) {
            self.nested.fetch_add(1, Ordering::Relaxed);
            // This thread's own read of this shard is still open and keeps writers out.
            return Entry::Shared {
                readers: &self.nested,
                hits: &self.shared_hits,
                held: None,
            };
        }
        self.enter_shared(door)
    }

    fn enter_shared<'a>(&'a self, door: Door<'a>) -> Entry<'a> {
        let readers = door.shared_readers;
        loop {
            readers.fetch_add(1, Ordering::SeqCst);
            loom_seq_cst();
            if !door.writing.load(Ordering::SeqCst) {
                // As in `enter`, with the shared count in place of the mark. Nothing between
                // counting in and the entry that counts out may panic: `hold` does not, even
                // from a thread-local's destructor.
                return Entry::Shared {
                    readers,
                    hits: &self.shared_hits,
                    held: hold(door.address).then_some(door.address),
                };
            }
            readers.fetch_sub(1, Ordering::Release);
            refuse_own_write(door.address);
            wait_while(door.writing);
        }
    }

    /// Enters shard number `shard` (its `locked`) as its only writer, once its readers have left.
    pub(crate) fn write<'a, T>(&'a self, shard: usize, locked: &'a Locked<T>) -> WriteGuard<'a, T> {
        self.write_as(stripe::current(), stripe::high_water(), shard, locked)
    }

    /// [`write`](Self::write) by the thread holding stripe `stripe`, while stripes below
    /// `claimed` may be in use (see [`read_as`](Self::read_as)).
    fn write_as<'a, T>(
        &'a self,
        stripe: usize,
        claimed: usize,
        shard: usize,
        locked: &'a Locked<T>,
    ) -> WriteGuard<'a, T> {
        let writers = self.enter_writer(stripe, claimed, shard, locked.door());
        WriteGuard {
            _writers: writers,
            #[cfg(not(loom))]
            outer: WRITING.with(|writing| writing.replace(locked.door().address)),
            locked,
            _this_thread: PhantomData,
        }
    }

    /// Enters the shard behind `door` as its only writer, once its readers have left; its
    /// `writing` flag stays raised until the caller lowers it.
    fn enter_writer<'a>(
        &'a self,
        stripe: usize,
        claimed: usize,
        shard: usize,
        door: Door<'a>,
    ) -> WriterGuard<'a, ()> {
        let marked = (self.marks.owned.get(stripe))
            .is_some_and(|mark| mark.reading.load(Ordering::Relaxed) == shard + 1);
        assert!(
            !marked && !holds(door.address),
            "memo: a key's `Eq` or a value's `Clone` wrote to the cache it was read from"
        );
        refuse_own_write(door.address);
        let writers = lock_writers(door.writers);
        door.writing.store(true, Ordering::SeqCst);
        loom_seq_cst();
        // Read again after `writing` is raised: a thread that claimed its stripe since the
        // caller's reading, and saw `writing` still lowered, raised the high water before (all
        // `SeqCst`), so its mark is scanned.
        let claimed = claimed.max(stripe::high_water());
        for mark in &self.marks.owned[..claimed.min(STRIPES)] {
            wait_until(|| mark.reading.load(Ordering::SeqCst) != shard + 1);
        }
        wait_until(|| door.shared_readers.load(Ordering::SeqCst) == 0);
        writers
    }

    /// Counts a hit on a key of hash `hash` by the reader `guard`, recording it if sampled.
    #[inline]
    pub(crate) fn count_hit<T>(&self, guard: &ReadGuard<'_, T>, hash: u64) {
        guard.count_hit();
        if self.sampled(hash) {
            match guard.entry {
                Entry::Marked(mark) => mark.sampled.owned(hash, true),
                Entry::Shared { .. } => self.marks.shared.shared(hash),
            }
        }
    }

    /// Hits counted by all readers.
    pub(crate) fn hits(&self) -> u64 {
        self.marks
            .owned
            .iter()
            .map(|mark| mark.hits.load(Ordering::Relaxed))
            .fold(self.shared_hits.load(Ordering::Relaxed), u64::wrapping_add)
    }
}

/// Spins briefly, then yields, then sleeps in short naps, until `done` holds: waits are short
/// (a write of one entry), but a long one (a large shard's sweep) must not burn a core.
fn wait_until(mut done: impl FnMut() -> bool) {
    let mut tries = 0_u32;
    while !done() {
        // The model checker must be told that this thread waits for another.
        #[cfg(loom)]
        ::loom::thread::yield_now();
        match tries {
            0..64 => std::hint::spin_loop(),
            64..128 => std::thread::yield_now(),
            _ => std::thread::sleep(std::time::Duration::from_micros(50)),
        }
        tries = tries.saturating_add(1);
    }
}

/// Nothing, except under loom: loom models `SeqCst` accesses as `AcqRel` (a documented
/// limitation that raises false alarms on the Dekker pattern above), but models `SeqCst` fences
/// fully, so a fence after each `SeqCst` store restores, for the checker, the order the language
/// guarantees the real code.
#[inline(always)]
fn loom_seq_cst() {
    #[cfg(loom)]
    crate::sync::atomic::fence(Ordering::SeqCst);
}

fn wait_while(flag: &AtomicBool) {
    wait_until(|| !flag.load(Ordering::Acquire));
}

impl<'a, T> ReadGuard<'a, T> {
    const fn new(data: &'a T, entry: Entry<'a>) -> Self {
        Self {
            data,
            entry,
            _this_thread: PhantomData,
        }
    }

    /// Counts a hit by this reader.
    #[inline]
    pub(crate) fn count_hit(&self) {
        match self.entry {
            Entry::Marked(mark) => mark.count_hit(),
            Entry::Shared { hits, .. } => {
                hits.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.data
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        match *self {
            Entry::Marked(mark) => mark.reading.store(0, Ordering::Release),
            Entry::Shared { readers, held, .. } => {
                if let Some(address) = held {
                    unhold(address);
                }
                readers.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

/// Why [`Gate::try_hit`] did not look: the reader must take the slower way ([`Gate::read`]).
#[derive(Debug)]
pub(crate) struct SlowPath;

/// Clears a reader's mark when dropped.
struct Unmark<'a>(&'a AtomicUsize);

impl Drop for Unmark<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the writer excludes every reader and every other writer.
        unsafe { &*self.locked.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.locked.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        WRITING.with(|writing| writing.set(self.outer));
        self.locked.writing.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A writer that read the high water before a thread claimed a fresh stripe above it, and
    /// that thread entered before the writer raised `writing`: the writer still waits for it
    /// (`write_as` with the earlier reading is `write` in that interleaving). Threads claim
    /// stripes (and keep them, blocked) until one claims one at or above the writer's reading;
    /// that one reads, and holds its read until told. With no stripe left above the reading,
    /// no thread of this process can enter that way, and there is nothing to test.
    #[test]
    fn a_reader_on_a_stripe_claimed_after_the_writer_looked_is_waited_for() {
        let (gate, locked) = (Gate::default(), Locked::new(0_u64));
        let wrote = AtomicBool::new(false);
        let keep = std::sync::RwLock::new(());
        let (go, reader_goes) = std::sync::mpsc::channel::<()>();
        let reader_goes = std::sync::Mutex::new(reader_goes);
        let _ = stripe::current();
        // What `write` reads first.
        let claimed = stripe::high_water();
        std::thread::scope(|scope| {
            // Held while the others keep their stripes, and the reader's word: both let go
            // however this closure ends, so that the scope's threads end too.
            let (kept, go) = (keep.write().unwrap(), go);
            let (told, claims) = std::sync::mpsc::channel();
            let reading = loop {
                let (told, keep, gate, locked, reader_goes) =
                    (told.clone(), &keep, &gate, &locked, &reader_goes);
                scope.spawn(move || {
                    let mine = stripe::current();
                    if (claimed..STRIPES).contains(&mine) {
                        let read = gate.read(0, locked);
                        let seen = *read;
                        told.send((mine, true)).unwrap();
                        let _ = reader_goes.lock().unwrap().recv();
                        assert_eq!(seen, *read, "the value changed under a read");
                    } else {
                        told.send((mine, false)).unwrap();
                        drop(keep.read());
                    }
                });
                match claims.recv().unwrap() {
                    (_, true) => break true,
                    (mine, false) if mine >= STRIPES => break false,
                    _ => {}
                }
            };
            if reading {
                let (gate, locked, wrote) = (&gate, &locked, &wrote);
                scope.spawn(move || {
                    *gate.write_as(stripe::current(), claimed, 0, locked) += 1;
                    wrote.store(true, Ordering::SeqCst);
                });
                std::thread::sleep(std::time::Duration::from_millis(300));
                let during = wrote.load(Ordering::SeqCst);
                go.send(()).unwrap();
                drop(kept);
                assert!(!during, "a writer wrote while a reader held the shard");
            } else {
                drop(kept);
            }
        });
    }

    /// Writers keep two fields equal; readers must never see them differ.
    #[test]
    fn readers_never_see_a_write_in_progress() {
        let gate = Gate::default();
        let shards: Vec<Locked<(u64, u64)>> = (0..4).map(|_| Locked::new((0, 0))).collect();
        let torn = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (gate, shards, torn) = (&gate, &shards, &torn);
                s.spawn(move || {
                    for i in 0..20_000_u64 {
                        let shard = ((i + t) % 4) as usize;
                        if i % 16 == 0 {
                            let mut w = gate.write(shard, &shards[shard]);
                            w.0 += 1;
                            std::hint::spin_loop();
                            w.1 += 1;
                        } else {
                            let r = gate.read(shard, &shards[shard]);
                            if r.0 != r.1 {
                                torn.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(torn.load(Ordering::Relaxed), 0);
        let writes: u64 = shards.iter().map(|s| gate.read(0, s).0).sum();
        assert_eq!(writes, 4 * 20_000 / 16);
    }

    #[test]
    fn a_reader_inside_a_reader_enters_freely() {
        let gate = Gate::default();
        let locked = Locked::new(5);
        let outer = gate.read(0, &locked);
        let inner = gate.read(0, &locked);
        assert_eq!(*outer + *inner, 10);
        assert!(matches!(inner.entry, Entry::Shared { .. }));
        // A nested read must not wait for a writer that waits for the outer read.
        std::thread::scope(|s| {
            let writer = s.spawn(|| *gate.write(0, &locked) += 1);
            std::thread::sleep(std::time::Duration::from_millis(20));
            let again = gate.read(0, &locked);
            assert_eq!(*again, 5);
            drop((again, inner, outer));
            writer.join().unwrap();
        });
        assert_eq!(*gate.read(0, &locked), 6);
        // Inside a read of one shard, a read of another goes through the shared count.
        let other = Locked::new(1);
        let outer = gate.read(0, &locked);
        let elsewhere = gate.read(1, &other);
        assert!(matches!(elsewhere.entry, Entry::Shared { .. }));
        drop((elsewhere, outer));
    }

    /// The same, for a thread without a stripe (past the first `STRIPES` threads): its nested
    /// read must not wait for the writer either, nor may it write inside its read.
    #[test]
    fn a_reader_without_a_stripe_inside_a_reader_enters_freely() {
        let gate = Gate::default();
        let locked = Locked::new(5);
        std::thread::scope(|s| {
            s.spawn(|| {
                stripe::go_without_stripe();
                let outer = gate.read(0, &locked);
                assert!(matches!(outer.entry, Entry::Shared { held: Some(_), .. }));
                std::thread::scope(|s| {
                    let writer = s.spawn(|| *gate.write(0, &locked) += 1);
                    while !locked.writing.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    // The writer waits for `outer`; this read must not wait for the writer.
                    let again = gate.read(0, &locked);
                    assert_eq!(*again, 5);
                    drop((again, outer));
                    writer.join().unwrap();
                });
                let reading = gate.read(0, &locked);
                let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    drop(gate.write(0, &locked));
                }));
                assert!(
                    write.is_err(),
                    "a write inside a read is refused, not a hang"
                );
                drop(reading);
                assert_eq!(*gate.read(0, &locked), 6);
            });
        });
    }

    /// A thread with a stripe may not write a shard inside its own read of it either (a key's
    /// `Eq` or a value's `Clone` inserting into the cache it is read from): the write panics
    /// rather than waits for ever for the read it is inside.
    #[test]
    fn a_write_inside_a_read_on_a_stripe_panics() {
        use std::sync::mpsc::RecvTimeoutError;
        let gate: &'static Gate = Box::leak(Box::default());
        let locked: &'static Locked<u64> = Box::leak(Box::new(Locked::new(0)));
        for _ in 0..1_000 {
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                if stripe::current() >= STRIPES {
                    let _ = done.send(None);
                    return;
                }
                let reading = gate.read(0, locked);
                assert!(matches!(reading.entry, Entry::Marked(_)));
                let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    drop(gate.write(0, locked));
                }));
                drop(reading);
                *gate.write(0, locked) += 1;
                let _ = done.send(Some((write.is_err(), *gate.read(0, locked))));
            });
            match finished.recv_timeout(std::time::Duration::from_secs(5)) {
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
                Ok(Some(outcome)) => return assert_eq!(outcome, (true, 1)),
                Err(RecvTimeoutError::Timeout) => panic!("a write inside a read waits for ever"),
                Err(RecvTimeoutError::Disconnected) => panic!("the reading thread panicked"),
            }
        }
        panic!("no thread found a free stripe");
    }

    /// The hit path counts only what it found, lets a hit inside a hit through, and clears its
    /// mark when the lookup panics, so that a writer does not wait for it forever.
    #[test]
    fn the_hit_path_counts_nests_and_survives_a_panic() {
        let gate = Gate::default();
        let locked = Locked::new(7);
        assert_eq!(gate.hit(0, &locked, |&n| Some(n)), Some(7));
        assert_eq!(gate.hit(0, &locked, |_| None::<u32>), None);
        let nested = gate.hit(0, &locked, |&n| gate.hit(0, &locked, |&m| Some(n + m)));
        assert_eq!(nested, Some(14));
        assert_eq!(gate.hits(), 3);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gate.hit(0, &locked, |_| -> Option<()> {
                panic!("a key's Eq panicked")
            })
        }));
        assert!(panicked.is_err());
        *gate.write(0, &locked) += 1;
        assert_eq!(gate.hit(0, &locked, |&n| Some(n)), Some(8));
    }

    /// A hit on a sampled key writes only the reader's own mark: nothing shared changes, the
    /// record waits for a drain, and records not drained in time are overwritten, not waited on.
    #[test]
    fn sampled_hits_are_kept_on_the_readers_own_stripe() {
        on_a_stripe(sampled_hits_kept_on_this_threads_stripe);
    }

    /// Runs `test` on a thread that holds a stripe: the test's own thread may have found them
    /// all taken (other tests hold more than `STRIPES` threads for a while).
    fn on_a_stripe(test: fn()) {
        for _ in 0..1_000 {
            let ran = std::thread::spawn(move || {
                stripe::current() < STRIPES && {
                    test();
                    true
                }
            });
            if ran.join().unwrap() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no stripe free for 10 s");
    }

    fn sampled_hits_kept_on_this_threads_stripe() {
        let mut gate = Gate::default();
        gate.sample(0xff00);
        let locked = Locked::new(7);
        let (sampled, unsampled) = (0x1_0000_0001_u64, 0x100_u64);
        assert!(gate.sampled(sampled) && !gate.sampled(unsampled));
        let me = stripe::current();
        let others = |gate: &Gate| -> u64 {
            (gate.marks.owned.iter().enumerate())
                .filter(|&(i, _)| i != me)
                .map(|(_, m)| {
                    m.sampled.recorded.load(Ordering::Relaxed) + m.hits.load(Ordering::Relaxed)
                })
                .sum()
        };
        let hit = |hash, found: bool| {
            gate.try_hit(0, &locked, hash, |&n| found.then_some(n))
                .ok()
                .flatten()
        };
        for _ in 0..3 {
            assert_eq!(hit(sampled, true), Some(7));
        }
        assert_eq!(hit(unsampled, true), Some(7));
        assert_eq!(hit(sampled, false), None);
        assert_eq!(gate.shared_hits.load(Ordering::Relaxed), 0);
        assert_eq!(others(&gate), 0);
        assert_eq!(gate.undrained(), 3);
        let mut drained = Vec::new();
        assert_eq!(gate.drain(|h| drained.push(h)), 0);
        assert_eq!(drained, [sampled; 3]);
        assert_eq!(gate.undrained(), 0);
        // More than a ring's worth before the next drain: the oldest are lost.
        for i in 0..RING as u64 + 5 {
            assert_eq!(hit(sampled + (i << 16), true), Some(7));
        }
        drained.clear();
        assert_eq!(gate.drain(|h| drained.push(h)), 6);
        let kept: Vec<u64> = (6..RING as u64 + 5).map(|i| sampled + (i << 16)).collect();
        assert_eq!(drained, kept);
        // The slow path records too.
        let guard = gate.read(0, &locked);
        gate.count_hit(&guard, sampled);
        drop(guard);
        assert_eq!(gate.undrained(), 1);
        assert_eq!(others(&gate), 0);
    }

    /// A thread without a stripe records its sampled hits too, in the gate's shared record,
    /// which is drained with the marks; it writes no mark.
    #[test]
    fn sampled_hits_of_threads_without_a_stripe_are_kept_too() {
        let mut gate = Gate::default();
        gate.sample(0xff00);
        let locked = Locked::new(7);
        let (sampled, unsampled) = (0x1_0000_0001_u64, 0x100_u64);
        std::thread::scope(|s| {
            s.spawn(|| {
                stripe::go_without_stripe();
                for hash in [sampled, unsampled, sampled + 1] {
                    let guard = gate.read(0, &locked);
                    gate.count_hit(&guard, hash);
                }
                assert_eq!(gate.undrained(), 2);
            });
        });
        assert_eq!(gate.hits(), 3);
        let marked: u64 = (gate.marks.owned.iter())
            .map(|m| m.sampled.recorded.load(Ordering::Relaxed))
            .sum();
        assert_eq!(marked, 0);
        let mut drained = Vec::new();
        assert_eq!(gate.drain(|h| drained.push(h)), 0);
        assert_eq!(drained, [sampled, sampled + 1]);
        assert_eq!(gate.marks.shared.undrained(), 0);
    }

    /// A read inside a read of the same shard, by a thread with a stripe, goes through the
    /// shared count; its sampled hit is recorded in the shared record, not lost.
    #[test]
    fn sampled_hits_of_reads_inside_a_read_are_kept_too() {
        on_a_stripe(|| {
            let mut gate = Gate::default();
            gate.sample(0xff00);
            let locked = Locked::new(7);
            let sampled = 0x1_0000_0001_u64;
            let outer = gate.read(0, &locked);
            let inner = gate.read(0, &locked);
            gate.count_hit(&inner, sampled);
            drop((inner, outer));
            assert_eq!(gate.marks.shared.undrained(), 1);
            let mut drained = Vec::new();
            assert_eq!(gate.drain(|h| drained.push(h)), 0);
            assert_eq!(drained, [sampled]);
        });
    }

    /// Threads without a stripe recording at once while another drains: the drains account for
    /// every sampled hit (fed or counted lost), and feed only hashes that were recorded (or a
    /// slot's first 0, racing its first write).
    #[test]
    fn shared_records_and_drains_account_for_every_hit() {
        let mut gate = Gate::default();
        gate.sample(0xff00);
        let locked = Locked::new(());
        let (mut drained, mut lost, mut strays) = (0, 0, 0);
        let recorded = |hash: u64| {
            let (reader, i) = (hash >> 48, hash >> 16 & 0xffff_ffff);
            hash.trailing_zeros() >= 16 && reader < 4 && (1..=20_000).contains(&i)
        };
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..4_u64)
                .map(|t| {
                    let (gate, locked) = (&gate, &locked);
                    s.spawn(move || {
                        stripe::go_without_stripe();
                        for i in 1..=20_000_u64 {
                            let guard = gate.read(0, locked);
                            gate.count_hit(&guard, (t << 32 | i) << 16);
                        }
                    })
                })
                .collect();
            loop {
                let finished = readers
                    .iter()
                    .all(std::thread::ScopedJoinHandle::is_finished);
                lost += gate.drain(|hash| {
                    drained += 1;
                    strays += u64::from(hash != 0 && !recorded(hash));
                });
                if finished {
                    break;
                }
            }
        });
        assert_eq!(drained + lost, 80_000, "{drained} drained, {lost} lost");
        assert_eq!(gate.marks.shared.undrained(), 0);
        assert_eq!(strays, 0, "hashes fed that no reader recorded");
    }

    #[test]
    fn hits_are_counted_on_marks_and_on_the_shared_path() {
        let gate = Gate::default();
        let locked = Locked::new(());
        let outer = gate.read(0, &locked);
        outer.count_hit();
        let inner = gate.read(0, &locked);
        inner.count_hit();
        drop((inner, outer));
        std::thread::scope(|s| {
            s.spawn(|| gate.read(0, &locked).count_hit());
        });
        assert_eq!(gate.hits(), 3);
    }

    /// A read or a write of a shard from inside this thread's own write of it (user code run
    /// under the write) panics rather than waits for ever; the write goes on, and a read of
    /// another shard inside it is served.
    #[test]
    fn a_read_inside_the_threads_own_write_panics() {
        let gate: &'static Gate = Box::leak(Box::default());
        let locked: &'static Locked<u64> = Box::leak(Box::new(Locked::new(0)));
        let other: &'static Locked<u64> = Box::leak(Box::new(Locked::new(7)));
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut write = gate.write(0, locked);
            let try_it = |access: &dyn Fn()| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(access)).is_err()
            };
            let refused = [
                try_it(&|| drop(gate.read(0, locked))),
                try_it(&|| drop(gate.write(0, locked))),
            ];
            assert_eq!(*gate.read(1, other), 7);
            *write += 1;
            drop(write);
            let _ = done.send((refused, *gate.read(0, locked)));
        });
        let outcome = finished.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(
            outcome.ok(),
            Some(([true, true], 1)),
            "a read or write inside a write waits for ever"
        );
    }

    /// A read from a thread-local's destructor, after the thread's record of the shards it
    /// holds was destroyed, neither panics (which would abort the process) nor leaves the
    /// shard's shared count raised (every later writer would wait for ever); a read inside it
    /// is still known for one.
    #[test]
    fn a_read_from_a_thread_local_destructor_counts_out() {
        use std::sync::OnceLock;
        use std::sync::atomic::AtomicU8;
        static GATE: OnceLock<Gate> = OnceLock::new();
        static LOCKED: OnceLock<Locked<u64>> = OnceLock::new();
        /// 1: the late read was served, and a read inside it nested; 2: it panicked.
        static LATE_READ: AtomicU8 = AtomicU8::new(0);
        struct ReadsOnDrop;
        impl Drop for ReadsOnDrop {
            fn drop(&mut self) {
                let (gate, locked) = (GATE.get().unwrap(), LOCKED.get().unwrap());
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let outer = gate.read(0, locked);
                    let inner = gate.read(0, locked);
                    let nested = matches!(inner.entry,
                        Entry::Shared { readers, .. } if std::ptr::eq(readers, &raw const gate.nested));
                    *outer + *inner == 0 && nested
                }));
                LATE_READ.store(
                    if read.is_ok_and(|ok| ok) { 1 } else { 2 },
                    Ordering::SeqCst,
                );
            }
        }
        thread_local! { static READS_ON_DROP: ReadsOnDrop = const { ReadsOnDrop }; }
        let (gate, locked) = (
            GATE.get_or_init(Gate::default),
            LOCKED.get_or_init(|| Locked::new(0)),
        );
        std::thread::spawn(|| {
            // Registered first, destroyed last: after `HELD`, which the read below registers.
            READS_ON_DROP.with(|_| ());
            stripe::go_without_stripe();
            drop(gate.read(0, locked));
        })
        .join()
        .unwrap();
        assert_eq!(LATE_READ.load(Ordering::SeqCst), 1, "the late read failed");
        let (wrote, written) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            *gate.write(0, locked) += 1;
            let _ = wrote.send(());
        });
        assert!(
            written
                .recv_timeout(std::time::Duration::from_secs(5))
                .is_ok(),
            "a writer waits for ever: the late read left the shard's shared count raised"
        );
    }

    #[test]
    fn threads_without_a_stripe_still_exclude_writers() {
        let gate = Gate::default();
        let locked = Locked::new(0_u64);
        // More threads than stripes at once: some read through the shared count.
        let barrier = std::sync::Barrier::new(STRIPES + 8);
        std::thread::scope(|s| {
            for t in 0..STRIPES + 8 {
                let (gate, locked, barrier) = (&gate, &locked, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..200 {
                        if t % 8 == 0 {
                            *gate.write(0, locked) += 1;
                        } else {
                            let before = *gate.read(0, locked);
                            assert!(before <= 200 * (STRIPES as u64 + 8) / 8 + 8);
                        }
                    }
                });
            }
        });
        assert_eq!(
            *gate.read(0, &locked),
            200 * (STRIPES as u64 + 8).div_ceil(8)
        );
    }
}

/// The gate's exclusion under the loom model checker: every interleaving of readers and a writer
/// (`RUSTFLAGS="--cfg loom" cargo test -p memo-runtime --lib --release loom`).
#[cfg(all(test, loom))]
mod loom {
    use super::*;
    use crate::sync::Arc;
    use crate::sync::thread;

    /// A shard whose writer sets two fields one after the other: a reader that ever sees them
    /// differ read during a write.
    type Pair = (AtomicUsize, AtomicUsize);

    fn pair() -> Pair {
        (AtomicUsize::new(0), AtomicUsize::new(0))
    }

    fn write_pair(gate: &Gate, stripe: usize, locked: &Locked<Pair>) {
        let guard = gate.write_as(stripe, 2, 0, locked);
        let n = guard.0.load(Ordering::Relaxed) + 1;
        guard.0.store(n, Ordering::Relaxed);
        guard.1.store(n, Ordering::Relaxed);
    }

    fn read_pair(gate: &Gate, stripe: usize, locked: &Locked<Pair>) -> (usize, usize) {
        let guard = gate.read_as(stripe, 0, locked);
        let first = guard.0.load(Ordering::Relaxed);
        guard.count_hit();
        (first, guard.1.load(Ordering::Relaxed))
    }

    /// The same through the hit path, which marks and unmarks without a guard (and reads the
    /// slower way when it meets the writer, as the store does).
    fn hit_pair(gate: &Gate, stripe: usize, locked: &Locked<Pair>) -> (usize, usize) {
        let read = |pair: &Pair| {
            let first = pair.0.load(Ordering::Relaxed);
            Some((first, pair.1.load(Ordering::Relaxed)))
        };
        gate.hit_as(stripe, 0, locked, 1, read).unwrap()
    }

    /// A reader beside a writer never sees the write half done, and counts its hits on its mark.
    fn never_sees_a_write_in_progress(read: fn(&Gate, usize, &Locked<Pair>) -> (usize, usize)) {
        ::loom::model(move || {
            let gate = Arc::new(Gate::default());
            let locked = Arc::new(Locked::new(pair()));
            let writer = {
                let (gate, locked) = (Arc::clone(&gate), Arc::clone(&locked));
                thread::spawn(move || write_pair(&gate, 1, &locked))
            };
            let (first, second) = read(&gate, 0, &locked);
            assert_eq!(first, second, "read during a write");
            writer.join().unwrap();
            assert_eq!(read(&gate, 0, &locked), (1, 1));
            assert_eq!(gate.hits(), 2, "hits counted on the reader's mark");
        });
    }

    #[test]
    fn loom_a_marked_reader_never_sees_a_write_in_progress() {
        never_sees_a_write_in_progress(read_pair);
    }

    #[test]
    fn loom_a_hit_never_sees_a_write_in_progress() {
        never_sees_a_write_in_progress(hit_pair);
    }

    #[test]
    fn loom_two_writers_exclude_each_other() {
        ::loom::model(|| {
            let gate = Arc::new(Gate::default());
            let locked = Arc::new(Locked::new(pair()));
            let other = {
                let (gate, locked) = (Arc::clone(&gate), Arc::clone(&locked));
                thread::spawn(move || write_pair(&gate, 1, &locked))
            };
            write_pair(&gate, 0, &locked);
            other.join().unwrap();
            assert_eq!(read_pair(&gate, 0, &locked), (2, 2), "no write lost");
        });
    }
}
