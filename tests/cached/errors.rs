//! A return type spelled `…Result<…>` stores its `Ok` values only: the error type needs no
//! `Clone` and no serde, errors are never stored, and the callers waiting on a leader that fails
//! get a clone of its error where it has one, or compute one at a time where it has not.

use std::io;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use memo::cached;

/// An error that is neither `Clone` nor serde.
#[derive(Debug)]
struct Opaque(u32);

static READ_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn read(name: &str) -> Result<String, io::Error> {
    READ_RUNS.fetch_add(1, Ordering::SeqCst);
    if name.is_empty() {
        return Err(io::Error::other("no name"));
    }
    Ok(name.to_uppercase())
}

#[test]
fn an_io_error_is_returned_and_never_stored() {
    assert_eq!(read("a").unwrap(), "A");
    assert_eq!(read("a").unwrap(), "A");
    assert_eq!(read("").unwrap_err().to_string(), "no name");
    assert_eq!(read("").unwrap_err().to_string(), "no name");
    assert_eq!(READ_RUNS.load(Ordering::SeqCst), 3);
    // The cache holds the `Ok` type alone.
    let cache: &memo::Cache<String, String> = read_cache();
    let stats = cache.stats();
    assert_eq!((stats.len, stats.hits, stats.misses), (1, 1, 3));
    assert_eq!(stats.load_errors, 2);
    assert_eq!(cache.get("a").as_deref(), Some("A"));
}

static OPAQUE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "10s", maxsize = 100)]
fn checked(n: u32) -> std::result::Result<u32, Opaque> {
    OPAQUE_RUNS.fetch_add(1, Ordering::SeqCst);
    if n.is_multiple_of(2) {
        Ok(n / 2)
    } else {
        Err(Opaque(n))
    }
}

#[test]
fn an_error_neither_clone_nor_serde_is_returned_and_never_stored() {
    assert_eq!(checked(4).unwrap(), 2);
    assert_eq!(checked(4).unwrap(), 2);
    assert_eq!(checked(3).unwrap_err().0, 3);
    assert_eq!(checked(3).unwrap_err().0, 3);
    assert_eq!(OPAQUE_RUNS.load(Ordering::SeqCst), 3);
    let cache: &memo::Cache<u32, u32> = checked_cache();
    assert_eq!((cache.len(), cache.stats().misses), (1, 3));
}

static ALIAS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn size(path: &str) -> io::Result<u64> {
    ALIAS_RUNS.fetch_add(1, Ordering::SeqCst);
    path.parse()
        .map_err(|_| io::Error::new(io::ErrorKind::NotFound, path.to_string()))
}

