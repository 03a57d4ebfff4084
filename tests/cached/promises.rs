//! Promises of the docs that no other test held, each asserted by counts and values.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memo::Cache;

/// `memo::warm`'s rustdoc: "Calls `call` on every item, on up to `threads` threads at once,
/// reporting progress as `progress(done, total)` after each item": never more bodies at once
/// than `threads`, each item called once, and `done` reported once for each of 1..=total.
#[test]
fn warm_runs_at_most_its_threads_at_once_and_reports_each_item_once() {
    const ITEMS: usize = 40;
    let running = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let called = Mutex::new(Vec::new());
    let reported = Mutex::new(Vec::new());
    memo::warm(
        0..ITEMS,
        2,
        |item| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // Long enough for a third thread, were there one, to be in a body meanwhile.
            std::thread::sleep(Duration::from_millis(2));
            called.lock().unwrap().push(item);
            running.fetch_sub(1, Ordering::SeqCst);
        },
        |done, total| {
            assert_eq!(total, ITEMS);
            reported.lock().unwrap().push(done);
        },
    );
    assert!(most.load(Ordering::SeqCst) <= 2, "{most:?} bodies at once");
    let mut called = called.into_inner().unwrap();
    called.sort_unstable();
    assert_eq!(called, (0..ITEMS).collect::<Vec<_>>(), "each item once");
    let mut reported = reported.into_inner().unwrap();
    reported.sort_unstable();
    assert_eq!(reported, (1..=ITEMS).collect::<Vec<_>>(), "after each item");
}

static TTL_READS: AtomicUsize = AtomicUsize::new(0);
static WEIGHS: AtomicUsize = AtomicUsize::new(0);

/// A value's own time to live, counted.
#[allow(
    clippy::trivially_copy_pass_by_ref,
    clippy::unnecessary_wraps,
    reason = "ttl_from's signature"
)]
fn counted_ttl(value: &u32) -> Option<Duration> {
    TTL_READS.fetch_add(1, Ordering::SeqCst);
    Some(Duration::from_secs(u64::from(*value)))
}

/// `CacheBuilder::ttl_from`'s docs: "Every insert reads it, a hit never does"; the README's
/// `ttl_from`, and docs/coming-from.md: "It is read when a value is stored, not on each read".
/// `CacheBuilder::weigher`'s: a function pointer "which a hit never calls". Counted on the cache
/// object and through the attribute.
#[test]
fn a_hit_reads_neither_ttl_from_nor_the_weigher() {
    let cache: Cache<u32, u32> = Cache::builder()
        .ttl(Duration::from_secs(60))
        .ttl_from(counted_ttl)
        .build();
    cache.insert(1, 300);
    assert_eq!(TTL_READS.load(Ordering::SeqCst), 1, "the insert reads it");
    for _ in 0..10 {
        assert_eq!(cache.get(&1), Some(300));
        assert_eq!(cache.get_or_insert_with(1, || unreachable!("a hit")), 300);
    }
    assert_eq!(TTL_READS.load(Ordering::SeqCst), 1, "no hit read it");
    assert_eq!(cache.get_or_insert_with(2, || 5), 5);
    assert_eq!(
        TTL_READS.load(Ordering::SeqCst),
        2,
        "the miss's store reads it"
    );
    assert_eq!(tokens(7), 7);
    assert_eq!(tokens(7), 7);
    assert_eq!(tokens(7), 7);
    assert_eq!(
        TTL_READS.load(Ordering::SeqCst),
        3,
        "the attribute's hits neither"
    );
    assert_eq!(tokens_cache().stats().hits, 2);

    let weighed: Cache<u32, u32> = Cache::builder()
        .max_weight(1_000)
        .weigher(|_, value| {
            WEIGHS.fetch_add(1, Ordering::SeqCst);
            u64::from(*value)
        })
        .build();
    weighed.insert(1, 10);
    let on_insert = WEIGHS.load(Ordering::SeqCst);
    assert!(on_insert >= 1);
    for _ in 0..10 {
        assert_eq!(weighed.get(&1), Some(10));
        assert_eq!(weighed.get_or_insert_with(1, || unreachable!("a hit")), 10);
    }
    assert_eq!(
        WEIGHS.load(Ordering::SeqCst),
        on_insert,
        "no hit weighed it"
    );
    assert_eq!(weighed.weight(), Some(10));
}

#[memo::cached(ttl = "1h", ttl_from = counted_ttl)]
fn tokens(n: u32) -> u32 {
    n
}

