//! Distributed single-flight in bytes: on a miss, one caller across every process computes while
//! the others wait for its value.
//!
//! The holder takes `SET lock token NX PX lease` with a random token, renews the lease while its
//! body runs, and releases by compare-and-delete, publishing the lock key on a channel. Waiters
//! wake on that message or on a poll (backoff with jitter), re-read the value, and retry the lock
//! (a holder that died leaves a lock that expires with its lease). Past the wait timeout they
//! compute themselves. This is an efficiency lock: losing it costs a duplicate computation, never
//! a wrong value.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{Notify, oneshot};

use super::client::{RedisClient, Subscription};
use super::error::Error;
use super::redlock::RedlockGuard;

/// The lock's lease and how long waiters wait.
///
/// # Examples
///
/// ```
/// use memo_runtime::redis::LockConfig;
/// use std::time::Duration;
///
/// let config = LockConfig { wait: Duration::from_secs(2), ..LockConfig::default() };
/// assert_eq!(config.lease, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockConfig {
    /// How long a lock outlives a holder that stopped renewing it (a crashed process).
    pub lease: Duration,
    /// How long a waiter waits for the holder's value before computing it itself.
    pub wait: Duration,
    /// The first poll interval of a waiter; it doubles (with jitter) up to `poll_max`.
    pub poll_min: Duration,
    /// The longest poll interval.
    pub poll_max: Duration,
    /// The pub/sub channel on which releases are announced.
    pub channel: Vec<u8>,
}

impl Default for LockConfig {
    /// A 10 s lease renewed every 3.3 s, a 5 s wait, polls from 5 ms to 100 ms, channel
    /// `memo:released`.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(10),
            wait: Duration::from_secs(5),
            poll_min: Duration::from_millis(5),
            poll_max: Duration::from_millis(100),
            channel: b"memo:released".to_vec(),
        }
    }
}

/// What a caller of [`Locks::claim`] does next.
#[derive(Debug)]
#[must_use]
pub enum Claimed {
    /// The value was there, or another caller computed it meanwhile.
    Value(Vec<u8>),
    /// This caller holds the lock: compute, store the value, then drop (or release) the guard.
    Compute(LockGuard),
    /// The holder did not finish within the wait timeout: compute without the lock.
    TimedOut,
    /// Redis failed (or the breaker is open): compute locally.
    Unavailable(Error),
}

/// The single-flight protocol over one [`RedisClient`]; one per cache (they share the client).
///
/// # Examples
///
/// ```no_run
/// use memo_runtime::redis::{Claimed, LockConfig, Locks, RedisClient, RedisConfig};
///
/// let locks = Locks::new(RedisClient::new(RedisConfig::from_env()?)?, LockConfig::default());
/// let value = match locks.claim(b"{user:7}:v", b"{user:7}:lock") {
///     Claimed::Value(bytes) => bytes,
///     Claimed::Compute(guard) => {
///         let bytes = b"computed".to_vec();
///         locks.client().set_px(b"{user:7}:v", &bytes, 60_000)?;
///         drop(guard); // releases and wakes the waiters
///         bytes
///     }
///     Claimed::TimedOut | Claimed::Unavailable(_) => b"computed".to_vec(),
/// };
/// # Ok::<(), memo_runtime::redis::Error>(())
/// ```
#[derive(Debug)]
pub struct Locks {
    client: RedisClient,
    config: LockConfig,
    notices: Arc<Notices>,
    /// Release announcements, subscribed on first use; held for its drop.
    subscription: Mutex<Option<Subscription>>,
}

/// Release announcements seen by this process, as a counter waiters watch.
#[derive(Debug, Default)]
struct Notices {
    generation: Mutex<u64>,
    changed: Condvar,
    notify: Arc<Notify>,
}

impl Notices {
    fn bump(&self) {
        *self.generation.lock() += 1;
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    fn generation(&self) -> u64 {
        *self.generation.lock()
    }

    /// Blocks until a release is announced after `seen`, or for `at_most`.
    fn wait(&self, seen: u64, at_most: Duration) {
        let mut generation = self.generation.lock();
        if *generation == seen {
            let _ = self.changed.wait_for(&mut generation, at_most);
        }
    }
}

impl Locks {
    /// The protocol over `client`.
    #[must_use]
    pub fn new(client: RedisClient, config: LockConfig) -> Self {
        Self {
            client,
            config,
            notices: Arc::default(),
            subscription: Mutex::new(None),
        }
    }

    /// The client underneath.
    #[must_use]
    pub const fn client(&self) -> &RedisClient {
        &self.client
    }

