//! Distributed single-flight in bytes: on a miss, one caller across every process computes while
//! the others wait for its value.
//!
//! One script reads the value or, when there is none, takes `SET lock token NX PX lease` with a
//! random token: a claim is one round trip. The holder renews the lease while its body runs and
//! releases by compare-and-delete, publishing the lock key on a channel. Waiters wake on that
//! message or on a poll (backoff with jitter) and try the script again (a holder that died leaves
//! a lock that expires with its lease). Past the wait timeout they compute themselves. This is an
//! efficiency lock: losing it costs a duplicate computation, never a wrong value. A holder whose
//! lock is gone (lost to its lease, or deleted with the value by an invalidation) stores nothing.
//!
//! No lock outlives its caller: the release is armed before the request that may take the lock
//! is sent, so a caller cancelled at any await point, or a reply lost to a timeout after Redis
//! ran the request, still deletes the lock (in the background, behind the request on the same
//! connection). Only a request that surely never left (breaker open, deadline spent, connection
//! refused) disarms it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};

use super::budget;
use super::client::{ReadOrLock, RedisClient, Stored, Subscription, Write};
use super::error::Error;
use super::redlock::RedlockGuard;
use crate::block::wait;

/// The lock's lease and how long waiters wait.
///
/// # Examples
///
/// ```
/// use memo::redis::LockConfig;
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
/// use memo::redis::{Claimed, LockConfig, Locks, RedisClient, RedisConfig};
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
/// # Ok::<(), memo::redis::Error>(())
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
    generation: AtomicU64,
    notify: Notify,
}

impl Notices {
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Completes once a release is announced after `seen`.
    async fn after(self: Arc<Self>, seen: u64) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the check, so a bump between the two still wakes it.
        notified.as_mut().enable();
        if self.generation() == seen {
            notified.await;
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
        wait(self.claim_async(value_key, lock_key))
    }

    /// [`claim`](Self::claim) for async callers, on any executor.
    ///
    /// Dropping the future at any await point leaves no lock behind: the release is armed before
    /// the request that takes the lock is sent.
    pub async fn claim_async(&self, value_key: &[u8], lock_key: &[u8]) -> Claimed {
        self.claim_watching(value_key, lock_key).await.0
    }

    /// [`claim_async`](Self::claim_async), with, beside [`Claimed::TimedOut`], the token of
    /// the holder the caller waited for, as its last round saw it: the fence of the caller's
    /// own write (see [`RedisClient::write_if_held`]).
    pub(crate) async fn claim_watching(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
    ) -> (Claimed, Option<Vec<u8>>) {
        self.listen();
        let token = new_token();
        let deadline = Instant::now() + self.config.wait;
        let mut poll = self.config.poll_min;
        let mut held = false;
        let mut holder = None;
        loop {
            // Read before the round, so that a release announced during it still wakes us.
            let seen = self.notices.generation();
            let armed = self.arm(lock_key, &token);
            let round = self
                .client
                .read_or_lock(value_key, lock_key, &token, self.lease_ms());
            // Once the key is held, the rounds are the wait for its holder's value.
            let found = if held {
                budget::waiting(round).await
            } else {
                round.await
            };
            if let Some(claimed) = self.answer(armed, found, &mut holder) {
                return (claimed, None);
            }
            held = true;
            let now = Instant::now();
            if now >= deadline {
                return (Claimed::TimedOut, holder);
            }
            let released = Arc::clone(&self.notices).after(seen);
            self.client
                .sleep_until(released, jitter(poll).min(deadline - now))
                .await;
            poll = (poll * 2).min(self.config.poll_max);
        }
    }

    /// A release of `lock_key` with `token`, armed before the request that may take the lock is
    /// sent: dropped armed (the caller was cancelled, or the reply was lost to a timeout after
    /// Redis ran it), it deletes the lock if it is ours. Commands on one connection run in
    /// order, so the release never overtakes the request.
    fn arm(&self, lock_key: &[u8], token: &[u8]) -> SingleGuard {
        SingleGuard {
            client: self.client.clone(),
            lock_key: lock_key.to_vec(),
            token: token.to_vec(),
            channel: self.config.channel.clone(),
            renewal: None,
            lost: Arc::new(AtomicBool::new(false)),
            released: false,
        }
    }

    /// What one round of the claim found: the value, the lock (the armed release becomes its
    /// guard, renewed from now on), or `None`: wait for the holder, whose token goes in `seen`.
    /// Only a request that surely never reached Redis disarms the release.
    fn answer(
        &self,
        mut armed: SingleGuard,
        found: Result<ReadOrLock, Error>,
        seen: &mut Option<Vec<u8>>,
    ) -> Option<Claimed> {
        match found {
            Ok(ReadOrLock::Locked) => Some(Claimed::Compute(self.held(armed))),
            Ok(ReadOrLock::Value(value)) => {
                armed.released = true;
                Some(Claimed::Value(value))
            }
            Ok(ReadOrLock::Held(holder)) => {
                armed.released = true;
                *seen = Some(holder);
                None
            }
            Err(err) => {
                armed.released = unsent(&err);
                Some(Claimed::Unavailable(err))
            }
        }
    }

    /// The lock just taken with `armed`'s token, its lease renewed from now on.
    fn held(&self, mut armed: SingleGuard) -> LockGuard {
        let (stop, stopped) = oneshot::channel();
        self.client.detach(renew(
            self.client.clone(),
            armed.lock_key.clone(),
            armed.token.clone(),
            self.config.lease,
            Arc::clone(&armed.lost),
            stopped,
        ));
        armed.renewal = Some(stop);
        LockGuard(Held::Single(armed))
    }

