//! Async calls dropped at their await points, and background refreshes dropped with the
//! runtime that ran them: every later caller gets the right value, a key is computed again
//! where it must be, and nothing is left waiting or claimed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use memo::{Clock, cached};

use crate::asynchronous::steps;

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
/// the key: the old value is not served for the whole `stale` window. The dropped refresh is
/// counted in `refresh_failures` (CHANGELOG), the one that ran is not.
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
        let failures = cache.stats().refresh_failures;
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
        assert_eq!(
            cache.stats().refresh_failures,
            failures + 1,
            "round {round}: the dropped refresh failed"
        );
        READING_HOLDS.store(false, Ordering::SeqCst);
        let old = cache.peek(&7).expect("the stale value stays");
        let live = runtime();
        live.block_on(async {
            assert_eq!(
                reading(7).await,
                old,
                "round {round}: stale while it refreshes"
            );
            let renewed = yield_until(|| cache.peek(&7).is_some_and(|v| v != old)).await;
            assert!(
                renewed,
                "round {round}: the key was refreshed on the live runtime: {:?}",
                cache.stats()
            );
            let new = reading(7).await;
            assert_ne!(new, old, "round {round}");
            assert_eq!(new % 100, 7, "round {round}");
        });
        assert_eq!(cache.stats().refreshes, refreshes + 2, "round {round}");
        assert_eq!(
            cache.stats().refresh_failures,
            failures + 1,
            "round {round}: the live refresh did not fail"
        );
    }
}

static GAUGE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Due for an early refresh at every read (`beta` that large makes any cost lead the expiry).
#[cached(ttl = "1h", refresh = "early", beta = 1e12)]
async fn gauge(id: u32) -> usize {
    let run = GAUGE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    // A cost the early refresh can measure.
    std::thread::sleep(Duration::from_millis(1));
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    run * 100 + id as usize
}

/// Early refreshes dropped with their runtime after each number of the runtime's turns (before
/// the task ran, in the body, between the body and the store): whichever point it died at (or
/// if it finished), the next read on a live runtime refreshes the key again.
#[test]
fn an_early_refresh_dropped_at_any_point_leaves_the_key_to_be_refreshed() {
    let cache = gauge_cache();
    assert_eq!(runtime().block_on(gauge(3)), 103);
    for turns in 0..12 {
        let refreshes = cache.stats().refreshes;
        let doomed = runtime();
        doomed.block_on(async {
            assert_eq!(gauge(3).await % 100, 3, "turns {turns}");
            for _ in 0..turns {
                tokio::task::yield_now().await;
            }
        });
        drop(doomed);
        assert_eq!(
            cache.stats().refreshes,
            refreshes + 1,
            "turns {turns}: a refresh began"
        );
        let old = cache.peek(&3).expect("the value stays");
        runtime().block_on(async {
            assert_eq!(
                gauge(3).await,
                old,
                "turns {turns}: served while it refreshes"
            );
            let renewed = yield_until(|| cache.peek(&3).is_some_and(|v| v != old)).await;
            assert!(
                renewed,
                "turns {turns}: the key was refreshed on the live runtime: {:?}",
                cache.stats()
            );
        });
        assert_eq!(cache.stats().refreshes, refreshes + 2, "turns {turns}");
    }
}

/// Fails the test binary (it cannot fail the test from its thread) if not dropped within a
/// minute: a caller left waiting for a computation nobody runs.
struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

impl Watchdog {
    fn start(what: &'static str) -> Self {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                wait.recv_timeout(Duration::from_secs(60))
            {
                eprintln!("watchdog: {what} hung");
                std::process::exit(101);
            }
        });
        Self(Some(done))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

/// Calls of one key dropped at each poll in turn, with others waiting on it. For `polls` = 1,
/// 2, …: a leader of key `base + polls` is polled once; two waiters join it; the first waiter
/// is dropped after the leader's second poll, the leader after its `polls`-th; the second waiter
/// must then get the key's value (and wait for nothing that is not running), a caller after it
/// must hit, and the key must have run at most twice. Ends when the leader finishes within its
/// polls; returns how many leaders were dropped.
async fn drop_at_every_poll<F: Future<Output = u64>>(
    base: u64,
    call: impl Fn(u64) -> F,
    expected: impl Fn(u64) -> u64,
    runs: impl Fn(u64) -> usize,
) -> u64 {
    use std::task::{Context, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    for polls in 1..=100_u64 {
        let key = base + polls;
        let before = runs(key);
        let mut leader = Box::pin(call(key));
        let mut first = Some(Box::pin(call(key)));
        let mut second = Box::pin(call(key));
        let mut finished = false;
        for poll in 1..=polls {
            if leader.as_mut().poll(&mut cx).is_ready() {
                finished = true;
                break;
            }
            if poll == 1 {
                let waiting = first.as_mut().unwrap().as_mut().poll(&mut cx).is_pending()
                    && second.as_mut().poll(&mut cx).is_pending();
                assert!(waiting, "key {key}: the waiters wait for the leader");
            }
            if poll == 2 {
                drop(first.take());
            }
        }
        drop(leader);
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(20), second)
            .await
            .unwrap_or_else(|_| panic!("key {key}: the waiter is held"));
        assert_eq!(second, expected(key), "key {key}: the waiter");
        let computed = runs(key);
        assert_eq!(call(key).await, expected(key), "key {key}: the next caller");
        assert_eq!(runs(key), computed, "key {key}: the next caller hit");
        let executions = computed - before;
        assert!(
            (1..=2).contains(&executions),
            "key {key}: {executions} executions"
        );
        if finished {
            return polls - 1;
        }
    }
    panic!("a call did not finish within 100 polls");
}

