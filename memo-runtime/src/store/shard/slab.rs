//! A shard's entries in one vector, each addressed by a 4-byte number; emptied places are reused.
//!
//! The hash index and the eviction rings hold these numbers instead of the entries or their
//! hashes, so the index's power-of-two rounding and its tombstones cost 4 bytes a bucket rather
//! than a whole entry, and a ring 4 bytes an entry. A bounded shard's vector grows to its bound,
//! past it only for places whose numbers a ring still names (`vacate`, at most a fifth more).
//! Which places hold an entry is kept in a bitmap (1 bit each), so that accesses are checked: a number that went stale yields `None`, never another place's bytes. Only the hit
//! path reads unchecked (a bitmap load saved, 0.7 ns of 10), through numbers the shard's index
//! guarantees are held.

use std::mem::MaybeUninit;

/// `slots` first (`repr(C)`): the hit path reads only its pointer, next to the shard's index.
#[repr(C)]
pub(super) struct Slab<T> {
    slots: Vec<MaybeUninit<T>>,
    /// Which places hold a value, and which are free: everything but the values, compiled once
    /// for every value type.
    places: Places,
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

impl<T> Slab<T> {
    pub(super) const fn new(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            places: Places {
                live: Vec::new(),
                free: Vec::new(),
                limit,
                len: 0,
            },
        }
    }

    pub(super) const fn len(&self) -> usize {
        self.places.len
    }

    /// Stores `value` and returns its number.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX` values are held (a shard of 4 billion entries).
    pub(super) fn insert(&mut self, value: T) -> u32 {
        let (at, reserve) = self.places.claim(self.slots.len(), self.slots.capacity());
        if at as usize == self.slots.len() {
            self.slots.reserve_exact(reserve);
            self.slots.push(MaybeUninit::new(value));
        } else {
            self.slots[at as usize] = MaybeUninit::new(value);
        }
        self.places.mark(at);
        at
    }

    /// The value numbered `at`, if it is still held.
    #[inline]
    pub(super) fn get(&self, at: u32) -> Option<&T> {
        if !self.places.is_live(at) {
            return None;
        }
        // SAFETY: its live bit is set only while the slot holds an initialized value.
        Some(unsafe { self.slots.get(at as usize)?.assume_init_ref() })
    }

    /// The value numbered `at`, unchecked.
    ///
    /// # Safety
    ///
    /// `at` names a value held.
    #[inline]
    pub(super) unsafe fn get_unchecked(&self, at: u32) -> &T {
        debug_assert!(self.get(at).is_some());
        // SAFETY: the caller's promise.
        unsafe { self.slots.get_unchecked(at as usize).assume_init_ref() }
    }

    /// The value numbered `at`, if it is still held.
    pub(super) fn get_mut(&mut self, at: u32) -> Option<&mut T> {
        if !self.places.is_live(at) {
            return None;
        }
        // SAFETY: as in `get`.
        Some(unsafe { self.slots.get_mut(at as usize)?.assume_init_mut() })
    }

    /// Takes the value numbered `at` out; its number may be given to the next value stored.
    pub(super) fn remove(&mut self, at: u32) -> Option<T> {
        let value = self.vacate(at)?;
        self.places.free.push(at);
        Some(value)
    }

    /// Places allocated: held, free or kept by vacated numbers.
    #[cfg(test)]
    pub(super) fn places(&self) -> usize {
        self.slots.len()
    }

    /// Lets the number of a value taken by [`vacate`](Self::vacate) be given to the next value.
    pub(super) fn release(&mut self, at: u32) {
        debug_assert!(self.get(at).is_none(), "only an emptied place is released");
        self.places.free.push(at);
    }

    /// Takes the value numbered `at` out, keeping its number from the next values stored until
    /// [`release`](Self::release): for a number an eviction ring still names.
    pub(super) fn vacate(&mut self, at: u32) -> Option<T> {
        if !self.places.unmark(at) {
            return None;
        }
        // SAFETY: the live bit was set, so the slot held a value; clearing the bit gave up our
        // claim to it, so it is read out exactly once.
        Some(unsafe { self.slots[at as usize].assume_init_read() })
    }

    /// The values held, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        let live = &self.places.live;
        self.slots
            .iter()
            .enumerate()
            .filter(|&(at, _)| is_set(live, at))
            // SAFETY: as in `get`.
            .map(|(_, slot)| unsafe { slot.assume_init_ref() })
    }

    /// Calls `each` with every value held, in slot order.
    pub(super) fn each_mut(&mut self, each: &mut dyn FnMut(&mut T)) {
        let mut at = 0;
        while let Some(next) = self.places.next_live(at) {
            // SAFETY: a live place holds an initialized value.
            each(unsafe { self.slots[next as usize].assume_init_mut() });
            at = next + 1;
        }
    }
}

/// Whether slot `at` holds a value, by the live bitmap.
fn is_set(live: &[u64], at: usize) -> bool {
    live[at / 64] & (1 << (at % 64)) != 0
}

/// The bit of slot `at` in its word of the live bitmap.
#[inline]
const fn bit(at: u32) -> u64 {
    1 << (at % 64)
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        for (w, &word) in self.places.live.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let at = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                // SAFETY: a live slot, dropped once: the slab goes away with it.
                unsafe { self.slots[at].assume_init_drop() };
            }
        }
    }
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
        while self.slab.places.len > 0 {
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
        assert_eq!(slab.slots.capacity(), 1000);
        assert_eq!(slab.len(), 1000);
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