/// `MemoryStore::eviction_listener`'s docs: the listener runs "after the shard's lock is
/// released, so it may use the store … A panic in it reaches that caller, and the entries not
/// yet told of are dropped". A listener that panics at the first entry it is told of: `clear`
/// panics, every value it removed is dropped (none leaks), and the cache goes on.
#[test]
fn a_panicking_listener_reaches_its_caller_and_drops_the_entries_not_told_of() {
    use std::sync::Arc;
    let told = Arc::new(AtomicUsize::new(0));
    let cache: Cache<u32, Arc<()>> = Cache::builder()
        .eviction_listener({
            let told = Arc::clone(&told);
            move |_, _, _| {
                told.fetch_add(1, Ordering::SeqCst);
                panic!("the listener fails");
            }
        })
        .build();
    let values: Vec<Arc<()>> = (0..5).map(|_| Arc::new(())).collect();
    for (n, value) in (0..).zip(&values) {
        cache.insert(n, Arc::clone(value));
    }
    let cleared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.clear()));
    assert!(cleared.is_err(), "the listener's panic reaches the caller");
    assert_eq!(
        told.load(Ordering::SeqCst),
        1,
        "told of one, then it panicked"
    );
    // Shard by shard: those not reached before the panic are still held.
    let held: Vec<u32> = cache.keys();
    assert!(held.len() < values.len(), "{held:?}");
    for (n, value) in (0..).zip(&values) {
        let expected = if held.contains(&n) { 2 } else { 1 };
        assert_eq!(
            Arc::strong_count(value),
            expected,
            "value {n}: held or dropped"
        );
    }
    cache.insert(9, Arc::clone(&values[0]));
    assert!(cache.get(&9).is_some(), "the cache goes on");
}

/// `Config`'s docs: `maxsize` "`Some(0)` caches nothing"; `idle` "takes the place of `ttl`
/// (setting one clears the other)", in either order, on the builder too.
#[test]
fn maxsize_zero_caches_nothing_and_ttl_and_idle_replace_each_other() {
    let nothing: Cache<u32, u32> = Cache::new(memo::Config::new().maxsize(0));
    let runs = AtomicUsize::new(0);
    for round in 1..=3 {
        let value = nothing.get_or_compute(&1, |n| {
            runs.fetch_add(1, Ordering::SeqCst);
            n + 1
        });
        assert_eq!(value, 2);
        assert_eq!(runs.load(Ordering::SeqCst), round, "computed every call");
    }
    nothing.insert(2, 3);
    assert_eq!((nothing.len(), nothing.get(&2)), (0, None));

    let (ttl, idle) = (Duration::from_secs(5), Duration::from_secs(7));
    let config = memo::Config::new().ttl(ttl).idle(idle);
    assert_eq!((config.ttl, config.idle), (None, Some(idle)));
    let config = memo::Config::new().idle(idle).ttl(ttl);
    assert_eq!((config.ttl, config.idle), (Some(ttl), None));
    let built: Cache<u32, u32> = Cache::builder().ttl(ttl).idle(idle).build();
    assert_eq!(
        (built.config().ttl, built.config().idle),
        (None, Some(idle))
    );
    let built: Cache<u32, u32> = Cache::builder().idle(idle).ttl(ttl).build();
    assert_eq!((built.config().ttl, built.config().idle), (Some(ttl), None));
}

/// docs/cache-object.md: "An `Err` is returned to the caller that computed it only; a caller
/// that was waiting then computes in turn"; `try_get_or_insert_with`'s docs: "Callers that were
/// waiting for this one then compute in turn, one at a time". Callers of one key released
/// together, each computation failing with its own caller's number: each caller gets its own
/// error, every caller computed, never two at once, and nothing is stored.
#[test]
fn the_cache_objects_waiters_of_a_failed_computation_compute_in_turn() {
    use std::sync::{Arc, Barrier};
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::builder().build());
    let bodies = Arc::new(Bodies::default());
    let barrier = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (cache, bodies, barrier) = (
                Arc::clone(&cache),
                Arc::clone(&bodies),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                cache.try_get_or_insert_with(1, || {
                    bodies.begin();
                    // Long enough for the other callers to be waiting on this one.
                    std::thread::sleep(Duration::from_millis(20));
                    bodies.end();
                    Err::<u32, usize>(caller)
                })
            })
        })
        .collect();
    let results: Vec<_> = callers.into_iter().map(|t| t.join().unwrap()).collect();
    bodies.assert_each_failed_in_turn(&results);
    assert!(cache.is_empty());
}

