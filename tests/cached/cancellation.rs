//! Async calls dropped at their await points, and background refreshes dropped with the
//! runtime that ran them: every later caller gets the right value, a key is computed again
//! where it must be, and nothing is left waiting or claimed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use memo::{Clock, cached};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Yields to the runtime's other tasks until `done` holds, at most 10,000 times.
async fn yield_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..10_000 {
        if done() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    done()
}

static READING_RUNS: AtomicUsize = AtomicUsize::new(0);
/// While set, a computation waits for ever at its await point (its task is dropped there).
static READING_HOLDS: AtomicBool = AtomicBool::new(false);

#[cached(ttl = "10s", stale = "1h")]
async fn reading(id: u32) -> usize {
    let run = READING_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::task::yield_now().await;
    if READING_HOLDS.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    run * 100 + id as usize
}

/// A program that runs each call on a runtime of its own (`Runtime::new()?.block_on(..)` in a
/// sync wrapper, or one `#[tokio::test]` after another): the refresh a stale read started dies
/// with its runtime, before it ran or in its body. The next read on a live runtime refreshes
/// the key: the old value is not served for the whole `stale` window.
#[test]
fn a_refresh_dropped_with_its_runtime_leaves_the_key_to_be_refreshed() {
    let (clock, time) = Clock::mock();
    reading_cache().set_clock(clock);
    assert_eq!(runtime().block_on(reading(7)), 107);
    // Dropped before its task ran, then dropped in its body.
    for (round, started) in [(0, false), (1, true)] {
        let cache = reading_cache();
        time.increment(Duration::from_secs(11));
        let refreshes = cache.stats().refreshes;
        let runs = READING_RUNS.load(Ordering::SeqCst);
        READING_HOLDS.store(true, Ordering::SeqCst);
        let doomed = runtime();
        doomed.block_on(async {
            let stale = reading(7).await;
            assert_eq!(stale % 100, 7, "round {round}: the stale value");
            if started {
                let ran = yield_until(|| READING_RUNS.load(Ordering::SeqCst) > runs).await;
                assert!(ran, "round {round}: the refresh's body started");
            }
        });
        drop(doomed);
        assert_eq!(cache.stats().refreshes, refreshes + 1, "round {round}");
        READING_HOLDS.store(false, Ordering::SeqCst);
        let old = cache.peek(&7).expect("the stale value stays");
        let live = runtime();
        live.block_on(async {
            assert_eq!(reading(7).await, old, "round {round}: stale while it refreshes");
            let refreshed = yield_until(|| cache.peek(&7).is_some_and(|v| v != old)).await;
            assert!(
                refreshed,
                "round {round}: the key was refreshed on the live runtime: {:?}",
                cache.stats()
            );
            let new = reading(7).await;
            assert_ne!(new, old, "round {round}");
            assert_eq!(new % 100, 7, "round {round}");
        });
        assert_eq!(cache.stats().refreshes, refreshes + 2, "round {round}");
    }
}
