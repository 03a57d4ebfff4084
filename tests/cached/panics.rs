//! A body that panics while other callers wait on its key: the panic reaches its caller alone,
//! no waiter gets a value (or an error) it did not compute or share, and the key is computed
//! again by one of them.

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
    let results: Vec<_> = callers.into_iter().map(|c| c.join()).collect();
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
    if run == 0 {
        panic!("the first computation panics");
    }
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
