//! A body that panics while other callers wait on its key: the panic reaches its caller alone,
//! no waiter gets a value (or an error) it did not compute or share, and the key is computed
//! again by one of them.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Waker};
use std::time::Duration;

use memo::cached;

static SYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails with an error its waiters could share (`String` is `Clone`), but panics first.
#[cached]
fn sync_fallible(n: u32) -> Result<u32, String> {
    let run = SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        // Let the waiters line up behind this leader (if they come later, they compute or hit:
        // the counts below hold either way).
        std::thread::sleep(Duration::from_millis(100));
        panic!("the first computation panics");
    }
    Ok(n * 10)
}

#[test]
fn waiters_of_a_panicking_fallible_leader_compute_and_get_no_error() {
    let barrier = Arc::new(Barrier::new(6));
    let callers: Vec<_> = (0..6)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                sync_fallible(4)
            })
        })
        .collect();
    let results: Vec<_> = callers
        .into_iter()
        .map(std::thread::JoinHandle::join)
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "one panic"
    );
    for result in results.into_iter().flatten() {
        assert_eq!(result, Ok(40), "no waiter got an error or another value");
    }
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(sync_fallible(4), Ok(40));
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 2, "stored");
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Pending once (waking itself), then ready.
async fn one_step() {
    let mut pending = true;
    std::future::poll_fn(|cx| {
        if std::mem::take(&mut pending) {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(())
    })
    .await;
}

#[cached(ttl = "1h")]
async fn async_fallible(n: u32) -> Result<u32, String> {
    let run = ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    one_step().await;
    assert!(run != 0, "the first computation panics");
    one_step().await;
    Ok(n * 10)
}

/// The async leader panics in a poll while two callers wait on it; its future is dropped (as a
/// task's is): the waiters compute once, get the value, and no error.
#[tokio::test]
async fn waiters_of_a_panicking_async_leader_compute_and_get_no_error() {
    let mut cx = Context::from_waker(Waker::noop());
    let mut leader = Box::pin(async_fallible(4));
    assert!(leader.as_mut().poll(&mut cx).is_pending());
    let mut first = Box::pin(async_fallible(4));
    let mut second = Box::pin(async_fallible(4));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| leader.as_mut().poll(&mut cx)));
    assert!(panicked.is_err(), "the leader's body panicked");
    drop(leader);
    let (first, second) = tokio::time::timeout(Duration::from_secs(20), async {
        (first.await, second.await)
    })
    .await
    .expect("no waiter is held");
    assert_eq!((first, second), (Ok(40), Ok(40)));
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 2);
    let hits = async_fallible_cache().stats().hits;
    assert_eq!(async_fallible(4).await, Ok(40));
    assert_eq!(async_fallible_cache().stats().hits, hits + 1, "stored");
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 2);
}

thread_local! {
    /// Clones on this thread from now on until the one that panics (0: none panics). Counted
    /// by the reading thread alone: with one count for all threads, the other test of
    /// `Fragile` (they run at once) or a background refresh that cloned before the reader
    /// counted its read out took the panic meant for the read (3 runs in 70 at 32 test threads).
    static CLONES_LEFT: Cell<usize> = const { Cell::new(0) };
}
static FRAGILE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A value whose clone panics when `CLONES_LEFT` counts down to it.
#[derive(Debug, PartialEq)]
struct Fragile(usize);

impl Clone for Fragile {
    fn clone(&self) -> Self {
        let left = CLONES_LEFT.get();
        if left > 0 {
            CLONES_LEFT.set(left - 1);
            assert!(left != 1, "a clone that panics");
        }
        Self(self.0)
    }
}

#[cached(ttl = "10s", stale = "1h")]
fn fragile(n: u32) -> Fragile {
    Fragile(FRAGILE_RUNS.fetch_add(1, Ordering::SeqCst) * 10 + n as usize)
}

#[cached(ttl = "10s", refresh = "early")]
fn fragile_early(n: u32) -> Fragile {
    // A cost the early refresh measures: a read a millisecond before the expiry is due.
    std::thread::sleep(Duration::from_millis(2));
    Fragile(FRAGILE_RUNS.fetch_add(1, Ordering::SeqCst) * 10 + n as usize)
}

/// A due read (stale, or in the early refresh's lead) whose value's clone panics at each point
/// of the read in turn: the panic reaches that caller alone, and the next read refreshes the
/// key (the refresh the panicking read claimed was given back).
fn a_panicking_clone_on_a_due_read(
    call: fn(u32) -> Fragile,
    cache: &'static memo::Cache<u32, Fragile>,
    age: impl Fn(),
) {
    call(1);
    for clones in 1..=6 {
        age();
        let old = cache.peek(&1).expect("the key's value");
        CLONES_LEFT.set(clones);
        let read = std::panic::catch_unwind(|| call(1));
        CLONES_LEFT.set(0);
        if let Ok(value) = read {
            assert_eq!(value.0 % 10, 1, "clone {clones}: this key's value");
        }
        // Refreshes, unless the read above did.
        assert_eq!(call(1).0 % 10, 1, "clone {clones}: this key's value");
        let refreshed =
            crate::calls::eventually(|| cache.peek(&1).is_some_and(|now| now.0 > old.0));
        assert!(
            refreshed,
            "clone {clones}: the next read refreshed the key: {:?}",
            cache.stats()
        );
    }
}

