//! A shard's entries in one vector, each addressed by a 4-byte number; emptied places are reused.
//!
//! The hash index and the eviction rings hold these numbers instead of the entries or their
//! hashes, so the index's power-of-two rounding and its tombstones cost 4 bytes a bucket rather
//! than a whole entry, and a ring 4 bytes an entry. A bounded shard's vector grows to its bound,
//! past it only for places whose numbers a ring still names (`vacate`, at most a fifth more).
//! Which places hold an entry is kept in a bitmap (1 bit each), so that accesses are checked: a number that went stale yields `None`, never another place's bytes. Only the hit
//! path reads unchecked (a bitmap load saved, 0.7 ns of 10), through numbers the shard's index
//! guarantees are held.
//!
//! Compiled once: the memory, its growth, the bitmap, the free list and dropping what is left are
//! a [`RawSlab`] of places of one size and alignment, with a thunk to drop a value; [`Slab<T>`]
//! only moves values in and out and reads them where the raw slab says.

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// `raw` first (`repr(C)`): the hit path reads only its pointer, next to the shard's index.
#[repr(C)]
pub(super) struct Slab<T> {
    raw: RawSlab,
    _values: PhantomData<T>,
}

// SAFETY: a `Slab<T>` owns its `T`s, as a `Vec<T>` does.
unsafe impl<T: Send> Send for Slab<T> {}
// SAFETY: as for `Send`: shared, it hands out only `&T`.
unsafe impl<T: Sync> Sync for Slab<T> {}

/// A slab without its values' type: places of one layout in one block of memory.
#[repr(C)]
pub(super) struct RawSlab {
    block: Block,
    /// Places handed out so far (held, free or vacated); those past it are unused memory.
    filled: usize,
    /// Drops the value at a place; `None` for values that need no drop.
    drop: Option<unsafe fn(*mut u8)>,
    /// Which places hold a value, and which are free.
    places: Places,
}

