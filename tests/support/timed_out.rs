//! A waiter whose wait for another caller's computation timed out, and an invalidation during
//! its own computation: shared by the attacks on each store (disk, Redis, Redlock).

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use memo::{Cache, Store};

/// Waits (up to 10 s) for `done`.
pub(crate) fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Three handles of one store (processes, as far as the store can tell): `holder` computes "k"
/// and stays in its body past the time `waiter` waits for it; `waiter` then computes "k"
/// itself, and `other` invalidates "k" during that computation (`invalidate`). The waiter's
/// value, begun before the invalidation, is its caller's alone: neither the store (`store`
/// names it) nor the waiter's memory keeps it, and the holder's write is refused too. Without
/// the invalidation the waiter's value is stored.
pub(crate) fn timed_out_waiter<S>(
    [holder, waiter, other]: [&Cache<String, String, S>; 3],
    invalidate: bool,
    store: &str,
) where
    S: Store<String, String> + Send + Sync + 'static,
{
    let (held, release) = (AtomicBool::new(false), AtomicBool::new(false));
    let (entered, go) = (Barrier::new(2), Barrier::new(2));
    std::thread::scope(|s| {
        let holding = s.spawn(|| {
            holder.get_or_compute("k", |_| {
                held.store(true, Ordering::SeqCst);
                until("the test releases the holder", || {
                    release.load(Ordering::SeqCst)
                });
                "holder's".to_string()
            })
        });
        until("the holder computes", || held.load(Ordering::SeqCst));
        let waiting = s.spawn(|| {
            // Entered once the wait for the holder ended.
            waiter.get_or_compute("k", |_| {
                entered.wait();
                go.wait();
                "waiter's".to_string()
            })
        });
        entered.wait();
        if invalidate {
            other.invalidate("k");
        }
        go.wait();
        assert_eq!(waiting.join().unwrap(), "waiter's", "its caller gets it");
        let expected = (!invalidate).then(|| "waiter's".to_string());
        assert_eq!(
            other.get("k"),
            expected,
            "{store} (invalidated: {invalidate})"
        );
        assert_eq!(
            waiter.get("k"),
            expected,
            "here (invalidated: {invalidate})"
        );
        release.store(true, Ordering::SeqCst);
        assert_eq!(holding.join().unwrap(), "holder's");
    });
    if invalidate {
        assert_eq!(other.get("k"), None, "the holder's write is refused too");
    }
}
