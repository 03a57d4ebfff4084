//! The ghost of the default policy: which keys left the small queue lately, remembered by hash
//! in two Bloom filters (two bytes a key in all), not as entries.
//!
//! A key is remembered while either filter holds it; once the newer filter has taken in half the
//! ghost's size, it becomes the older one and a cleared filter takes its place. So the ghost
//! remembers between `size / 2` and `size` of the latest keys, and a false positive (about 0.5 %)
//! only lets a new key into the main queue a little early.

/// Bits set per key in a filter.
const PROBES: u32 = 4;

pub(crate) struct Ghost {
    newer: Box<[u64]>,
    older: Box<[u64]>,
    /// Keys taken in by `newer`, and how many make it the older one.
    added: usize,
    generation: usize,
}

impl Ghost {
    /// A ghost remembering about `size` keys; none for a size of 0.
    pub(crate) fn new(size: usize) -> Self {
        let generation = size.div_ceil(2);
        // 16 bits per key of a generation: with 4 probes, about 0.25 % false positives a filter.
        let words = if size == 0 {
            0
        } else {
            (generation * 16).div_ceil(64).next_power_of_two()
        };
        Self {
            newer: vec![0; words].into_boxed_slice(),
            older: vec![0; words].into_boxed_slice(),
            added: 0,
            generation,
        }
    }

    /// Whether a key with this hash left the small queue lately.
    pub(crate) fn contains(&self, hash: u64) -> bool {
        !self.newer.is_empty() && (Self::holds(&self.newer, hash) || Self::holds(&self.older, hash))
    }

    /// Remembers a key with this hash.
    pub(crate) fn add(&mut self, hash: u64) {
        if self.newer.is_empty() {
            return;
        }
        for (word, bit) in Self::probes(self.newer.len(), hash) {
            self.newer[word] |= bit;
        }
        self.added += 1;
        if self.added >= self.generation {
            self.added = 0;
            std::mem::swap(&mut self.newer, &mut self.older);
            self.newer.fill(0);
        }
    }

    /// Forgets every key.
    pub(crate) fn clear(&mut self) {
        self.newer.fill(0);
        self.older.fill(0);
        self.added = 0;
    }

    fn holds(filter: &[u64], hash: u64) -> bool {
        Self::probes(filter.len(), hash).all(|(word, bit)| filter[word] & bit != 0)
    }

    /// The bits for `hash`: each probe a different rotation of the hash, mixed (the table already
    /// used the hash's low and top bits, so they are not reused as they are).
    fn probes(words: usize, hash: u64) -> impl Iterator<Item = (usize, u64)> {
        let mask = words * 64 - 1;
        (0..PROBES).map(move |i| {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "masked to the filter's size"
            )]
            let bit = (hash.rotate_left(16 * i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize
                & mask;
            (bit / 64, 1 << (bit % 64))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(k: u64) -> u64 {
        k.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29) ^ k
    }

    #[test]
    fn remembers_the_latest_keys_and_forgets_older_ones() {
        let mut ghost = Ghost::new(1000);
        for k in 0..1000 {
            ghost.add(mix(k));
        }
        assert!(
            (500..1000).all(|k| ghost.contains(mix(k))),
            "the latest half"
        );
        for k in 1000..2000 {
            ghost.add(mix(k));
        }
        let stale = (0..1000).filter(|&k| ghost.contains(mix(k))).count();
        assert!(stale < 20, "forgotten but for false positives: {stale}");
        ghost.clear();
        assert!(!(1000..2000).any(|k| ghost.contains(mix(k))));
    }

    #[test]
    fn a_zero_size_ghost_remembers_nothing() {
        let mut ghost = Ghost::new(0);
        ghost.add(1);
        assert!(!ghost.contains(1));
    }
}