    /// Takes `lock_key` if no one holds it, without waiting (`SET NX PX`): what a background
    /// refresh claims, so that one process refreshes a key; `Ok(None)` when it is held.
    pub(crate) async fn try_claim_async(
        &self,
        lock_key: &[u8],
    ) -> Result<Option<LockGuard>, Error> {
        let token = new_token();
        let armed = self.arm(lock_key, &token);
        let locked = self
            .client
            .lock_async(lock_key, &token, self.lease_ms())
            .await;
        self.tried(armed, locked)
    }

    /// Takes `lock_key` whoever holds it (`SET PX`, no `NX`): what a forced refresh marks its key
    /// with when it begins. The holder it replaces (a miss, a background refresh, an earlier
    /// forced refresh) began before, and its write, conditional on its token, is refused; ours
    /// is refused in turn if a later refresh or an invalidation replaces or deletes it. Renewed
    /// and released as any lock; armed before it is sent, so a cancelled caller leaves nothing.
    pub(crate) async fn take_async(&self, lock_key: &[u8]) -> Result<LockGuard, Error> {
        let token = new_token();
        let mut armed = self.arm(lock_key, &token);
        match self
            .client
            .set_px_async(lock_key, &token, self.lease_ms())
            .await
        {
            Ok(()) => Ok(self.held(armed)),
            Err(err) => {
                armed.released = unsent(&err);
                Err(err)
            }
        }
    }

    /// What a [`try_claim_async`](Self::try_claim_async) got: the lock, or nothing to release.
    fn tried(
        &self,
        mut armed: SingleGuard,
        taken: Result<bool, Error>,
    ) -> Result<Option<LockGuard>, Error> {
        match taken {
            Ok(true) => Ok(Some(self.held(armed))),
            Ok(false) => {
                armed.released = true;
                Ok(None)
            }
            Err(err) => {
                armed.released = unsent(&err);
                Err(err)
            }
        }
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

    /// A Redlock's guard whose lock name on the store's server now holds its token too.
    pub(super) fn fenced(mut self) -> Self {
        if let Held::Redlock(guard) = &mut self.0 {
            guard.fenced();
        }
        self
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

    /// Stores `write`'s value, publishes its announcement and releases, in one round trip where
    /// the lock is on one server: whether the lock was still ours. A Redlock's value is written
    /// on `store`, then its release runs in the background. A write that fails (a timeout, a
    /// request never sent) leaves the release to the guard's drop, as before.
    pub(crate) async fn set_and_release(
        self,
        store: &RedisClient,
        write: Write<'_>,
    ) -> Result<bool, Error> {
        match self.0 {
            Held::Single(guard) => guard.set_and_release(write).await,
            Held::Redlock(mut guard) => {
                // Fenced (its lock name on the store's server holds its token): stored only
                // if no invalidation deleted that name, nor a forced refresh took it, meanwhile.
                let stored = match guard.fence() {
                    Some((lock_key, token, channel)) => {
                        let stored = store
                            .set_and_unlock(Stored {
                                value_key: write.key,
                                bytes: write.bytes,
                                ttl_ms: write.ttl_ms,
                                lock_key,
                                token,
                                channel,
                                announce: write.announce,
                                own: write.own,
                            })
                            .await;
                        if stored.is_ok() {
                            // Deleted by the write, or by whoever refused it: nothing to
                            // release there.
                            guard.unfenced();
                        }
                        stored
                    }
                    None => store.write(write).await.map(|()| true),
                };
                drop(guard);
                stored
            }
        }
    }

    /// Releases now and waits for it: whether the lock was still ours (on a majority of the
    /// servers, for a Redlock).
    pub fn release(self) -> Result<bool, Error> {
        wait(self.release_async())
    }

    /// [`release`](Self::release) for async callers.
    pub async fn release_async(self) -> Result<bool, Error> {
        match self.0 {
            Held::Single(guard) => guard.release().await,
            Held::Redlock(guard) => guard.release().await,
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
    async fn release(mut self) -> Result<bool, Error> {
        self.stop_renewal();
        let result = self
            .client
            .unlock_and_publish_async(&self.lock_key, &self.token, &self.channel)
            .await;
        // Not done (a timeout, never sent, or the caller gone mid-wait): the drop releases in
        // the background, rather than leave the lock to its lease.
        self.released = result.is_ok();
        result
    }

    async fn set_and_release(mut self, write: Write<'_>) -> Result<bool, Error> {
        self.stop_renewal();
        let result = self.client.set_and_unlock(self.stored(write)).await;
        // Not done (a timeout, or never sent): the drop releases in the background.
        self.released = result.is_ok();
        result
    }

    fn stored<'a>(&'a self, write: Write<'a>) -> Stored<'a> {
        Stored {
            value_key: write.key,
            bytes: write.bytes,
            ttl_ms: write.ttl_ms,
            lock_key: &self.lock_key,
            token: &self.token,
            channel: &self.channel,
            announce: write.announce,
            own: write.own,
        }
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

/// Whether a request surely never reached Redis: nothing to release after it.
pub(super) fn unsent(err: &Error) -> bool {
    match err {
        Error::Open | Error::Deadline | Error::Closed | Error::Config(_) => true,
        Error::Redis(err) => err.0.is_connection_refusal(),
        _ => false,
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
