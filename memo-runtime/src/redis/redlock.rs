//! Redlock: the stampede lock over N independent Redis servers, so that it outlives a minority
//! of them.
//!
//! The algorithm of the Redis documentation's "Distributed Locks with Redis" page: take
//! `SET lock token NX PX lease` on every server at once (one client each, the requests in
//! parallel); the lock is held when a majority (`N / 2 + 1`) granted it and time is left of the
//! lease after the time the round took and a clock-drift allowance of `lease / 100 + 2 ms` (the
//! *validity*). Otherwise the caller releases what it got, everywhere, with compare-and-delete,
//! and retries after a random back-off. The holder extends the lease on a majority while its body
//! runs, and releases everywhere when done.
//!
//! # What this lock is for
//!
//! It prevents duplicate work: it is an *efficiency* lock, not a correctness lock. Redlock gives no
//! fencing tokens, and a holder paused past its lease (a GC pause, a stopped VM, a clock jump) can
//! overlap with the next one; Martin Kleppmann's [*How to do distributed locking*][kleppmann]
//! (2016) shows how, and Salvatore Sanfilippo's reply [*Is Redlock safe?*][antirez] argues where
//! the algorithm still holds. memo does not need to settle that debate: the value is computed from
//! the arguments and stored whole with one `SET`, so two holders write the same value. A lost
//! lock costs one extra computation, never a wrong value.
//!
//! When fewer than a majority of the servers answer, [`Redlock::claim`] says
//! [`Claimed::Unavailable`] at once (the caller computes) and a warning is logged at most once
//! per interval.
//!
//! [kleppmann]: https://martin.kleppmann.com/2016/02/08/how-to-do-distributed-locking.html
//! [antirez]: http://antirez.com/news/101

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

use super::budget::{self, Budget};
use super::client::{Peeked, ReadOrLock, RedisClient, Subscription};
use super::config::RedisConfig;
use super::error::Error;
use super::lock::{Claimed, LockConfig, LockGuard, jitter, new_token, unsent};
use super::runtime::{Driver, Reply};
use crate::block::wait;

/// The environment variable naming the servers: comma-separated URLs.
pub const URLS_VAR: &str = "MEMO_REDLOCK_URLS";

/// The servers of a [`Redlock`], its lease and how long waiters wait.
///
/// # Examples
///
/// ```
/// use memo::redis::RedlockConfig;
///
/// let config = RedlockConfig::from_urls("redis://10.0.0.1,redis://10.0.0.2,redis://10.0.0.3".split(','))?;
/// assert_eq!((config.servers.len(), config.quorum()), (3, 2));
/// # Ok::<(), memo::redis::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RedlockConfig {
    /// Independent masters (not replicas of each other, not a cluster): an odd number, 5 in
    /// the Redis documentation.
    pub servers: Vec<RedisConfig>,
    /// The lease (the `PX` of each `SET`, renewed every third of it), the wait, the polls and
    /// the release channel, as for the single-server lock.
    pub lock: LockConfig,
    /// At most one "no majority" warning per this interval.
    pub log_interval: Duration,
}

impl RedlockConfig {
    /// The servers named by `MEMO_REDLOCK_URLS` (comma-separated).
    pub fn from_env() -> Result<Self, Error> {
        let urls = std::env::var(URLS_VAR)
            .ok()
            .filter(|urls| !urls.trim().is_empty())
            .ok_or_else(|| Error::Config(format!("{URLS_VAR} is not set")))?;
        Self::from_urls(urls.split(','))
    }

