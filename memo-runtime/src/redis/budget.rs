//! One deadline per call: the Redis time a memoized call may spend, shared by all its commands.
//!
//! A miss sends several commands (the `GET`, the claim, the `SET` of the value). Were each
//! bounded by the command timeout on its own, a frozen server would cost a call that many
//! timeouts. Instead a call carries one [`Budget`] of the command timeout: each command is bounded
//! by what is left and charged what it took, a command that times out spends the rest, and a
//! command with nothing left is not sent ([`Error::Deadline`](super::Error::Deadline)).
//!
//! Commands find their call's budget in a thread-local that is set only while the call's own
//! store code runs ([`Budget::enter`] for sync code, [`within`] around each poll of a future), so
//! it follows an async call from thread to thread and never leaks into another call or task.
//!
//! A caller waiting on another process's lock polls the server until the holder's value is
//! there: that time is the lock's wait (bounded by its own timeout), not a slow server. Its polls
//! ([`waiting`]) are bounded by what the call has left, and charged only if they time out.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// What one call has left of its command timeout; clones share it.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    left: Arc<AtomicU64>,
    /// Whether an answered command is charged its time (not for the polls of a lock's wait).
    charges_answers: bool,
}

impl Budget {
    /// A call's budget: `total` for all its commands.
    pub(crate) fn new(total: Duration) -> Self {
        Self {
            left: Arc::new(AtomicU64::new(nanos(total))),
            charges_answers: true,
        }
    }

    /// What is left.
    pub(crate) fn left(&self) -> Duration {
        Duration::from_nanos(self.left.load(Ordering::Relaxed))
    }

    /// Charges a command that was answered (or failed) after `took`: taken off what is left,
    /// unless the command was a poll of a lock's wait.
    pub(crate) fn charge(&self, took: Duration) {
        if !self.charges_answers {
            return;
        }
        let took = nanos(took);
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(took))
            });
    }

    /// Nothing is left: a command timed out, so the server is not answering this call.
    pub(crate) fn spend(&self) {
        self.left.store(0, Ordering::Relaxed);
    }

    /// Makes this the budget of the commands this thread sends until the guard drops.
    pub(crate) fn enter(&self) -> Entered {
        Entered(CURRENT.with(|current| current.replace(Some(self.clone()))))
    }
}

/// The budget of the commands sent now, if they belong to a call.
pub(crate) fn current() -> Option<Budget> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Restores the budget that was current before [`Budget::enter`].
pub(crate) struct Entered(Option<Budget>);

impl Drop for Entered {
    fn drop(&mut self) {
        let outer = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = outer);
    }
}

/// Runs `fut` with `budget` current during each of its polls.
pub(crate) async fn within<F: Future>(budget: &Budget, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _entered = budget.enter();
        fut.as_mut().poll(cx)
    })
    .await
}

/// Runs `fut`, a poll of a lock's wait, with the current call's budget (if any) charging only
/// a command that times out.
pub(crate) async fn waiting<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _entered = current().map(|budget| {
            Budget {
                charges_answers: false,
                ..budget
            }
            .enter()
        });
        fut.as_mut().poll(cx)
    })
    .await
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_share_one_budget_and_it_never_leaks() {
        let budget = Budget::new(Duration::from_millis(100));
        assert!(current().is_none());
        {
            let _entered = budget.enter();
            current().unwrap().charge(Duration::from_millis(30));
            let inner = Budget::new(Duration::from_millis(5));
            {
                let _nested = inner.enter();
                assert_eq!(current().unwrap().left(), Duration::from_millis(5));
            }
            assert_eq!(current().unwrap().left(), Duration::from_millis(70));
            current().unwrap().charge(Duration::from_secs(1));
        }
        assert!(current().is_none(), "left behind after the call");
        assert_eq!(budget.left(), Duration::ZERO);
    }

    /// Polls `fut` once: it must be ready (no command is sent here).
    fn ready(fut: impl Future<Output = ()>) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::pin!(fut).poll(&mut cx).is_ready());
    }

    #[test]
    fn a_lock_s_wait_is_charged_only_its_timeouts() {
        let budget = Budget::new(Duration::from_millis(100));
        ready(within(
            &budget,
            waiting(async {
                let current = current().expect("the call's budget, while waiting");
                assert_eq!(current.left(), Duration::from_millis(100));
                current.charge(Duration::from_millis(60));
            }),
        ));
        assert_eq!(
            budget.left(),
            Duration::from_millis(100),
            "an answer charged"
        );
        ready(within(
            &budget,
            waiting(async { current().unwrap().spend() }),
        ));
        assert_eq!(budget.left(), Duration::ZERO, "a timeout not charged");
        ready(waiting(async { assert!(current().is_none()) }));
    }
}
