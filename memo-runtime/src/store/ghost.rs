//! The ghost of the default policy: the keys that left the small queue lately, remembered by a
//! 24-bit fingerprint of their hash (not as entries), in the order they left.
//!
//! A fingerprint queue holds the latest `size` departures; a small table counts how many of them
//! each fingerprint has (fingerprint and count packed in 4 bytes), so a lookup is one probe. About
//! 4 bytes of queue and 5 to 10 of table per remembered key. A new key mistaken for a remembered
//! one (a chance of `size` in 16 million) only enters the main queue a little early.

use std::collections::VecDeque;

use hashbrown::HashTable;

pub(crate) struct Ghost {
    /// Fingerprints in the order their keys left, oldest first.
    order: VecDeque<u32>,
    /// Each fingerprint in `order` (high 24 bits) with how many times it is there (low 8 bits; a
    /// count that reached 255 stays, so a key left that often is remembered until cleared).
    counts: HashTable<u32>,
    size: usize,
}

/// The low 8 bits of a `counts` entry.
const COUNT: u32 = 0xFF;

/// The fingerprint of a key's hash (in the high 24 bits): its bits mixed, so that the bits the
/// store used to pick the shard (all alike within a shard) do not weaken it.
#[allow(clippy::cast_possible_truncation, reason = "the mixed top half")]
fn fingerprint(hash: u64) -> u32 {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32 & !COUNT
}

/// Where a fingerprint sits in `counts`.
fn slot_hash(fingerprint: u32) -> u64 {
    u64::from(fingerprint).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl Ghost {
    /// A ghost remembering the latest `size` keys; none for a size of 0.
    pub(crate) fn new(size: usize) -> Self {
        Self {
            order: VecDeque::new(),
            counts: HashTable::new(),
            size,
        }
    }

    /// Whether a key with this hash left the small queue lately.
    pub(crate) fn contains(&self, hash: u64) -> bool {
        let fp = fingerprint(hash);
        self.counts
            .find(slot_hash(fp), |e| e & !COUNT == fp)
            .is_some()
    }

    /// Remembers a key with this hash (again, if it is remembered already: for longer).
    pub(crate) fn add(&mut self, hash: u64) {
        if self.size == 0 {
            return;
        }
        let fp = fingerprint(hash);
        match self.counts.entry(
            slot_hash(fp),
            |e| e & !COUNT == fp,
            |e| slot_hash(e & !COUNT),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                if *e.get() & COUNT < COUNT {
                    *e.get_mut() += 1;
                }
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(fp | 1);
            }
        }
        if self.order.capacity() == 0 {
            // Its full size at once: the queue fills within one shard's worth of evictions.
            self.order.reserve_exact(self.size + 1);
        }
        self.order.push_back(fp);
        if self.order.len() > self.size
            && let Some(old) = self.order.pop_front()
            && let Ok(mut e) = self
                .counts
                .find_entry(slot_hash(old), |e| e & !COUNT == old)
        {
            match *e.get() & COUNT {
                COUNT => {}
                1 => {
                    e.remove();
                }
                _ => *e.get_mut() -= 1,
            }
        }
    }

    /// Forgets every key.
    pub(crate) fn clear(&mut self) {
        self.order = VecDeque::new();
        self.counts = HashTable::new();
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
        assert!((0..1000).all(|k| ghost.contains(mix(k))));
        // Remembered again, key 0 outlives the keys that left after it.
        ghost.add(mix(0));
        for k in 1000..1999 {
            ghost.add(mix(k));
        }
        assert!(ghost.contains(mix(0)));
        assert!(!(1..1000).any(|k| ghost.contains(mix(k))));
        assert!((1000..1999).all(|k| ghost.contains(mix(k))));
        assert_eq!(ghost.order.len(), 1000);
        assert_eq!(ghost.counts.len(), 1000);
        ghost.clear();
        assert!(!(1000..1999).any(|k| ghost.contains(mix(k))));
    }

    #[test]
    fn a_zero_size_ghost_remembers_nothing() {
        let mut ghost = Ghost::new(0);
        ghost.add(1);
        assert!(!ghost.contains(1));
    }
}
