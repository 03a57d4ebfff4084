//! A shard's hash index: entry numbers by the hash of their key, in one array of 4-byte buckets.
//!
//! A bucket holds an entry's number and, in the bits the number leaves free, a tag of its hash;
//! buckets are probed one after the other from the hash's home. A hit thus loads one bucket (its
//! neighbours share its cache line) and then the entry itself: one dependent load fewer than a
//! `SwissTable` of numbers (`hashbrown`), which loads a group of control bytes, then the number,
//! then the entry; the hit path is a chain of such loads. It also spends 4 bytes a bucket rather
//! than 5. Removal leaves a tombstone (or an empty bucket, before an empty one); the array is rebuilt once live buckets and tombstones fill
//! three quarters of it (linear probing stays short below that: 2.5 buckets on average for a hit,
//! 8.5 for a miss, at the fullest).
//!
//! With `n` bits for numbers a bucket holds `number + 1` in its low `n` bits and the top `32 − n`
//! bits of the hash above them. 0 is an empty bucket and all ones a tombstone (its low bits are
//! no `number + 1`), so one comparison tells a bucket of the wanted tag from everything else.

/// A bucket no entry ever used: probing stops here.
const EMPTY: u32 = 0;
/// A bucket whose entry was removed: probing goes past it, an insert may reuse it.
const TOMBSTONE: u32 = u32::MAX;
/// The fewest buckets of an index that holds anything.
const MIN_BUCKETS: usize = 8;

/// What a hit reads first (`repr(C)`); counts in 4 bytes (a shard holds fewer than 2^31
/// entries), so that the shard's next fields share its cache line.
#[repr(C)]
pub(super) struct Index {
    buckets: Box<[u32]>,
    /// `buckets.len() − 1`: the hash's low bits pick the home bucket.
    mask: usize,
    /// The low bits of a bucket, which hold `number + 1`: `2^n − 1` for `n` bits. A bucket XOR
    /// the wanted tag is below this iff the tags match and the bucket holds a number.
    numbers: u32,
    len: u32,
    tombstones: u32,
}

/// What [`Index::find_dyn`] asks of each number under a hash: whether its entry holds the key
/// sought. A trait of its own rather than `dyn FnMut`, whose vtable would carry a `FnOnce` shim
/// per key and value type.
pub(super) trait Sought {
    fn is(&self, number: u32) -> bool;
}

impl Index {
    #[inline(never)]
    pub(super) fn new() -> Self {
        Self::with_buckets(1, 0)
    }

    /// An empty index of `buckets` buckets (a power of two) with room for numbers up to `most`.
    fn with_buckets(buckets: usize, most: u32) -> Self {
        // Room to spare, so that numbers growing with the table rarely force a rebuild.
        let wanted = (u64::from(most) + 3)
            .max(buckets as u64 * 2)
            .next_power_of_two();
        let number_bits = wanted.trailing_zeros().max(4);
        assert!(number_bits < 32, "a shard holds fewer than 2^31 entries");
        Self {
            buckets: vec![EMPTY; buckets].into_boxed_slice(),
            mask: buckets - 1,
            numbers: (1 << number_bits) - 1,
            len: 0,
            tombstones: 0,
        }
    }

    #[cfg(test)]
    pub(super) const fn len(&self) -> usize {
        self.len as usize
    }

    /// The tag of `hash`, in place above the number bits: the top bits of the hash.
    #[inline]
    #[allow(clippy::cast_possible_truncation, reason = "the top half of the hash")]
    const fn tag(&self, hash: u64) -> u32 {
        (hash >> 32) as u32 & !self.numbers
    }

    /// [`find`](Self::find) compiled once, for the lookups off the hit path: each caller's
    /// closure would otherwise be a copy of the probe loop per key and value types.
    pub(super) fn find_dyn(&self, hash: u64, sought: &dyn Sought) -> Option<u32> {
        self.find(hash, |number| sought.is(number))
    }

