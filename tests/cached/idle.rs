//! `idle = …`: an entry lives while it is used (moka's `time_to_idle`, cached's
//! `refresh = true`), on the mock clock.

use std::time::Duration;

use memo::{Clock, cached};

#[cached(idle = "2s")]
fn session(user: u32) -> String {
    format!("session of {user}")
}

/// cached's `test_cached_timed_refresh`: a key read every half period is computed once:
/// (hits, misses) = (4, 1); left unread for a whole period, it is computed again.
#[test]
fn an_entry_read_every_half_period_lives_on() {
    let (clock, mock) = Clock::mock();
    let cache = session_cache();
    cache.set_clock(clock);
    session(1);
    for _ in 0..4 {
        mock.increment(Duration::from_secs(1));
        session(1);
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (4, 1));
    mock.increment(Duration::from_millis(2_001));
    session(1);
    assert_eq!(cache.stats().misses, 2, "idle for a whole period: expired");
    assert_eq!(cache.config().idle, Some(Duration::from_secs(2)));
}

static LOUNGE_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cached(idle = "10s")]
fn lounge(user: u32) -> usize {
    assert!(user > 0);
    std::thread::sleep(Duration::from_millis(10));
    LOUNGE_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
}

/// A crowd of callers of a key in use (each renewing it, at most one renewal a sixteenth of the
/// period) keeps reading its one value; left idle for a period, the key is computed again once
/// for the next crowd, none of which reads the expired value.
#[test]
fn crowds_renew_an_idle_entry_and_recompute_it_once_after_a_period() {
    let (clock, mock) = Clock::mock();
    lounge_cache().set_clock(clock);
    let crowd = || crate::calls::at_once(16, || lounge(1));
    assert!(crowd().iter().all(|&run| run == 1));
    for _ in 0..4 {
        mock.increment(Duration::from_secs(6));
        assert!(crowd().iter().all(|&run| run == 1), "renewed by its use");
    }
    mock.increment(Duration::from_secs(10));
    assert!(
        crowd().iter().all(|&run| run == 2),
        "expired: computed once"
    );
    let stats = lounge_cache().stats();
    assert_eq!(stats.misses, 2, "{stats:?}");
    assert_eq!(stats.hits + stats.coalesced, 6 * 16 - 2, "{stats:?}");
}
