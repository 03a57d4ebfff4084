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
pub(crate) struct Budget(Arc<AtomicU64>);

impl Budget {
    /// A call's budget: `total` for all its commands.
    pub(crate) fn new(total: Duration) -> Self {
        Self(Arc::new(AtomicU64::new(nanos(total))))
    }

    /// What is left.
    pub(crate) fn left(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    /// Takes `took` off what is left.
    pub(crate) fn charge(&self, took: Duration) {
        let took = nanos(took);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(took))
            });
    }

    /// Nothing is left: a command timed out, so the server is not answering this call.
    pub(crate) fn spend(&self) {
        self.0.store(0, Ordering::Relaxed);
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
}
