//! A check stored with each row: a value changed on disk after it was written (a flipped bit, a
//! write a power cut left half done, a page or a value file from elsewhere) is a miss and a
//! fault, never read back as another value.
//!
//! XXH3 (64 bits) of the namespace, the key and the value, the first two after their lengths:
//! a published algorithm, the same on every platform and in every build, as rows outlive the
//! build that wrote them. It covers the value itself, whether kept in the row or in a file.

use xxhash_rust::xxh3::Xxh3Default;

/// The check of `value` stored under `key` in namespace `ns`, as SQLite's `INTEGER` holds it.
pub(super) fn of(ns: &[u8], key: &[u8], value: &[u8]) -> i64 {
    let mut hasher = Xxh3Default::new();
    for part in [ns, key] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.update(value);
    i64::from_le_bytes(hasher.digest().to_le_bytes())
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
        // Rows written by one build are read by others: the algorithm may not drift. The
        // value is XXH3-64 of the bytes below (lengths as little-endian `u64`), seed 0.
        let mut input = Vec::new();
        input.extend_from_slice(&2_u64.to_le_bytes());
        input.extend_from_slice(b"ns");
        input.extend_from_slice(&3_u64.to_le_bytes());
        input.extend_from_slice(b"key");
        input.extend_from_slice(b"value");
        assert_eq!(
            of(b"ns", b"key", b"value"),
            i64::from_le_bytes(xxhash_rust::xxh3::xxh3_64(&input).to_le_bytes())
        );
    }
}
