//! How to unit-test a memoized function: hits, misses, expiry and invalidation, without sleeping.
//!
//! Run: `cargo run --example testing --features test-util` (the same assertions work in a
//! `#[test]`). In your crate, turn the mock clock on for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! memo-kit = { version = "0.1", features = ["test-util"] }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memo::{Clock, cached};

static LOADS: AtomicU32 = AtomicU32::new(0);

/// The function under test: loads a user's settings, cached for 10 minutes.
#[cached(ttl = "10m", maxsize = 1_000)]
fn settings(user: &str) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    format!("settings of {user}")
}

fn main() {
    // Give the cache a clock the test moves by hand.
    let (clock, time) = Clock::mock();
    let cache = settings_cache();
    cache.set_clock(clock);

    // A miss, then a hit.
    assert_eq!(settings("ada"), "settings of ada");
    assert_eq!(settings("ada"), "settings of ada");
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits), (1, 1));
    println!("miss then hit: {stats:?}");

    // Still fresh one second before the ttl; expired at the ttl. No sleeping.
    time.increment(Duration::from_secs(599));
    settings("ada");
    assert_eq!(LOADS.load(Ordering::SeqCst), 1);
    time.increment(Duration::from_secs(1));
    settings("ada");
    assert_eq!(LOADS.load(Ordering::SeqCst), 2);
    println!(
        "after 10 minutes the value was loaded again ({} loads)",
        LOADS.load(Ordering::SeqCst)
    );

    // Invalidation forces the next call to load.
    assert!(cache.invalidate("ada"));
    settings("ada");
    assert_eq!(LOADS.load(Ordering::SeqCst), 3);

    // Start the counters afresh between test cases; entries stay.
    cache.reset_stats();
    settings("ada");
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(cache.keys(), ["ada".to_string()]);

    // While debugging, bypass every cache (feature `switch`; or run with MEMO_DISABLE=1).
    #[cfg(feature = "switch")]
    {
        memo::disable();
        settings("ada");
        assert_eq!(LOADS.load(Ordering::SeqCst), 4);
        memo::enable();
    }
    let checked = if cfg!(feature = "switch") {
        "hits, misses, expiry, invalidation, reset, bypass"
    } else {
        "hits, misses, expiry, invalidation, reset"
    };
    println!("all assertions hold: {checked}");
}
