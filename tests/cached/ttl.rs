//! Expiry on the mock clock: no sleeping to expire entries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memo::{Clock, cached};

static RATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "10s")]
fn rate(pair: &str) -> usize {
    RATE_RUNS.fetch_add(1, Ordering::SeqCst) + pair.len()
}

#[test]
fn entries_expire_after_their_ttl() {
    let (clock, mock) = Clock::mock();
    rate_cache().set_clock(clock);
    let first = rate("EURUSD");
    mock.increment(Duration::from_millis(9_999));
    assert_eq!(rate("EURUSD"), first, "still fresh");
    mock.increment(Duration::from_millis(1));
    assert_ne!(rate("EURUSD"), first, "expired: recomputed");
    assert_eq!(RATE_RUNS.load(Ordering::SeqCst), 2);
}

#[cached(ttl = Duration::from_secs(60), maxsize = 10_000)]
fn token(user: u32) -> String {
    format!("token-{user}")
}

#[test]
fn expired_entries_are_freed_without_being_read() {
    let (clock, mock) = Clock::mock();
    let cache = token_cache();
    cache.set_clock(clock);
    for user in 0..1_000 {
        token(user);
    }
    assert_eq!(cache.len(), 1_000);
    mock.increment(Duration::from_secs(61));
    // Nobody reads these keys again: the background sweep frees them (it runs every second).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cache.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(cache.len(), 0, "expired entries must not pile up");
    assert_eq!(cache.stats().expired, 1_000);
}

#[cached(ttl = "1m")]
fn session(id: u32) -> u32 {
    id
}

#[test]
fn writes_sweep_expired_entries_and_purge_frees_the_rest() {
    let (clock, mock) = Clock::mock();
    let cache = session_cache();
    cache.set_clock(clock);
    for id in 0..500 {
        session(id);
    }
    mock.increment(Duration::from_secs(120));
    // New writes remove expired entries as they go (every shard sees several of them).
    for id in 1_000..2_000 {
        session(id);
    }
    assert!(cache.stats().expired > 0, "{:?}", cache.stats());
    assert!(cache.len() < 1_500);
    cache.purge_expired();
    assert_eq!(cache.len(), 1_000);
    assert_eq!(
        cache.stats().expired,
        500,
        "each expired entry is counted once, whoever removed it"
    );
}

#[cached(ttl = "100s", jitter = 0.2)]
fn quote_of(id: u32) -> u32 {
    id
}

#[test]
fn jitter_spreads_the_expiry_of_entries_stored_together() {
    let (clock, mock) = Clock::mock();
    let cache = quote_of_cache();
    cache.set_clock(clock);
    for id in 0..1_000 {
        quote_of(id);
    }
    let live = || (0..1_000).filter(|id| cache.contains_key(id)).count();
    mock.increment(Duration::from_secs(79));
    assert_eq!(live(), 1_000);
    mock.increment(Duration::from_secs(21));
    let at_ttl = live();
    assert!(
        (300..700).contains(&at_ttl),
        "about half expire by the ttl, got {at_ttl}"
    );
    mock.increment(Duration::from_secs(20));
    assert_eq!(live(), 0);
}
