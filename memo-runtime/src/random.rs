//! Cheap per-thread random numbers for spreading expiry times and early refreshes.

use std::cell::Cell;
use std::hash::BuildHasher;

thread_local! {
    static STATE: Cell<u64> = Cell::new(
        foldhash::fast::RandomState::default().hash_one(std::thread::current().id()) | 1,
    );
}

/// A uniform number in `(0, 1]` (never 0, so its logarithm is finite), from a per-thread xorshift
/// generator: not for secrets, good enough to spread times.
pub(crate) fn unit() -> f64 {
    let bits = STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    #[allow(clippy::cast_precision_loss, reason = "53 bits are all an f64 holds")]
    let unit = ((bits >> 11) + 1) as f64 / (1_u64 << 53) as f64;
    unit
}

/// `ttl` spread uniformly over `ttl × [1 − fraction, 1 + fraction)`, at least 1: the time to
/// live of one entry under `jitter = fraction` (remote stores; any unit).
#[cfg(any(feature = "redis", feature = "disk"))]
pub(crate) fn spread(ttl: u64, fraction: f64) -> u64 {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a spread time to live need not be exact to the unit"
    )]
    let spread = (ttl as f64 * fraction.mul_add(2.0f64.mul_add(unit(), -1.0), 1.0)).max(1.0) as u64;
    spread
}

#[cfg(test)]
mod tests {
    #[test]
    fn units_are_in_range_and_spread() {
        let samples: Vec<f64> = (0..10_000).map(|_| super::unit()).collect();
        assert!(samples.iter().all(|u| *u > 0.0 && *u <= 1.0));
        let mean = samples.iter().sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }
}
