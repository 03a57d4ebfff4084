//! A key read continuously never makes a caller wait for a computation after the first,
//! with `refresh = "early"` (default `β`) as with `stale`, sync and async.
//!
//! The cache's clock is a mock advanced 2 ms per read (ten time-to-live periods of 200 ms in 1,000
//! reads), while the bodies take 20 ms of real time (10 % of the time to live), so a refresh
//! often ends past the expiry on the cache's clock. What is counted: `misses` and `coalesced`
//! stay at their warm-up values (a caller that waited for a computation is one or the other).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use memo::{Clock, cached};

use crate::calls::{self, Reads, assert_nobody_waited, eventually};

/// Reads over ten time-to-live periods of the cache's clock.
const READS: usize = 1_000;
/// Cache-clock time between two reads.
const STEP: Duration = Duration::from_millis(2);
/// Real time between two reads.
const PAUSE: Duration = Duration::from_millis(1);

/// Reads a body may run behind before the cache's clock waits for it: half the 50 reads of
/// `stale`'s window (the old value is served a ttl, 100 reads, after an early refresh began).
const LAG: usize = 25;

/// Reads `read` [`READS`] times, [`STEP`] apart on the cache's clock (1 ms apart in real time),
/// after a first read that fills the cache; returns the statistics after the first read.
///
/// The cache's clock moves by reads, a body by real time: on a loaded machine the reader ran
/// on while a refresh thread waited to be scheduled, past the value's window (2 runs in 176 at
/// 32 test threads). So the clock stops, between reads, for a body [`LAG`] reads behind until
/// it ends (`ended`, the bodies ended, against the misses and refreshes begun): a read still
/// never waits, and a refresh that began too late or not at all is still a miss.
fn read_continuously(
    cache: &memo::Cache<u32, usize>,
    ended: &AtomicUsize,
    reads: &Reads,
    read: impl Fn(),
) -> memo::Stats {
    let (clock, mock) = Clock::mock();
    cache.set_clock(clock);
    let behind = std::cell::Cell::new(0);
    let tick = || {
        let stats = cache.stats();
        let begun = usize::try_from(stats.misses + stats.refreshes).unwrap();
        if ended.load(Ordering::SeqCst) < begun {
            behind.set(behind.get() + 1);
        } else {
            behind.set(0);
        }
        if behind.get() > LAG {
            assert!(
                reads.between_reads(|| ended.load(Ordering::SeqCst) >= begun),
                "a body never ended"
            );
            behind.set(0);
        }
        mock.increment(STEP);
    };
    calls::read_continuously(reads, READS, PAUSE, tick, || cache.stats(), read)
}

static GAUGE_ENDED: AtomicUsize = AtomicUsize::new(0);
static GAUGE_READS: Reads = Reads::new();

#[cached(ttl = "200ms", refresh = "early")]
fn gauge(sensor: u32) -> usize {
    GAUGE_READS.body_runs();
    assert!(sensor > 0);
    std::thread::sleep(Duration::from_millis(20));
    GAUGE_ENDED.fetch_add(1, Ordering::SeqCst);
    sensor as usize
}

#[test]
fn early_refresh_keeps_every_caller_of_a_hot_key_from_waiting() {
    let read = || assert_eq!(gauge(1), 1);
    let warm = read_continuously(gauge_cache(), &GAUGE_ENDED, &GAUGE_READS, read);
    let stats = gauge_cache().stats();
    assert_nobody_waited(&warm, &stats, &GAUGE_READS);
    assert_eq!(stats.hits, READS as u64);
}

static DIAL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "200ms", refresh = "early")]
fn dial(sensor: u32) -> usize {
    assert!(sensor > 0);
    DIAL_RUNS.fetch_add(1, Ordering::SeqCst) + 1
}

/// The README's limit of early refresh: a key that no call reads within the lead before its
/// expiry is computed by its next caller, as without the option (`stale` is for such keys).
#[test]
fn a_key_unread_through_its_lead_is_computed_by_its_next_caller() {
    let (clock, mock) = Clock::mock();
    dial_cache().set_clock(clock);
    assert_eq!(dial(1), 1);
    mock.increment(Duration::from_millis(150));
    assert_eq!(
        dial(1),
        1,
        "before the lead (the body costs next to nothing): a hit"
    );
    mock.increment(Duration::from_millis(60));
    assert_eq!(dial(1), 2, "past the expiry, unread through the lead");
    let stats = dial_cache().stats();
    assert_eq!((stats.misses, stats.refreshes), (2, 0), "{stats:?}");
}

static METER_ENDED: AtomicUsize = AtomicUsize::new(0);
static METER_READS: Reads = Reads::new();

#[cached(ttl = "200ms", stale = "100ms")]
fn meter(sensor: u32) -> usize {
    METER_READS.body_runs();
    assert!(sensor > 0);
    std::thread::sleep(Duration::from_millis(20));
    METER_ENDED.fetch_add(1, Ordering::SeqCst);
    sensor as usize
}

