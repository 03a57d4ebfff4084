//! How the facade's tests call and wait: callers released together, a condition awaited while
//! background refreshes run, and the counts that say no caller waited (its misses, and the
//! bodies that ran while their reader waited, [`Reads`]).
#![allow(dead_code, reason = "each test binary uses a part")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The reads of one key read continuously, as its body sees them: a body run while the reader
/// reads waits (up to 5 s) for the reader's next read, which comes only if the reader did not
/// wait for the body, whether the body ran in the read or elsewhere while the read waited.
pub(crate) struct Reads {
    reading: AtomicBool,
    done: AtomicUsize,
    waited: AtomicUsize,
}

impl Reads {
    pub(crate) const fn new() -> Self {
        Self {
            reading: AtomicBool::new(false),
            done: AtomicUsize::new(0),
            waited: AtomicUsize::new(0),
        }
    }

    /// Called first by the body: while the key is read continuously, returns once the reader
    /// read again (or stopped), counting a reader that did not within 5 s.
    pub(crate) fn body_runs(&self) {
        let Some(begun) = self.begun() else { return };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.waits_on(begun, deadline) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`body_runs`](Self::body_runs) of an `async fn`'s body, which must not block its
    /// runtime's thread.
    pub(crate) async fn body_runs_async(&self) {
        let Some(begun) = self.begun() else { return };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.waits_on(begun, deadline) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The reads done when a body began, if it is to wait for the next: not once a body
    /// waited in vain, which fails the test already (each would cost its 5 s).
    fn begun(&self) -> Option<usize> {
        (self.reading.load(Ordering::SeqCst) && self.waited.load(Ordering::SeqCst) == 0)
            .then(|| self.done.load(Ordering::SeqCst))
    }

    /// Whether a body begun at `begun` reads waits on: its reader has not read again (nor
    /// stopped), and `deadline` has not passed (then it counts the reader as waiting for it).
    fn waits_on(&self, begun: usize, deadline: Instant) -> bool {
        if !self.reading.load(Ordering::SeqCst) || self.done.load(Ordering::SeqCst) > begun {
            return false;
        }
        if Instant::now() > deadline {
            self.waited.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn start(&self) {
        self.reading.store(true, Ordering::SeqCst);
    }

    fn read(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    /// While the reader waits for bodies on purpose, between its reads (`done` holds once they
    /// ended): they need not wait for it. Whether `done` held.
    pub(crate) fn between_reads(&self, done: impl Fn() -> bool) -> bool {
        self.reading.store(false, Ordering::SeqCst);
        let ended = eventually(done);
        self.reading.store(true, Ordering::SeqCst);
        ended
    }

    fn stop(&self) {
        self.reading.store(false, Ordering::SeqCst);
    }

    /// The bodies whose reader did not read again within 5 s: it waited for them.
    fn waited(&self) -> u64 {
        self.waited.load(Ordering::SeqCst) as u64
    }
}

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
/// values (`warm`: a caller that waited for a computation is one or the other), that no body
/// ran while its reader waited for it (`reads`, counted by the bodies), that the key was
/// refreshed every period or so, and that the store never failed.
pub(crate) fn assert_nobody_waited(warm: &memo::Stats, stats: &memo::Stats, reads: &Reads) {
    assert_none_but_late_waited(warm, stats, reads, 0);
}

/// [`assert_nobody_waited`] of a reader in real time, of whose reads `late` came after a pause
/// longer than the key's window for a refresh nobody waits for: those may have waited.
pub(crate) fn assert_none_but_late_waited(
    warm: &memo::Stats,
    stats: &memo::Stats,
    reads: &Reads,
    late: u64,
) {
    let waited = (stats.misses - warm.misses) + (stats.coalesced - warm.coalesced);
    assert!(
        waited <= late,
        "no caller computed or waited after the first but {late} late ones: {stats:?}"
    );
    assert!(
        reads.waited() <= late,
        "{} bodies ran while their reader waited for them, {late} late reads",
        reads.waited()
    );
    assert!(stats.refreshes >= 5, "refreshed every period: {stats:?}");
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
}

/// A body whose run is held while it runs for [`begun_before`], until the test lets it end: the
/// test sees the computation begin, changes the cache meanwhile (an `invalidate`, a `clear`),
/// then releases it.
pub(crate) struct Held {
    runs: AtomicUsize,
    armed: AtomicBool,
    gate: Barrier,
}

impl Held {
    pub(crate) const fn new() -> Self {
        Self {
            runs: AtomicUsize::new(0),
            armed: AtomicBool::new(false),
            gate: Barrier::new(2),
        }
    }

    /// Called by the body: the number of this run (1 for the first); a run for
    /// [`begun_before`] returns once it released it.
    pub(crate) fn run(&self) -> usize {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.gate.wait();
            self.gate.wait();
        }
        run
    }

    /// How many times the body ran.
    pub(crate) fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// Calls `call(key)` on a thread of its own, whose body (held by `held`) has begun when
/// `outdate` runs (an `invalidate` of `key`, a `clear`), and ends after it; what the call
/// returned to its caller.
pub(crate) fn begun_before(
    held: &'static Held,
    call: fn(u64) -> String,
    key: u64,
    outdate: impl FnOnce(),
) -> String {
    held.armed.store(true, Ordering::SeqCst);
    let caller = std::thread::spawn(move || call(key));
    held.gate.wait();
    outdate();
    held.gate.wait();
    caller.join().unwrap()
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
    tracked: &Reads,
    reads: usize,
    pause: Duration,
    tick: impl Fn(),
    stats: impl Fn() -> memo::Stats,
    read: impl Fn(),
) -> memo::Stats {
    read();
    let warm = stats();
    tracked.start();
    for _ in 0..reads {
        tick();
        read();
        tracked.read();
        std::thread::sleep(pause);
    }
    tracked.stop();
    warm
}

/// [`read_continuously`] of an `async fn` whose every call gives 1, awaited.
pub(crate) async fn read_continuously_async<F: Future<Output = usize>>(
    tracked: &Reads,
    reads: usize,
    pause: Duration,
    tick: impl Fn(),
    stats: impl Fn() -> memo::Stats,
    read: impl Fn() -> F,
) -> memo::Stats {
    read().await;
    let warm = stats();
    tracked.start();
    for _ in 0..reads {
        tick();
        assert_eq!(read().await, 1);
        tracked.read();
        tokio::time::sleep(pause).await;
    }
    tracked.stop();
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
