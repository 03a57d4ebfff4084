//! `stale` and `refresh = "early"`: hot entries are recomputed in the background while callers
//! keep being served, on the mock clock (the refresh itself runs on a real thread).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memo::{Clock, cached};

use crate::calls::eventually;

static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);
/// Holds the background refresh (run 2) until the test has made its calls, so that it cannot
/// finish before them.
static RELEASE_REFRESH: AtomicBool = AtomicBool::new(false);

#[cached(ttl = "10s", stale = "5s")]
fn price(symbol: &str) -> usize {
    assert!(!symbol.is_empty());
    let run = PRICE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 2 {
        assert!(eventually(|| RELEASE_REFRESH.load(Ordering::SeqCst)));
    }
    run
}

#[test]
fn stale_values_are_served_while_one_caller_refreshes() {
    let (clock, mock) = Clock::mock();
    let cache = price_cache();
    cache.set_clock(clock);
    assert_eq!(price("ACME"), 1);
    mock.increment(Duration::from_secs(11));
    // Past the ttl, within `stale`: the old value now, a refresh in the background.
    assert_eq!(price("ACME"), 1);
    assert_eq!(price("ACME"), 1, "one refresh at a time");
    RELEASE_REFRESH.store(true, Ordering::SeqCst);
    assert!(
        eventually(|| cache.get("ACME") == Some(2)),
        "the refresh stored its value"
    );
    assert_eq!(price("ACME"), 2);
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().refreshes, 1);
    // Past ttl + stale: an ordinary miss, computed by the caller.
    mock.increment(Duration::from_secs(16));
    assert_eq!(price("ACME"), 3);
    assert_eq!(cache.stats().refreshes, 1);
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Its error is not `Clone`: the cache holds the `Ok` values alone, the refresh too.
#[cached(ttl = "10s", stale = "1m")]
fn flaky(id: u32) -> Result<usize, std::io::Error> {
    let run = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 2 {
        Err(std::io::Error::other(format!("upstream down for {id}")))
    } else {
        Ok(run)
    }
}

#[test]
fn a_failed_refresh_keeps_the_old_value() {
    let (clock, mock) = Clock::mock();
    let cache = flaky_cache();
    cache.set_clock(clock);
    assert_eq!(flaky(1).ok(), Some(1));
    mock.increment(Duration::from_secs(11));
    assert_eq!(
        flaky(1).ok(),
        Some(1),
        "served stale; the refresh (run 2) fails"
    );
    assert!(eventually(|| cache.stats().refresh_failures == 1));
    assert_eq!(
        flaky(1).ok(),
        Some(1),
        "still the old value; a new refresh starts"
    );
    assert!(eventually(|| cache.get(&1) == Some(3)));
    assert_eq!(cache.stats().refreshes, 2);
}

static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A large `beta` makes every hit after a computation "due early", deterministically.
#[cached(ttl = "10s", refresh = "early", beta = 1e12)]
fn report(day: u32) -> usize {
    assert!(day > 0);
    std::thread::sleep(Duration::from_millis(2));
    EARLY_RUNS.fetch_add(1, Ordering::SeqCst) + 1
}

#[test]
fn early_refresh_recomputes_before_the_expiry_without_a_miss() {
    let (clock, _mock) = Clock::mock();
    let cache = report_cache();
    cache.set_clock(clock);
    assert_eq!(report(7), 1);
    // Well before the ttl: served at once, and refreshed behind the caller's back.
    assert_eq!(report(7), 1);
    assert!(eventually(|| cache.get(&7) == Some(2)));
    assert_eq!(
        cache.stats().misses,
        1,
        "no caller computed after the first"
    );
    assert!(cache.stats().refreshes >= 1);
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Rect {
    w: usize,
    h: usize,
}

static AREA_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Rect {
    #[cached(ttl = "10s", stale = "5s")]
    fn area(&self, scale: usize) -> String {
        AREA_RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{}x{}x{scale}={}", self.w, self.h, self.w * self.h * scale)
    }
}

#[test]
fn methods_refresh_from_their_owned_self() {
    let (clock, mock) = Clock::mock();
    Rect::area_cache().set_clock(clock);
    let r = Rect { w: 2, h: 3 };
    assert_eq!(r.area(10), "2x3x10=60");
    mock.increment(Duration::from_secs(12));
    assert_eq!(r.area(10), "2x3x10=60");
    assert!(eventually(|| AREA_RUNS.load(Ordering::SeqCst) == 2));
    assert!(eventually(|| Rect::area_cache().stats().refreshes == 1));
    assert_eq!(r.area(10), "2x3x10=60");
}

/// `stale` and `refresh` on `async fn`s refresh in a task of the caller's tokio runtime.
#[cfg(feature = "tokio")]
mod asynchronous {
    use super::*;

    static QUOTE_RUNS: AtomicUsize = AtomicUsize::new(0);

    #[cached(ttl = "10s", stale = "5s")]
    async fn quote(symbol: &str) -> Result<usize, String> {
        tokio::task::yield_now().await;
        if symbol.is_empty() {
            return Err("no symbol".into());
        }
        Ok(QUOTE_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_values_are_served_while_a_task_refreshes() {
        let (clock, mock) = Clock::mock();
        let cache = quote_cache();
        cache.set_clock(clock);
        assert_eq!(quote("ACME").await, Ok(1));
        mock.increment(Duration::from_secs(11));
        assert_eq!(quote("ACME").await, Ok(1), "stale, refreshing in a task");
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.get("ACME") != Some(2) {
            assert!(
                Instant::now() < deadline,
                "the refresh task stored its value"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(quote("ACME").await, Ok(2));
        assert_eq!(cache.stats().refreshes, 1);
    }

    struct Feed {
        name: String,
    }

    static ITEMS_RUNS: AtomicUsize = AtomicUsize::new(0);

    impl Feed {
        #[cached(ttl = "10s", refresh = "early", beta = 1e12)]
        async fn items(&self, page: u32) -> String {
            tokio::time::sleep(Duration::from_millis(2)).await;
            ITEMS_RUNS.fetch_add(1, Ordering::SeqCst);
            format!("{}#{page}", self.name)
        }
    }

    impl Clone for Feed {
        fn clone(&self) -> Self {
            Self {
                name: self.name.clone(),
            }
        }
    }

    impl PartialEq for Feed {
        fn eq(&self, other: &Self) -> bool {
            self.name == other.name
        }
    }

    impl Eq for Feed {}

    impl std::hash::Hash for Feed {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.name.hash(state);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_methods_refresh_early_from_their_owned_self() {
        let feed = Feed {
            name: "news".into(),
        };
        assert_eq!(feed.items(1).await, "news#1");
        assert_eq!(
            feed.items(1).await,
            "news#1",
            "served at once, refreshed behind"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while ITEMS_RUNS.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the early refresh ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(Feed::items_cache().stats().misses, 1);
    }
}
