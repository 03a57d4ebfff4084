//! The client's private tokio runtime: one thread that drives every connection, so sync callers
//! need no runtime of their own and async callers can use any executor.

use std::future::Future;
use std::time::Duration;

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

    /// Runs `fut` on the runtime, bounded by `timeout`, and blocks the calling thread (any thread,
    /// inside an async runtime or not) for the result.
    pub(crate) fn block<T, F>(&self, timeout: Duration, fut: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(bounded(timeout, fut).await);
        });
        // The runtime enforces the timeout; the margin only covers a stalled runtime thread.
        match rx.recv_timeout(timeout + Duration::from_millis(50)) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    /// Runs `fut` on the runtime, bounded by `timeout`; the returned future can be awaited on
    /// any executor.
    pub(crate) fn run<T, F>(
        &self,
        timeout: Duration,
        fut: F,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(bounded(timeout, fut).await);
        });
        async move { rx.await.unwrap_or(Err(Error::Closed)) }
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
