//! A store shared by processes and machines through Redis (feature `redis`): what
//! `#[cached(store = redis)]` uses.
//!
//! Keys read as `<prefix>:<function>:<codec>:<fingerprint>:{<key>}` (see [`redis_names`]): the
//! program's prefix (`memo` unless [`RedisOptions::prefix`] or `MEMO_REDIS_PREFIX` says
//! otherwise), the function's identity, the codec, 16 hex digits for everything else that sets
//! entries apart, then the key in clear where it is text or numbers, else its SHA-256
//! (collision-resistant, so no key can be made to read another's value). Values are the codec's
//! bytes and nothing else: with `codec = "json"`, plain JSON of the value.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::refresh_marks::RefreshMarks;
use super::{Claim, Counts, Lease, Store, TtlFrom, redis_names};
use crate::codec::Codec;
use crate::config::Config;
use crate::key;
use crate::lookup::Lookup;
use crate::redis::budget::{self, Budget};
use crate::redis::client::{Announce, Own, Write};
use crate::redis::{
    Claimed, Error, LockConfig, LockGuard, Locks, RedisClient, RedisConfig, Redlock, RedlockConfig,
    wait,
};

/// The environment variable that names the prefix of every key (default [`DEFAULT_PREFIX`]).
pub(crate) const PREFIX_VAR: &str = "MEMO_REDIS_PREFIX";

/// The start of every key when neither [`RedisOptions::prefix`] nor `MEMO_REDIS_PREFIX` names
/// another.
pub(crate) const DEFAULT_PREFIX: &str = "memo";

thread_local! {
    /// This thread's call from the read that missed to its claim: a [`Parked`] of the store's
    /// key type (a claim of another key works out its own).
    static PARKED: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// What a read that missed keeps for the claim that follows on its thread: the key, its names
/// (so that the key is encoded once per call) and the call's budget.
struct Parked<K> {
    key: K,
    names: Names,
    budget: Budget,
}

/// A value on its way to Redis: its key's names and bytes, the call's budget, and what the write
/// is conditional on (the lock it releases; none for a plain insert, or a claim that failed).
struct Outgoing<'a> {
    client: &'a RedisClient,
    names: Names,
    budget: Budget,
    fence: Fence,
    bytes: Vec<u8>,
    ttl_ms: Option<u64>,
    /// A plain insert's: the key's lock name is deleted with the write, so that a computation of
    /// the key begun before, in any process, stores nothing over the inserted value (as
    /// `Cache::insert` does in this process).
    outdates: bool,
    /// In a store with time to idle, the name of the mark of a value with a time to live of its
    /// own, and that time to live if this value has one (see [`Own`]).
    own: Option<(Vec<u8>, Option<u64>)>,
}

impl Outgoing<'_> {
    /// Sends the write, releasing the lock if one is held and publishing `announce` (channel and
    /// message head) beside it, within the call's budget: whether it was stored (`false`: the
    /// lock was no longer ours, and Redis stored nothing).
    async fn send(mut self, announce: Option<(&[u8], &[u8])>) -> Result<bool, Error> {
        let fence = std::mem::replace(&mut self.fence, Fence::None);
        let write = self.write(announce);
        let sent = async {
            match fence {
                Fence::Lock(guard) => guard.set_and_release(self.client, write).await,
                Fence::Seen(token) => {
                    let lock = &self.names.lock;
                    self.client.write_if_held(write, lock, &token).await
                }
                // Not sent (`Failed` counted in `outgoing`): not stored, so a tiered store
                // keeps no copy either (a removal's message may have come during the
                // computation).
                Fence::Unfenced | Fence::Failed => Ok(false),
                Fence::None => self.client.write(write).await.map(|()| true),
            }
        };
        budget::within(&self.budget, sent).await
    }

    /// The write, with `announce` (channel and message head) published beside it.
    fn write<'a>(&'a self, announce: Option<(&'a [u8], &'a [u8])>) -> Write<'a> {
        Write {
            key: &self.names.value,
            bytes: &self.bytes,
            ttl_ms: self.ttl_ms,
            announce: announce.map(|(channel, head)| Announce {
                channel,
                head,
                key: &self.names.encoded,
            }),
            outdates: self.outdates.then_some(&self.names.lock[..]),
            own: self.own.as_ref().map(|(key, ttl_ms)| Own {
                key,
                ttl_ms: *ttl_ms,
            }),
        }
    }
}

/// What a call that computes holds from its claim to the write of its value (in its
/// [`Lease`]; the body runs in between, perhaps on another thread): the key's names, the call's
/// budget, and its write's [`Fence`] (the lock, released in the write's own round trip, or in
/// the background when the lease is dropped without a write).
struct Claiming {
    names: Names,
    budget: Budget,
    fence: Fence,
}

/// What the write of a computed value is conditional on.
enum Fence {
    /// The key's lock, ours: the write goes through only while it holds our token (an
    /// invalidation or insert deletes it, a forced refresh takes it over), and releases it.
    Lock(LockGuard),
    /// The token of the lock of another computation of the key, which this caller waited for
    /// in vain (its wait timed out), seen before its own computation began: the write goes
    /// through only while the lock still holds it, and leaves it to its holder. An invalidation,
    /// insert or forced refresh since then deletes or replaces it, and the value, computed
    /// before them, is not stored over them (nor is it once the holder released, its value
    /// stored). A plain write would put that older value back.
    Seen(Vec<u8>),
    /// A caller whose wait timed out with no token seen: nothing fences its write, which is
    /// not sent (its caller still gets the value).
    Unfenced,
    /// A claim Redis failed (an error reply, a timeout, the breaker open): nothing fences the
    /// write either, which is not sent (counted as a request not sent, `skipped`), and a tiered
    /// store keeps no copy. Sent once Redis answers again, it would land over an invalidation
    /// made elsewhere meanwhile (whose message, heard during the computation, would not stop
    /// the copy either).
    Failed,
    /// Nothing: a plain insert's write (which deletes the lock itself: `outdates`), or a
    /// background refresh's on a store with no lock.
    None,
}

/// The lease of a forced refresh whose mark could not be taken: its value is not written.
struct Unmarked;

/// What a [`RedisStore`] talks to: its server's client and the lock it claims missing keys
/// through.
#[derive(Debug)]
struct Remote {
    client: RedisClient,
    lock: RemoteLock,
    /// Why the Redlock asked for could not be set up (the lock is then on the store's server):
    /// reported by every store opened on this remote.
    fallback: Option<String>,
}

/// The stampede lock of a store: on its own server, or on a majority of independent ones
/// (and, for background and forced refreshes, which take no Redlock round, the lock on its own
/// server: a refresh holds the key's lock name there, which an invalidation in another process
/// deletes and a forced refresh begun later takes over, refusing its write).
#[derive(Debug)]
enum RemoteLock {
    Single(Locks),
    Redlock(Redlock, Locks),
}

/// Which lock [`RedisOptions`] asked for.
#[derive(Clone, Debug, Default)]
enum LockChoice {
    /// `SET NX` on the store's own server.
    #[default]
    Single,
    /// [`Redlock`] over the servers of `MEMO_REDLOCK_URLS`.
    RedlockFromEnv,
    /// [`Redlock`] over these servers.
    Redlock(RedlockConfig),
}

impl Remote {
    /// The client and the lock chosen. A Redlock that cannot be set up (no `MEMO_REDLOCK_URLS`,
    /// a bad URL) leaves the lock on the store's server: calls keep their stampede protection,
    /// and the store reports why.
    fn new(client: RedisClient, choice: &LockChoice) -> Self {
        let config = match choice {
            LockChoice::Single => Ok(None),
            LockChoice::RedlockFromEnv => RedlockConfig::from_env().map(Some),
            LockChoice::Redlock(config) => Ok(Some(config.clone())),
        };
        let redlock = config.and_then(|config| {
            config
                .map(|config| Redlock::new(config, client.clone()))
                .transpose()
        });
        let (lock, fallback) = match redlock {
            Ok(Some(redlock)) => {
                let refreshes = Locks::new(client.clone(), LockConfig::default());
                (RemoteLock::Redlock(redlock, refreshes), None)
            }
            Ok(None) => (RemoteLock::single(&client), None),
            Err(err) => {
                let why = format!(
                    "lock = redlock: {err}; the lock is taken on the store's server instead"
                );
                crate::trace::warn(&why);
                (RemoteLock::single(&client), Some(why))
            }
        };
        Self {
            client,
            lock,
            fallback,
        }
    }
}

impl RemoteLock {
    fn single(client: &RedisClient) -> Self {
        Self::Single(Locks::new(client.clone(), LockConfig::default()))
    }

