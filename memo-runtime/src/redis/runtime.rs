//! The client's private tokio runtime: one thread that drives every connection, so sync callers
//! need no runtime of their own and async callers can use any executor. A sync caller blocks on
//! the same futures an async one awaits, with [`wait`](crate::block::wait).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use super::error::Error;

/// A current-thread runtime on its own thread; dropping this stops it.
#[derive(Debug)]
pub(crate) struct Driver {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl Driver {
    pub(crate) fn start() -> Result<Self, Error> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| Error::Config(format!("cannot start the redis runtime: {err}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("memo-redis".to_string())
            .spawn(move || {
                // Ends when the driver is dropped (the sender with it).
                let _ = runtime.block_on(stopped);
            })
            .map_err(|err| Error::Config(format!("cannot start the redis thread: {err}")))?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `fut` on the runtime, bounded by `timeout`; the returned future can be awaited on
    /// any executor, or blocked on with [`wait`](crate::block::wait).
    pub(crate) fn run<T, F>(&self, timeout: Duration, fut: F) -> Reply<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(bounded(timeout, fut).await);
        });
        Reply {
            rx,
            // The runtime enforces the timeout; the margin only covers a stalled runtime thread.
            due: Instant::now() + timeout + Duration::from_millis(50),
        }
    }

    /// Runs `fut` on the runtime without waiting for it.
    pub(crate) fn detach<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(fut);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(Error::Timeout))
}

/// The result of a future run on the [`Driver`]; past its bound and a margin it answers
/// [`Error::Timeout`] by itself, so a caller blocked in [`wait`](crate::block::wait) never outlasts a stalled runtime
/// thread.
#[derive(Debug)]
#[must_use = "a reply does nothing unless awaited"]
pub(crate) struct Reply<T> {
    rx: oneshot::Receiver<Result<T, Error>>,
    due: Instant,
}

impl<T> Future for Reply<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(reply) = Pin::new(&mut self.rx).poll(cx) {
            return Poll::Ready(reply.unwrap_or(Err(Error::Closed)));
        }
        if Instant::now() >= self.due {
            return Poll::Ready(Err(Error::Timeout));
        }
        crate::block::wake_by(self.due);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::wait;
    use std::sync::Arc;

    #[test]
    fn a_stalled_runtime_thread_ends_a_blocked_callers_wait() {
        let driver = Driver::start().unwrap();
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        // Holds the runtime's one thread: the command's own timeout cannot fire.
        driver.detach(async move {
            let _ = stalled.recv();
        });
        let reply = driver.run(Duration::from_millis(1), async { Ok(()) });
        assert!(matches!(wait(reply), Err(Error::Timeout)));
        release.send(()).unwrap();
    }

    #[test]
    fn wait_blocks_inside_another_runtime_and_on_its_blocking_threads() {
        let driver = Arc::new(Driver::start().unwrap());
        let runtime = Builder::new_current_thread().build().unwrap();
        let (inside, blocking) = runtime.block_on(async {
            let inside = wait(driver.run(Duration::from_secs(60), async { Ok(1) }));
            let driver = Arc::clone(&driver);
            let blocking = tokio::task::spawn_blocking(move || {
                wait(driver.run(Duration::from_secs(60), async { Ok(2) }))
            });
            (inside, blocking.await.unwrap())
        });
        assert_eq!((inside.unwrap(), blocking.unwrap()), (1, 2));
    }
}
