//! A check stored with each row: a value changed on disk after it was written (a flipped bit, a
//! write a power cut left half done, a page or a value file from elsewhere) is a miss and a
//! fault, never read back as another value.
//!
//! XXH3 (64 bits) of the value, seeded with the XXH3 of the key seeded with that of the
//! namespace: a published algorithm, the same on every platform and in every build, as rows
//! outlive the build that wrote them. It covers the value itself, whether kept in the row or in
//! a file. Three one-shot hashes cost less than half of one streaming hash of the three.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The check of `value` stored under `key` in namespace `ns`, as SQLite's `INTEGER` holds it.
pub(super) fn of(ns: &[u8], key: &[u8], value: &[u8]) -> i64 {
    let sum = xxh3_64_with_seed(value, xxh3_64_with_seed(key, xxh3_64(ns)));
    i64::from_le_bytes(sum.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::of;

    #[test]
    fn every_part_and_every_bit_counts() {
        let sum = of(b"ns", b"key", b"value");
        assert_eq!(sum, of(b"ns", b"key", b"value"), "deterministic");
        assert_ne!(sum, of(b"ns", b"key", b"valuf"));
        assert_ne!(sum, of(b"ns", b"kez", b"value"));
        assert_ne!(sum, of(b"nt", b"key", b"value"));
        // The boundaries between the parts count, not only their bytes.
        assert_ne!(of(b"ns", b"keyv", b"alue"), sum);
        assert_ne!(of(b"nsk", b"ey", b"value"), sum);
    }

    #[test]
    fn the_sum_is_the_published_xxh3() {
        // Rows written by one build are read by others: the algorithm may not drift. XXH3-64
        // of nothing is 0x2d06_8005_38d3_94c2 in the reference implementation's tests; the
        // sum of a row is pinned as this build computes it, so that any change shows here.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(of(b"ns", b"key", b"value"), PINNED);
    }

    const PINNED: i64 = 3_160_823_268_423_690_457;
}
