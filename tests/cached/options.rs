//! `maxsize`, the handle's operations (a computation begun before an `invalidate` or `clear` is
//! not stored), and `crate = path`.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;

use crate::calls::{self, Held};

#[cached(maxsize = 10)]
fn square(n: u64) -> u64 {
    n * n
}

#[test]
fn maxsize_bounds_the_cache_at_all_times() {
    let cache = square_cache();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for n in 0..2_000 {
                    assert_eq!(square(t * 10_000 + n), (t * 10_000 + n).pow(2));
                    assert!(cache.len() <= 10);
                }
            });
        }
    });
    let stats = cache.stats();
    assert!(stats.len <= 10);
    assert_eq!(stats.misses, 8_000);
    assert_eq!(stats.evictions, 8_000 - stats.len as u64);
}

static HOT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(maxsize = 64)]
fn hot_or_cold(n: u64) -> u64 {
    HOT_RUNS.fetch_add(1, Ordering::SeqCst);
    n
}

#[test]
fn frequently_used_entries_survive_a_scan() {
    // A key used again before the scan keeps its reference bit and survives one pass of eviction.
    for _ in 0..3 {
        hot_or_cold(1);
    }
    for n in 1_000..1_040 {
        hot_or_cold(n);
        hot_or_cold(1);
    }
    let runs_before = HOT_RUNS.load(Ordering::SeqCst);
    hot_or_cold(1);
    assert_eq!(HOT_RUNS.load(Ordering::SeqCst), runs_before);
}

static TRACKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn tracked(n: u32) -> u32 {
    TRACKED_RUNS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

#[test]
fn handle_reports_and_controls_the_cache() {
    let cache = tracked_cache();
    assert!(cache.is_empty());
    tracked(1);
    tracked(1);
    tracked(2);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.len), (1, 2, 2));
    assert!((stats.hit_ratio() - 1.0 / 3.0).abs() < 1e-9);
    assert!(cache.invalidate(&1));
    assert!(!cache.invalidate(&1));
    tracked(1);
    assert_eq!(TRACKED_RUNS.load(Ordering::SeqCst), 3);
    cache.insert(10, 99);
    assert_eq!(tracked(10), 99, "an inserted value is served");
    cache.clear();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().hits, 2, "clear keeps the counters");
}

static OUTDATED: Held = Held::new();

#[cached]
fn outdated(sensor: u64) -> String {
    format!("{sensor}: run {}", OUTDATED.run())
}

static CLEARED: Held = Held::new();

#[cached]
fn cleared(sensor: u64) -> String {
    format!("{sensor}: run {}", CLEARED.run())
}

/// After `invalidate` returns, a computation of the key begun before it is not stored: its
/// caller gets its value, and the next call computes again.
#[test]
fn a_value_computed_before_an_invalidate_is_not_stored() {
    let invalidate = || assert!(!outdated_cache().invalidate(&1), "nothing stored yet");
    let first = calls::begun_before(&OUTDATED, outdated, 1, invalidate);
    assert_eq!(first, "1: run 1", "its own caller's value");
    assert_eq!(outdated_cache().get(&1), None, "not stored");
    assert_eq!(outdated(1), "1: run 2", "computed again");
    assert_eq!(outdated(1), "1: run 2");
    assert_eq!(OUTDATED.runs(), 2);
}

/// As [`a_value_computed_before_an_invalidate_is_not_stored`], for `clear`.
#[test]
fn a_value_computed_before_a_clear_is_not_stored() {
    let first = calls::begun_before(&CLEARED, cleared, 1, || cleared_cache().clear());
    assert_eq!(first, "1: run 1", "its own caller's value");
    assert_eq!(cleared_cache().get(&1), None, "not stored");
    assert_eq!(cleared(1), "1: run 2", "computed again");
    assert_eq!(cleared(1), "1: run 2");
    assert_eq!(CLEARED.runs(), 2);
}

const NO_ENTRIES: usize = 0;
static ZERO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(maxsize = NO_ENTRIES)]
fn uncached(n: u32) -> u32 {
    ZERO_RUNS.fetch_add(1, Ordering::SeqCst);
    n
}

#[test]
fn maxsize_zero_at_run_time_caches_nothing() {
    uncached(1);
    uncached(1);
    assert_eq!(ZERO_RUNS.load(Ordering::SeqCst), 2);
    assert!(uncached_cache().is_empty());
}

