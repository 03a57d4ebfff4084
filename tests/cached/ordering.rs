//! Values never go backwards: a computation that read its sources before a newer value was
//! stored (by a forced refresh) does not store its older value over it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use memo::{Clock, cached};

/// The source the function reads: a version number.
static SOURCE: AtomicUsize = AtomicUsize::new(1);
/// Whether the next computation waits, after reading the source, until the test lets it go.
static HOLD: AtomicBool = AtomicBool::new(false);
static GATE: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>> = Mutex::new(None);
/// The tests here share the source: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
/// Values dropped on a background refresh's thread: the refresh's own (refused) or the one it
/// replaced; either way it decided.
static DROPPED_BY_REFRESH: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq)]
struct Version(usize);

impl Clone for Version {
    fn clone(&self) -> Self {
        Self(self.0)
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        if std::thread::current().name() == Some("memo-refresh") {
            DROPPED_BY_REFRESH.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cached(ttl = "10s", stale = "1h")]
fn version(n: u32) -> Version {
    let seen = SOURCE.load(Ordering::SeqCst);
    if HOLD.swap(false, Ordering::SeqCst) {
        let (started, release) = GATE.lock().unwrap().take().unwrap();
        started.send(()).unwrap();
        release
            .recv_timeout(Duration::from_secs(10))
            .expect("released");
    }
    Version(seen * 100 + n as usize)
}

#[test]
fn a_background_refresh_older_than_a_forced_one_does_not_store_its_value() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (clock, time) = Clock::mock();
    let cache = version_cache();
    cache.set_clock(clock);
    SOURCE.store(1, Ordering::SeqCst);
    assert_eq!(version(1), Version(101));
    time.increment(Duration::from_secs(11));
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *GATE.lock().unwrap() = Some((started_tx, release_rx));
    HOLD.store(true, Ordering::SeqCst);
    SOURCE.store(2, Ordering::SeqCst);
    assert_eq!(version(1), Version(101), "stale while the refresh runs");
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the background refresh read version 2");
    SOURCE.store(3, Ordering::SeqCst);
    assert_eq!(cache.refresh(|| version(1)), Version(301), "forced");
    assert_eq!(cache.peek(&1), Some(Version(301)));
    let dropped = DROPPED_BY_REFRESH.load(Ordering::SeqCst);
    release_tx.send(()).unwrap();
    assert!(
        crate::calls::eventually(|| DROPPED_BY_REFRESH.load(Ordering::SeqCst) > dropped),
        "the background refresh ended"
    );
    assert_eq!(
        cache.peek(&1),
        Some(Version(301)),
        "the older refresh's value did not replace the forced one"
    );
    assert_eq!(version(1), Version(301));
}

/// The same with a miss: the caller computing the key when the refresh came gets its own value,
/// which is not stored over the refresh's.
#[test]
fn a_miss_older_than_a_forced_refresh_does_not_store_its_value() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cache = version_cache();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *GATE.lock().unwrap() = Some((started_tx, release_rx));
    HOLD.store(true, Ordering::SeqCst);
    SOURCE.store(4, Ordering::SeqCst);
    let miss = std::thread::spawn(|| version(2));
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the miss read version 4");
    SOURCE.store(5, Ordering::SeqCst);
    assert_eq!(cache.refresh(|| version(2)), Version(502), "forced");
    release_tx.send(()).unwrap();
    assert_eq!(
        miss.join().unwrap(),
        Version(402),
        "the miss's caller gets its value"
    );
    assert_eq!(
        cache.peek(&2),
        Some(Version(502)),
        "not stored over the refresh's"
    );
    assert_eq!(version(2), Version(502));
}

/// Lets a computation of `async_version` go on once set.
static ASYNC_RELEASED: AtomicBool = AtomicBool::new(false);

#[cached(ttl = "1h")]
async fn async_version(n: u32) -> Version {
    let seen = SOURCE.load(Ordering::SeqCst);
    if HOLD.swap(false, Ordering::SeqCst) {
        std::future::poll_fn(|cx| {
            if ASYNC_RELEASED.load(Ordering::SeqCst) {
                return std::task::Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
    }
    Version(seen * 100 + n as usize)
}

/// The same for an `async fn` and `refresh_async`.
#[test]
fn an_async_miss_older_than_a_forced_refresh_does_not_store_its_value() {
    use std::task::{Context, Waker};
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache = async_version_cache();
        HOLD.store(true, Ordering::SeqCst);
        SOURCE.store(6, Ordering::SeqCst);
        let mut miss = Box::pin(async_version(3));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            miss.as_mut().poll(&mut cx).is_pending(),
            "the miss read version 6"
        );
        SOURCE.store(7, Ordering::SeqCst);
        assert_eq!(
            cache.refresh_async(async_version(3)).await,
            Version(703),
            "forced"
        );
        ASYNC_RELEASED.store(true, Ordering::SeqCst);
        assert_eq!(miss.await, Version(603), "the miss's caller gets its value");
        assert_eq!(
            cache.peek(&3),
            Some(Version(703)),
            "not stored over the refresh's"
        );
        assert_eq!(async_version(3).await, Version(703));
    });
}