    /// A Redlock bounds its rounds itself (the servers answer in parallel): they are left out
    /// of the call's budget. Not its commands to the store's server, though (its reads of the
    /// value, its read-or-lock after the round, its polls while another caller computes): they
    /// share the call's budget, so that no command is sent past the call's deadline.
    /// Beside [`Claimed::TimedOut`], the token of the holder waited for (see [`Fence::Seen`]).
    ///
    /// With the claim, the lock servers' failed requests, to be counted. A Redlock that hears
    /// from fewer than a majority of its servers claims on the store's server instead: a claim
    /// that failed stores nothing
    /// ([`Fence::Failed`]), and the store's server can still fence the write.
    async fn claim_async(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
        budget: &Budget,
    ) -> ((Claimed, Option<Vec<u8>>), Vec<Error>) {
        match self {
            Self::Single(locks) => {
                let claimed = locks.claim_watching(value_key, lock_key);
                (budget::within(budget, claimed).await, Vec::new())
            }
            Self::Redlock(redlock, locks) => {
                let within = Some(budget.clone());
                match redlock.claim_within(value_key, lock_key, within).await {
                    ((Claimed::Unavailable(Error::NoQuorum { .. }), _), faults) => {
                        let claimed = locks.claim_watching(value_key, lock_key);
                        (budget::within(budget, claimed).await, faults)
                    }
                    answer => answer,
                }
            }
        }
    }
}

/// One client (and lock) per URL and lock choice in the process: every store of one server
/// shares its connection, breaker and release subscriptions.
fn shared(url: &str, choice: &LockChoice) -> Result<Arc<Remote>, Error> {
    static REMOTES: LazyLock<Mutex<HashMap<String, Arc<Remote>>>> = LazyLock::new(Mutex::default);
    let id = match choice {
        LockChoice::Single => url.to_string(),
        LockChoice::RedlockFromEnv => format!(
            "{url} redlock {}",
            std::env::var(crate::redis::URLS_VAR).unwrap_or_default()
        ),
        // Servers given in code: a remote of its own.
        LockChoice::Redlock(_) => {
            let client = RedisClient::new(RedisConfig::from_url(url)?)?;
            return Ok(Arc::new(Remote::new(client, choice)));
        }
    };
    let mut remotes = REMOTES.lock();
    if let Some(remote) = remotes.get(&id) {
        return Ok(Arc::clone(remote));
    }
    let client = RedisClient::new(RedisConfig::from_url(url)?)?;
    let remote = Arc::new(Remote::new(client, choice));
    remotes.insert(id, Arc::clone(&remote));
    Ok(remote)
}

/// How a [`RedisStore`] names and encodes its entries, and which server it uses.
///
/// # Examples
///
/// ```no_run
/// use memo::{Cache, Codec, Config, RedisOptions};
/// use std::time::Duration;
///
/// let store = RedisOptions::new("profiles")
///     .codec(Codec::Json)
///     .open::<u64, String>(&Config::new().ttl(Duration::from_secs(300)));
/// let cache = Cache::with_store(store);
/// assert_eq!(cache.get_or_compute(&7, |id| format!("user {id}")), "user 7");
/// ```
#[derive(Clone, Debug)]
pub struct RedisOptions {
    name: String,
    function: String,
    pub(super) version: u64,
    codec: Codec,
    /// The value type's `==`, where `#[cached]` finds it (`faithful.rs`).
    equal: Option<crate::faithful::Equal>,
    client: Option<RedisClient>,
    lock: LockChoice,
    prefix: Option<String>,
}

impl RedisOptions {
    /// The store called `name` (part of every key, so stores of one name share entries).
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            function: String::new(),
            version: 0,
            codec: Codec::Binary,
            equal: None,
            client: None,
            lock: LockChoice::Single,
            prefix: None,
        }
    }

    /// Namespaces the entries by a function's identity (`#[cached]` passes the resolved path,
    /// e.g. `app::Celsius::boiling`) and a `version` to set old entries aside by hand: functions
    /// sharing a server never see each other's entries. The key and value types' serde shapes are
    /// always part of the namespace (a fingerprint of their field names, order and types): a build whose types changed never
    /// decodes an entry of the old layout.
    #[must_use]
    pub fn function(mut self, path: &str, version: u64) -> Self {
        self.function = path.to_string();
        self.version = version;
        self
    }

    /// Encodes values with `codec` (default: [`Codec::Binary`]).
    #[must_use]
    pub const fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Stores a value only if it decodes to one `equal` calls `==` to it (`faithful.rs`).
    pub(crate) const fn equal(mut self, equal: Option<crate::faithful::Equal>) -> Self {
        self.equal = equal;
        self
    }

    /// Uses `client` instead of the process-wide client of `MEMO_REDIS_URL` (then `REDIS_URL`,
    /// then `redis://127.0.0.1:6379`). Each store opened with it gets a lock of its own.
    #[must_use]
    pub fn client(mut self, client: RedisClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Starts every key (and lock) of the store with `prefix` instead of `memo`, overriding
    /// `MEMO_REDIS_PREFIX`.
    ///
    /// The instances of one program share their entries by design; a prefix of its own keeps
    /// another program on the same server apart, even one whose functions have the same paths
    /// and types (two crates both named `app`, two deployments of one build). `clear` deletes
    /// only keys under the store's own prefix.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use memo::{Config, RedisOptions, RedisStore};
    ///
    /// // Keys read `billing:<namespace>:{<key>}` in `redis-cli`.
    /// let store: RedisStore<u64, String> = RedisOptions::new("profiles")
    ///     .prefix("billing")
    ///     .open(&Config::new());
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_string());
        self
    }

    /// Takes the stampede lock with [`Redlock`] on a majority of the servers named by
    /// `MEMO_REDLOCK_URLS` (comma-separated) instead of on the store's one server
    /// (`#[cached(lock = "redlock")]`). Values stay in the store's server.
    ///
    /// Without that variable, or with a URL that cannot be used, the lock stays on the store's
    /// server and the store reports why (a logged backend error, counted once per store).
    #[must_use]
    pub fn redlock(mut self) -> Self {
        self.lock = LockChoice::RedlockFromEnv;
        self
    }

    /// [`redlock`](Self::redlock) over the servers of `config`.
    #[must_use]
    pub fn redlock_with(mut self, config: RedlockConfig) -> Self {
        self.lock = LockChoice::Redlock(config);
        self
    }

    /// Opens the store, with the time to live (and jitter) of `config`; `maxsize` does not apply
    /// (Redis bounds its memory itself: `maxmemory`).
    ///
    /// This never fails: a URL that cannot be used leaves a store whose every call misses, with
    /// the error counted in [`Counts::errors`].
    #[must_use]
    pub fn open<K: DeserializeOwned, V: DeserializeOwned>(
        &self,
        config: &Config,
    ) -> RedisStore<K, V> {
        self.open_shaped(config, key::fingerprint::<K, V>(self.version))
    }

    /// [`open`](Self::open) with the fingerprint of the types and version already taken: what
    /// `#[cached]` calls, from code that does not require serde of them (it reports a missing
    /// serde once, elsewhere).
    pub(crate) fn open_shaped<K, V>(&self, config: &Config, fingerprint: u64) -> RedisStore<K, V> {
        let remote = match &self.client {
            Some(client) => Ok(Arc::new(Remote::new(client.clone(), &self.lock))),
            None => shared(&server_url(), &self.lock),
        };
        let fallback = remote
            .as_ref()
            .ok()
            .and_then(|remote| remote.fallback.clone());
        if let Some(why) = &fallback {
            crate::trace::backend_error("redis", why);
        }
        let space = format!("{}/{}", self.name, self.codec.name());
        let ns = key::namespace(&space, &self.function, fingerprint);
        let start = key_prefix(self.prefix.as_deref(), std::env::var(PREFIX_VAR).ok());
        #[cfg(feature = "test-util")]
        let start = crate::testing::isolated_redis_prefix().unwrap_or(start);
        let shown = if self.function.is_empty() {
            &self.name
        } else {
            &self.function
        };
        let prefix = redis_names::store_prefix(&start, shown, self.codec.name(), key::fnv64(&ns));
        RedisStore {
            remote: remote.map_err(|err| {
                warn_unusable(&err);
                err.to_string()
            }),
            prefix,
            codec: self.codec,
            equal: self.equal,
            refusals: crate::faithful::Refusals::default(),
            ttl_ms: config
                .lifetime()
                .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
            jitter: config.jitter.filter(|j| *j > 0.0),
            ttl_from: None,
            renewal: config.renews().then(|| Renewal {
                stale_ms: config.stale.map_or(0, |stale| {
                    u64::try_from(stale.as_millis()).unwrap_or(u64::MAX)
                }),
                beta: config.refresh_early.unwrap_or(0.0),
                cost_ns: AtomicU64::new(0),
            }),
            refreshing: Mutex::new(RefreshMarks::new()),
            pending: Arc::default(),
            fences_lost: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            errors: AtomicU64::new(u64::from(fallback.is_some())),
            skipped: AtomicU64::new(0),
            config: *config,
            types: PhantomData,
        }
    }
}