/// The places' memory: `capacity` places of `size` bytes (a multiple of `align`), or no memory
/// (`ptr` dangling and aligned) while `capacity` or `size` is 0. Its own type so that the memory
/// is freed even if dropping a value panics.
#[repr(C)]
struct Block {
    ptr: NonNull<u8>,
    capacity: usize,
    size: usize,
    align: usize,
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(layout) = self.layout(self.capacity) {
            // SAFETY: allocated with this layout by `RawSlab::grow`.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

impl Block {
    /// The layout of `capacity` places, or `None` if that is no memory.
    fn layout(&self, capacity: usize) -> Option<Layout> {
        let bytes = capacity
            .checked_mul(self.size)
            .expect("a slab's places fit in memory");
        if bytes == 0 {
            return None;
        }
        Some(Layout::from_size_align(bytes, self.align).expect("a slab's places fit in memory"))
    }
}

/// A slab's bookkeeping, which does not depend on the values' type.
struct Places {
    /// Bit `i % 64` of word `i / 64` is set while slot `i` holds a value.
    live: Vec<u64>,
    /// Emptied slots, reused before the vector grows.
    free: Vec<u32>,
    /// The most values held at once (a shard's bound; `usize::MAX` when unbounded): the vector
    /// grows by doubling but not past this.
    limit: usize,
    len: usize,
}

impl Places {
    /// A place for a new value: a free one, or the next one of a vector of `len` places and
    /// room for `capacity`, and how many places to reserve before pushing it (0 for none). Its
    /// live bit is set by [`mark`](Self::mark) once the value is in.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX` values are held (a shard of 4 billion entries).
    fn claim(&mut self, len: usize, capacity: usize) -> (u32, usize) {
        if let Some(at) = self.free.pop() {
            return (at, 0);
        }
        let reserve = if len == capacity {
            // Doubling, but not past the bound: a full bounded shard wastes no places. Past
            // it (places kept by vacated numbers, at most a fifth more), by an eighth.
            let want = if len < self.limit {
                len.saturating_mul(2).max(8).min(self.limit)
            } else {
                len + (len / 8).max(8)
            };
            want - len
        } else {
            0
        };
        let at = u32::try_from(len).expect("a shard holds at most u32::MAX entries");
        if len.is_multiple_of(64) {
            self.live.push(0);
        }
        (at, reserve)
    }

    /// Place `at` now holds a value.
    fn mark(&mut self, at: u32) {
        self.live[at as usize / 64] |= bit(at);
        self.len += 1;
    }

    /// Whether place `at` holds a value.
    #[inline]
    fn is_live(&self, at: u32) -> bool {
        self.live
            .get(at as usize / 64)
            .is_some_and(|word| word & bit(at) != 0)
    }

    /// The first place from `at` on that holds a value.
    fn next_live(&self, at: u32) -> Option<u32> {
        let mut word_at = at as usize / 64;
        let mut word = *self.live.get(word_at)? & (u64::MAX << (at % 64));
        while word == 0 {
            word_at += 1;
            word = *self.live.get(word_at)?;
        }
        u32::try_from(word_at * 64 + word.trailing_zeros() as usize).ok()
    }

    /// Clears place `at`'s live bit; `false` if it held nothing.
    fn unmark(&mut self, at: u32) -> bool {
        let Some(word) = self.live.get_mut(at as usize / 64) else {
            return false;
        };
        if *word & bit(at) == 0 {
            return false;
        }
        *word &= !bit(at);
        self.len -= 1;
        true
    }
}

impl RawSlab {
    /// An empty slab of places for values of `layout`, dropped by `drop`; `dangling` is a
    /// pointer aligned for them.
    fn new(
        limit: usize,
        layout: Layout,
        drop: Option<unsafe fn(*mut u8)>,
        dangling: NonNull<u8>,
    ) -> Self {
        Self {
            block: Block {
                ptr: dangling,
                // Values of no size need no memory: room for as many as can be numbered.
                capacity: if layout.size() == 0 { usize::MAX } else { 0 },
                size: layout.size(),
                align: layout.align(),
            },
            filled: 0,
            drop,
            places: Places {
                live: Vec::new(),
                free: Vec::new(),
                limit,
                len: 0,
            },
        }
    }

    /// How many values are held.
    pub(super) const fn len(&self) -> usize {
        self.places.len
    }

    /// Place `at`, unchecked.
    ///
    /// # Safety
    ///
    /// `at` is below `filled`.
    #[inline]
    unsafe fn place(&self, at: u32) -> NonNull<u8> {
        // SAFETY: within the block, by the caller's promise.
        unsafe { self.block.ptr.add(at as usize * self.block.size) }
    }

    /// Place `at`, if it holds a value.
    pub(super) fn get(&self, at: u32) -> Option<NonNull<u8>> {
        // SAFETY: a live place is below `filled`.
        self.places.is_live(at).then(|| unsafe { self.place(at) })
    }

    /// A place for a new value, not yet marked as holding one.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX` values are held (a shard of 4 billion entries).
    fn claim(&mut self) -> u32 {
        let (at, reserve) = self.places.claim(self.filled, self.block.capacity);
        if at as usize == self.filled {
            if reserve > 0 {
                self.grow(reserve);
            }
            self.filled += 1;
        }
        at
    }

    /// Stores the value `write` writes at the place it is handed, and returns its number. The
    /// place counts as holding a value once `write` returns: one that panics leaves none (and
    /// loses the place).
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX` values are held (a shard of 4 billion entries).
    pub(super) fn insert_with(&mut self, write: impl FnOnce(NonNull<u8>)) -> u32 {
        let at = self.claim();
        // SAFETY: a place just claimed is below `filled`, and holds nothing.
        write(unsafe { self.place(at) });
        self.places.mark(at);
        at
    }

    /// Takes the value at `at` out of the slab's keeping, keeping its number from the next
    /// values stored until [`release`](Self::release): its place, to read the value out of (once)
    /// before the slab changes again; `None` if nothing is held there.
    pub(super) fn vacate(&mut self, at: u32) -> Option<NonNull<u8>> {
        if !self.places.unmark(at) {
            return None;
        }
        // SAFETY: the live bit was set, so the place is below `filled`.
        Some(unsafe { self.place(at) })
    }

    /// Makes room for `additional` more places, moving the values (bitwise, as Rust moves).
    fn grow(&mut self, additional: usize) {
        let block = &mut self.block;
        let capacity = block
            .capacity
            .checked_add(additional)
            .expect("a slab's places fit in memory");
        let Some(layout) = block.layout(capacity) else {
            return;
        };
        let ptr = match block.layout(block.capacity) {
            // SAFETY: `layout` has a size (checked by `Block::layout`).
            None => unsafe { alloc::alloc(layout) },
            // SAFETY: the block was allocated with `old`; the new size is larger and fits.
            Some(old) => unsafe { alloc::realloc(block.ptr.as_ptr(), old, layout.size()) },
        };
        block.ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        block.capacity = capacity;
    }

    /// Lets the number of a value taken by [`Slab::vacate`] be given to the next value.
    pub(super) fn release(&mut self, at: u32) {
        debug_assert!(self.get(at).is_none(), "only an emptied place is released");
        self.places.free.push(at);
    }

    /// Calls `each` with every place that holds a value, in order.
    pub(super) fn each(&mut self, each: &mut dyn FnMut(NonNull<u8>)) {
        let mut at = 0;
        while let Some(next) = self.places.next_live(at) {
            // SAFETY: a live place is below `filled`.
            each(unsafe { self.place(next) });
            at = next + 1;
        }
    }
}

impl Drop for RawSlab {
    fn drop(&mut self) {
        let Some(drop) = self.drop else {
            return;
        };
        for (w, &word) in self.places.live.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                #[allow(clippy::cast_possible_truncation, reason = "place numbers are u32")]
                let at = (w * 64 + word.trailing_zeros() as usize) as u32;
                word &= word - 1;
                // SAFETY: a live place holds a value of the type `drop` drops, dropped once:
                // the slab goes away with it.
                unsafe { drop(self.place(at).as_ptr()) };
            }
        }
    }
}

/// Drops the `T` at `value` ([`Slab::DROP`]).
///
/// # Safety
///
/// `value` points to a `T`, dropped once.
unsafe fn drop_value<T>(value: *mut u8) {
    // SAFETY: the caller's promise.
    unsafe { value.cast::<T>().drop_in_place() };
}

/// What a raw slab needs to know of its values' type: their layout, how to drop one, and an
/// aligned dangling pointer.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    layout: Layout,
    drop: Option<unsafe fn(*mut u8)>,
    dangling: NonNull<u8>,
}

impl RawSlab {
    /// An empty slab for values of `kind`, which a [`Slab`] of their type may then take over.
    pub(super) fn of(limit: usize, kind: Kind) -> Self {
        Self::new(limit, kind.layout, kind.drop, kind.dangling)
    }
}

impl<T> Slab<T> {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            raw: RawSlab::of(limit, Self::KIND),
            _values: PhantomData,
        }
    }

    /// How a `T` is dropped in place, if it needs to be: `drop(value)` with `value` pointing to a
    /// `T`, dropped once. The one function per `T` that drops the slab's values and, for the
    /// shard, entries that leave without a listener.
    pub(super) const DROP: Option<unsafe fn(*mut u8)> = if std::mem::needs_drop::<T>() {
        Some(drop_value::<T>)
    } else {
        None
    };

    /// The [`Kind`] of `T`: a constant, which a debug build does not compile as a function per
    /// `T`.
    pub(super) const KIND: Kind = Kind {
        layout: Layout::new::<T>(),
        drop: Self::DROP,
        dangling: NonNull::<T>::dangling().cast(),
    };

    pub(super) const fn len(&self) -> usize {
        self.raw.places.len
    }

    /// Stores `value` and returns its number.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX` values are held (a shard of 4 billion entries).
    #[cfg(test)]
    pub(super) fn insert(&mut self, value: T) -> u32 {
        // SAFETY: a place for a new value, with room for a `T`; it holds nothing.
        self.raw
            .insert_with(|place| unsafe { place.cast::<T>().write(value) })
    }

    /// The value numbered `at`, if it is still held.
    #[inline]
    #[cfg(test)]
    pub(super) fn get(&self, at: u32) -> Option<&T> {
        if !self.raw.places.is_live(at) {
            return None;
        }
        // SAFETY: its live bit is set only while the place holds an initialized value.
        Some(unsafe { self.get_unchecked(at) })
    }

    /// The value numbered `at`, unchecked.
    ///
    /// # Safety
    ///
    /// `at` names a value held.
    #[inline]
    pub(super) unsafe fn get_unchecked(&self, at: u32) -> &T {
        debug_assert!(self.raw.places.is_live(at));
        // SAFETY: the caller's promise; places are `size_of::<T>()` apart.
        unsafe { &*self.raw.block.ptr.as_ptr().cast::<T>().add(at as usize) }
    }

    /// The value numbered `at`, if it is still held.
    #[cfg(test)]
    pub(super) fn get_mut(&mut self, at: u32) -> Option<&mut T> {
        let place = self.raw.get(at)?;
        // SAFETY: as in `get`; `&mut self` makes it the only reference.
        Some(unsafe { place.cast::<T>().as_mut() })
    }

    /// Takes the value numbered `at` out; its number may be given to the next value stored.
    #[cfg(test)]
    pub(super) fn remove(&mut self, at: u32) -> Option<T> {
        let value = self.vacate(at)?;
        self.raw.release(at);
        Some(value)
    }

    /// Places allocated: held, free or kept by vacated numbers.
    #[cfg(test)]
    pub(super) fn places(&self) -> usize {
        self.raw.filled
    }

    /// Takes the value numbered `at` out, keeping its number from the next values stored until
    /// [`RawSlab::release`]: for a number an eviction ring still names.
    pub(super) fn vacate(&mut self, at: u32) -> Option<T> {
        let place = self.raw.vacate(at)?;
        // SAFETY: the place held a value; vacating it gave up the slab's claim to it, so it is
        // read out exactly once.
        Some(unsafe { place.cast::<T>().read() })
    }

    /// The values held, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let next = self.raw.places.next_live(at)?;
            at = next + 1;
            // SAFETY: a live place holds a value.
            Some(unsafe { self.get_unchecked(next) })
        })
    }

    /// Calls `each` with every value held, in slot order.
    #[cfg(test)]
    pub(super) fn each_mut(&mut self, each: &mut dyn FnMut(&mut T)) {
        // SAFETY: a live place holds a `T`; `&mut self` makes it the only reference.
        self.raw
            .each(&mut |place| each(unsafe { place.cast::<T>().as_mut() }));
    }
}

