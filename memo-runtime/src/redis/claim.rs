//! The lock a cache claims a missing key through, whichever kind it is: one server ([`Locks`])
//! or a majority of several ([`Redlock`]). Both answer with the same [`Claimed`].

use std::future::Future;

use super::client::RedisClient;
use super::lock::{Claimed, Locks};
use super::redlock::Redlock;
use crate::block::wait;

/// Single-flight across processes: read the value, or hold the lock, or wait for its holder.
///
/// # Examples
///
/// ```no_run
/// use memo::redis::{Claimed, DistributedLock};
///
/// /// Cache-aside over either lock.
/// fn load(lock: &impl DistributedLock, compute: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
///     match lock.claim(b"{k}:v", b"{k}:lock") {
///         Claimed::Value(bytes) => bytes,
///         Claimed::Compute(guard) => {
///             let bytes = compute();
///             let _ = lock.store().set_px(b"{k}:v", &bytes, 60_000);
///             drop(guard);
///             bytes
///         }
///         Claimed::TimedOut | Claimed::Unavailable(_) => compute(),
///     }
/// }
/// ```
pub trait DistributedLock: Send + Sync {
    /// Where values are read (and where the holder stores what it computed).
    fn store(&self) -> &RedisClient;

    /// Reads `value_key`; on a miss, takes `lock_key` or waits for whoever holds it. Blocks the
    /// calling thread on [`claim_async`](Self::claim_async).
    fn claim(&self, value_key: &[u8], lock_key: &[u8]) -> Claimed {
        wait(self.claim_async(value_key, lock_key))
    }

    /// [`claim`](Self::claim) for async callers, on any executor.
    fn claim_async(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
    ) -> impl Future<Output = Claimed> + Send;
}

impl DistributedLock for Locks {
    fn store(&self) -> &RedisClient {
        self.client()
    }

    fn claim_async(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
    ) -> impl Future<Output = Claimed> + Send {
        Locks::claim_async(self, value_key, lock_key)
    }
}

impl DistributedLock for Redlock {
    fn store(&self) -> &RedisClient {
        Redlock::store(self)
    }

    fn claim_async(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
    ) -> impl Future<Output = Claimed> + Send {
        Redlock::claim_async(self, value_key, lock_key)
    }
}