mod reexport {
    pub(super) use memo as renamed;
}

#[cached(crate = crate::options::reexport::renamed, maxsize = 5)]
fn through_reexport(n: u8) -> u8 {
    n
}

#[test]
fn crate_path_names_a_reexport() {
    assert_eq!(through_reexport(3), 3);
    assert_eq!(through_reexport_cache().len(), 1);
}

#[cached]
fn cube(n: u64) -> u64 {
    n * n * n
}

#[test]
fn warm_fills_a_cache_concurrently_with_progress() {
    let reported = AtomicUsize::new(0);
    memo::warm(
        0..200_u64,
        4,
        |n| {
            cube(n);
        },
        |done, total| {
            assert_eq!(total, 200);
            reported.fetch_max(done, Ordering::SeqCst);
        },
    );
    assert_eq!(reported.load(Ordering::SeqCst), 200);
    let cache = cube_cache();
    assert_eq!(cache.len(), 200);
    let mut keys = cache.keys();
    keys.sort_unstable();
    assert_eq!(keys, (0..200).collect::<Vec<_>>());
    assert_eq!(cache.stats().misses, 200);
    cache.reset_stats();
    assert_eq!(cache.stats().misses, 0, "counters restart");
    assert_eq!(cache.stats().len, 200, "entries stay");
    cube(5);
    assert_eq!(cache.stats().hits, 1);
}

/// Bodies of `meeting` running now, and the most that ran at once.
static MEETING: AtomicUsize = AtomicUsize::new(0);
static MOST_MEETING: AtomicUsize = AtomicUsize::new(0);
static MET_ON: std::sync::Mutex<Vec<std::thread::ThreadId>> = std::sync::Mutex::new(Vec::new());
/// Set by a body that waited in vain: the others do not wait.
static MEETING_MISSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Waits (up to 10 s, a bound against a hang, never reached when the bodies run together) until
/// four bodies run at once.
#[cached]
fn meeting(n: u64) -> u64 {
    MET_ON.lock().unwrap().push(std::thread::current().id());
    let running = MEETING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_MEETING.fetch_max(running, Ordering::SeqCst);
    if !MEETING_MISSED.load(Ordering::SeqCst)
        && !crate::calls::eventually(|| MOST_MEETING.load(Ordering::SeqCst) >= 4)
    {
        MEETING_MISSED.store(true, Ordering::SeqCst);
    }
    MEETING.fetch_sub(1, Ordering::SeqCst);
    n
}

/// README: `memo::warm` "fills it concurrently": on its `threads` threads at once, each body on
/// a thread of its own while they all run.
#[test]
fn warm_runs_the_bodies_on_its_threads_at_once() {
    memo::warm(0..4_u64, 4, |n| assert_eq!(meeting(n), n), |_, _| {});
    assert_eq!(
        MOST_MEETING.load(Ordering::SeqCst),
        4,
        "four bodies at once"
    );
    let mut threads = MET_ON.lock().unwrap().clone();
    threads.sort_unstable_by_key(|id| format!("{id:?}"));
    threads.dedup();
    assert_eq!(threads.len(), 4, "on four threads");
    assert_eq!(meeting_cache().len(), 4);
}

static FIFO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(maxsize = 2, policy = "fifo")]
fn fifo_square(n: u64) -> u64 {
    FIFO_RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

static LRU_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(maxsize = 2, policy = "lru")]
fn lru_square(n: u64) -> u64 {
    LRU_RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[test]
fn policy_chooses_what_a_full_cache_evicts() {
    // 1 and 2 fill the cache; 1 is used again; 3 makes room.
    for f in [fifo_square, lru_square] {
        f(1);
        f(2);
        f(1);
        f(3);
    }
    // FIFO evicts the oldest (1) whatever its use; LRU keeps the recently used 1 and evicts 2.
    assert!(!fifo_square_cache().contains_key(&1));
    assert!(fifo_square_cache().contains_key(&2));
    assert!(lru_square_cache().contains_key(&1));
    assert!(!lru_square_cache().contains_key(&2));
    assert_eq!(FIFO_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(LRU_RUNS.load(Ordering::SeqCst), 3);
}

/// What `page`'s listener heard: (key, cause).
static LEFT: std::sync::Mutex<Vec<(u64, memo::RemovalCause)>> = std::sync::Mutex::new(Vec::new());

#[cached(
    maxweight = 100,
    weight = |_n, text| text.len(),
    on_evict = |n, _text, cause| LEFT.lock().unwrap().push((n, cause)),
)]
fn page(n: u64) -> String {
    "x".repeat(usize::try_from(n).unwrap())
}