/// Executions of each key of the functions below. Counted by key, not in one total: the two
/// tests that drop their calls run at once, on keys of their own, and a total counts the other
/// test's executions too.
static DROPPED_RUNS: std::sync::Mutex<BTreeMap<u64, usize>> =
    std::sync::Mutex::new(BTreeMap::new());

fn dropped_run(n: u64) {
    *DROPPED_RUNS.lock().unwrap().entry(n).or_default() += 1;
}

fn dropped_runs(n: u64) -> usize {
    DROPPED_RUNS.lock().unwrap().get(&n).copied().unwrap_or(0)
}

#[cached(ttl = "1h")]
async fn with_ttl(n: u64) -> u64 {
    dropped_run(n);
    steps(3).await;
    n * 3
}

#[cached(ttl = "1h")]
async fn fallible(n: u64) -> Result<u64, String> {
    dropped_run(n);
    steps(2).await;
    if n == u64::MAX {
        return Err("never".into());
    }
    steps(1).await;
    Ok(n * 3)
}

#[cached(ttl = "1h", stale = "1h")]
async fn with_stale(n: u64) -> Result<u64, std::io::Error> {
    dropped_run(n);
    steps(3).await;
    Ok(n * 3)
}

#[cached(ttl = "1h", refresh = "early")]
async fn with_early(n: u64) -> u64 {
    dropped_run(n);
    steps(3).await;
    n * 3
}

#[cached(ttl = "1h", cache_err = true)]
async fn cached_err(n: u64) -> Result<u64, String> {
    dropped_run(n);
    steps(3).await;
    Ok(n * 3)
}

/// Every memory-store shape of an `async fn` (a ttl, a `Result` stored by its `Ok`, `stale`,
/// early refresh, `cache_err`), its leader dropped at each await point with waiters on the key.
#[tokio::test]
async fn callers_dropped_at_every_poll_leave_the_waiters_served() {
    let _watchdog = Watchdog::start("callers_dropped_at_every_poll_leave_the_waiters_served");
    let triple = |n: u64| n * 3;
    let dropped = drop_at_every_poll(0, with_ttl, triple, dropped_runs).await;
    assert_eq!(
        dropped, 3,
        "with_ttl: dropped at each of its body's await points"
    );
    let call = |n| async move { fallible(n).await.unwrap() };
    let dropped = drop_at_every_poll(1000, call, triple, dropped_runs).await;
    assert_eq!(dropped, 3, "fallible");
    let call = |n| async move { with_stale(n).await.unwrap() };
    let dropped = drop_at_every_poll(2000, call, triple, dropped_runs).await;
    assert_eq!(dropped, 3, "with_stale");
    let dropped = drop_at_every_poll(3000, with_early, triple, dropped_runs).await;
    assert_eq!(dropped, 3, "with_early");
    let call = |n| async move { cached_err(n).await.unwrap() };
    let dropped = drop_at_every_poll(4000, call, triple, dropped_runs).await;
    assert_eq!(dropped, 3, "cached_err");
}

/// Two leaders in a row dropped: for each pair (`first`, `then`) of poll counts, the leader of
/// key `base + i` is dropped after `first` polls, the waiter that takes over after `then`
/// polls of its own, and a third caller (waiting since the start) must get the value, with at
/// most three executions and the next caller hitting.
async fn drop_two_leaders<F: Future<Output = u64>>(
    base: u64,
    call: impl Fn(u64) -> F,
    expected: impl Fn(u64) -> u64,
    runs: impl Fn(u64) -> usize,
) {
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    let mut key = base;
    for first in 1..=4_u64 {
        for then in 1..=4_u64 {
            key += 1;
            let before = runs(key);
            let mut leader = Box::pin(call(key));
            let mut next = Box::pin(call(key));
            let mut last = Box::pin(call(key));
            assert!(leader.as_mut().poll(&mut cx).is_pending(), "key {key}");
            assert!(next.as_mut().poll(&mut cx).is_pending(), "key {key}: waits");
            assert!(last.as_mut().poll(&mut cx).is_pending(), "key {key}: waits");
            for _ in 1..first {
                if let Poll::Ready(value) = leader.as_mut().poll(&mut cx) {
                    assert_eq!(value, expected(key), "key {key}: the leader");
                    break;
                }
            }
            drop(leader);
            for _ in 0..then {
                if let Poll::Ready(value) = next.as_mut().poll(&mut cx) {
                    assert_eq!(value, expected(key), "key {key}: the second caller");
                    break;
                }
            }
            drop(next);
            let last = tokio::time::timeout(Duration::from_secs(20), last)
                .await
                .unwrap_or_else(|_| panic!("key {key}: the last caller is held"));
            assert_eq!(last, expected(key), "key {key} ({first}, {then})");
            let computed = runs(key);
            assert_eq!(call(key).await, expected(key), "key {key}: the next caller");
            assert_eq!(runs(key), computed, "key {key}: the next caller hit");
            assert!(
                computed - before <= 3,
                "key {key}: {} executions",
                computed - before
            );
        }
    }
}

#[tokio::test]
async fn two_leaders_dropped_in_a_row_leave_the_last_waiter_served() {
    let _watchdog = Watchdog::start("two_leaders_dropped_in_a_row_leave_the_last_waiter_served");
    let triple = |n: u64| n * 3;
    drop_two_leaders(10_000, with_ttl, triple, dropped_runs).await;
    let call = |n| async move { fallible(n).await.unwrap() };
    drop_two_leaders(11_000, call, triple, dropped_runs).await;
    let call = |n| async move { with_stale(n).await.unwrap() };
    drop_two_leaders(12_000, call, triple, dropped_runs).await;
    drop_two_leaders(13_000, with_early, triple, dropped_runs).await;
}