    /// One server per URL (`redis://`, `rediss://`, with credentials); blanks are skipped.
    pub fn from_urls<I, S>(urls: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let servers = urls
            .into_iter()
            .filter(|url| !url.as_ref().trim().is_empty())
            .map(|url| {
                let config = RedisConfig::from_url(url.as_ref())?;
                if config.is_cluster() {
                    return Err(Error::Config(
                        "Redlock needs independent servers, not a cluster".to_string(),
                    ));
                }
                Ok(config)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(Error::Config(
                "Redlock needs at least one server".to_string(),
            ));
        }
        Ok(Self {
            servers,
            lock: LockConfig::default(),
            log_interval: Duration::from_secs(10),
        })
    }

    /// Applies `configure` to every server (timeouts, breaker, TLS root).
    #[must_use]
    pub fn map_servers(mut self, configure: impl FnMut(RedisConfig) -> RedisConfig) -> Self {
        self.servers = self.servers.into_iter().map(configure).collect();
        self
    }

    /// The majority: `N / 2 + 1`.
    #[must_use]
    pub const fn quorum(&self) -> usize {
        self.servers.len() / 2 + 1
    }
}

/// Why [`Redlock::try_lock`] did not take the lock.
#[derive(Debug)]
pub enum Refused {
    /// Fewer than a majority granted it: another caller holds it, or the votes split.
    Held {
        /// Servers that granted it to us.
        granted: usize,
    },
    /// A majority granted it, but the round left no validity: the lease, less the time taken and
    /// the clock-drift allowance, was spent. What was taken is released.
    Expired {
        /// How long the round took.
        elapsed: Duration,
    },
    /// Fewer than a majority of the servers answered ([`Error::NoQuorum`]).
    Unavailable(Error),
}

/// The Redlock algorithm over independent servers; the value lives in another client, the store.
///
/// # Examples
///
/// ```no_run
/// use memo::redis::{Claimed, RedisClient, RedisConfig, Redlock, RedlockConfig};
///
/// let store = RedisClient::new(RedisConfig::from_env()?)?;
/// let redlock = Redlock::new(RedlockConfig::from_env()?, store)?;
/// let value = match redlock.claim(b"{user:7}:v", b"{user:7}:lock") {
///     Claimed::Value(bytes) => bytes,
///     Claimed::Compute(guard) => {
///         let bytes = b"computed".to_vec();
///         redlock.store().set_px(b"{user:7}:v", &bytes, 60_000)?;
///         drop(guard); // releases on every server and wakes the waiters
///         bytes
///     }
///     Claimed::TimedOut | Claimed::Unavailable(_) => b"computed".to_vec(),
/// };
/// # Ok::<(), memo::redis::Error>(())
/// ```
#[derive(Debug)]
pub struct Redlock {
    shared: Arc<Shared>,
    /// Release announcements from every server, held for their drop.
    _subscriptions: Vec<Subscription>,
}

/// What the lock, its guards and their background tasks share.
#[derive(Debug)]
struct Shared {
    store: RedisClient,
    servers: Vec<RedisClient>,
    config: RedlockConfig,
    /// Runs the parallel rounds and the servers' connections, so that sync callers need no
    /// runtime and async ones any.
    driver: Arc<Driver>,
    released: Arc<Notify>,
    warnings: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl Redlock {
    /// The algorithm over `config.servers`, reading and writing values in `store` (which may be
    /// one of them). Connects on first use, like [`RedisClient::new`].
    pub fn new(config: RedlockConfig, store: RedisClient) -> Result<Self, Error> {
        // One runtime thread for the round and every server's connection.
        let driver = Arc::new(Driver::start()?);
        let servers = config
            .servers
            .iter()
            .map(|server| RedisClient::on_driver(server.clone(), Arc::clone(&driver)))
            .collect::<Result<Vec<_>, _>>()?;
        let released = Arc::new(Notify::new());
        let subscriptions = servers
            .iter()
            .map(|server| {
                let released = Arc::clone(&released);
                server.subscribe_detached(&config.lock.channel, move |_| {
                    released.notify_waiters();
                })
            })
            .collect();
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                servers,
                config,
                driver,
                released,
                warnings: AtomicU64::new(0),
                last_warning: Mutex::new(None),
            }),
            _subscriptions: subscriptions,
        })
    }

    /// Where values are read and written.
    #[must_use]
    pub fn store(&self) -> &RedisClient {
        &self.shared.store
    }

    /// One client per lock server.
    #[must_use]
    pub fn servers(&self) -> &[RedisClient] {
        &self.shared.servers
    }

    /// The majority needed: `N / 2 + 1`.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.shared.config.quorum()
    }

    /// "No majority" warnings logged so far (at most one per `log_interval`).
    #[must_use]
    pub fn warnings(&self) -> u64 {
        self.shared.warnings.load(Ordering::Relaxed)
    }

    /// Reads `value_key` from the store; on a miss, takes `lock_key` on a majority of the
    /// servers or waits for whoever holds it. The same protocol as
    /// [`Locks::claim`](super::Locks::claim).
    ///
    /// # Concurrent calls on the same key
    ///
    /// Across threads and processes, at most one caller at a time gets [`Claimed::Compute`] for a
    /// lock key while its lease holds on a majority; the others get the value it stores, or
    /// [`Claimed::TimedOut`] after the wait timeout. With fewer than a majority of the servers
    /// reachable every caller gets [`Claimed::Unavailable`] (and computes).
    pub fn claim(&self, value_key: &[u8], lock_key: &[u8]) -> Claimed {
        wait(self.claim_async(value_key, lock_key))
    }

    /// [`claim`](Self::claim) for async callers, on any executor.
    pub fn claim_async(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
    ) -> impl Future<Output = Claimed> + Send + 'static {
        let claim = self.claim_within(value_key, lock_key, None);
        async move { claim.await.0.0 }
    }

    /// [`claim_async`](Self::claim_async) for a memoized call: its commands to the store's
    /// server (the reads of the value, the read-or-lock after the round) are charged to the
    /// call's `budget`, as its other commands are; the polls of a wait only when they time out.
    /// The rounds on the lock servers keep their own bounds. Beside [`Claimed::TimedOut`], the
    /// token the key's lock name on the store's server held at the wait's last look (see
    /// [`Locks::claim_watching`](super::Locks::claim_watching)).
    ///
    /// With them, the failures of the lock servers' requests during the claim (a round that
    /// still won a majority too), for the caller's counts.
    pub(crate) fn claim_within(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
        budget: Option<Budget>,
    ) -> impl Future<Output = ((Claimed, Option<Vec<u8>>), Vec<Error>)> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let (value_key, lock_key) = (value_key.to_vec(), lock_key.to_vec());
        let result = self.shared.run(async move {
            let mut faults = Vec::new();
            let claimed = claim(shared, value_key, lock_key, budget, &mut faults).await;
            (claimed, faults)
        });
        async move {
            match result.await {
                Ok((claimed, faults)) => (claimed, faults),
                Err(err) => (settle(Err(err)), Vec::new()),
            }
        }
    }

    /// One round of the algorithm for `lock_key` with this `lease`, no retry and no value: the
    /// guard holds the lock (renewed until dropped), or why not.
    pub fn try_lock(&self, lock_key: &[u8], lease: Duration) -> Result<LockGuard, Refused> {
        let (shared, lock_key) = (Arc::clone(&self.shared), lock_key.to_vec());
        let attempt =
            async move { attempt(shared, lock_key, new_token(), lease, &mut Vec::new()).await };
        wait(self.shared.run(attempt)).unwrap_or_else(|err| Err(Refused::Unavailable(err)))
    }

    /// Compare-and-delete of `lock_key` on every server: on how many it still held `token` (and
    /// was deleted). Another caller's token deletes nothing.
    #[must_use]
    pub fn release(&self, lock_key: &[u8], token: &[u8]) -> usize {
        let release = release(Arc::clone(&self.shared), lock_key.to_vec(), token.to_vec());
        wait(self.shared.run(release)).unwrap_or(0)
    }
}