/// A store in Redis, shared by every process that uses the same server and namespace.
///
/// Every hit reads Redis (one `GET`), so an `invalidate` or a new value in one process is seen
/// by the next call in every other; for hits from memory, with invalidation by pub/sub, use
/// `store = tiered`. Values are written with their time to live in one `SET … PX` (with
/// `stale`, that much longer; a hit of such a store reads the `PTTL` beside the value, in the
/// same round trip, to tell a value due for a refresh). A miss
/// without contention is three round trips: the `GET`, the claim (one script that reads the
/// value again and takes the lock), the `SET`; the lock's release follows in the background.
///
/// # Sharing
///
/// Entries are shared by the instances of one program by design: every process using the same
/// server, function and types reads what another stored. Different programs on one server are
/// kept apart by the prefix that starts every key ([`RedisOptions::prefix`], or
/// `MEMO_REDIS_PREFIX`; `memo` by default).
///
/// # Concurrent calls on the same key
///
/// Callers in all processes that miss one key at the same time compute it once: the first takes
/// the key's lock (`SET NX PX` with a random token, renewed while the body runs) and the others
/// wait for its value (woken by pub/sub, polling as a fallback), up to a 5 s wait after which
/// they compute themselves (their write goes through only while the lock still holds the token
/// of the holder they waited for: see `Fence::Seen`). A lock whose holder died expires with its
/// lease (10 s); a holder
/// cancelled (an async caller dropped at any await point) or whose claim's reply timed out
/// releases it at once, the release having been armed before the request was sent. With
/// [`RedisOptions::redlock`] the lock is taken on a majority of several servers instead.
///
/// # Faults
///
/// Redis down, frozen, slow or answering garbage never fails a call: it computes, and adds at
/// most the command timeout (100 ms by default) **in total** over all the call's commands: one
/// deadline per call, so a command that would start past it is not sent (on a frozen server a
/// miss pays one timeout, not one per command: `cargo bench --bench redis` measures 101 ms added
/// to a miss by a frozen server, 102 ms by one whose replies come 60 ms late). Once the circuit
/// breaker is open it adds nothing; it probes again within a second (a 250 ms back-off doubling
/// to 1 s) on a fresh connection, so a server that comes back is used again within 2 s. Failures are counted in
/// [`Counts::errors`] (`Stats::backend_errors`) and logged at most once an interval; requests
/// not sent, because the breaker is open or the call has spent its deadline, are counted apart
/// ([`Store::skipped`], `Stats::skipped`), so that real failures stand out. An `invalidate`,
/// `remove` or `clear` that does not reach Redis is retried in the background until it does,
/// and the keys it covers are not read meanwhile (calls compute), so no removed value is served
/// once the server answers again. Under [`RedisOptions::redlock`] the claim's commands to the
/// store's server share the call's deadline too; the rounds on the lock servers keep their own
/// bounds (those servers answer in parallel).
///
/// # Length
///
/// [`len`](Store::len) counts the store's values with `SCAN` over the keys that start with its
/// namespace: a walk of the whole keyspace (on every master of a cluster), for inspection, not
/// for a hot path. [`keys`](Store::keys) is empty: a long key is named by its hash.
pub struct RedisStore<K, V> {
    remote: Result<Arc<Remote>, String>,
    /// `<prefix>:<function>:<codec>:<fingerprint>:`: every key of this store starts with it.
    prefix: Vec<u8>,
    codec: Codec,
    equal: Option<crate::faithful::Equal>,
    /// Says the first key or value refused (see `faithful.rs`).
    refusals: crate::faithful::Refusals,
    ttl_ms: Option<u64>,
    jitter: Option<f64>,
    /// Each value's own time to live ([`ttl_from`](Self::ttl_from)).
    ttl_from: Option<TtlFrom<V>>,
    /// How entries are refreshed in the background (`stale`, early refresh); `None`: never.
    renewal: Option<Renewal>,
    /// The keys this process refreshes in the background now (see `refresh_marks.rs`).
    refreshing: Mutex<RefreshMarks<K>>,
    /// Removals (and their messages) that did not reach Redis: see [`Pending`].
    pending: Arc<Pending>,
    /// Writes of this store's computations that Redis refused (their lock was gone: another
    /// process or handle invalidated or inserted the key, or the lease ran out):
    /// [`Store::changes_seen`], which keeps the value of such a computation from the callers
    /// that joined it (they may have begun after that change).
    fences_lost: AtomicU64,
    hits: AtomicU64,
    errors: AtomicU64,
    /// Requests not sent: the breaker was open, or the call had spent its deadline.
    skipped: AtomicU64,
    config: Config,
    types: PhantomData<fn() -> (K, V)>,
}

/// The name of the lock of the value named `value`.
fn lock_name(value: &[u8]) -> Vec<u8> {
    [value, redis_names::LOCK_SUFFIX.as_bytes()].concat()
}

/// In a store with time to idle, the name of the mark of the value named `value` when it has a
/// time to live of its own, which hits do not renew (see [`Own`]).
fn own_name(value: &[u8]) -> Vec<u8> {
    [value, redis_names::OWN_TTL_SUFFIX.as_bytes()].concat()
}

/// The removals of a store that did not reach Redis (down, frozen, the breaker open): an
/// `invalidate`, `remove` or `clear` that returned while the value stayed there. Until Redis has
/// done them, the store reads none of the keys they cover (a call computes, as with Redis
/// down), so neither this process nor, through it, a local copy is served a value it removed;
/// a thread of the store's retries them, and publishes the messages that tell the other
/// processes' tiered copies, until Redis answers.
#[derive(Debug, Default)]
struct Pending {
    /// Whether a key or the whole store is pending: the one load a read pays otherwise.
    covers_any: std::sync::atomic::AtomicBool,
    removals: Mutex<Removals>,
}

#[derive(Debug, Default)]
struct Removals {
    /// How many removals were added. Each pending one keeps the count at its last add, so that
    /// a round of retries does not take as done a removal that failed again while it ran (a
    /// value stored meanwhile, by another process, would stay).
    added: u64,
    /// A `clear` (every key of the store), at its last add.
    all: Option<u64>,
    /// The value keys removed, each at its last add.
    keys: std::collections::HashMap<Vec<u8>, u64>,
    /// Messages to publish once the removals are done (channel and message), each at its last
    /// add: one per distinct message, however many removals asked for it (see
    /// [`announce`](Self::announce)).
    messages: std::collections::HashMap<(Vec<u8>, Vec<u8>), u64>,
    /// Whether a thread retries them now.
    retrying: bool,
}

/// What a round of retries sends: the removals pending when it began.
struct Round {
    added: u64,
    all: bool,
    keys: Vec<Vec<u8>>,
    messages: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Removals {
    fn is_empty(&self) -> bool {
        self.all.is_none() && self.keys.is_empty() && self.messages.is_empty()
    }

    fn covers_any(&self) -> bool {
        self.all.is_some() || !self.keys.is_empty()
    }

    fn covers(&self, value: &[u8]) -> bool {
        self.all.is_some() || self.keys.contains_key(value)
    }

    /// The removal of the value key `value`.
    fn remove(&mut self, value: Vec<u8>) {
        self.added += 1;
        self.keys.insert(value, self.added);
    }

    /// A message to publish once the removals are done. One already pending is not added
    /// again, only moved to this add (a round under way does not take it as published): a key
    /// invalidated again and again while Redis is down grew the list at each call, without
    /// bound, and each copy was published once Redis came back.
    fn announce(&mut self, channel: Vec<u8>, message: Vec<u8>) {
        self.added += 1;
        self.messages.insert((channel, message), self.added);
    }

    /// The removal of every key.
    fn remove_all(&mut self) {
        self.added += 1;
        self.all = Some(self.added);
        self.keys.clear();
    }

    fn round(&self) -> Round {
        Round {
            added: self.added,
            all: self.all.is_some(),
            keys: self.keys.keys().cloned().collect(),
            messages: self.messages.keys().cloned().collect(),
        }
    }

    /// Takes out what `round` did; what was added since it began stays.
    fn done(&mut self, round: &Round) {
        if self.all.is_some_and(|at| at <= round.added) {
            self.all = None;
        }
        self.keys.retain(|_, at| *at > round.added);
        self.messages.retain(|_, at| *at > round.added);
    }
}

impl Pending {
    /// Whether a read of the value key `value` waits for a removal Redis has not done.
    fn covers(&self, value: &[u8]) -> bool {
        self.covers_any.load(Ordering::Acquire) && self.removals.lock().covers(value)
    }

    /// Adds what `add` puts in, and starts the retries if none run.
    fn add(self: &Arc<Self>, client: &RedisClient, prefix: &[u8], add: impl FnOnce(&mut Removals)) {
        let mut removals = self.removals.lock();
        add(&mut removals);
        self.covers_any
            .store(removals.covers_any(), Ordering::Release);
        if removals.retrying || removals.is_empty() {
            return;
        }
        let (pending, client, prefix) = (Arc::clone(self), client.clone(), prefix.to_vec());
        let spawned = std::thread::Builder::new()
            .name("memo-redis-retry".into())
            .spawn(move || pending.retry(&client, &prefix));
        // Without a thread, the next removal tries again; reads stay refused meanwhile.
        removals.retrying = spawned.is_ok();
    }

    /// Retries the removals, then their messages, until Redis has done them all: every 100 ms,
    /// doubling to 1 s (a failed command is counted by the client's breaker).
    fn retry(&self, client: &RedisClient, prefix: &[u8]) {
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
            let round = self.removals.lock().round();
            let done = (!round.all || client.scan_del(prefix).is_ok())
                && round
                    .keys
                    .iter()
                    .all(|key| client.del_with_lock(key, &lock_name(key), None).is_ok())
                && round
                    .messages
                    .iter()
                    .all(|(channel, message)| client.publish(channel, message).is_ok());
            if !done {
                continue;
            }
            let mut removals = self.removals.lock();
            removals.done(&round);
            self.covers_any
                .store(removals.covers_any(), Ordering::Release);
            if removals.is_empty() {
                removals.retrying = false;
                return;
            }
        }
    }
}