    /// The number under `hash` for which `is` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = self.tag(hash);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "masked to the bucket count"
        )]
        let mut at = hash as usize & self.mask;
        loop {
            // SAFETY: `at` is masked to the bucket count, a power of two.
            let bucket = unsafe { *self.buckets.get_unchecked(at) };
            if bucket == EMPTY {
                return None;
            }
            let number = bucket ^ tag;
            if number < self.numbers && is(number - 1) {
                return Some(number - 1);
            }
            at = (at + 1) & self.mask;
        }
    }

    /// Indexes number `number` under `hash`; the caller knows its key is not indexed yet.
    /// `rehash` gives the hash of an indexed number, for a rebuild.
    pub(super) fn insert(&mut self, hash: u64, number: u32, rehash: &dyn Fn(u32) -> u64) {
        let full = (self.len + self.tombstones) as usize + 1 > self.buckets.len() / 4 * 3;
        if full || number >= self.numbers - 1 {
            self.rebuild(number, rehash);
        }
        let mut at = self.home(hash);
        loop {
            match self.buckets[at] {
                EMPTY => break,
                TOMBSTONE => {
                    self.tombstones -= 1;
                    break;
                }
                _ => at = (at + 1) & self.mask,
            }
        }
        self.buckets[at] = self.tag(hash) | (number + 1);
        self.len += 1;
    }

    /// Takes `number` out of the index, looking under `hash`; `false` if it is not there.
    pub(super) fn remove(&mut self, hash: u64, number: u32) -> bool {
        let wanted = self.tag(hash) | (number + 1);
        let mut at = self.home(hash);
        loop {
            match self.buckets[at] {
                EMPTY => return false,
                bucket if bucket == wanted => {
                    self.vacate(at);
                    return true;
                }
                _ => at = (at + 1) & self.mask,
            }
        }
    }

    /// Takes `number` out of the index wherever it is (its key no longer hashes as it did).
    pub(super) fn remove_anywhere(&mut self, number: u32) {
        self.retain(&mut |n| n != number);
    }

    /// Takes out every number for which `keep` is false.
    pub(super) fn retain(&mut self, keep: &mut dyn FnMut(u32) -> bool) {
        for at in 0..self.buckets.len() {
            if self.number_at(at).is_some_and(|number| !keep(number)) {
                self.vacate(at);
            }
        }
    }

    /// The indexed numbers, in bucket order.
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.buckets.len()).filter_map(|at| self.number_at(at))
    }

    fn number_at(&self, at: usize) -> Option<u32> {
        match self.buckets[at] {
            EMPTY | TOMBSTONE => None,
            bucket => Some((bucket & self.numbers) - 1),
        }
    }

    fn vacate(&mut self, at: usize) {
        self.len -= 1;
        if self.buckets[(at + 1) & self.mask] != EMPTY {
            self.buckets[at] = TOMBSTONE;
            self.tombstones += 1;
            return;
        }
        // Every probe that reaches a bucket before an empty one stops there: it can be emptied,
        // and so can the tombstones just before it.
        self.buckets[at] = EMPTY;
        let mut before = at.wrapping_sub(1) & self.mask;
        while self.buckets[before] == TOMBSTONE {
            self.buckets[before] = EMPTY;
            self.tombstones -= 1;
            before = before.wrapping_sub(1) & self.mask;
        }
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "masked to the bucket count"
    )]
    const fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// Rebuilds the index without tombstones, twice as many buckets as live entries need (so
    /// that it doubles when full of live entries and keeps its size when full of tombstones),
    /// with room for numbers up to `most`.
    #[cold]
    fn rebuild(&mut self, most: u32, rehash: &dyn Fn(u32) -> u64) {
        let buckets = ((self.len as usize + 1) * 2)
            .next_power_of_two()
            .max(MIN_BUCKETS);
        let most = self.iter().fold(most, u32::max);
        let mut rebuilt = Self::with_buckets(buckets, most);
        for number in self.iter() {
            let hash = rehash(number);
            let mut at = rebuilt.home(hash);
            while rebuilt.buckets[at] != EMPTY {
                at = (at + 1) & rebuilt.mask;
            }
            rebuilt.buckets[at] = rebuilt.tag(hash) | (number + 1);
            rebuilt.len += 1;
        }
        *self = rebuilt;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A hash that puts every key at one of a few homes with one of a few tags, so that probes
    /// run long and tags collide.
    fn crowded(key: u32) -> u64 {
        u64::from(key % 7) | (u64::from(key % 3) << 60)
    }

    fn spread(key: u32) -> u64 {
        u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The index's own bookkeeping agrees with its buckets, and one is left empty (probes end).
    fn check(index: &Index) {
        let live = index.iter().count();
        let tombstones = index.buckets.iter().filter(|&&b| b == TOMBSTONE).count();
        assert_eq!(live, index.len());
        assert_eq!(tombstones, index.tombstones as usize);
        assert!(index.buckets.contains(&EMPTY));
    }

    /// Every key's tag all ones, the tag a tombstone also carries.
    fn all_ones_tag(key: u32) -> u64 {
        spread(key) | 0xFFFF_FFFF_0000_0000
    }

    /// Every key's home the last bucket, so probes and removals wrap around to the first.
    fn last_home(key: u32) -> u64 {
        (spread(key) & 0xFFFF_FFFF_0000_0000) | 0xFFFF_FFFF
    }

    /// Inserts, finds, removes and retains against a map; `find` may only ever ask about numbers
    /// that hold a key (the shard reads them unchecked).
    fn agrees_with_a_map(hash: fn(u32) -> u64) {
        let mut index = Index::new();
        let mut model: HashMap<u32, u32> = HashMap::new();
        // The key each number holds; numbers are reused after removal, as the slab does.
        let mut key_of: Vec<Option<u32>> = Vec::new();
        for step in 0..20_000_u32 {
            let key = step.wrapping_mul(2_654_435_761) % 500;
            if let Some(&number) = model.get(&key) {
                if step % 3 == 0 {
                    assert!(index.remove(hash(key), number));
                    model.remove(&key);
                    key_of[number as usize] = None;
                }
            } else {
                let number = key_of.iter().position(Option::is_none).unwrap_or_else(|| {
                    key_of.push(None);
                    key_of.len() - 1
                });
                let number = u32::try_from(number).unwrap();
                index.insert(hash(key), number, &|n| hash(key_of[n as usize].unwrap()));
                model.insert(key, number);
                key_of[number as usize] = Some(key);
            }
            if step % 5_000 == 4_999 {
                // Drop the keys divisible by 7, as `retain` does for expired entries.
                index.retain(&mut |n| key_of[n as usize].is_some_and(|k| k % 7 != 0));
                model.retain(|&k, &mut n| {
                    let keep = k % 7 != 0;
                    if !keep {
                        key_of[n as usize] = None;
                    }
                    keep
                });
            }
            check(&index);
            for probe in [key, step % 500] {
                let found = index.find(hash(probe), |n| {
                    let held = key_of.get(n as usize).copied().flatten();
                    assert!(
                        held.is_some(),
                        "asked about number {n}, which holds nothing"
                    );
                    held == Some(probe)
                });
                assert_eq!(found, model.get(&probe).copied(), "key {probe}");
            }
        }
        let mut numbers: Vec<u32> = index.iter().collect();
        let mut expected: Vec<u32> = model.values().copied().collect();
        numbers.sort_unstable();
        expected.sort_unstable();
        assert_eq!(numbers, expected);
    }

    #[test]
    fn agrees_with_a_map_under_a_spread_hash() {
        agrees_with_a_map(spread);
    }

    #[test]
    fn agrees_with_a_map_under_a_crowded_hash() {
        agrees_with_a_map(crowded);
    }

    #[test]
    fn agrees_with_a_map_when_tags_look_like_tombstones() {
        agrees_with_a_map(all_ones_tag);
    }

    #[test]
    fn agrees_with_a_map_when_probes_wrap_around() {
        agrees_with_a_map(last_home);
    }

    /// The largest numbers the bits hold, under the tag a tombstone carries: each is found, none
    /// taken for a tombstone.
    #[test]
    fn numbers_at_the_edge_of_their_bits() {
        let mut index = Index::new();
        index.insert(all_ones_tag(0), 0, &|_| all_ones_tag(0));
        let edge = index.numbers;
        let numbers = [0, edge - 2, edge - 1, edge];
        let key_of = |n| (0..).zip(numbers).find(|&(_, m)| m == n).unwrap().0;
        for (key, number) in (0..).zip(numbers).skip(1) {
            index.insert(all_ones_tag(key), number, &|n| all_ones_tag(key_of(n)));
            check(&index);
        }
        for (key, number) in (0..).zip(numbers) {
            assert_eq!(index.find(all_ones_tag(key), |n| n == number), Some(number));
        }
    }

    /// A rebuild finds room for numbers past what the bucket count planned for.
    #[test]
    fn large_numbers_widen_the_number_bits() {
        let mut index = Index::new();
        let numbers = [3_u32, 70_000, 5, 1 << 24, 9];
        let key_of = |n| (0..).zip(numbers).find(|&(_, m)| m == n).unwrap().0;
        for (key, number) in (0..).zip(numbers) {
            index.insert(spread(key), number, &|n| spread(key_of(n)));
        }
        for (key, number) in (0..).zip(numbers) {
            assert_eq!(index.find(spread(key), |n| n == number), Some(number));
        }
        assert!(index.remove(spread(3), 1 << 24));
        assert_eq!(index.find(spread(3), |_| true), None);
    }

    /// Churn at a steady size keeps the table from growing: tombstones are purged in place.
    #[test]
    fn churn_does_not_grow_the_table() {
        let mut index = Index::new();
        // The hash of the key each number holds.
        let mut hashes: Vec<u64> = (0..1_000).map(spread).collect();
        for number in 0..1_000_u32 {
            index.insert(hashes[number as usize], number, &|n| hashes[n as usize]);
        }
        let buckets = index.buckets.len();
        for round in 1..50_u32 {
            for number in 0..1_000_u32 {
                assert!(index.remove(hashes[number as usize], number));
                let hash = spread(round * 1_000 + number);
                hashes[number as usize] = hash;
                index.insert(hash, number, &|n| hashes[n as usize]);
            }
        }
        assert_eq!(index.len(), 1_000);
        assert!(
            index.buckets.len() <= buckets * 2,
            "{}",
            index.buckets.len()
        );
        for (number, &hash) in (0..).zip(&hashes) {
            assert_eq!(index.find(hash, |n| n == number), Some(number));
        }
    }

    #[test]
    fn remove_anywhere_finds_a_number_under_any_hash() {
        let mut index = Index::new();
        for number in 0..100_u32 {
            index.insert(spread(number), number, &spread);
        }
        index.remove_anywhere(42);
        assert_eq!(index.len(), 99);
        assert!(index.iter().all(|n| n != 42));
        assert_eq!(index.find(spread(42), |_| true), None);
    }
}