    /// Reads `value_key`; on a miss, takes `lock_key` or waits for whoever holds it.
    ///
    /// Give both keys the same hash tag (`{…}`) so that they live in one cluster slot.
    ///
    /// # Concurrent calls on the same key
    ///
    /// Across threads and processes, at most one caller at a time gets [`Claimed::Compute`] for a
    /// lock key (while its lease is renewed); the others get the value it stores, or
    /// [`Claimed::TimedOut`] after the wait timeout.
    pub fn claim(&self, value_key: &[u8], lock_key: &[u8]) -> Claimed {
        match self.client.get(value_key) {
            Ok(Some(value)) => return Claimed::Value(value),
            Ok(None) => {}
            Err(err) => return Claimed::Unavailable(err),
        }
        self.listen();
        let token = new_token();
        let deadline = Instant::now() + self.config.wait;
        let mut poll = self.config.poll_min;
        loop {
            let seen = self.notices.generation();
            match self.client.lock(lock_key, &token, self.lease_ms()) {
                Ok(true) => return self.acquired(value_key, lock_key, token),
                Ok(false) => {}
                Err(err) => return Claimed::Unavailable(err),
            }
            let now = Instant::now();
            if now >= deadline {
                return Claimed::TimedOut;
            }
            self.notices.wait(seen, jitter(poll).min(deadline - now));
            poll = (poll * 2).min(self.config.poll_max);
            match self.client.get(value_key) {
                Ok(Some(value)) => return Claimed::Value(value),
                Ok(None) => {}
                Err(err) => return Claimed::Unavailable(err),
            }
        }
    }

    /// [`claim`](Self::claim) for async callers, on any executor.
    pub async fn claim_async(&self, value_key: &[u8], lock_key: &[u8]) -> Claimed {
        match self.client.get_async(value_key).await {
            Ok(Some(value)) => return Claimed::Value(value),
            Ok(None) => {}
            Err(err) => return Claimed::Unavailable(err),
        }
        self.listen();
        let token = new_token();
        let deadline = Instant::now() + self.config.wait;
        let mut poll = self.config.poll_min;
        loop {
            match self
                .client
                .lock_async(lock_key, &token, self.lease_ms())
                .await
            {
                Ok(true) => {
                    return match self.client.get_async(value_key).await {
                        Ok(Some(value)) => {
                            let _ = self
                                .client
                                .unlock_and_publish_async(lock_key, &token, &self.config.channel)
                                .await;
                            Claimed::Value(value)
                        }
                        Ok(None) => Claimed::Compute(self.guard(lock_key, token)),
                        Err(err) => {
                            drop(self.guard(lock_key, token));
                            Claimed::Unavailable(err)
                        }
                    };
                }
                Ok(false) => {}
                Err(err) => return Claimed::Unavailable(err),
            }
            let now = Instant::now();
            if now >= deadline {
                return Claimed::TimedOut;
            }
            let notify = Arc::clone(&self.notices.notify);
            self.client
                .sleep_until_notified(notify, jitter(poll).min(deadline - now))
                .await;
            poll = (poll * 2).min(self.config.poll_max);
            match self.client.get_async(value_key).await {
                Ok(Some(value)) => return Claimed::Value(value),
                Ok(None) => {}
                Err(err) => return Claimed::Unavailable(err),
            }
        }
    }

    /// The lock is ours; the value may have been stored between our read and our lock.
    fn acquired(&self, value_key: &[u8], lock_key: &[u8], token: Vec<u8>) -> Claimed {
        let guard = self.guard(lock_key, token);
        match self.client.get(value_key) {
            Ok(Some(value)) => {
                let _ = guard.release();
                Claimed::Value(value)
            }
            Ok(None) => Claimed::Compute(guard),
            Err(err) => Claimed::Unavailable(err),
        }
    }

    fn guard(&self, lock_key: &[u8], token: Vec<u8>) -> LockGuard {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = oneshot::channel();
        self.client.detach(renew(
            self.client.clone(),
            lock_key.to_vec(),
            token.clone(),
            self.config.lease,
            Arc::clone(&lost),
            stopped,
        ));
        LockGuard(Held::Single(SingleGuard {
            client: self.client.clone(),
            lock_key: lock_key.to_vec(),
            token,
            channel: self.config.channel.clone(),
            renewal: Some(stop),
            lost,
            released: false,
        }))
    }