/// How a store that refreshes entries in the background times them. Values stay plain codec
/// bytes: a value lives `stale` past its time to live in Redis (its `PX`), and a read takes
/// its remaining `PTTL` in the same round trip to tell whether it is due.
#[derive(Debug)]
struct Renewal {
    /// How long past its time to live a value is served while it is refreshed, in ms.
    stale_ms: u64,
    /// `β` of early refresh; 0 for none.
    beta: f64,
    /// How long the last computation measured here took, in ns: the early-refresh lead.
    cost_ns: AtomicU64,
}

impl Renewal {
    /// Whether a value with `pttl_ms` left in Redis is due for a refresh: past its time to live
    /// (served stale), or, with early refresh, within a lead of it that covers the computation
    /// (`cost·(1 − β·ln rand)`, as the memory store draws it; drawn per read here, since the
    /// value carries nothing but itself).
    fn is_due(&self, pttl_ms: i64, ttl_ms: u64) -> bool {
        let Ok(left) = u64::try_from(pttl_ms) else {
            // No expiry, or gone meanwhile.
            return false;
        };
        let fresh_left = left.saturating_sub(self.stale_ms);
        if fresh_left == 0 {
            return true;
        }
        if self.beta <= 0.0 {
            return false;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a probabilistic margin need not be exact to the millisecond"
        )]
        let lead = (self.cost_ns.load(Ordering::Relaxed) as f64
            * self.beta.mul_add(-crate::random::unit().ln(), 1.0)
            / 1e6) as u64;
        fresh_left <= lead.min(ttl_ms)
    }

    /// Remembers what a computation took (none measured: nothing to remember).
    fn measured(&self, cost: std::time::Duration) {
        if !cost.is_zero() {
            let nanos = u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX);
            self.cost_ns.store(nanos, Ordering::Relaxed);
        }
    }
}

/// A key's Redis names and its encoding.
struct Names {
    value: Vec<u8>,
    lock: Vec<u8>,
    /// The encoded key (tiered announcements carry it).
    encoded: Vec<u8>,
}

impl<K, V> RedisStore<K, V> {
    /// The client, unless the store's URL could not be used.
    pub fn client(&self) -> Option<&RedisClient> {
        self.remote.as_ref().ok().map(|remote| &remote.client)
    }

    /// Counts a failed call (the breaker logs it, at most once an interval).
    fn failed(&self, err: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        crate::trace::backend_error("redis", err);
    }

