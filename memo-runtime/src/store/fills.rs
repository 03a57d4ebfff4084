//! What keeps a copy of a shared store's value, read before a change of its key, from being kept
//! in memory after the change.
//!
//! A read of the shared store (Redis, the disk) and the keeping of its value in memory (tiered's
//! local copies, the disk's front) are two steps: a change of the key (a removal, a newer value,
//! made here or announced by another process) can come between them, and the copy kept after it
//! would be the old value, served here for good. So each stripe of key hashes counts the changes
//! that reached it, under its write lock. A fill notes the count before its read and keeps its
//! copy under the stripe's read lock only if the count has not moved. Its check then either comes
//! first (the change drops or replaces its copy) or sees the count moved (and keeps nothing): no
//! moment serves the old copy after the change returned.

use parking_lot::RwLock;

/// How many stripes the keys are spread over: a change of one key rarely stops the fill of
/// another.
const STRIPES: usize = 64;

/// The counts of changes, by stripe of key hashes.
pub(crate) struct Fills {
    stripes: [RwLock<u64>; STRIPES],
}

impl Fills {
    pub(crate) fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| RwLock::new(0)),
        }
    }

    /// The stripe of a key of hash `hash`, by its top bits: the in-memory stores' shards and
    /// tables take theirs from a multiply of the whole.
    fn stripe(&self, hash: u64) -> &RwLock<u64> {
        &self.stripes[usize::try_from(hash >> (64 - STRIPES.trailing_zeros())).unwrap_or(0)]
    }

    /// The count a fill of a key of hash `hash` starts from, taken before its read.
    pub(crate) fn seen(&self, hash: u64) -> u64 {
        *self.stripe(hash).read()
    }

    /// Runs `keep` (the keeping of a copy read since `seen`) unless a change reached the key's
    /// stripe since.
    pub(crate) fn fill(&self, hash: u64, seen: u64, keep: impl FnOnce()) {
        let count = self.stripe(hash).read();
        if *count == seen {
            keep();
        }
    }

    /// Runs `keep` (the keeping of a copy that checks for itself whether it may) with no change
    /// of the stripe of a key of hash `hash`, nor of every stripe, under way: one that comes
    /// after it drops or replaces the copy.
    #[cfg(feature = "disk")]
    pub(crate) fn during<T>(&self, hash: u64, keep: impl FnOnce() -> T) -> T {
        let _count = self.stripe(hash).read();
        keep()
    }

    /// Runs `change` (of the key's copy, after the shared store's) with the count of the
    /// stripe of a key of hash `hash` moved.
    pub(crate) fn change<T>(&self, hash: u64, change: impl FnOnce() -> T) -> T {
        let mut count = self.stripe(hash).write();
        *count = count.wrapping_add(1);
        change()
    }

    /// Runs `keep` (of the copy of a value this process wrote to the shared store, the count
    /// `seen` taken before the write) with the stripe's count moved; `keep` is told whether no
    /// other change came since `seen`.
    #[cfg(feature = "redis")]
    pub(crate) fn wrote<T>(&self, hash: u64, seen: u64, keep: impl FnOnce(bool) -> T) -> T {
        let mut count = self.stripe(hash).write();
        let alone = *count == seen;
        *count = count.wrapping_add(1);
        keep(alone)
    }

    /// Runs `change` (of every copy) with every stripe's count moved.
    pub(crate) fn change_all<T>(&self, change: impl FnOnce() -> T) -> T {
        let mut counts: Vec<_> = self.stripes.iter().map(RwLock::write).collect();
        for count in &mut counts {
            **count = count.wrapping_add(1);
        }
        change()
    }
}

#[cfg(test)]
mod tests {
    use super::Fills;

    #[test]
    fn a_fill_is_kept_only_if_no_change_reached_its_stripe_since_it_began() {
        let fills = Fills::new();
        let (key, other) = (7 << 58, 9 << 58);
        let kept = |seen| {
            let mut kept = false;
            fills.fill(key, seen, || kept = true);
            kept
        };
        let seen = fills.seen(key);
        assert!(kept(seen));
        fills.change(other, || ());
        assert!(kept(seen), "another stripe's change");
        fills.change(key, || ());
        assert!(!kept(seen));
        let seen = fills.seen(key);
        fills.change_all(|| ());
        assert!(!kept(seen));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_write_tells_whether_no_other_change_came_since_its_read() {
        let fills = Fills::new();
        let key = 7 << 58;
        let seen = fills.seen(key);
        assert!(fills.wrote(key, seen, |alone| alone));
        let mut kept = false;
        fills.fill(key, seen, || kept = true);
        assert!(!kept, "the write moved the count");
        let seen = fills.seen(key);
        fills.change(key, || ());
        assert!(!fills.wrote(key, seen, |alone| alone));
    }
}