/// The bit of slot `at` in its word of the live bitmap.
#[inline]
const fn bit(at: u32) -> u64 {
    1 << (at % 64)
}

/// The values of a slab, taken out in slot order.
pub(super) struct IntoIter<T> {
    slab: Slab<T>,
    next: u32,
}

impl<T> IntoIterator for Slab<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            slab: self,
            next: 0,
        }
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        while self.slab.raw.places.len > 0 {
            let at = self.next;
            self.next += 1;
            if let Some(value) = self.slab.vacate(at) {
                return Some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn reuses_emptied_places_and_checks_every_number() {
        let mut slab = Slab::new(4);
        let a = slab.insert("a".to_string());
        let b = slab.insert("b".to_string());
        assert_eq!(slab.get(a).map(String::as_str), Some("a"));
        assert_eq!(slab.remove(a).as_deref(), Some("a"));
        assert_eq!(slab.get(a), None, "a removed number yields nothing");
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(99), None, "nor does one never given");
        let c = slab.insert("c".to_string());
        assert_eq!(c, a, "the emptied place is reused");
        *slab.get_mut(b).unwrap() += "!";
        let mut seen = Vec::new();
        slab.each_mut(&mut |value| seen.push(value.clone()));
        seen.sort();
        assert_eq!(seen, ["b!", "c"]);
        let mut held: Vec<_> = slab.iter().cloned().collect();
        held.sort();
        assert_eq!(held, ["b!", "c"]);
        assert_eq!(slab.len(), 2);
    }

    /// `each_mut` visits every held value once, across words of the live bitmap.
    #[test]
    fn each_mut_visits_every_held_value() {
        let mut slab = Slab::new(usize::MAX);
        for n in 0..300_u32 {
            slab.insert(n);
        }
        for at in (0..300).filter(|at| at % 7 != 0 && at % 64 != 63) {
            slab.remove(at);
        }
        let mut seen = Vec::new();
        slab.each_mut(&mut |value| seen.push(*value));
        let expected: Vec<u32> = (0..300).filter(|at| at % 7 == 0 || at % 64 == 63).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_bounded_slab_grows_to_its_bound_exactly() {
        let mut slab = Slab::new(1000);
        for n in 0..1000 {
            slab.insert(n);
        }
        assert_eq!(slab.raw.block.capacity, 1000);
        assert_eq!(slab.len(), 1000);
    }

    #[test]
    fn values_keep_their_place_as_the_block_grows() {
        let mut slab = Slab::new(usize::MAX);
        let numbers: Vec<u32> = (0..1000).map(|n| slab.insert(n.to_string())).collect();
        for (n, &at) in numbers.iter().enumerate() {
            assert_eq!(slab.get(at), Some(&n.to_string()));
        }
        assert_eq!(slab.iter().count(), 1000);
    }

    #[test]
    fn values_of_no_size_are_counted_and_dropped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPPED: AtomicUsize = AtomicUsize::new(0);
        struct Token;
        impl Drop for Token {
            fn drop(&mut self) {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut slab = Slab::new(usize::MAX);
        let first = slab.insert(Token);
        for _ in 0..99 {
            slab.insert(Token);
        }
        assert_eq!(slab.len(), 100);
        drop(slab.remove(first));
        assert_eq!(DROPPED.load(Ordering::Relaxed), 1);
        drop(slab);
        assert_eq!(DROPPED.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn every_value_is_dropped_once() {
        let token = Rc::new(());
        let mut slab = Slab::new(usize::MAX);
        for _ in 0..200 {
            slab.insert(Rc::clone(&token));
        }
        for at in (0..200).step_by(3) {
            drop(slab.remove(at));
        }
        assert_eq!(Rc::strong_count(&token), 1 + 200 - 67);
        let mut drained = slab.into_iter();
        drop(drained.next());
        drop(drained.next());
        assert_eq!(Rc::strong_count(&token), 1 + 200 - 69);
        drop(drained);
        assert_eq!(Rc::strong_count(&token), 1);
    }
}
