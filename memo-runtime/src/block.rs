//! A sync caller's way to run async code: [`wait`] drives a future on the caller's own thread,
//! parking the thread while the future is pending, so sync and async callers share one
//! implementation of each step (the miss loop of `call.rs`, the Redis client's commands).
//!
//! A pending future may also bound how long the thread parks ([`wake_by`]): a Redis reply
//! past its due time answers a timeout by itself, so a stalled runtime thread, which would
//! never wake the caller, cannot hold it past its timeout.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

/// Runs `future` to its end on this thread, parking the thread while it is pending.
///
/// Works on any thread: one with no runtime, a `spawn_blocking` thread, or another runtime's
/// worker (which it blocks, as any sync call does).
pub(crate) fn wait<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    // Ready at the first poll (a miss in memory): no waker is made, no thread-local read.
    if let Poll::Ready(output) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return output;
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        let outer = PARKING.with(|parking| parking.replace(Parking::Unbounded));
        let polled = future.as_mut().poll(&mut cx);
        let parking = PARKING.with(|parking| parking.replace(outer));
        match (polled, parking) {
            (Poll::Ready(output), _) => return output,
            (Poll::Pending, Parking::Until(at)) => {
                std::thread::park_timeout(at.saturating_duration_since(Instant::now()));
            }
            (Poll::Pending, Parking::Unbounded | Parking::Outside) => std::thread::park(),
        }
    }
}

/// Called by a future that returns `Pending` and must be polled again by `due` even if
/// nothing wakes it: a thread blocked in [`wait`] on it parks no longer than that. Elsewhere
/// (a task on an executor) it does nothing: the future checks its due time when next polled.
#[cfg_attr(
    not(feature = "redis"),
    allow(dead_code, reason = "only a Redis reply bounds a park")
)]
pub(crate) fn wake_by(due: Instant) {
    // `try_with`: a future may be polled while its thread's locals are torn down.
    let _ = PARKING.try_with(|parking| parking.set(parking.get().until(due)));
}

thread_local! {
    /// How long this thread, blocked in [`wait`], may park after the current poll.
    static PARKING: Cell<Parking> = const { Cell::new(Parking::Outside) };
}

/// How long a thread blocked in [`wait`] parks: until a wake, or also until the earliest due
/// time ([`wake_by`]) of the futures pending in its last poll.
#[derive(Clone, Copy, Debug)]
enum Parking {
    /// The thread is not polling in [`wait`].
    Outside,
    /// Until a wake.
    Unbounded,
    /// Until a wake or this time, whichever comes first.
    #[cfg_attr(
        not(feature = "redis"),
        allow(dead_code, reason = "only a Redis reply bounds a park")
    )]
    Until(Instant),
}

impl Parking {
    /// This, cut short at `due`.
    #[cfg_attr(
        not(feature = "redis"),
        allow(dead_code, reason = "only a Redis reply bounds a park")
    )]
    fn until(self, due: Instant) -> Self {
        match self {
            Self::Outside => Self::Outside,
            Self::Unbounded => Self::Until(due),
            Self::Until(at) => Self::Until(at.min(due)),
        }
    }
}

/// Wakes the thread blocked in [`wait`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ready_future_is_answered_at_once() {
        assert_eq!(wait(async { 7 }), 7);
    }

    #[test]
    fn a_future_woken_from_another_thread_is_driven_to_its_end() {
        let (send, receive) = std::sync::mpsc::channel::<Waker>();
        let woken = std::thread::spawn(move || receive.recv().unwrap().wake());
        let mut polls = 0;
        let mut send = Some(send);
        let output = wait(std::future::poll_fn(|cx| {
            polls += 1;
            match polls {
                // The first poll's waker does nothing; the second's wakes this thread.
                1 => Poll::Pending,
                2 => {
                    send.take().unwrap().send(cx.waker().clone()).unwrap();
                    Poll::Pending
                }
                _ => Poll::Ready(polls),
            }
        }));
        woken.join().unwrap();
        assert!(output >= 3);
    }

    #[test]
    fn a_due_time_ends_a_park_that_nothing_wakes() {
        let due = Instant::now() + Duration::from_millis(20);
        let output = wait(std::future::poll_fn(|_| {
            if Instant::now() >= due {
                return Poll::Ready("due");
            }
            wake_by(due);
            Poll::Pending
        }));
        assert_eq!(output, "due");
    }
}