#[test]
fn io_result_is_a_result() {
    assert_eq!(size("12").unwrap(), 12);
    assert_eq!(size("12").unwrap(), 12);
    assert_eq!(size("x").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(size("x").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(ALIAS_RUNS.load(Ordering::SeqCst), 3);
    let cache: &memo::Cache<String, u64> = size_cache();
    assert_eq!(cache.len(), 1);
}

static FETCH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1m")]
async fn fetch(id: u32) -> Result<String, Opaque> {
    FETCH_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    if id == 0 {
        Err(Opaque(id))
    } else {
        Ok(format!("page {id}"))
    }
}

#[tokio::test]
async fn an_async_fn_returns_its_error_and_stores_only_ok() {
    assert_eq!(fetch(1).await.unwrap(), "page 1");
    assert_eq!(fetch(1).await.unwrap(), "page 1");
    assert_eq!(fetch(0).await.unwrap_err().0, 0);
    assert_eq!(fetch(0).await.unwrap_err().0, 0);
    assert_eq!(FETCH_RUNS.load(Ordering::SeqCst), 3);
    let cache: &memo::Cache<u32, String> = fetch_cache();
    assert_eq!((cache.len(), cache.stats().misses), (1, 3));
}

/// Callers of one cold key at once.
const CALLERS: usize = 8;

/// Calls `call` from [`CALLERS`] threads that start together, counting in `calling` those that
/// have begun; the leader's body holds the key until all have (see [`hold`]), so that the other
/// callers wait on it.
fn at_once<R: Send>(calling: &AtomicUsize, call: impl Fn() -> R + Sync) -> Vec<R> {
    let barrier = Barrier::new(CALLERS);
    thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    calling.fetch_add(1, Ordering::SeqCst);
                    call()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The body of a leader: waits until every caller has begun its call (a thread the scheduler
/// held back at the barrier would otherwise come after the leader and compute again), then
/// 200 ms more for them to reach the wait.
fn hold(calling: &AtomicUsize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while calling.load(Ordering::SeqCst) < CALLERS && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(200));
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);
static SHARED_CALLING: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn shared_failure(n: u32) -> Result<u32, String> {
    SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    hold(&SHARED_CALLING);
    Err(format!("{n} failed"))
}

#[test]
fn waiters_of_a_failed_leader_get_a_clone_of_its_error() {
    let results = at_once(&SHARED_CALLING, || shared_failure(1));
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err() == "1 failed")
    );
    assert_eq!(
        SHARED_RUNS.load(Ordering::SeqCst),
        1,
        "the waiters did not run it"
    );
    let stats = shared_failure_cache().stats();
    assert_eq!((stats.misses, stats.coalesced), (1, CALLERS as u64 - 1));
    assert_eq!(
        (stats.load_errors, stats.len),
        (1, 0),
        "the error is not stored"
    );
}

static OWN_RUNS: AtomicUsize = AtomicUsize::new(0);
static OWN_CALLING: AtomicUsize = AtomicUsize::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn unshared_failure(n: u32) -> Result<u32, Opaque> {
    OWN_RUNS.fetch_add(1, Ordering::SeqCst);
    let running = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_RUNNING.fetch_max(running, Ordering::SeqCst);
    hold(&OWN_CALLING);
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Err(Opaque(n))
}

#[test]
fn waiters_of_a_leader_failing_with_an_error_not_clone_compute_one_at_a_time() {
    let results = at_once(&OWN_CALLING, || unshared_failure(2));
    assert!(results.iter().all(|r| r.as_ref().unwrap_err().0 == 2));
    assert_eq!(
        OWN_RUNS.load(Ordering::SeqCst),
        CALLERS,
        "each caller ran it"
    );
    assert_eq!(MOST_RUNNING.load(Ordering::SeqCst), 1, "one at a time");
    let stats = unshared_failure_cache().stats();
    assert_eq!((stats.misses, stats.coalesced), (CALLERS as u64, 0));
    assert_eq!((stats.load_errors, stats.len), (CALLERS as u64, 0));
}

static RECOVER_RUNS: AtomicUsize = AtomicUsize::new(0);
static RECOVER_CALLING: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn recovers(n: u32) -> Result<u32, Opaque> {
    let run = RECOVER_RUNS.fetch_add(1, Ordering::SeqCst);
    hold(&RECOVER_CALLING);
    if run == 0 { Err(Opaque(n)) } else { Ok(n) }
}

/// The rest are served by the second leader: they waited on it, or, started after it stored
/// its value, hit it (a caller the scheduler held past both bodies, on a loaded machine; 2
/// runs in 36 at 32 test threads), but none computed.
#[test]
fn after_a_failure_that_cannot_be_shared_the_next_leader_serves_the_rest() {
    let results = at_once(&RECOVER_CALLING, || recovers(5));
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(
        RECOVER_RUNS.load(Ordering::SeqCst),
        2,
        "one waiter took over"
    );
    let stats = recovers_cache().stats();
    assert_eq!(
        (stats.misses, stats.coalesced + stats.hits),
        (2, CALLERS as u64 - 2)
    );
    assert_eq!(recovers(5).unwrap(), 5);
}

static ASYNC_SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn async_shared_failure(n: u32) -> Result<u32, io::ErrorKind> {
    ASYNC_SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Err(if n == 0 {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    })
}

static ASYNC_OWN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn async_unshared_failure(n: u32) -> Result<u32, Opaque> {
    ASYNC_OWN_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Err(Opaque(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_waiters_share_an_error_that_is_clone_and_compute_otherwise() {
    let shared = futures_join((0..CALLERS).map(|_| async_shared_failure(0))).await;
    assert!(shared.iter().all(|r| *r == Err(io::ErrorKind::NotFound)));
    assert_eq!(ASYNC_SHARED_RUNS.load(Ordering::SeqCst), 1);
    let stats = async_shared_failure_cache().stats();
    assert_eq!((stats.misses, stats.coalesced), (1, CALLERS as u64 - 1));

    let own = futures_join((0..CALLERS).map(|_| async_unshared_failure(0))).await;
    assert!(own.iter().all(|r| r.as_ref().unwrap_err().0 == 0));
    assert_eq!(ASYNC_OWN_RUNS.load(Ordering::SeqCst), CALLERS);
    let stats = async_unshared_failure_cache().stats();
    assert_eq!((stats.misses, stats.coalesced), (CALLERS as u64, 0));
}

/// Polls the futures together on this task, so each call joins before any finishes.
async fn futures_join<F: Future>(calls: impl Iterator<Item = F>) -> Vec<F::Output> {
    let calls: Vec<_> = calls.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = calls.iter().map(|_| None).collect();
    let mut calls: Vec<_> = calls.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (call, output) in calls.iter_mut().zip(&mut outputs) {
            if let Some(future) = call {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *call = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// An error that is not even `Send`.
#[derive(Debug)]
struct Local(std::rc::Rc<u32>);

#[cached]
async fn local_failure(n: u32) -> Result<u32, Local> {
    tokio::task::yield_now().await;
    if n == 0 {
        Err(Local(std::rc::Rc::new(n)))
    } else {
        Ok(n)
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn the_future_is_send_when_the_body_is_whatever_the_error() {
    assert_eq!(assert_send(local_failure(1)).await.unwrap(), 1);
    assert_eq!(*assert_send(local_failure(0)).await.unwrap_err().0, 0);
}