impl Shared {
    /// Runs `fut` on the driver (its rounds spawn tasks there), bounded by
    /// [`bound`](Self::bound).
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Reply<T> {
        self.driver.run(self.bound(), async move { Ok(fut.await) })
    }

    /// How long a whole claim may take: the wait, plus a few commands after it.
    fn bound(&self) -> Duration {
        let command = self
            .config
            .servers
            .iter()
            .chain([self.store.config()])
            .map(|server| server.command_timeout)
            .max()
            .unwrap_or_default();
        self.config.lock.wait + command * 4 + Duration::from_secs(1)
    }

    /// Logs that the lock is unusable, at most once per interval.
    fn warn(&self, answered: usize, why: &dyn Display) {
        let now = Instant::now();
        {
            let mut last = self.last_warning.lock();
            if last.is_some_and(|at| now.duration_since(at) < self.config.log_interval) {
                return;
            }
            *last = Some(now);
        }
        self.warnings.fetch_add(1, Ordering::Relaxed);
        let line = format!(
            "redlock: {answered} of {} servers answered, a majority needs {} ({why}); callers \
             compute without the lock",
            self.servers.len(),
            self.config.quorum()
        );
        crate::trace::warn(&line);
    }
}

/// [`Shared::run`]'s result as a claim: past the bound, the caller stops waiting (having seen
/// no token it could fence its write with).
fn settle(result: Result<(Claimed, Option<Vec<u8>>), Error>) -> (Claimed, Option<Vec<u8>>) {
    match result {
        Ok(claimed) => claimed,
        Err(Error::Timeout) => (Claimed::TimedOut, None),
        Err(err) => (Claimed::Unavailable(err), None),
    }
}

