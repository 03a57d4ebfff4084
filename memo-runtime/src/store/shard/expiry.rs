//! When a shard's entries expire, in order, so that expired entries leave before any live one is
//! evicted and are freed without anyone reading them, found without a search.
//!
//! A min-heap of (due time, entry number), 8 bytes an entry with a time to live: due times in
//! units of 2^24 ns (about 17 ms, 2.3 years in all), rounded down. The writer looks at the items
//! whose unit has come, earliest first, and removes their entries once they have expired to the
//! nanosecond; an item whose entry has not yet stops the look (entries due within the same 17 ms
//! may wait for it). An item whose entry was removed, or restamped since (a new value: it has an
//! item of its own), names no entry or another due time, and is dropped; such items are also
//! swept out once they outnumber the entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Nanoseconds per unit of an item's due time: 2^24 ns, about 17 ms (2^32 units: 2.3 years).
const UNIT_SHIFT: u32 = 24;

#[derive(Default)]
pub(super) struct Expiry {
    /// (due time in units, entry number), earliest first.
    heap: BinaryHeap<Reverse<(u32, u32)>>,
}

impl Expiry {
    /// Entry `at` goes for good at `gone` (ns; 0 = never, not kept).
    pub(super) fn push(&mut self, at: u32, gone: u64) {
        if gone == 0 {
            return;
        }
        if self.heap.len() == self.heap.capacity() {
            // By a quarter, not by doubling: the heap is 8 bytes of every entry.
            let len = self.heap.len();
            self.heap.reserve_exact(len / 4 + 16);
        }
        let units = u32::try_from(gone >> UNIT_SHIFT).unwrap_or(u32::MAX);
        self.heap.push(Reverse((units, at)));
    }

    /// The earliest item, if its unit has come at `now`: its due time (as [`rounded`]) and entry
    /// number.
    ///
    /// [`rounded`]: Self::rounded
    pub(super) fn peek_due(&self, now: u64) -> Option<(u64, u32)> {
        let &Reverse((due, at)) = self.heap.peek()?;
        let due = u64::from(due) << UNIT_SHIFT;
        (due <= now).then_some((due, at))
    }

    /// Drops the earliest item.
    pub(super) fn pop(&mut self) {
        self.heap.pop();
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps only the items for which `keep(number, due time)` holds.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(u32, u64) -> bool) {
        self.heap
            .retain(|&Reverse((due, at))| keep(at, u64::from(due) << UNIT_SHIFT));
        self.heap
            .shrink_to(self.heap.len() + self.heap.len() / 4 + 16);
    }

    pub(super) fn clear(&mut self) {
        self.heap = BinaryHeap::new();
    }

    /// The due time an item for `gone` records.
    pub(super) fn rounded(gone: u64) -> u64 {
        u64::from(u32::try_from(gone >> UNIT_SHIFT).unwrap_or(u32::MAX)) << UNIT_SHIFT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_due_earliest_first_by_their_unit() {
        let unit = 1 << UNIT_SHIFT;
        let mut expiry = Expiry::default();
        expiry.push(1, 3 * unit + 5);
        expiry.push(2, 0);
        expiry.push(3, unit + 5);
        assert_eq!(expiry.len(), 2, "an entry that never expires is not kept");
        assert_eq!(expiry.peek_due(unit - 1), None);
        assert_eq!(expiry.peek_due(unit), Some((unit, 3)));
        assert_eq!(Expiry::rounded(unit + 5), unit);
        expiry.pop();
        assert_eq!(expiry.peek_due(2 * unit), None);
        assert_eq!(expiry.peek_due(u64::MAX), Some((3 * unit, 1)));
    }
}