    /// Subscribes to release announcements once, without blocking: until the subscription is
    /// up (or while it reconnects), waiters still poll.
    fn listen(&self) {
        let mut subscription = self.subscription.lock();
        if subscription.is_none() {
            let notices = Arc::clone(&self.notices);
            *subscription = Some(
                self.client
                    .subscribe_detached(&self.config.channel, move |_| notices.bump()),
            );
        }
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Holding the lock: its lease is renewed until the guard is dropped or released.
///
/// The same guard for both kinds of lock: one server ([`Locks`]) or a majority of several
/// ([`Redlock`](super::Redlock)).
#[derive(Debug)]
pub struct LockGuard(Held);

#[derive(Debug)]
enum Held {
    Single(SingleGuard),
    Redlock(RedlockGuard),
}

impl LockGuard {
    pub(super) const fn redlock(guard: RedlockGuard) -> Self {
        Self(Held::Redlock(guard))
    }

    /// This holder's random token.
    #[must_use]
    pub fn token(&self) -> &[u8] {
        match &self.0 {
            Held::Single(guard) => &guard.token,
            Held::Redlock(guard) => guard.token(),
        }
    }

    /// Whether a renewal found the lock gone or owned by another caller (the lease ran out):
    /// the value computed is still right, only its exclusivity was lost.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        match &self.0 {
            Held::Single(guard) => guard.lost.load(Ordering::Relaxed),
            Held::Redlock(guard) => guard.is_lost(),
        }
    }

    /// Releases now and waits for it: whether the lock was still ours (on a majority of the
    /// servers, for a Redlock).
    pub fn release(self) -> Result<bool, Error> {
        match self.0 {
            Held::Single(guard) => guard.release(),
            Held::Redlock(guard) => guard.release(),
        }
    }

    /// [`release`](Self::release) for async callers.
    pub async fn release_async(self) -> Result<bool, Error> {
        match self.0 {
            Held::Single(guard) => guard.release_async().await,
            Held::Redlock(guard) => guard.release_async().await,
        }
    }
}

/// The lock on one server.
#[derive(Debug)]
struct SingleGuard {
    client: RedisClient,
    lock_key: Vec<u8>,
    token: Vec<u8>,
    channel: Vec<u8>,
    renewal: Option<oneshot::Sender<()>>,
    lost: Arc<AtomicBool>,
    released: bool,
}

impl SingleGuard {
    fn release(mut self) -> Result<bool, Error> {
        self.stop_renewal();
        self.released = true;
        self.client
            .unlock_and_publish(&self.lock_key, &self.token, &self.channel)
    }

    async fn release_async(mut self) -> Result<bool, Error> {
        self.stop_renewal();
        self.released = true;
        self.client
            .unlock_and_publish_async(&self.lock_key, &self.token, &self.channel)
            .await
    }

    fn stop_renewal(&mut self) {
        if let Some(stop) = self.renewal.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for SingleGuard {
    /// Releases in the background: a drop never blocks, not even inside an async task.
    fn drop(&mut self) {
        self.stop_renewal();
        if !self.released {
            let client = self.client.clone();
            let (key, token, channel) = (
                std::mem::take(&mut self.lock_key),
                std::mem::take(&mut self.token),
                std::mem::take(&mut self.channel),
            );
            self.client.detach(async move {
                let _ = client
                    .unlock_and_publish_async(&key, &token, &channel)
                    .await;
            });
        }
    }
}

/// Extends the lease every third of it until stopped, or until the lock is found lost.
async fn renew(
    client: RedisClient,
    key: Vec<u8>,
    token: Vec<u8>,
    lease: Duration,
    lost: Arc<AtomicBool>,
    mut stopped: oneshot::Receiver<()>,
) {
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep(lease / 3) => {}
        }
        // An error is transient until proved otherwise: the next tick tries again.
        if let Ok(false) = client.extend_async(&key, &token, lease_ms).await {
            lost.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// 128 random bits in hex: OS-seeded `SipHash` keys over the process, the time and a counter,
/// so tokens differ across threads, processes and machines.
pub(crate) fn new_token() -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let seed = (std::process::id(), nanos, count);
    let (high, low) = (
        RandomState::new().hash_one(seed),
        RandomState::new().hash_one(seed),
    );
    format!("{high:016x}{low:016x}").into_bytes()
}

/// `interval` spread over `[interval / 2, interval]`, so waiters do not poll in step.
pub(super) fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(0.5 + crate::random::unit() / 2.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_distinct() {
        let tokens: std::collections::HashSet<_> = (0..1000).map(|_| super::new_token()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens.iter().all(|t| t.len() == 32));
    }
}