/// A command to the store's server, charged to the call's budget if it has one.
async fn charged<F: Future>(budget: Option<&Budget>, command: F) -> F::Output {
    match budget {
        Some(budget) => budget::within(budget, command).await,
        None => command.await,
    }
}

/// A poll of the store's server while another caller computes: the lock's wait, not a slow
/// server, so bounded by what the call has left and charged only if it times out.
async fn polled<F: Future>(budget: Option<&Budget>, poll: F) -> F::Output {
    charged(budget, budget::waiting(poll)).await
}

/// The waiter's loop of [`Locks::claim`](super::Locks::claim), with a round over every server
/// in place of one `SET NX`. Its polls read the key's lock name on the store's server beside
/// the value: the token there (the holder's fence) at the last poll is, past the wait, the
/// fence of the caller's own write.
async fn claim(
    shared: Arc<Shared>,
    value_key: Vec<u8>,
    lock_key: Vec<u8>,
    budget: Option<Budget>,
    faults: &mut Vec<Error>,
) -> (Claimed, Option<Vec<u8>>) {
    let budget = budget.as_ref();
    match charged(budget, shared.store.get_async(&value_key)).await {
        Ok(Some(value)) => return (Claimed::Value(value), None),
        Ok(None) => {}
        Err(err) => return (Claimed::Unavailable(err), None),
    }
    let token = new_token();
    let lock = &shared.config.lock;
    let deadline = Instant::now() + lock.wait;
    let mut poll = lock.poll_min;
    let mut seen = None;
    loop {
        // Registered before the round, so a release during it still wakes us.
        let released = shared.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        match attempt(
            Arc::clone(&shared),
            lock_key.clone(),
            token.clone(),
            lock.lease,
            faults,
        )
        .await
        {
            Ok(guard) => {
                let keys = (&value_key[..], &lock_key[..]);
                return acquired(&shared, keys, guard, budget, deadline).await;
            }
            Err(Refused::Unavailable(err)) => return (Claimed::Unavailable(err), None),
            Err(Refused::Held { .. } | Refused::Expired { .. }) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return (Claimed::TimedOut, seen);
        }
        // The random back-off, cut short by a release announced on any server.
        let _ = tokio::time::timeout(jitter(poll).min(deadline - now), released).await;
        poll = (poll * 2).min(lock.poll_max);
        match polled(budget, shared.store.read_or_peek(&value_key, &lock_key)).await {
            Ok(Peeked::Value(value)) => return (Claimed::Value(value), None),
            Ok(Peeked::Absent(holder)) => seen = holder,
            Err(err) => return (Claimed::Unavailable(err), None),
        }
    }
}

/// The lock is ours; the value may have been stored between our read and our lock. The read
/// also fences the key on the store's server (its lock name, with our token, in the same round
/// trip): an invalidation deletes that name, or a forced refresh takes it over, and our write is
/// then refused, as under the single-server lock.
///
/// A name held by someone else (a forced refresh's mark, a background refresh, a holder of
/// the single-server lock, an earlier Redlock holder that lost its lease) is a computation of
/// the key under way: we wait for its value, as a waiter of the single-server lock does,
/// polling the same script until the value is there or the name is free and ours, and compute
/// only fenced. Computing unfenced, our plain write could land after that computation's value
/// or an invalidation, and put back an older value. Past the wait, [`Claimed::TimedOut`].
///
/// A read-or-lock whose reply was lost (a timeout) may still have taken the name: the guard
/// then counts it as its fence, so that the lock's release deletes it (compare-and-delete).
async fn acquired(
    shared: &Shared,
    (value_key, lock_key): (&[u8], &[u8]),
    guard: LockGuard,
    budget: Option<&Budget>,
    deadline: Instant,
) -> (Claimed, Option<Vec<u8>>) {
    let lock = &shared.config.lock;
    let lease_ms = millis(lock.lease);
    let mut poll = lock.poll_min;
    let mut held = false;
    loop {
        let round = shared
            .store
            .read_or_lock(value_key, lock_key, guard.token(), lease_ms);
        // Once the name is held, the rounds are the wait for its holder's value.
        let read = if held {
            polled(budget, round).await
        } else {
            charged(budget, round).await
        };
        let seen = match read {
            Ok(ReadOrLock::Value(value)) => {
                let _ = guard.release_async().await;
                return (Claimed::Value(value), None);
            }
            Ok(ReadOrLock::Locked) => return (Claimed::Compute(guard.fenced()), None),
            Ok(ReadOrLock::Held(holder)) => holder,
            Err(err) => {
                if !unsent(&err) {
                    drop(guard.fenced());
                }
                return (Claimed::Unavailable(err), None);
            }
        };
        held = true;
        let now = Instant::now();
        if now >= deadline {
            return (Claimed::TimedOut, Some(seen));
        }
        tokio::time::sleep(jitter(poll).min(deadline - now)).await;
        poll = (poll * 2).min(lock.poll_max);
    }
}