/// The same of `try_get_or_insert_with_async`, tasks on a multi-thread runtime.
#[test]
fn the_cache_objects_async_waiters_of_a_failed_computation_compute_in_turn() {
    use std::sync::Arc;
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::builder().build());
    let bodies = Arc::new(Bodies::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let (cache, bodies, barrier) = (
                    Arc::clone(&cache),
                    Arc::clone(&bodies),
                    Arc::clone(&barrier),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    cache
                        .try_get_or_insert_with_async(1, async move {
                            bodies.begin();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            bodies.end();
                            Err::<u32, usize>(caller)
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    bodies.assert_each_failed_in_turn(&results);
    assert!(cache.is_empty());
}

/// Callers of one key in the two tests above.
const CALLERS: usize = 4;

/// The bodies of the callers of one key: how many ran, and the most at once.
#[derive(Default)]
struct Bodies {
    running: AtomicUsize,
    most: AtomicUsize,
    runs: AtomicUsize,
}

impl Bodies {
    fn begin(&self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn end(&self) {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Each caller got its own error, every caller computed, never two at once.
    fn assert_each_failed_in_turn(&self, results: &[Result<u32, usize>]) {
        assert_eq!(
            results,
            (0..CALLERS).map(Err).collect::<Vec<_>>(),
            "its own error"
        );
        assert_eq!(
            self.runs.load(Ordering::SeqCst),
            CALLERS,
            "each computed in turn"
        );
        assert_eq!(self.most.load(Ordering::SeqCst), 1, "one at a time");
    }
}

/// `Cache`'s docs: "If the computing caller panics, the panic reaches that caller and one of
/// the waiters computes instead". Callers of one key released together, the first computation
/// panicking: its caller gets the panic, one waiter computes, the rest share its value.
#[test]
fn the_cache_objects_panicking_leader_hands_the_key_to_a_waiter() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::{Arc, Barrier};
    const CALLERS: usize = 4;
    let cache: Arc<Cache<u32, usize>> = Arc::new(Cache::builder().build());
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, runs, barrier) =
                (Arc::clone(&cache), Arc::clone(&runs), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                catch_unwind(AssertUnwindSafe(|| {
                    cache.get_or_insert_with(1, || {
                        let run = runs.fetch_add(1, Ordering::SeqCst);
                        // Long enough for the other callers to be waiting on this one.
                        std::thread::sleep(Duration::from_millis(20));
                        assert!(run > 0, "the first computation panics");
                        run
                    })
                }))
                .ok()
            })
        })
        .collect();
    let results: Vec<Option<usize>> = callers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_none()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().flatten().all(|&value| value == 1),
        "{results:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one waiter took over");
    assert_eq!(cache.get(&1), Some(1));
}

