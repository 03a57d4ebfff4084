//! How the facade's tests call and wait: callers released together, a condition awaited while
//! background refreshes run, and the count that says no caller waited.
#![allow(dead_code, reason = "each test binary uses a part")]

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Waits (up to 10 s) until `done` holds: background refreshes run on threads of their own.
pub(crate) fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Asserts that reading a key continuously left `misses` and `coalesced` at their warm-up
/// values (`warm`: a caller that waited for a computation is one or the other), that the key
/// was refreshed every period or so, and that the store never failed.
pub(crate) fn assert_nobody_waited(warm: &memo::Stats, stats: &memo::Stats) {
    assert_none_but_late_waited(warm, stats, 0);
}

/// [`assert_nobody_waited`] of a reader in real time, of whose reads `late` came after a pause
/// longer than the key's window for a refresh nobody waits for: those may have waited.
pub(crate) fn assert_none_but_late_waited(warm: &memo::Stats, stats: &memo::Stats, late: u64) {
    let waited = (stats.misses - warm.misses) + (stats.coalesced - warm.coalesced);
    assert!(
        waited <= late,
        "no caller computed or waited after the first but {late} late ones: {stats:?}"
    );
    assert!(stats.refreshes >= 5, "refreshed every period: {stats:?}");
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
}

/// Runs `call` on `threads` threads released together; what each returned, in order.
pub(crate) fn at_once<T: Send + 'static>(threads: usize, call: fn() -> T) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                call()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Reads a key continuously: `read` once to fill the cache, then `reads` times more, each after
/// `tick` (which advances a mock clock, or does nothing) and followed by `pause` of real time;
/// returns the statistics after the first read, for [`assert_nobody_waited`].
pub(crate) fn read_continuously(
    reads: usize,
    pause: Duration,
    tick: impl Fn(),
    stats: impl Fn() -> memo::Stats,
    read: impl Fn(),
) -> memo::Stats {
    read();
    let warm = stats();
    for _ in 0..reads {
        tick();
        read();
        std::thread::sleep(pause);
    }
    warm
}

/// [`read_continuously`] of an `async fn` whose every call gives 1, awaited.
pub(crate) async fn read_continuously_async<F: Future<Output = usize>>(
    reads: usize,
    pause: Duration,
    tick: impl Fn(),
    stats: impl Fn() -> memo::Stats,
    read: impl Fn() -> F,
) -> memo::Stats {
    read().await;
    let warm = stats();
    for _ in 0..reads {
        tick();
        assert_eq!(read().await, 1);
        tokio::time::sleep(pause).await;
    }
    warm
}

/// Cancels a call at each of its await points in turn. For `polls` = 1, 2, … a call of key
/// `polls` is polled that many times and dropped; a second caller of the same key, polled once
/// after the first poll (so it joins the first if that one leads), is then awaited and must
/// get `call`'s value for the key, and a third call must hit (`runs`, the body's executions,
/// unchanged), with at most two executions for the key. Between polls, `pause` of real time
/// lets a store outside the process answer. Ends when a call finishes within its polls;
/// returns how many were cancelled.
pub(crate) async fn cancel_at_every_await<F: Future<Output = u64>>(
    call: impl Fn(u64) -> F,
    expected: impl Fn(u64) -> u64,
    runs: impl Fn() -> usize,
    pause: Duration,
) -> u64 {
    use std::task::{Context, Waker};
    for polls in 1..=200_u64 {
        let key = polls;
        let before = runs();
        // Boxed, so that dropping it drops the call.
        let mut first = Box::pin(call(key));
        let mut second = Box::pin(call(key));
        let mut cx = Context::from_waker(Waker::noop());
        let mut finished = false;
        for poll in 0..polls {
            if first.as_mut().poll(&mut cx).is_ready() {
                finished = true;
                break;
            }
            if poll == 0 {
                let second_done = second.as_mut().poll(&mut cx).is_ready();
                assert!(!second_done, "key {key}: the second caller did not wait");
            }
            tokio::time::sleep(pause).await;
        }
        drop(first);
        // Bounded: a flight or lock the dropped call left behind would hold it.
        let second = tokio::time::timeout(Duration::from_secs(10), second).await;
        let second = second.unwrap_or_else(|_| panic!("key {key}: the second caller is held"));
        assert_eq!(second, expected(key), "key {key}: the second caller");
        let computed = runs();
        assert_eq!(
            call(key).await,
            expected(key),
            "key {key}: the third caller"
        );
        assert_eq!(runs(), computed, "key {key}: the third caller hit");
        assert!(
            computed - before <= 2,
            "key {key}: {} executions",
            computed - before
        );
        if finished {
            return polls - 1;
        }
    }
    panic!("a call did not finish within 200 polls");
}

/// Polls `future` once, without a runtime: `true` if it finished.
pub(crate) fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    future.poll(&mut context).is_ready()
}
