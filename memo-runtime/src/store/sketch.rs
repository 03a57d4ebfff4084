//! How often keys were asked for lately: a count-min sketch of 4-bit counters (`TinyLFU`, Einziger
//! et al., 2017), about 2 to 4 bytes per entry of the shard it serves.
//!
//! Only writers touch it (under the shard's write lock): misses count when they happen, hits are
//! credited when the eviction hand passes an entry that was used. All counters are halved every
//! `10 × capacity` increments, so the counts follow what is asked for now.

/// Rows of counters; a key's estimate is its smallest counter.
const ROWS: usize = 4;

pub(crate) struct Sketch {
    /// `ROWS` rows of `width` counters, 16 to a word.
    words: Box<[u64]>,
    /// Counters per row − 1 (a power of two − 1).
    mask: usize,
    added: usize,
    period: usize,
}

impl Sketch {
    /// A sketch for a shard of `capacity` entries; an empty one (counting nothing) for 0.
    pub(crate) fn new(capacity: usize) -> Self {
        let width = if capacity == 0 {
            0
        } else {
            capacity.next_power_of_two().max(16)
        };
        Self {
            words: vec![0; ROWS * width / 16].into_boxed_slice(),
            mask: width.saturating_sub(1),
            added: 0,
            period: capacity.saturating_mul(10),
        }
    }

    /// The counter of `hash` in `row`: its word and its shift in the word.
    fn counter(&self, hash: u64, row: usize) -> (usize, u32) {
        const SEEDS: [u64; ROWS] = [
            0x9E37_79B9_7F4A_7C15,
            0xC2B2_AE3D_27D4_EB4F,
            0x1656_67B1_9E37_79F9,
            0x27D4_EB2F_1656_67C5,
        ];
        #[allow(clippy::cast_possible_truncation, reason = "masked to the row's width")]
        let index = (hash.wrapping_mul(SEEDS[row]) >> 32) as usize & self.mask;
        let at = row * (self.mask + 1) + index;
        #[allow(clippy::cast_possible_truncation, reason = "at most 60")]
        let shift = (at % 16) as u32 * 4;
        (at / 16, shift)
    }

    /// How often `hash` was counted lately (at most 15).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        if self.words.is_empty() {
            return 0;
        }
        (0..ROWS)
            .map(|row| {
                let (word, shift) = self.counter(hash, row);
                #[allow(clippy::cast_possible_truncation, reason = "one 4-bit counter")]
                let count = ((self.words[word] >> shift) & 0xF) as u8;
                count
            })
            .min()
            .unwrap_or(0)
    }

    /// Counts `hash` once more (the smallest counters only: conservative update).
    pub(crate) fn increment(&mut self, hash: u64) {
        if self.words.is_empty() {
            return;
        }
        let least = self.estimate(hash);
        if least < 15 {
            for row in 0..ROWS {
                let (word, shift) = self.counter(hash, row);
                if (self.words[word] >> shift) & 0xF == u64::from(least) {
                    self.words[word] += 1 << shift;
                }
            }
        }
        self.added += 1;
        if self.added >= self.period {
            self.added = 0;
            for word in &mut self.words {
                *word = (*word >> 1) & 0x7777_7777_7777_7777;
            }
        }
    }

    /// Forgets every count.
    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
        self.added = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(k: u64) -> u64 {
        k.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29) ^ k
    }

    #[test]
    fn counts_keys_and_ages_them() {
        let mut sketch = Sketch::new(1000);
        for _ in 0..5 {
            sketch.increment(mix(1));
        }
        sketch.increment(mix(2));
        assert_eq!(sketch.estimate(mix(1)), 5);
        assert_eq!(sketch.estimate(mix(2)), 1);
        assert_eq!(sketch.estimate(mix(3)), 0);
        for _ in 0..20 {
            sketch.increment(mix(1));
        }
        assert_eq!(sketch.estimate(mix(1)), 15, "counters stop at 15");
        // 10 × capacity increments halve every counter.
        for k in 100..(100 + 10_000 - 26) {
            sketch.increment(mix(k));
        }
        assert_eq!(sketch.estimate(mix(1)), 7);
        sketch.clear();
        assert_eq!(sketch.estimate(mix(1)), 0);
    }

    #[test]
    fn an_empty_sketch_counts_nothing() {
        let mut sketch = Sketch::new(0);
        sketch.increment(1);
        assert_eq!(sketch.estimate(1), 0);
    }
}