/// docs/cache-object.md: "if the computing future is dropped, a waiting caller takes over";
/// `get_or_insert_with_async`'s docs: "If the computing caller's future is dropped, a waiting
/// caller computes instead". Polled by hand: the leader's computation never ends, a second
/// caller waits for it, the leader's future is dropped, and the second computes and stores.
#[test]
fn the_cache_objects_dropped_async_leader_hands_the_key_to_a_waiter() {
    use std::task::{Context, Poll, Waker};
    let cache: Cache<u32, u32> = Cache::builder().build();
    let mut context = Context::from_waker(Waker::noop());
    let leader_began = AtomicUsize::new(0);
    let mut leader = Box::pin(cache.get_or_insert_with_async(1, async {
        leader_began.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<u32>().await
    }));
    assert!(leader.as_mut().poll(&mut context).is_pending());
    assert_eq!(leader_began.load(Ordering::SeqCst), 1, "it computes");
    let waiter_runs = AtomicUsize::new(0);
    let mut waiter = Box::pin(cache.get_or_insert_with_async(1, async {
        waiter_runs.fetch_add(1, Ordering::SeqCst);
        20
    }));
    assert!(waiter.as_mut().poll(&mut context).is_pending(), "it waits");
    assert_eq!(waiter_runs.load(Ordering::SeqCst), 0);
    drop(leader);
    let mut polls = 0;
    let value = loop {
        if let Poll::Ready(value) = waiter.as_mut().poll(&mut context) {
            break value;
        }
        polls += 1;
        assert!(polls < 1_000, "the waiter never took over");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(value, 20);
    assert_eq!(waiter_runs.load(Ordering::SeqCst), 1, "the waiter computed");
    assert_eq!(cache.get(&1), Some(20), "and stored");
}

/// `Stats::hit_ratio`: "Hits over all calls (`hits / (hits + misses + coalesced)`), or 0
/// before the first call"; its `Display` prints that ratio, then each other count not zero.
#[test]
fn the_hit_ratio_counts_coalesced_calls_among_all_calls() {
    let mut stats = memo::Stats::default();
    assert!(
        stats.hit_ratio().abs() < f64::EPSILON,
        "0 before the first call"
    );
    stats.hits = 2;
    stats.misses = 1;
    stats.coalesced = 1;
    assert!(
        (stats.hit_ratio() - 0.5).abs() < 1e-12,
        "{}",
        stats.hit_ratio()
    );
    assert_eq!(
        stats.to_string(),
        "hits 2, misses 1 (hit ratio 50.0 %), entries 0, coalesced 1"
    );
}

/// `memo::testing::isolate`'s docs: "Threads the test starts use the process-wide caches; a
/// `#[tokio::test]` (a current-thread runtime) runs on the test's thread"; and the crate docs:
/// "tasks of a multi-thread runtime use the process-wide caches". Each function here is called
/// by one test alone, so the process-wide counts are that test's.
#[cfg(feature = "test-util")]
mod isolate {
    use memo::cached;

    #[cached]
    fn on_threads(n: u64) -> u64 {
        n
    }

    #[test]
    fn threads_the_test_starts_use_the_process_wide_caches() {
        let _scope = memo::testing::isolate();
        assert_eq!(on_threads(1), 1);
        let elsewhere = std::thread::spawn(|| {
            on_threads(1);
            on_threads(1);
            let stats = on_threads_cache().stats();
            (stats.misses, stats.hits)
        });
        assert_eq!(
            elsewhere.join().unwrap(),
            (1, 1),
            "the thread's calls: a cache of their own, not the scope's entry"
        );
        let stats = on_threads_cache().stats();
        assert_eq!(
            (stats.misses, stats.hits),
            (1, 0),
            "the scope's: its own call"
        );
    }

    #[cached]
    async fn on_a_runtime(n: u64) -> u64 {
        n
    }

    #[test]
    fn a_current_thread_runtime_keeps_the_scope_and_a_multi_thread_ones_tasks_do_not() {
        let _scope = memo::testing::isolate();
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(current.block_on(on_a_runtime(2)), 2);
        assert_eq!(current.block_on(on_a_runtime(2)), 2);
        let stats = on_a_runtime_cache().stats();
        assert_eq!(
            (stats.misses, stats.hits),
            (1, 1),
            "on the test's thread: the scope"
        );
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let on_a_worker = multi.block_on(async {
            tokio::spawn(async {
                on_a_runtime(2).await;
                on_a_runtime(2).await;
                let stats = on_a_runtime_cache().stats();
                (stats.misses, stats.hits)
            })
            .await
            .unwrap()
        });
        assert_eq!(
            on_a_worker,
            (1, 1),
            "a worker's task: the process-wide cache"
        );
        let stats = on_a_runtime_cache().stats();
        assert_eq!((stats.misses, stats.hits), (1, 1), "the scope's, unchanged");
    }
}

/// README (`on_evict`): `Expired` "also a value past its `ttl` and `stale` that its key's next
/// call stores over, as moka tells it". Time moved by hand past the `ttl` (no `stale`), and past
/// `ttl` + `stale`: the next call computes, and the value it replaces is told `Expired`, never
/// `Replaced`.
#[cfg(feature = "test-util")]
mod told_expired {
    use std::sync::Mutex;
    use std::time::Duration;

    use memo::{Clock, RemovalCause, cached};

    static TTL_LEFT: Mutex<Vec<(u32, u32, RemovalCause)>> = Mutex::new(Vec::new());
    static STALE_LEFT: Mutex<Vec<(u32, u32, RemovalCause)>> = Mutex::new(Vec::new());
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    fn run() -> u32 {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    #[cached(ttl = "10s", on_evict = |k, v, cause| TTL_LEFT.lock().unwrap().push((k, v, cause)))]
    fn timed(n: u32) -> u32 {
        n * 1_000 + run()
    }

    #[cached(
        ttl = "10s",
        stale = "5s",
        on_evict = |k, v, cause| STALE_LEFT.lock().unwrap().push((k, v, cause))
    )]
    fn lingering(n: u32) -> u32 {
        n * 1_000 + run()
    }

    #[test]
    fn a_value_stored_over_an_expired_one_tells_it_expired() {
        let (clock, mock) = Clock::mock();
        timed_cache().set_clock(clock);
        let first = timed(1);
        mock.increment(Duration::from_secs(11));
        let second = timed(1);
        assert_ne!(first, second, "computed again past the ttl");
        assert_eq!(
            *TTL_LEFT.lock().unwrap(),
            [(1, first, RemovalCause::Expired)]
        );

        let (clock, mock) = Clock::mock();
        lingering_cache().set_clock(clock);
        let first = lingering(2);
        mock.increment(Duration::from_secs(16));
        let second = lingering(2);
        assert_ne!(first, second, "computed again past ttl + stale");
        assert_eq!(lingering(2), second);
        assert_eq!(
            *STALE_LEFT.lock().unwrap(),
            [(2, first, RemovalCause::Expired)]
        );
    }
}
