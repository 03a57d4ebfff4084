//! A sleep for async callers that needs no runtime: one thread of the process wakes the tasks
//! whose pause is over, so an `async fn` waiting for another process's lock (see `lock.rs`)
//! leaves its executor's thread free on any executor.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Wakers due at an instant, soonest first (the counter keeps equal instants apart).
struct Timer {
    due: Mutex<BinaryHeap<Reverse<(Instant, u64, WakerBox)>>>,
    changed: Condvar,
}

/// A waker, ordered by nothing (the heap orders by instant and counter only).
struct WakerBox(Waker);

impl PartialEq for WakerBox {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for WakerBox {}

impl PartialOrd for WakerBox {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WakerBox {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// The process's timer; `None` if its thread could not be started (a pause then blocks).
static TIMER: LazyLock<Option<&'static Timer>> = LazyLock::new(|| {
    let timer: &'static Timer = Box::leak(Box::new(Timer {
        due: Mutex::new(BinaryHeap::new()),
        changed: Condvar::new(),
    }));
    let spawned = std::thread::Builder::new()
        .name("memo-disk-timer".into())
        .spawn(move || timer.run());
    if spawned.is_err() {
        crate::trace::warn(&"no timer thread: async callers waiting on a disk lock block instead");
        return None;
    }
    Some(timer)
});

impl Timer {
    fn run(&self) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            while let Some(Reverse((at, _, _))) = due.peek() {
                if *at > now {
                    break;
                }
                if let Some(Reverse((_, _, waker))) = due.pop() {
                    waker.0.wake();
                }
            }
            due = match due.peek() {
                Some(Reverse((at, _, _))) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(due, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(due)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn wake_at(&self, at: Instant, waker: Waker) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Reverse((at, n, WakerBox(waker))));
        self.changed.notify_one();
    }
}

/// A pause of `pause` that leaves the task's thread free.
pub(super) fn sleep(pause: Duration) -> Sleep {
    Sleep {
        until: Instant::now() + pause,
    }
}

/// See [`sleep`].
pub(super) struct Sleep {
    until: Instant,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.until {
            return Poll::Ready(());
        }
        if let Some(timer) = *TIMER {
            timer.wake_at(self.until, cx.waker().clone());
            Poll::Pending
        } else {
            std::thread::sleep(self.until.saturating_duration_since(Instant::now()));
            Poll::Ready(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use super::*;

    struct Flag(std::sync::atomic::AtomicBool, std::thread::Thread);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            self.1.unpark();
        }
    }

    #[test]
    fn a_sleep_wakes_its_task_once_its_pause_is_over() {
        let flag = std::sync::Arc::new(Flag(
            std::sync::atomic::AtomicBool::new(false),
            std::thread::current(),
        ));
        let waker = Waker::from(std::sync::Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut pause = std::pin::pin!(sleep(Duration::from_millis(20)));
        assert!(pause.as_mut().poll(&mut cx).is_pending());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !flag.0.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "never woken");
            std::thread::park_timeout(Duration::from_millis(50));
        }
        assert!(pause.as_mut().poll(&mut cx).is_ready());
    }
}
