//! Per-key single-flight: one execution per cold key, no waiting across keys, panics hand over.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use memo::cached;

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn slow_square(n: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(100));
    n * n
}

#[test]
fn concurrent_callers_of_one_cold_key_run_it_once() {
    let barrier = Barrier::new(64);
    thread::scope(|s| {
        for _ in 0..64 {
            s.spawn(|| {
                barrier.wait();
                assert_eq!(slow_square(12), 144);
            });
        }
    });
    let stats = slow_square_cache().stats();
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits + stats.coalesced, 63);
}

/// A body that blocks until the test lets it go, reporting when it has started.
struct Gate {
    started: Mutex<Option<mpsc::Sender<u32>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

static GATE: Gate = Gate {
    started: Mutex::new(None),
    release: Mutex::new(None),
};

#[cached]
fn gated(n: u32) -> u32 {
    if n == 0 {
        let started = GATE.started.lock().unwrap().clone().unwrap();
        started.send(n).unwrap();
        let release = GATE.release.lock().unwrap().take().unwrap();
        release.recv().unwrap();
    }
    n + 1000
}

#[test]
fn other_keys_and_hits_do_not_wait_for_a_miss() {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *GATE.started.lock().unwrap() = Some(started_tx);
    *GATE.release.lock().unwrap() = Some(release_rx);
    assert_eq!(gated(7), 1007, "warm key");
    thread::scope(|s| {
        let blocked = s.spawn(|| gated(0));
        assert_eq!(started_rx.recv_timeout(Duration::from_secs(10)), Ok(0));
        // Key 0 is being computed and will not finish until released: a cold key and a hit on a
        // warm key must both complete meanwhile.
        assert_eq!(gated(1), 1001);
        assert_eq!(gated(7), 1007);
        release_tx.send(()).unwrap();
        assert_eq!(blocked.join().unwrap(), 1000);
    });
    assert_eq!(gated_cache().stats().misses, 3);
}

static DISTINCT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn distinct(n: u64) -> u64 {
    DISTINCT_RUNS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(20));
    n
}

#[test]
fn distinct_cold_keys_compute_in_parallel() {
    let barrier = Barrier::new(32);
    thread::scope(|s| {
        for n in 0..32 {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                assert_eq!(distinct(n), n);
            });
        }
    });
    // Every key ran once; none was served another key's value (asserted in the threads).
    assert_eq!(DISTINCT_RUNS.load(Ordering::SeqCst), 32);
    assert_eq!(distinct_cache().len(), 32);
}

static PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn flaky(n: u32) -> u32 {
    let run = PANIC_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        // Let the waiters line up behind this leader, then fail.
        thread::sleep(Duration::from_millis(200));
        panic!("first computation fails");
    }
    n * 10
}

#[test]
fn a_panicking_leader_hands_over_to_a_waiter() {
    let barrier = Barrier::new(8);
    let results: Vec<thread::Result<u32>> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    flaky(3)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(thread::ScopedJoinHandle::join)
            .collect()
    });
    let panicked = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(panicked, 1, "only the leader's caller sees the panic");
    assert!(results.iter().flatten().all(|&v| v == 30));
    assert_eq!(
        PANIC_RUNS.load(Ordering::SeqCst),
        2,
        "one waiter took over; nobody hung"
    );
    assert_eq!(flaky(3), 30);
}