#[test]
fn stale_keeps_every_caller_of_a_hot_key_from_waiting() {
    let read = || assert_eq!(meter(1), 1);
    let warm = read_continuously(meter_cache(), &METER_ENDED, &METER_READS, read);
    assert_nobody_waited(&warm, &meter_cache().stats(), &METER_READS);
}

static LEDGER_RUNS: AtomicUsize = AtomicUsize::new(0);
/// Holds the background refresh (run 2) until the test lets it go.
static RELEASE_LEDGER: AtomicBool = AtomicBool::new(false);

/// A large `β` makes every hit after a computation due early, deterministically.
#[cached(ttl = "10s", refresh = "early", beta = 1e12)]
fn ledger(account: u32) -> usize {
    assert!(account > 0);
    let run = LEDGER_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 2 {
        assert!(eventually(|| RELEASE_LEDGER.load(Ordering::SeqCst)));
    }
    run
}

/// An invalidation while a refresh runs: the old value is no longer served, and the refresh's
/// value (computed from what it read before the invalidation) is never stored after it.
#[test]
fn the_old_value_is_served_past_the_ttl_while_its_refresh_runs_and_invalidate_drops_it() {
    let (clock, mock) = Clock::mock();
    let cache = ledger_cache();
    cache.set_clock(clock);
    assert_eq!(ledger(1), 1);
    assert_eq!(ledger(1), 1, "due early: run 2 starts, and is held");
    assert!(eventually(|| LEDGER_RUNS.load(Ordering::SeqCst) == 2));
    mock.increment(Duration::from_secs(11));
    assert_eq!(ledger(1), 1, "past the ttl, the refresh still running");
    assert_eq!(ledger(1), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.coalesced), (3, 1, 0));
    assert_eq!(stats.refreshes, 1, "one refresh at a time");
    // An invalidated key is not served from the running refresh: the caller computes (run 3).
    cache.invalidate(&1);
    assert_eq!(ledger(1), 3);
    // The refresh ends with run 2, which is not stored: every read until the next refresh
    // starts (once the first one let go of the key) gets run 3, then the next one's.
    RELEASE_LEDGER.store(true, Ordering::SeqCst);
    assert!(eventually(|| {
        assert_ne!(
            ledger(1),
            2,
            "a refresh begun before the invalidation was stored"
        );
        cache.stats().refreshes == 2
    }));
    assert_ne!(cache.get(&1), Some(2));
    assert_eq!(cache.stats().misses, 2);
}

static STUCK_RUNS: AtomicUsize = AtomicUsize::new(0);
/// Holds the background refresh (run 2) until the test lets it go.
static RELEASE_STUCK: AtomicBool = AtomicBool::new(false);

#[cached(ttl = "200ms", refresh = "early", beta = 1e12)]
fn stuck(account: u32) -> usize {
    assert!(account > 0);
    let run = STUCK_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 2 {
        assert!(eventually(|| RELEASE_STUCK.load(Ordering::SeqCst)));
    }
    run
}

/// The old value is served while its refresh runs for one time to live after the refresh
/// started, no longer: a refresh that hangs leaves callers to compute, as before.
#[test]
fn a_refresh_that_hangs_past_a_ttl_leaves_callers_to_compute() {
    let (clock, mock) = Clock::mock();
    let cache = stuck_cache();
    cache.set_clock(clock);
    assert_eq!(stuck(1), 1);
    assert_eq!(stuck(1), 1, "due early: run 2 starts, and hangs");
    assert!(eventually(|| STUCK_RUNS.load(Ordering::SeqCst) == 2));
    mock.increment(Duration::from_secs(1));
    assert_eq!(
        stuck(1),
        1,
        "past the ttl, within a ttl of the refresh's start"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stuck(1), 3, "a ttl after the refresh started: computed");
    assert_eq!(cache.stats().misses, 2);
    RELEASE_STUCK.store(true, Ordering::SeqCst);
}

#[cfg(feature = "tokio")]
mod asynchronous {
    use super::*;

    static TIDE_READS: Reads = Reads::new();