/// One round: `SET NX PX` everywhere at once, then the majority and validity checks. The
/// servers' failures are added to `faults`.
async fn attempt(
    shared: Arc<Shared>,
    lock_key: Vec<u8>,
    token: Vec<u8>,
    lease: Duration,
    faults: &mut Vec<Error>,
) -> Result<LockGuard, Refused> {
    let lease_ms = millis(lease);
    let start = Instant::now();
    let votes = everywhere(&shared.servers, |server| {
        let (key, token) = (lock_key.clone(), token.clone());
        async move { server.lock_async(&key, &token, lease_ms).await }
    })
    .await;
    let elapsed = start.elapsed();
    let granted = votes.iter().filter(|vote| matches!(vote, Ok(true))).count();
    let answered = votes.iter().filter(|vote| vote.is_ok()).count();
    let why = votes
        .iter()
        .find_map(|vote| vote.as_ref().err())
        .map_or_else(String::new, ToString::to_string);
    faults.extend(votes.into_iter().filter_map(Result::err));
    let quorum = shared.config.quorum();
    let drift = lease / 100 + Duration::from_millis(2);
    let refused = if granted >= quorum {
        if lease > elapsed + drift {
            let guard = RedlockGuard::start(&shared, lock_key, token, lease);
            return Ok(LockGuard::redlock(guard));
        }
        Refused::Expired { elapsed }
    } else if answered < quorum {
        shared.warn(answered, &why);
        Refused::Unavailable(Error::NoQuorum {
            answered,
            needed: quorum,
        })
    } else {
        Refused::Held { granted }
    };
    if granted > 0 {
        release(shared, lock_key, token).await;
    }
    Err(refused)
}

/// Compare-and-delete (announcing the release) on every server at once: on how many it held.
async fn release(shared: Arc<Shared>, lock_key: Vec<u8>, token: Vec<u8>) -> usize {
    let channel = shared.config.lock.channel.clone();
    everywhere(&shared.servers, |server| {
        let (key, token, channel) = (lock_key.clone(), token.clone(), channel.clone());
        async move {
            server
                .unlock_and_publish_async(&key, &token, &channel)
                .await
        }
    })
    .await
    .iter()
    .filter(|done| matches!(done, Ok(true)))
    .count()
}

/// Runs `op` against every server in parallel (tasks on the current runtime, the driver's).
async fn everywhere<F, Fut>(servers: &[RedisClient], op: F) -> Vec<Result<bool, Error>>
where
    F: Fn(RedisClient) -> Fut,
    Fut: Future<Output = Result<bool, Error>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    for server in servers {
        tasks.spawn(op(server.clone()));
    }
    let mut results = Vec::with_capacity(servers.len());
    while let Some(result) = tasks.join_next().await {
        results.push(result.unwrap_or(Err(Error::Closed)));
    }
    results
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Holding a Redlock: extended on every server every third of the lease, released everywhere
/// on drop.
#[derive(Debug)]
pub(super) struct RedlockGuard {
    shared: Arc<Shared>,
    lock_key: Vec<u8>,
    token: Vec<u8>,
    renewal: Option<oneshot::Sender<()>>,
    lost: Arc<AtomicBool>,
    released: bool,
    /// Whether the lock name on the store's server holds our token too (renewed with the
    /// lease, released with the lock): our write is then refused once it is deleted.
    fence: Arc<AtomicBool>,
}

impl RedlockGuard {
    fn start(shared: &Arc<Shared>, lock_key: Vec<u8>, token: Vec<u8>, lease: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let fence = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = oneshot::channel();
        shared.driver.detach(renew(
            Arc::clone(shared),
            (lock_key.clone(), token.clone()),
            lease,
            (Arc::clone(&lost), Arc::clone(&fence)),
            stopped,
        ));
        Self {
            shared: Arc::clone(shared),
            lock_key,
            token,
            renewal: Some(stop),
            lost,
            released: false,
            fence,
        }
    }

