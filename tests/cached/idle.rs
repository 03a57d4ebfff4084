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
