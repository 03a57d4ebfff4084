//! Which of a power-of-two number of shards a hash belongs to: the store's shards, the in-flight
//! table's.

/// The shard of `hash` among `mask + 1` (a power of two), from the hash mixed once more.
///
/// Not from bits of the hash itself: foldhash's fast hash of keys that differ in their low bits
/// only (0, 1, 2, …) is close to `c + k·m` mod 2^64 in all but its lowest bits, with `m` fixed by
/// the process-wide seed, so any fixed range of its bits steps round a circle by `k·m`. In about
/// 1.5 % of processes `m` lands near a fraction of small denominator and keys 0..500 miss some of
/// the 16 shards entirely (for a few seeds all but one): those stay empty, and their share of the
/// bound (`maxsize` or `max_weight`, split exactly over the shards) goes unused. A folded multiply
/// (the last step of foldhash's quality hasher) breaks that linearity. The index still takes a
/// bucket from the hash's low bits and a tag from its top ones.
#[inline]
pub(crate) fn shard_of(hash: u64, mask: usize) -> usize {
    let product = u128::from(hash) * u128::from(SHARD_MIX);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the product folded into 64 bits, then masked to the shard count"
    )]
    let shard = (((product as u64) ^ ((product >> 64) as u64)) >> 32) as usize & mask;
    shard
}

/// An odd constant with no pattern in its bits (the fractional digits of pi), for [`shard_of`].
const SHARD_MIX: u64 = 0x243F_6A88_85A3_08D3;