    /// Counts what a Redis request answered instead of a reply: a failure, or a request that was
    /// never sent (breaker open, deadline spent), which is no news and is counted apart.
    fn missed(&self, err: &Error) {
        if matches!(err, Error::Open | Error::Deadline) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed(err);
        }
    }

    fn remote(&self) -> Option<&Remote> {
        match &self.remote {
            Ok(remote) => Some(remote),
            Err(why) => {
                self.failed(why);
                None
            }
        }
    }

    /// The time to live a hit renews its entry to (time to idle); `None`: hits renew nothing.
    fn renew_ms(&self) -> Option<u64> {
        self.ttl_ms.filter(|_| self.config.idle.is_some())
    }

    /// Gives each value the time to live `ttl_from` reads from it, as the `PX` of its `SET`;
    /// `None` leaves the store's `ttl`. See
    /// [`MemoryStore::ttl_from`](crate::MemoryStore::ttl_from).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use memo::{Config, RedisOptions, RedisStore, Store};
    /// use std::time::Duration;
    ///
    /// let store: RedisStore<u32, Option<u64>> = RedisOptions::new("doc")
    ///     .open(&Config::new().ttl(Duration::from_secs(60)))
    ///     .ttl_from(|max_age| max_age.map(Duration::from_secs));
    /// store.insert(1, Some(5)); // SET … PX 5000
    /// ```
    #[must_use]
    pub fn ttl_from(mut self, ttl_from: TtlFrom<V>) -> Self {
        self.ttl_from = Some(ttl_from);
        self
    }

    /// The time to live of `value` stored now: the one [`ttl_from`](Self::ttl_from) reads from
    /// it, else the store's, spread by the jitter.
    fn entry_ttl(&self, value: &V) -> Option<u64> {
        if let Some(ttl) = super::chosen(self.ttl_from, value) {
            return Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        let ttl = self.ttl_ms?;
        let ttl = match self.jitter {
            None => ttl,
            Some(fraction) => crate::random::spread(ttl, fraction),
        };
        let stale = self.renewal.as_ref().map_or(0, |renewal| renewal.stale_ms);
        Some(ttl.saturating_add(stale))
    }

    /// The names of a key encoded as `encoded`, whose text is `text` (`None`: it has none).
    fn names(&self, encoded: Vec<u8>, text: Option<&str>) -> Names {
        let value = redis_names::value_name(&self.prefix, &encoded, text);
        Names {
            lock: lock_name(&value),
            value,
            encoded,
        }
    }

    /// The names of `key`; `None` (counted) if it cannot be encoded.
    /// `None` too, counted as skipped, while a removal of the key that did not reach Redis is
    /// pending (see [`Pending`]): the value there may be the one removed.
    fn names_of(&self, key: &K) -> Option<Names>
    where
        K: Serialize + DeserializeOwned + Eq,
    {
        let names = self.encoded_names(key)?;
        if self.pending.covers(&names.value) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(names)
    }

    /// The names of `key`, removed or not; `None` (counted) if it cannot be encoded.
    fn encoded_names(&self, key: &K) -> Option<Names>
    where
        K: Serialize + DeserializeOwned + Eq,
    {
        if let Some((encoded, text)) = crate::key_text::encode(key) {
            Some(self.names(encoded, text.as_deref()))
        } else {
            self.refused("a key could not be encoded", || {
                crate::faithful::key_refusal(key)
            });
            None
        }
    }

    /// Removes `key`, publishing `announce` (channel and message) in the same round trip if
    /// given; a removal that does not reach Redis is retried (see [`Pending`]). Whether there
    /// was a value.
    pub(crate) fn remove_announcing(&self, key: &K, announce: Option<(&[u8], Vec<u8>)>) -> bool
    where
        K: Serialize + DeserializeOwned + Eq,
    {
        let Some(remote) = self.remote() else {
            return false;
        };
        let Some(names) = self.encoded_names(key) else {
            return false;
        };
        // With its lock: a computation begun before, in any process, stores nothing.
        let message = announce
            .as_ref()
            .map(|(channel, message)| (*channel, &message[..]));
        let removed = self.record(
            remote
                .client
                .del_with_lock(&names.value, &names.lock, message),
        );
        if removed.is_none() {
            self.pending.add(&remote.client, &self.prefix, |removals| {
                removals.remove(names.value);
                if let Some((channel, message)) = announce {
                    removals.announce(channel.to_vec(), message);
                }
            });
        }
        removed.unwrap_or(false)
    }

    /// Publishes `message` on `channel` (what tells other processes' tiered copies of a
    /// removal); one that does not reach Redis is retried with the store's pending removals.
    pub(crate) fn announce(&self, channel: &[u8], message: Vec<u8>) {
        let Some(remote) = self.remote() else {
            return;
        };
        if self
            .record(remote.client.publish(channel, &message))
            .is_none()
        {
            let channel = channel.to_vec();
            self.pending.add(&remote.client, &self.prefix, |removals| {
                removals.announce(channel, message);
            });
        }
    }

    /// The bytes stored for `value`: the codec's, and nothing else; `None` (counted, the
    /// store's first said) where they would not decode to it (see `faithful.rs`).
    fn wrap(&self, value: &V) -> Option<Vec<u8>>
    where
        V: Serialize + DeserializeOwned + 'static,
    {
        crate::faithful::value_bytes(self.codec, value, self.equal)
            .map_err(|refused| {
                self.refused("a value could not be encoded", || {
                    crate::faithful::value_refusal::<V>(self.codec, refused)
                });
            })
            .ok()
    }

    /// Counts a key or value that is not stored because its encoding does not give it back
    /// (`faithful.rs`), and says the store's first: `why`, a [`faithful::key_refusal`] or
    /// [`faithful::value_refusal`].
    ///
    /// [`faithful::key_refusal`]: crate::faithful::key_refusal
    /// [`faithful::value_refusal`]: crate::faithful::value_refusal
    #[cold]
    fn refused(&self, what: &'static str, why: impl FnOnce() -> String) {
        self.failed(&what);
        self.refusals.warn(|| {
            let prefix = String::from_utf8_lossy(&self.prefix);
            format!("redis store `{}`: {}", prefix.trim_end_matches(':'), why())
        });
    }

    /// The value in `bytes`; damaged bytes are a counted miss.
    fn unwrap(&self, bytes: &[u8]) -> Option<V>
    where
        V: DeserializeOwned,
    {
        let value = self.codec.decode(bytes);
        if value.is_none() {
            self.failed(&"a stored value did not decode");
        }
        value
    }

    /// The value of `key` (a hit counted when `count`; a miss parked for the claim).
    fn read(&self, key: &K, count: bool) -> Option<V>
    where
        K: Clone + Eq + Serialize + DeserializeOwned + 'static,
        V: DeserializeOwned,
    {
        wait(self.read_async(key, count))
    }

    /// Renews `key`'s time to live (time to idle) for a hit served by a copy in the process
    /// (`store = tiered`), in one script (not a value with a time to live of its own: see
    /// [`Own`]); failures are counted, as for any command. Whether Redis still holds `copy`
    /// (`false`: the value is gone, or another, though no message said so: the copy must go,
    /// or nothing would ever end it under time to idle); `true` also when Redis did not answer.
    pub(crate) fn renew(&self, key: &K, copy: &V) -> bool
    where
        K: Serialize + DeserializeOwned + Eq,
        V: Serialize + DeserializeOwned + 'static,
    {
        wait(self.renew_async(key, copy))
    }

    /// [`renew`](Self::renew), awaited: what an `async fn`'s hit on a copy renews with.
    pub(crate) async fn renew_async(&self, key: &K, copy: &V) -> bool
    where
        K: Serialize + DeserializeOwned + Eq,
        V: Serialize + DeserializeOwned + 'static,
    {
        let Some(((remote, names), ms)) = self.remote_names(key).zip(self.renew_ms()) else {
            return true;
        };
        let budget = Self::budget(remote);
        let own = own_name(&names.value);
        let renewed = budget::within(&budget, remote.client.get_idle(&names.value, &own, ms));
        match renewed.await {
            // Compared as bytes: an encoding that differs for one value (a map's order) only
            // costs a read of Redis.
            Ok(Some((bytes, _))) => self.wrap(copy).is_none_or(|mine| mine == bytes),
            Ok(None) => false,
            Err(err) => {
                self.missed(&err);
                true
            }
        }
    }

    /// What a read's `GET` found; on a miss, the key, its names and the call's budget are parked
    /// for the claim that follows.
    fn answered(
        &self,
        key: &K,
        names: Names,
        budget: Budget,
        got: Result<Option<Vec<u8>>, Error>,
        count: bool,
    ) -> Option<V>
    where
        K: Clone + 'static,
        V: DeserializeOwned,
    {
        let found = matches!(got, Ok(Some(_)));
        let value = self.got(got, count);
        if !found {
            let parked: Box<dyn Any> = Box::new(Parked {
                key: key.clone(),
                names,
                budget,
            });
            PARKED.with(|slot| *slot.borrow_mut() = Some(parked));
        }
        value
    }

    /// [`Store::get_renewing_async`]: the value and its `PTTL` in one round trip; `true` beside
    /// the value when it is due and this caller is the one of this process to refresh it.
    async fn read_due_async(&self, key: &K) -> Option<(V, bool)>
    where
        K: std::hash::Hash + Eq + Clone + Serialize + DeserializeOwned + 'static,
        V: DeserializeOwned,
    {
        let (value, pttl) = self.read_timed(key, true).await?;
        Some((value, self.is_due(key, pttl)))
    }

    /// The value of `key` and how long its time to live has left in milliseconds (negative when
    /// it is served stale; `None` when it never expires), in one round trip, without counting a
    /// hit: what a tiered store times its local copy by.
    pub(crate) async fn peek_fresh_for_async(&self, key: &K) -> Option<(V, Option<i64>)>
    where
        K: Clone + Eq + Serialize + DeserializeOwned + 'static,
        V: DeserializeOwned,
    {
        let (value, pttl) = self.read_timed(key, false).await?;
        Some((value, self.fresh_for(pttl)))
    }

    /// `GET` and `PTTL` of `key` in one round trip (a pipeline): the value (a hit counted when
    /// `count`; a miss parked for the claim, as [`read`](Self::read)'s) and its `PTTL`.
    async fn read_timed(&self, key: &K, count: bool) -> Option<(V, i64)>
    where
        K: Clone + Eq + Serialize + DeserializeOwned + 'static,
        V: DeserializeOwned,
    {
        let (remote, names) = self.remote_names(key)?;
        let budget = Self::budget(remote);
        let got = budget::within(&budget, remote.client.get_with_pttl(&names.value)).await;
        self.answered_timed(key, names, budget, got, count)
    }

    /// What a `GET` and `PTTL` found (see [`answered`](Self::answered)).
    fn answered_timed(
        &self,
        key: &K,
        names: Names,
        budget: Budget,
        got: Result<(Option<Vec<u8>>, i64), Error>,
        count: bool,
    ) -> Option<(V, i64)>
    where
        K: Clone + 'static,
        V: DeserializeOwned,
    {
        let (got, pttl) = match got {
            Ok((bytes, pttl)) => (Ok(bytes), pttl),
            Err(err) => (Err(err), -1),
        };
        Some((self.answered(key, names, budget, got, count)?, pttl))
    }

    /// How long the time to live of a value with `pttl_ms` left in Redis has left (the rest
    /// is `stale`); `None` when it never expires. A key gone by the `PTTL` (-2: it expired or
    /// was deleted just after the `GET`) has nothing left.
    fn fresh_for(&self, pttl_ms: i64) -> Option<i64> {
        (pttl_ms != -1).then(|| pttl_ms.max(0).saturating_sub(self.stale_ms()))
    }

    /// How long a value is served past its time to live while it is refreshed, in ms: what
    /// Redis holds it for beyond it (0 for a store that refreshes nothing).
    pub(crate) fn stale_ms(&self) -> i64 {
        let stale = self.renewal.as_ref().map_or(0, |renewal| renewal.stale_ms);
        i64::try_from(stale).unwrap_or(i64::MAX)
    }

    /// Whether the value of `key`, with `pttl_ms` left in Redis, is due for a refresh that
    /// this caller is to run.
    fn is_due(&self, key: &K, pttl_ms: i64) -> bool
    where
        K: std::hash::Hash + Eq + Clone,
    {
        self.renewal
            .as_ref()
            .is_some_and(|renewal| renewal.is_due(pttl_ms, self.ttl_ms.unwrap_or(0)))
            && self.mark_refreshing(key)
    }

    /// The time the last computation measured here took (after
    /// [`measured`](Self::measured)); zero for a store that refreshes nothing.
    pub(crate) fn cost(&self) -> std::time::Duration {
        self.renewal
            .as_ref()
            .map_or(std::time::Duration::ZERO, |renewal| {
                std::time::Duration::from_nanos(renewal.cost_ns.load(Ordering::Relaxed))
            })
    }

    /// Remembers what a computation took, for the early-refresh lead; returns [`cost`](Self::cost).
    pub(crate) fn measured(&self, cost: std::time::Duration) -> std::time::Duration {
        if let Some(renewal) = &self.renewal {
            renewal.measured(cost);
        }
        self.cost()
    }

    /// Makes this caller the one of this process to refresh `key`; `false` if a refresh of it
    /// started less than a time to live ago.
    fn mark_refreshing(&self, key: &K) -> bool
    where
        K: std::hash::Hash + Eq + Clone,
    {
        let ttl = std::time::Duration::from_millis(self.ttl_ms.unwrap_or(0));
        self.refreshing.lock().start(key, ttl)
    }

    /// A value of `key` computed in `cost` was stored (or its refresh given up): a later read
    /// may refresh it again.
    fn refreshed(&self, key: &K, cost: std::time::Duration)
    where
        K: std::hash::Hash + Eq,
    {
        if let Some(renewal) = &self.renewal {
            renewal.measured(cost);
            self.refreshing.lock().end(key);
        }
    }

    /// [`Store::claim_refresh_async`]: the key's lock, taken only if free (`taken`: what the `SET NX`
    /// answered on the store's own server, under Redlock too; `None` for a store with no
    /// remote), kept in the lease for the write of the new value, which releases it. `None`
    /// when the lock is held, or could not be taken (Redis failed): no refresh then.
    fn refresh_lease(
        &self,
        names: Names,
        taken: Option<Result<Option<LockGuard>, Error>>,
    ) -> Option<Lease> {
        let Some(remote) = self.remote() else {
            return Some(Lease::none());
        };
        let fence = match taken {
            None => Fence::None,
            Some(Ok(Some(guard))) => Fence::Lock(guard),
            // Held: a miss computes it, or another process refreshes it.
            Some(Ok(None)) => return None,
            Some(Err(err)) => {
                // Not refreshed (the old value is served on, until its `stale` ends): a value
                // computed without the lock would be written unfenced, over an invalidation
                // made meanwhile in another process. Counted.
                self.missed(&err);
                return None;
            }
        };
        Some(Lease::holding(Claiming {
            names,
            budget: Self::budget(remote),
            fence,
        }))
    }

    /// The lock on the store's own server: its stampede lock, or under Redlock the lock its
    /// background refreshes take.
    fn single_lock(&self) -> Option<&Locks> {
        match &self.remote.as_ref().ok()?.lock {
            RemoteLock::Single(locks) | RemoteLock::Redlock(_, locks) => Some(locks),
        }
    }

    /// A new call's budget: one command timeout for all its commands.
    fn budget(remote: &Remote) -> Budget {
        Budget::new(remote.client.config().command_timeout)
    }

    /// The names and budget of the call claiming `key`: those its read parked (the key is not
    /// encoded again), else new ones; `None` (counted) if the key cannot be encoded.
    fn unpark(&self, remote: &Remote, key: &K) -> Option<(Names, Budget)>
    where
        K: Eq + Serialize + DeserializeOwned + 'static,
    {
        let parked = PARKED.with(|slot| slot.borrow_mut().take());
        // Parked by a read of this store: another store of the same key type (another function)
        // may have parked since, on this thread, names of its own for an equal key (an async
        // caller waiting for its leader, as this one did, while the thread ran other tasks).
        if let Some(parked) = parked.and_then(|parked| parked.downcast::<Parked<K>>().ok())
            && parked.key == *key
            && self.names_its_value(&parked.names.value)
        {
            return Some((parked.names, parked.budget));
        }
        Some((self.names_of(key)?, Self::budget(remote)))
    }

    /// Whether `value` is the name of a value of this store: its prefix, then the key's hash
    /// tag.
    fn names_its_value(&self, value: &[u8]) -> bool {
        value.strip_prefix(&self.prefix[..]).and_then(<[u8]>::first) == Some(&b'{')
    }

    /// [`read`](Self::read), awaited.
    async fn read_async(&self, key: &K, count: bool) -> Option<V>
    where
        K: Clone + Eq + Serialize + DeserializeOwned + 'static,
        V: DeserializeOwned,
    {
        self.read_owned_async(key, count)
            .await
            .map(|(value, _)| value)
    }

    /// [`read_async`](Self::read_async), with, in a store with time to idle, the `PTTL` of a
    /// value with a time to live of its own (which the read does not renew: see [`Own`]).
    pub(crate) async fn read_owned_async(&self, key: &K, count: bool) -> Option<(V, Option<i64>)>
    where
        K: Clone + Eq + Serialize + DeserializeOwned + 'static,
        V: DeserializeOwned,
    {
        let (remote, names) = self.remote_names(key)?;
        let budget = Self::budget(remote);
        let Some(renew_ms) = self.renew_ms() else {
            let got = budget::within(&budget, remote.client.get_renewing(&names.value, None));
            let got = got.await;
            let value = self.answered(key, names, budget, got, count)?;
            return Some((value, None));
        };
        let own = own_name(&names.value);
        let got = budget::within(
            &budget,
            remote.client.get_idle(&names.value, &own, renew_ms),
        )
        .await;
        let (got, pttl) = match got {
            Ok(Some((bytes, pttl))) => (Ok(Some(bytes)), pttl),
            Ok(None) => (Ok(None), None),
            Err(err) => (Err(err), None),
        };
        Some((self.answered(key, names, budget, got, count)?, pttl))
    }

    /// The value a `GET` answered, if it holds one (a hit counted when `count`).
    fn got(&self, got: Result<Option<Vec<u8>>, Error>, count: bool) -> Option<V>
    where
        V: DeserializeOwned,
    {
        match got {
            Ok(Some(bytes)) => {
                let value = self.unwrap(&bytes)?;
                if count {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                Some(value)
            }
            Ok(None) => None,
            Err(err) => {
                self.missed(&err);
                None
            }
        }
    }

    /// The remote and `key`'s names; `None` (counted) if either is unusable.
    fn remote_names(&self, key: &K) -> Option<(&Remote, Names)>
    where
        K: Serialize + DeserializeOwned + Eq,
    {
        let remote = self.remote()?;
        Some((remote, self.names_of(key)?))
    }

    /// `<prefix>:<function>:<codec>:<fingerprint>:`, the start of every key of this store.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// What [`Locks::claim`] answered, as the cache's [`Claim`]. A caller that computes keeps
    /// the key's names, its call's budget and its write's [`Fence`] in its lease: its lock
    /// (which the write releases; dropped with no write, the lease releases it), or, past a
    /// wait that timed out, the token `seen` of the holder it waited for.
    fn claimed(
        &self,
        names: Names,
        (claimed, seen): (Claimed, Option<Vec<u8>>),
        budget: Budget,
    ) -> Claim<V>
    where
        V: DeserializeOwned,
    {
        let fence = match claimed {
            Claimed::Value(bytes) => match self.unwrap(&bytes) {
                Some(value) => return Claim::Found(value),
                // Damaged again (see `reclaim`): computed, and not stored.
                None => Fence::Unfenced,
            },
            Claimed::Compute(guard) => Fence::Lock(guard),
            Claimed::TimedOut => seen.map_or(Fence::Unfenced, Fence::Seen),
            Claimed::Unavailable(err) => {
                self.missed(&err);
                Fence::Failed
            }
        };
        Claim::Compute(Lease::holding(Claiming {
            names,
            budget,
            fence,
        }))
    }

    /// The claim of a key whose claim found a value that does not decode (counted): the value
    /// is deleted if it is still those bytes, and the key claimed again. A claim that finds a
    /// value takes no lock, so the value computed in its place was written unfenced (over an
    /// invalidation made elsewhere during the computation, the value computed before it), and
    /// every process that missed meanwhile computed too, where the lock makes them wait.
    async fn reclaim(
        &self,
        remote: &Remote,
        names: &Names,
        bytes: &[u8],
        budget: &Budget,
    ) -> (Claimed, Option<Vec<u8>>) {
        let discarded = remote.client.discard(&names.value, bytes);
        if let Err(err) = budget::within(budget, discarded).await {
            return (Claimed::Unavailable(err), None);
        }
        let (claimed, faults) = remote
            .lock
            .claim_async(&names.value, &names.lock, budget)
            .await;
        for err in &faults {
            self.missed(err);
        }
        claimed
    }

    /// What storing `value` under `key` takes when no claim came first (a plain insert, a forced
    /// refresh): the key's names and a budget of its own; `None` (counted) if the store is
    /// unusable or the key cannot be encoded.
    fn unclaimed(&self, key: &K) -> Option<(&Remote, Claiming)>
    where
        K: Serialize + DeserializeOwned + Eq,
    {
        let (remote, names) = self.remote_names(key)?;
        let budget = Self::budget(remote);
        let fence = Fence::None;
        Some((
            remote,
            Claiming {
                names,
                budget,
                fence,
            },
        ))
    }

    /// The claim `lease` holds, if this store made it; else the claim of a plain insert, with
    /// `true`: its write outdates computations begun before; `None` for a forced refresh whose
    /// mark could not be taken ([`Unmarked`]), or (counted) if the store is unusable or the key
    /// cannot be encoded.
    fn claiming(&self, key: &K, lease: Lease) -> Option<(&Remote, Claiming, bool)>
    where
        K: Serialize + DeserializeOwned + Eq,
    {
        match lease.take::<Claiming>() {
            Ok(claiming) => Some((self.remote()?, claiming, false)),
            Err(lease) => match lease.take::<Unmarked>() {
                Ok(Unmarked) => None,
                Err(_) => self
                    .unclaimed(key)
                    .map(|(remote, claiming)| (remote, claiming, true)),
            },
        }
    }

    /// [`Store::mark_refresh_async`]: the key's lock name on the store's server (under Redlock
    /// too: where misses keep their fence), taken with a token of ours whoever held it, within
    /// a budget the write then shares. A mark not taken (Redis failed, counted; the key cannot
    /// be encoded, or its removal is pending) leaves the write undone: a value not stored is a
    /// later miss, one stored over a newer one is wrong until it expires.
    async fn mark_refresh(&self, key: &K) -> Lease
    where
        K: Serialize + DeserializeOwned + Eq,
    {
        let (Some(remote), Some(locks)) = (self.remote(), self.single_lock()) else {
            return Lease::holding(Unmarked);
        };
        let Some(names) = self.names_of(key) else {
            return Lease::holding(Unmarked);
        };
        let budget = Self::budget(remote);
        match budget::within(&budget, locks.take_async(&names.lock)).await {
            Ok(guard) => Lease::holding(Claiming {
                names,
                budget,
                fence: Fence::Lock(guard),
            }),
            Err(err) => {
                self.missed(&err);
                Lease::holding(Unmarked)
            }
        }
    }

    /// [`insert_then_async`](Self::insert_then_async), for a sync caller, with the value's time
    /// to live given (`None`: none). Redis holds it `stale` past that (its `PX`), as every value
    /// of a store with `stale`: a hit reads the last `stale` of its `PTTL` as served stale.
    pub(crate) fn write_then(
        &self,
        key: &K,
        value: &V,
        lease: Lease,
        announce: Option<(&[u8], &[u8])>,
        ttl_ms: Option<u64>,
    ) where
        K: Serialize + DeserializeOwned + Eq,
        V: Serialize + DeserializeOwned + 'static,
    {
        let stale = self.renewal.as_ref().map_or(0, |renewal| renewal.stale_ms);
        let ttl_ms = ttl_ms.map(|ttl| ttl.saturating_add(stale));
        if let Some(out) = self.outgoing(key, value, lease, (ttl_ms, ttl_ms.is_some())) {
            self.record(wait(out.send(announce)));
        }
    }

    /// Stores `value` under `key`, ending the claim `lease` holds and publishing `announce`
    /// (channel and message head, to which the encoded key is added: a tiered store's
    /// announcement of the new value) in the same round trip, within the call's budget.
    ///
    /// `false` if Redis refused it: the claim's lock was gone, lost to its lease or removed by an
    /// invalidation since the claim, so the value may be older than what Redis now holds; also
    /// when a fenced write's reply never came (it may have been refused), or when it was not
    /// sent. `true` otherwise, also when a plain insert's write failed.
    pub(crate) async fn insert_then_async(
        &self,
        key: &K,
        value: &V,
        lease: Lease,
        announce: Option<(&[u8], &[u8])>,
    ) -> bool
    where
        K: Serialize + DeserializeOwned + Eq,
        V: Serialize + DeserializeOwned + 'static,
    {
        let own = super::chosen(self.ttl_from, value).is_some();
        let Some(out) = self.outgoing(key, value, lease, (self.entry_ttl(value), own)) else {
            return true;
        };
        // A write not sent (a failed claim's) is not stored either, but tells of no change.
        let fenced = matches!(out.fence, Fence::Lock(_) | Fence::Seen(_));
        let sent = out.send(announce).await;
        // A fenced write sent whose reply never came (a timeout, a connection lost) may have
        // been refused as well: taken as stored, its value was handed to the callers that
        // joined, one of them perhaps begun after the change elsewhere that refused it.
        let unknown = matches!(sent, Err(Error::Timeout | Error::Redis(_)));
        let stored = self.record(sent).unwrap_or(true);
        let lost = (!stored || unknown) && fenced;
        if lost {
            // Before the leader hands its value over (`RawLeader::finish` reads the count).
            self.fences_lost.fetch_add(1, Ordering::SeqCst);
        }
        // Nor does a tiered store keep a copy of it (the message of the change that refused
        // it may have come during the computation).
        stored && !lost
    }

    /// What a write of `value` under `key` takes (see [`Outgoing`]): the claim `lease` holds, or
    /// a plain insert's; `None` (counted) if the store is unusable or the key or value cannot be
    /// encoded (a claim's lock is then released in the background). `ttl_ms` is the value's
    /// time to live, `own` whether it is its own (`insert_with_ttl`, `ttl_from`): in a store with
    /// time to idle, marked so that no hit renews it.
    fn outgoing(
        &self,
        key: &K,
        value: &V,
        lease: Lease,
        (ttl_ms, own): (Option<u64>, bool),
    ) -> Option<Outgoing<'_>>
    where
        K: Serialize + DeserializeOwned + Eq,
        V: Serialize + DeserializeOwned + 'static,
    {
        let (remote, claiming, outdates) = self.claiming(key, lease)?;
        if matches!(claiming.fence, Fence::Failed) {
            // Not sent (see `Fence::Failed`): a request not sent.
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        let bytes = self.wrap(value)?;
        // A store without time to idle marks a value with a time to live of its own too (and
        // leaves the mark of its other values alone, a plain `SET`): a build of the same
        // function with `idle` (the namespace leaves the options out) shares its entries, and
        // its hits would renew such a value to a full `idle`, serving it long past its own.
        let own = match self.renew_ms() {
            Some(_) => Some((own_name(&claiming.names.value), ttl_ms.filter(|_| own))),
            None => own
                .then_some(ttl_ms)
                .flatten()
                .map(|ttl| (own_name(&claiming.names.value), Some(ttl))),
        };
        Some(Outgoing {
            own,
            client: &remote.client,
            names: claiming.names,
            budget: claiming.budget,
            fence: claiming.fence,
            bytes,
            ttl_ms,
            outdates,
        })
    }

    fn record<T>(&self, result: Result<T, Error>) -> Option<T> {
        result.map_err(|err| self.missed(&err)).ok()
    }
}

impl<K, V> Store<K, V> for RedisStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn get<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.read(&key.to_key(), true)
    }

    fn peek<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.read(&key.to_key(), false)
    }

    fn insert(&self, key: K, value: V) {
        wait(self.insert_async(key, value));
    }

    /// The value and its `PTTL`, in one round trip, for a store that refreshes entries; else
    /// a plain [`get`](Store::get). The hash is not needed (the names of the key are).
    fn get_renewing_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        wait(self.get_renewing_async(hash, &key.to_key()))
    }

    async fn get_renewing_async<'a>(&'a self, _: u64, key: &'a K) -> Option<(V, bool)>
    where
        V: Send + 'a,
    {
        if self.renewal.is_none() {
            return self.read_async(key, true).await.map(|value| (value, false));
        }
        self.read_due_async(key).await
    }

    fn release_refresh<L: Lookup<Key = K>>(&self, key: &L) {
        self.refreshed(&key.to_key(), std::time::Duration::ZERO);
    }

    /// The writes of this store's computations that Redis refused: their lock was taken away
    /// by a change elsewhere since the claim (or ran out), so a call that joined such a
    /// computation may have begun after that change, and looks again instead of taking its
    /// value. An atomic load, read by a miss only: no round trip.
    fn changes_seen(&self) -> u64 {
        self.fences_lost.load(Ordering::SeqCst)
    }

    /// Releases the computation's lock and waits for the answer (within the call's deadline):
    /// a lock no longer ours was taken away by a change elsewhere, counted as a refused write
    /// is. Another fence (a waiter's, or none) holds nothing to release.
    async fn release_async(&self, lease: Lease) {
        let Ok(Claiming {
            budget,
            fence: Fence::Lock(guard),
            ..
        }) = lease.take::<Claiming>()
        else {
            return;
        };
        match budget::within(&budget, guard.release_async()).await {
            Ok(true) => {}
            Ok(false) => {
                self.fences_lost.fetch_add(1, Ordering::SeqCst);
            }
            Err(err) => self.missed(&err),
        }
    }

    /// The claim reads the value in its round trip: the cache's second look would be one more.
    fn claim_reads(&self) -> bool {
        true
    }

    async fn get_async<'a, L: Lookup<Key = K> + Sync>(&'a self, _: u64, key: &'a L) -> Option<V>
    where
        V: Send + 'a,
    {
        self.read_async(&key.to_key(), true).await
    }

    async fn claim_async<'a>(&'a self, _: u64, key: &'a K) -> Claim<V>
    where
        V: Send + 'a,
    {
        let Some((remote, (names, budget))) = self
            .remote()
            .and_then(|remote| Some((remote, self.unpark(remote, key)?)))
        else {
            return Claim::Compute(Lease::none());
        };
        let (claimed, faults) = remote
            .lock
            .claim_async(&names.value, &names.lock, &budget)
            .await;
        for err in &faults {
            self.missed(err);
        }
        let claimed = match claimed {
            (Claimed::Value(bytes), _) => match self.unwrap(&bytes) {
                Some(value) => return Claim::Found(value),
                None => self.reclaim(remote, &names, &bytes, &budget).await,
            },
            claimed => claimed,
        };
        self.claimed(names, claimed, budget)
    }

    async fn insert_async<'a>(&'a self, key: K, value: V)
    where
        K: Send + 'a,
        V: Send + 'a,
    {
        self.insert_claimed_async(0, key, value, std::time::Duration::ZERO, Lease::none())
            .await;
    }

    async fn claim_refresh_async<'a>(&'a self, key: &'a K) -> Option<Lease>
    where
        V: 'a,
    {
        let Some(names) = self.names_of(key) else {
            return Some(Lease::none());
        };
        let taken = match self.single_lock() {
            Some(locks) => Some(locks.try_claim_async(&names.lock).await),
            None => None,
        };
        let failed = matches!(taken, Some(Err(_)));
        let lease = self.refresh_lease(names, taken);
        if failed {
            // Not refreshed: a later read may try again.
            self.refreshed(key, std::time::Duration::ZERO);
        }
        lease
    }

    async fn mark_refresh_async<'a>(&'a self, _: u64, key: &'a K) -> Lease
    where
        V: 'a,
    {
        self.mark_refresh(key).await
    }

    /// Stores the value and releases the lock in one round trip (one script); the hash is
    /// not needed (the names of the key are).
    async fn insert_claimed_async<'a>(
        &'a self,
        _: u64,
        key: K,
        value: V,
        cost: std::time::Duration,
        lease: Lease,
    ) where
        K: Send + 'a,
        V: Send + 'a,
    {
        self.insert_then_async(&key, &value, lease, None).await;
        self.refreshed(&key, cost);
    }

    fn insert_with_ttl(&self, key: K, value: V, ttl: std::time::Duration) {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.write_then(&key, &value, Lease::none(), None, Some(ttl_ms));
    }

    fn remove<L: Lookup<Key = K>>(&self, key: &L) -> bool {
        self.remove_announcing(&key.to_key(), None)
    }

    fn clear(&self) {
        if let Some(remote) = self.remote()
            && self.record(remote.client.scan_del(&self.prefix)).is_none()
        {
            self.pending
                .add(&remote.client, &self.prefix, Removals::remove_all);
        }
    }

    /// Counted with `SCAN`: see [`RedisStore`]'s "Length".
    fn len(&self) -> usize {
        let Some(remote) = self.remote() else {
            return 0;
        };
        let mut values = self.prefix.clone();
        values.push(b'{');
        self.record(remote.client.scan_count(&values, b"}"))
            .map_or(0, |count| usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// 0: counting takes a `SCAN` of the keyspace, too much for statistics taken each second.
    fn held(&self) -> usize {
        0
    }

    fn config(&self) -> Config {
        self.config
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn counts(&self) -> Counts {
        Counts {
            hits: self.hits.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            ..Counts::default()
        }
    }

    fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    fn faults(&self) -> u64 {
        self.errors.load(Ordering::Relaxed) + self.skipped.load(Ordering::Relaxed)
    }
}

impl<K, V> std::fmt::Debug for RedisStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish_non_exhaustive()
    }
}

