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

/// The version of each key's source that a body reads; an invalidation follows a bump.
static SOURCES: [std::sync::atomic::AtomicU64; 8] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 8];
static VERSIONED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(maxsize = 4)]
fn versioned(key: usize) -> (usize, u64) {
    VERSIONED_RUNS.fetch_add(1, Ordering::SeqCst);
    let version = SOURCES[key].load(Ordering::SeqCst);
    thread::yield_now();
    (key, version)
}

static ASYNC_VERSIONED_RUNS: AtomicUsize = AtomicUsize::new(0);
static ASYNC_SOURCES: [std::sync::atomic::AtomicU64; 8] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 8];

#[cached(maxsize = 4)]
async fn async_versioned(key: usize) -> (usize, u64) {
    ASYNC_VERSIONED_RUNS.fetch_add(1, Ordering::SeqCst);
    let version = ASYNC_SOURCES[key].load(Ordering::SeqCst);
    tokio::task::yield_now().await;
    (key, version)
}

/// What the readers may no longer see of each key: the source's version at the last
/// invalidation that returned.
/// Writers of one key take turns (an insert's value is its source's newest).
struct Floors([std::sync::atomic::AtomicU64; 8], [Mutex<()>; 8]);

impl Floors {
    const fn new() -> Self {
        Self(
            [const { std::sync::atomic::AtomicU64::new(0) }; 8],
            [const { Mutex::new(()) }; 8],
        )
    }

    /// A writer's update of `key`'s source, then its invalidation: from then on no read
    /// returns a version older than the new one.
    fn update(
        &self,
        sources: &[std::sync::atomic::AtomicU64; 8],
        key: usize,
        invalidate: impl FnOnce(u64),
    ) {
        let _turn = self.1[key].lock().unwrap();
        let version = sources[key].fetch_add(1, Ordering::SeqCst) + 1;
        invalidate(version);
        self.0[key].fetch_max(version, Ordering::SeqCst);
    }

    /// A `clear`: from then on no read returns a version older than the one each source had
    /// when it began.
    fn clear(&self, sources: &[std::sync::atomic::AtomicU64; 8], clear: impl FnOnce()) {
        let before = sources
            .each_ref()
            .map(|source| source.load(Ordering::SeqCst));
        clear();
        for (floor, version) in self.0.iter().zip(before) {
            floor.fetch_max(version, Ordering::SeqCst);
        }
    }

    fn check(key: usize, floor: u64, (read_key, version): (usize, u64)) {
        assert_eq!(read_key, key, "another key's value");
        assert!(
            version >= floor,
            "key {key}: version {version} read after an invalidation of version {floor} returned"
        );
    }
}

const VERSIONED_THREADS: usize = 6;
const VERSIONED_CALLS: usize = 20_000;

/// Threads calling a small bounded function over 8 keys while others update a key's source
/// and invalidate it (or insert its new value, or clear the cache): a call begun after an
/// invalidation (an insert, a clear) returned never reads a version
/// computed from the source before it (neither a stored value nor a computation it joins), and
/// every call is counted once, each run of the body as a miss.
#[test]
fn a_call_after_an_invalidation_never_reads_an_older_version_and_every_call_counts_once() {
    static FLOORS: Floors = Floors::new();
    let calls = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..VERSIONED_THREADS {
            let calls = &calls;
            s.spawn(move || {
                for i in 0..VERSIONED_CALLS {
                    let key = (i * 7 + t * 3) % 8;
                    if i % 200 == 199 {
                        FLOORS.clear(&SOURCES, || versioned_cache().clear());
                        continue;
                    }
                    if (i + t) % 10 == 0 {
                        FLOORS.update(&SOURCES, key, |version| {
                            if i % 20 == 0 {
                                versioned_cache().insert(key, (key, version));
                            } else {
                                versioned_cache().invalidate(&key);
                            }
                        });
                        continue;
                    }
                    let floor = FLOORS.0[key].load(Ordering::SeqCst);
                    Floors::check(key, floor, versioned(key));
                    calls.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let stats = versioned_cache().stats();
    let calls = calls.load(Ordering::SeqCst) as u64;
    assert_eq!(
        stats.hits + stats.misses + stats.coalesced,
        calls,
        "{stats:?}"
    );
    assert_eq!(
        stats.misses,
        VERSIONED_RUNS.load(Ordering::SeqCst) as u64,
        "{stats:?}"
    );
    assert!(versioned_cache().len() <= 4);
}

/// [`a_call_after_an_invalidation_never_reads_an_older_version_and_every_call_counts_once`]
/// for an `async fn` on a multi-thread runtime.
#[test]
fn an_async_call_after_an_invalidation_never_reads_an_older_version_and_every_call_counts_once() {
    static FLOORS: Floors = Floors::new();
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..VERSIONED_THREADS)
            .map(|t| {
                tokio::spawn(async move {
                    for i in 0..VERSIONED_CALLS {
                        let key = (i * 7 + t * 3) % 8;
                        if i % 200 == 199 {
                            FLOORS.clear(&ASYNC_SOURCES, || async_versioned_cache().clear());
                            continue;
                        }
                        if (i + t) % 10 == 0 {
                            FLOORS.update(&ASYNC_SOURCES, key, |version| {
                                if i % 20 == 0 {
                                    async_versioned_cache().insert(key, (key, version));
                                } else {
                                    async_versioned_cache().invalidate(&key);
                                }
                            });
                            continue;
                        }
                        let floor = FLOORS.0[key].load(Ordering::SeqCst);
                        Floors::check(key, floor, async_versioned(key).await);
                        CALLS.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let stats = async_versioned_cache().stats();
    let calls = CALLS.load(Ordering::SeqCst) as u64;
    assert_eq!(
        stats.hits + stats.misses + stats.coalesced,
        calls,
        "{stats:?}"
    );
    assert_eq!(
        stats.misses,
        ASYNC_VERSIONED_RUNS.load(Ordering::SeqCst) as u64,
        "{stats:?}"
    );
    assert!(async_versioned_cache().len() <= 4);
}