#[test]
fn maxweight_bounds_the_total_weight_and_on_evict_hears_why() {
    use memo::RemovalCause::{Evicted, Invalidated};
    let cache = page_cache();
    page(60);
    assert_eq!(cache.weight(), Some(60));
    page(30);
    assert_eq!(cache.weight(), Some(90));
    assert_eq!(cache.stats().weight, Some(90));
    page(20); // 110 would not fit: the policy makes room
    assert!(cache.weight().unwrap() <= 100);
    page(101); // heavier than the bound: returned, never stored
    assert!(!cache.contains_key(&101));
    assert!(cache.weight().unwrap() <= 100);
    let held = cache.keys();
    assert!(cache.invalidate(&held[0]));
    let left = LEFT.lock().unwrap().clone();
    assert!(left.contains(&(101, Evicted)), "{left:?}");
    assert_eq!(left.last(), Some(&(held[0], Invalidated)));
    assert_eq!(
        left.iter().filter(|(_, cause)| *cause == Evicted).count() as u64,
        cache.stats().evictions
    );
}

/// Keys `echo`'s listener put back after their eviction.
static ECHOED: AtomicUsize = AtomicUsize::new(0);

#[cached(
    maxsize = 2,
    on_evict = |n, value, cause| {
        // Runs after the cache's lock is released: calling back into the cache does not deadlock.
        let cache = echo_cache();
        let _ = (cache.len(), cache.get(&n));
        if cause == memo::RemovalCause::Evicted && n < 100 {
            cache.insert(n + 100, value);
            ECHOED.fetch_add(1, Ordering::SeqCst);
        }
    },
)]
fn echo(n: u64) -> u64 {
    n
}

#[test]
fn on_evict_may_call_back_into_its_cache() {
    for n in 0..10 {
        assert_eq!(echo(n), n);
    }
    assert!(echo_cache().len() <= 2);
    assert!(ECHOED.load(Ordering::SeqCst) > 0);
}

/// What `evicts_here`'s listener heard: (key, cause, the thread it ran on).
static HEARD_ON: std::sync::Mutex<Vec<(u64, memo::RemovalCause, std::thread::ThreadId)>> =
    std::sync::Mutex::new(Vec::new());

#[cached(
    maxsize = 1,
    policy = "fifo",
    on_evict = |n, _value, cause| {
        HEARD_ON.lock().unwrap().push((n, cause, std::thread::current().id()));
    },
)]
fn evicts_here(n: u64) -> u64 {
    n
}

/// README: `on_evict` runs "on the thread that removed the entry": the call whose insert
/// evicted, the thread that invalidated.
#[test]
fn on_evict_runs_on_the_thread_that_removed_the_entry() {
    use memo::RemovalCause::{Evicted, Invalidated};
    let evicting = std::thread::spawn(|| {
        evicts_here(1);
        evicts_here(2); // evicts 1
        std::thread::current().id()
    });
    let evicting = evicting.join().unwrap();
    let invalidating = std::thread::spawn(|| {
        assert!(evicts_here_cache().invalidate(&2));
        std::thread::current().id()
    });
    let invalidating = invalidating.join().unwrap();
    assert_eq!(
        *HEARD_ON.lock().unwrap(),
        [(1, Evicted, evicting), (2, Invalidated, invalidating)]
    );
}

#[cached(maxsize = 100, ttl = "5m", policy = "lru")]
fn settled(n: u64) -> u64 {
    n
}

/// The handle tells its settings, as `functools`' `cache_parameters()` does (`maxsize`,
/// `typed`, here `ttl`, `policy` and the store too).
#[test]
fn the_handle_tells_its_settings() {
    let config = settled_cache().config();
    assert_eq!(config.maxsize, Some(100));
    assert_eq!(config.ttl, Some(std::time::Duration::from_secs(300)));
    assert_eq!(config.policy, memo::Policy::Lru);
    assert_eq!(settled_cache().backend(), "memory");
    assert_eq!(square_cache().config().ttl, None);
}