/// The start of every key: the one given in code, else the environment's (unless blank), else
/// [`DEFAULT_PREFIX`].
/// Says once per distinct error that the server cannot be used (a URL that does not parse, a
/// client that cannot be built): every call of the store's functions then computes, and a typo
/// in `MEMO_REDIS_URL` must not pass unseen.
/// The server of a store given no client: the one the test's scope names
/// ([`Isolated::redis_url`](crate::testing::Isolated::redis_url)), else the environment's.
fn server_url() -> String {
    #[cfg(feature = "test-util")]
    if let Some(url) = crate::testing::isolated_redis_url() {
        return url;
    }
    crate::redis::env_url()
}

/// Whether it warned.
fn warn_unusable(err: &Error) -> bool {
    static WARNED: LazyLock<Mutex<std::collections::HashSet<String>>> =
        LazyLock::new(Mutex::default);
    let line = format!("redis: {err}; calls compute, nothing is kept in Redis");
    let first = WARNED.lock().insert(line.clone());
    if first {
        crate::trace::warn(&line);
    }
    crate::trace::backend_error("redis", err);
    first
}

fn key_prefix(given: Option<&str>, env: Option<String>) -> String {
    given
        .map(str::to_string)
        .or_else(|| env.filter(|prefix| !prefix.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A removal that failed again while a round of retries ran stays pending when the round
    /// ends: the round's `DEL` came before it, so a value stored between the two (by another
    /// process) must still go. Before, the round took the key (or the `clear`) as done.
    #[test]
    fn a_removal_that_fails_again_during_a_round_stays_pending() {
        let mut removals = Removals::default();
        removals.remove(b"a".to_vec());
        removals.remove(b"b".to_vec());
        removals.announce(b"channel".to_vec(), b"one".to_vec());
        removals.announce(b"channel".to_vec(), b"again".to_vec());
        let round = removals.round();
        removals.remove(b"a".to_vec());
        removals.announce(b"channel".to_vec(), b"two".to_vec());
        // Asked for again during the round: published again after it.
        removals.announce(b"channel".to_vec(), b"again".to_vec());
        removals.done(&round);
        assert!(removals.covers(b"a"), "a failed again meanwhile");
        assert!(!removals.covers(b"b"));
        let mut left: Vec<_> = removals.messages.keys().map(|(_, m)| m.clone()).collect();
        left.sort();
        assert_eq!(left, [b"again".to_vec(), b"two".to_vec()]);

        removals.remove_all();
        let round = removals.round();
        removals.remove_all();
        removals.done(&round);
        assert!(removals.covers(b"c"), "the second clear is still pending");
        let round = removals.round();
        removals.done(&round);
        assert!(removals.is_empty());
    }

    /// A tiered store's key invalidated again and again while Redis is down: each removal's
    /// message (what tells the other processes' copies) was added to the pending ones, a list
    /// that grew with every call until Redis came back (memory without bound for a hot key),
    /// and was then published as many times. One pending message per distinct message.
    #[test]
    fn a_key_removed_again_and_again_while_redis_is_down_keeps_one_pending_message() {
        let config = RedisConfig::from_url("redis://127.0.0.1:1")
            .unwrap()
            .connect_timeout(std::time::Duration::from_millis(50));
        let store: RedisStore<String, String> = RedisOptions::new("down-messages")
            .client(RedisClient::new(config).unwrap())
            .open(&Config::new());
        let key = "hot".to_string();
        for _ in 0..1000 {
            store.remove_announcing(&key, Some((b"channel", b"evict hot".to_vec())));
        }
        let removals = store.pending.removals.lock();
        assert!(removals.covers(&store.encoded_names(&key).unwrap().value));
        assert_eq!(removals.messages.len(), 1, "pending messages");
    }

    #[test]
    fn a_server_that_cannot_be_used_is_said_once_per_reason() {
        let typo = RedisConfig::from_url("redis://cache?comand_timeout=5ms").unwrap_err();
        assert!(typo.to_string().contains("`comand_timeout`"), "{typo}");
        assert!(warn_unusable(&typo));
        assert!(!warn_unusable(&typo), "once");
        let unparsed = RedisConfig::from_url("notaurl").unwrap_err();
        assert!(warn_unusable(&unparsed), "another reason: {unparsed}");
    }

    /// b1ce23b swept at each power of two the map reached: 63 refreshes running, a 64th that
    /// starts and ends, again and again, swept all 64 marks at each start (1,000 sweeps here).
    #[test]
    fn a_map_of_marks_that_keeps_its_size_is_not_swept_at_each_mark() {
        let config = Config::new()
            .ttl(std::time::Duration::from_secs(60))
            .stale(std::time::Duration::from_secs(1));
        let store: RedisStore<u32, u32> = RedisOptions::new("t").open(&config);
        for key in 0..63 {
            assert!(store.mark_refreshing(&key));
        }
        for key in 1_000..2_000 {
            assert!(store.mark_refreshing(&key));
            store.refreshed(&key, std::time::Duration::ZERO);
        }
        assert_eq!(store.refreshing.lock().len(), 63);
        assert!(
            store.refreshing.lock().sweeps <= 1,
            "{:?}",
            store.refreshing.lock().sweeps
        );
    }

    #[test]
    fn marks_of_refreshes_older_than_a_time_to_live_go() {
        let config = Config::new()
            .ttl(std::time::Duration::from_millis(1))
            .stale(std::time::Duration::from_secs(1));
        let store: RedisStore<u32, u32> = RedisOptions::new("t").open(&config);
        for round in 0..20 {
            for key in 0..100 {
                assert!(store.mark_refreshing(&(round * 100 + key)));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // Left marks of 2,000 keys: at most those of the last rounds stay.
        assert!(
            store.refreshing.lock().len() <= 256,
            "{}",
            store.refreshing.lock().len()
        );
    }

    #[test]
    fn a_value_and_its_lock_share_a_hash_tag() {
        let store: RedisStore<String, u32> = RedisOptions::new("t").open(&Config::new());
        for key in [
            "a".to_string(),
            "}{b}".to_string(),
            "{".into(),
            "}{".repeat(200),
        ] {
            let names = store.names_of(&key).unwrap();
            let tag = |name: &[u8]| {
                let open = name.iter().position(|&b| b == b'{').unwrap();
                let close = open + name[open..].iter().position(|&b| b == b'}').unwrap();
                name[open + 1..close].to_vec()
            };
            // An empty tag would make Redis Cluster hash the whole name.
            assert!(!tag(&names.value).is_empty(), "{key}");
            assert_eq!(tag(&names.value), tag(&names.lock));
            assert!(names.value.starts_with(&store.prefix));
            assert!(names.value.len() <= 200 + store.prefix.len() + 8);
        }
    }

    #[test]
    fn the_prefix_comes_from_code_then_the_environment_then_the_default() {
        let env = |value: &str| Some(value.to_string());
        assert_eq!(key_prefix(Some("app"), env("ops")), "app");
        assert_eq!(key_prefix(None, env("ops")), "ops");
        assert_eq!(key_prefix(None, env("  ")), "memo");
        assert_eq!(key_prefix(None, None), "memo");
        let store: RedisStore<u32, u32> = RedisOptions::new("t").prefix("app").open(&Config::new());
        assert!(store.prefix.starts_with(b"app:"));
    }

    #[test]
    fn keys_read_as_prefix_function_fingerprint_and_key() {
        let store: RedisStore<String, u32> = RedisOptions::new("t")
            .function("app::fetch", 0)
            .prefix("shop")
            .open(&Config::new());
        let name = |key: &str| String::from_utf8(store.names_of(&key.to_string()).unwrap().value);
        let apple = name("apple").unwrap();
        let (start, tag) = apple.split_at(apple.len() - "{apple}".len());
        assert_eq!(tag, "{apple}");
        let fingerprint = start
            .strip_prefix("shop:app::fetch:binary:")
            .and_then(|rest| rest.strip_suffix(':'))
            .unwrap();
        assert_eq!(fingerprint.len(), 16);
        assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
        // A long key is named by its SHA-256; a key that starts with `#` cannot read like one.
        let long = name(&"x".repeat(200)).unwrap();
        assert_eq!(long.len(), start.len() + 3 + 64);
        assert!(long[start.len()..].starts_with("{#"));
        assert!(name("#a").unwrap().ends_with("{##a}"));
    }

    #[test]
    fn values_are_the_codecs_bytes_alone() {
        let store: RedisStore<String, Vec<u32>> = RedisOptions::new("t")
            .codec(Codec::Json)
            .open(&Config::new());
        let bytes = store.wrap(&vec![1, 2]).unwrap();
        assert_eq!(bytes, b"[1,2]");
        assert_eq!(store.unwrap(&bytes), Some(vec![1, 2]));
        assert_eq!(store.unwrap(b"[1,"), None);
        assert_eq!(store.counts().errors, 1);
    }
}