    pub(super) fn fenced(&mut self) {
        self.fence.store(true, Ordering::Relaxed);
    }

    /// The fence is gone (the write took it): neither renewed nor released any more.
    pub(super) fn unfenced(&mut self) {
        self.fence.store(false, Ordering::Relaxed);
    }

    /// The lock name, token and release channel of our fence on the store's server, if fenced.
    pub(super) fn fence(&self) -> Option<(&[u8], &[u8], &[u8])> {
        self.fence.load(Ordering::Relaxed).then_some((
            &self.lock_key[..],
            &self.token[..],
            &self.shared.config.lock.channel[..],
        ))
    }

    pub(super) fn token(&self) -> &[u8] {
        &self.token
    }

    pub(super) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Whether the lock was still ours: on a majority of the servers, and its fence on the
    /// store's server (which an invalidation deletes) too.
    pub(super) async fn release(mut self) -> Result<bool, Error> {
        let release = self.take_release();
        let quorum = self.shared.config.quorum();
        let released = self.shared.run(release).await;
        released.map(|(fence_held, held)| fence_held && held >= quorum)
    }

    /// Stops the renewal and marks the guard released: the returned future does the release,
    /// answering whether the fence was still ours (or there was none) and on how many servers
    /// the lock was.
    fn take_release(&mut self) -> impl Future<Output = (bool, usize)> + Send + 'static {
        if let Some(stop) = self.renewal.take() {
            let _ = stop.send(());
        }
        self.released = true;
        let shared = Arc::clone(&self.shared);
        let fenced = self.fence.load(Ordering::Relaxed);
        let (lock_key, token) = (
            std::mem::take(&mut self.lock_key),
            std::mem::take(&mut self.token),
        );
        async move {
            let mut fence_held = true;
            if fenced {
                // Compare-and-delete: a fence the write already took deletes nothing.
                let channel = &shared.config.lock.channel;
                let unlocked = shared
                    .store
                    .unlock_and_publish_async(&lock_key, &token, channel)
                    .await;
                fence_held = !matches!(unlocked, Ok(false));
            }
            (fence_held, release(shared, lock_key, token).await)
        }
    }
}

impl Drop for RedlockGuard {
    /// Releases in the background: a drop never blocks, not even inside an async task.
    fn drop(&mut self) {
        if !self.released {
            let release = self.take_release();
            self.shared.driver.detach(async move {
                release.await;
            });
        }
    }
}

/// Extends the lease on every server every third of it until stopped, or until so many servers
/// refused that no majority can hold it any more.
async fn renew(
    shared: Arc<Shared>,
    (lock_key, token): (Vec<u8>, Vec<u8>),
    lease: Duration,
    (lost, fence): (Arc<AtomicBool>, Arc<AtomicBool>),
    mut stopped: oneshot::Receiver<()>,
) {
    let lease_ms = millis(lease);
    let tolerated = shared.servers.len() - shared.config.quorum();
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep(lease / 3) => {}
        }
        if fence.load(Ordering::Relaxed) {
            // The fence on the store's server lives as long as the lock; gone (deleted by an
            // invalidation, taken over by a forced refresh), the write will be refused, which is
            // the point.
            let _ = shared.store.extend_async(&lock_key, &token, lease_ms).await;
        }
        let extended = everywhere(&shared.servers, |server| {
            let (key, token) = (lock_key.clone(), token.clone());
            async move { server.extend_async(&key, &token, lease_ms).await }
        })
        .await;
        // An error is transient until proved otherwise: the next tick tries again.
        let refused = extended
            .iter()
            .filter(|done| matches!(done, Ok(false)))
            .count();
        if refused > tolerated {
            lost.store(true, Ordering::Relaxed);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_independent_servers() {
        let config = RedlockConfig::from_urls(["redis://a:1", " ", "rediss://u:p@b:2"]).unwrap();
        assert_eq!((config.servers.len(), config.quorum()), (2, 2));
        assert!(RedlockConfig::from_urls(["redis+cluster://a:1,b:2"]).is_err());
        assert!(RedlockConfig::from_urls([""; 0]).is_err());
        assert!(RedlockConfig::from_urls(["http://nope"]).is_err());
    }
}