#[test]
fn a_stale_read_whose_clone_panics_leaves_the_key_to_be_refreshed() {
    let (clock, time) = memo::Clock::mock();
    fragile_cache().set_clock(clock);
    a_panicking_clone_on_a_due_read(fragile, fragile_cache(), || {
        time.increment(Duration::from_secs(11));
    });
}

#[test]
fn an_early_read_whose_clone_panics_leaves_the_key_to_be_refreshed() {
    let (clock, time) = memo::Clock::mock();
    fragile_early_cache().set_clock(clock);
    a_panicking_clone_on_a_due_read(fragile_early, fragile_early_cache(), || {
        time.increment(Duration::from_millis(9_999));
    });
}

thread_local! {
    /// Clones of a `TouchyKey` on this thread from now on until the one that panics (0: none
    /// panics); the reading thread's alone, as `CLONES_LEFT`.
    static KEY_CLONES_LEFT: Cell<usize> = const { Cell::new(0) };
}
static TOUCHY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A key whose clone panics when `KEY_CLONES_LEFT` counts down to it.
#[derive(Debug, Hash, PartialEq, Eq)]
struct TouchyKey(u32);

impl Clone for TouchyKey {
    fn clone(&self) -> Self {
        let left = KEY_CLONES_LEFT.get();
        if left > 0 {
            KEY_CLONES_LEFT.set(left - 1);
            assert!(left != 1, "a key's clone that panics");
        }
        Self(self.0)
    }
}

#[cached(ttl = "10s", stale = "1h")]
fn touchy(key: TouchyKey) -> usize {
    TOUCHY_RUNS.fetch_add(1, Ordering::SeqCst) * 10 + key.0 as usize
}

/// The same with the key's clone panicking at each point of a stale read in turn (taking its
/// owned copy, keeping the old value, starting the refresh).
#[test]
fn a_stale_read_whose_key_clone_panics_leaves_the_key_to_be_refreshed() {
    let (clock, time) = memo::Clock::mock();
    let cache = touchy_cache();
    cache.set_clock(clock);
    touchy(TouchyKey(1));
    for clones in 1..=6 {
        time.increment(Duration::from_secs(11));
        let old = cache.peek(&TouchyKey(1)).expect("the key's value");
        KEY_CLONES_LEFT.set(clones);
        let read = std::panic::catch_unwind(|| touchy(TouchyKey(1)));
        KEY_CLONES_LEFT.set(0);
        if let Ok(value) = read {
            assert_eq!(value % 10, 1, "clone {clones}: this key's value");
        }
        assert_eq!(touchy(TouchyKey(1)) % 10, 1, "clone {clones}");
        let refreshed =
            crate::calls::eventually(|| cache.peek(&TouchyKey(1)).is_some_and(|now| now > old));
        assert!(
            refreshed,
            "clone {clones}: the next read refreshed the key: {:?}",
            cache.stats()
        );
    }
}

/// Whether the weigher's next call panics.
static WEIGHER_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static WEIGHED_RUNS: AtomicUsize = AtomicUsize::new(0);

fn weigh() -> u64 {
    assert!(
        !WEIGHER_PANICS.swap(false, Ordering::SeqCst),
        "a weigher that panics"
    );
    1
}

#[cached(ttl = "10s", stale = "1h", maxweight = 1_000, weight = |_n, _v| weigh())]
fn weighed(n: u32) -> usize {
    WEIGHED_RUNS.fetch_add(1, Ordering::SeqCst) * 10 + n as usize
}

/// A background refresh whose store (here the weigher) panics: that refresh is lost, the old
/// value stays, and a later read refreshes the key.
#[test]
fn a_refresh_whose_insert_panics_leaves_the_key_to_be_refreshed() {
    let (clock, time) = memo::Clock::mock();
    let cache = weighed_cache();
    cache.set_clock(clock);
    weighed(1);
    for round in 0..3 {
        time.increment(Duration::from_secs(11));
        let old = cache.peek(&1).expect("the key's value");
        WEIGHER_PANICS.store(true, Ordering::SeqCst);
        assert_eq!(weighed(1), old, "round {round}: stale");
        assert!(
            crate::calls::eventually(|| !WEIGHER_PANICS.load(Ordering::SeqCst)),
            "round {round}: the refresh's insert weighed its value"
        );
        let refreshed = crate::calls::eventually(|| {
            assert_eq!(weighed(1) % 10, 1, "round {round}");
            cache.peek(&1).is_some_and(|now| now > old)
        });
        assert!(
            refreshed,
            "round {round}: refreshed again: {:?}",
            cache.stats()
        );
    }
}