    #[cached(ttl = "200ms", refresh = "early")]
    async fn tide(port: u32) -> usize {
        TIDE_READS.body_runs_async().await;
        assert!(port > 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        port as usize
    }

    /// [`read_continuously`] of an `async fn`, awaited.
    async fn read_continuously_async<F: Future<Output = usize>>(
        cache: &memo::Cache<u32, usize>,
        reads: &Reads,
        read: impl Fn() -> F,
    ) -> memo::Stats {
        let (clock, mock) = Clock::mock();
        cache.set_clock(clock);
        let tick = || mock.increment(STEP);
        calls::read_continuously_async(reads, READS, PAUSE, tick, || cache.stats(), read).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn early_refresh_keeps_every_async_caller_of_a_hot_key_from_waiting() {
        let warm = read_continuously_async(tide_cache(), &TIDE_READS, || tide(1)).await;
        assert_nobody_waited(&warm, &tide_cache().stats(), &TIDE_READS);
    }

    static SWELL_READS: Reads = Reads::new();

    #[cached(ttl = "200ms", stale = "100ms")]
    async fn swell(port: u32) -> usize {
        SWELL_READS.body_runs_async().await;
        assert!(port > 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        port as usize
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_keeps_every_async_caller_of_a_hot_key_from_waiting() {
        let warm = read_continuously_async(swell_cache(), &SWELL_READS, || swell(1)).await;
        assert_nobody_waited(&warm, &swell_cache().stats(), &SWELL_READS);
    }
}

/// Callers released together on a key of each kind below: how many run at once.
const CROWD: usize = 32;

static EXPIRED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "10s")]
fn expiring(key: u32) -> usize {
    assert!(key > 0);
    let run = EXPIRED_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    std::thread::sleep(Duration::from_millis(20));
    run
}

/// A crowd of callers of a key past its time to live: one of them computes it again, the
/// others wait and share that value; none is served the expired one.
#[test]
fn a_crowd_on_an_expired_key_computes_it_once_and_none_reads_the_expired_value() {
    let (clock, mock) = Clock::mock();
    expiring_cache().set_clock(clock);
    assert_eq!(expiring(1), 1);
    for round in 2..=6 {
        mock.increment(Duration::from_secs(10));
        let before = expiring_cache().stats();
        for value in calls::at_once(CROWD, || expiring(1)) {
            assert_eq!(
                value, round,
                "round {round}: the expired value, or a second run"
            );
        }
        let stats = expiring_cache().stats().since(&before);
        assert_eq!(stats.misses, 1, "{stats:?}");
        assert_eq!(stats.hits + stats.coalesced, CROWD as u64 - 1, "{stats:?}");
    }
    assert_eq!(EXPIRED_RUNS.load(Ordering::SeqCst), 6);
}

static CROWDED_RUNS: AtomicUsize = AtomicUsize::new(0);
static RELEASE_CROWDED: AtomicBool = AtomicBool::new(false);

/// Run 2, the first refresh, is held until the test lets it go.
fn crowded_run() -> usize {
    let run = CROWDED_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 2 {
        assert!(eventually(|| RELEASE_CROWDED.load(Ordering::SeqCst)));
    }
    run
}

#[cached(ttl = "10s", stale = "1m")]
fn crowded_stale(key: u32) -> usize {
    assert!(key > 0);
    crowded_run()
}

static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);
static RELEASE_EARLY: AtomicBool = AtomicBool::new(false);

/// A large `β`: every hit is due.
#[cached(ttl = "10s", refresh = "early", beta = 1e12)]
fn crowded_early(key: u32) -> usize {
    assert!(key > 0);
    let run = EARLY_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run == 2 {
        assert!(eventually(|| RELEASE_EARLY.load(Ordering::SeqCst)));
    }
    run
}

/// A crowd of callers of a key due for a refresh (`stale`: past its time to live; early: any
/// hit): exactly one refresh starts, nobody waits for it (it is held until every caller
/// returned) and every caller gets the old value; once it ends, its value is read.
fn a_crowd_on_a_due_key(
    cache: &'static memo::Cache<u32, usize>,
    call: fn() -> usize,
    runs: &AtomicUsize,
    release: &AtomicBool,
    advance: Duration,
) {
    let (clock, mock) = Clock::mock();
    cache.set_clock(clock);
    assert_eq!(call(), 1);
    mock.increment(advance);
    for value in calls::at_once(CROWD, call) {
        assert_eq!(value, 1, "a caller waited for the refresh, or computed");
    }
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.coalesced), (1, 0), "{stats:?}");
    assert_eq!(stats.hits, CROWD as u64, "{stats:?}");
    assert_eq!(stats.refreshes, 1, "one refresh for the crowd: {stats:?}");
    assert!(
        eventually(|| runs.load(Ordering::SeqCst) == 2),
        "the refresh ran"
    );
    release.store(true, Ordering::SeqCst);
    assert!(
        eventually(|| cache.peek(&1) == Some(2)),
        "the refresh's value"
    );
}

#[test]
fn a_crowd_on_a_stale_key_starts_one_refresh_and_none_waits() {
    a_crowd_on_a_due_key(
        crowded_stale_cache(),
        || crowded_stale(1),
        &CROWDED_RUNS,
        &RELEASE_CROWDED,
        Duration::from_secs(11),
    );
}

#[test]
fn a_crowd_on_a_key_due_early_starts_one_refresh_and_none_waits() {
    a_crowd_on_a_due_key(
        crowded_early_cache(),
        || crowded_early(1),
        &EARLY_RUNS,
        &RELEASE_EARLY,
        Duration::ZERO,
    );
}
