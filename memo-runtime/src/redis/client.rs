//! A Redis client in bytes for sync and async callers: every command runs on the client's own
//! runtime thread, bounded by the command timeout and guarded by a circuit breaker. Each command
//! is one async method; its sync form blocks on it ([`wait`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, Value, cmd};
use futures_util::StreamExt as _;
use tokio::sync::{OnceCell, oneshot};

use super::breaker::{Breaker, Permit};
use super::budget::{self, Budget};
use super::config::{RedisConfig, node_url};
use super::error::Error;
use super::runtime::Driver;
use crate::block::wait;

// The scripts are sent whole with `EVAL`, one round trip each: `EVALSHA` costs two more whenever
// the server has not seen the script yet (a restart), which a slow server turns into a timeout,
// and a release lost that way leaves its lock for the whole lease.

/// Deletes the lock only if it still holds our token (another caller may own it by now).
const UNLOCK: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('del', KEYS[1]) else return 0 end";

/// Deletes a value only if it still holds `ARGV[1]` (the bytes a read found damaged): a value
/// stored since by another caller stays.
const DISCARD: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('del', KEYS[1]) else return 0 end";

/// The same, then tells the waiters on `ARGV[2]` (one round trip for both).
const UNLOCK_NOTIFY: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     redis.call('del', KEYS[1]) redis.call('publish', ARGV[2], KEYS[1]) return 1 else return 0 end";

/// Stores a value (`ARGV[2]`: its time to live in ms, `0` for none), deletes its lock
/// `KEYS[2]` if given and publishes `ARGV[4]` on `ARGV[3]` if given, in one round trip: a
/// process killed in between cannot leave the new value untold.
const SET_NOTIFY: &str = "if ARGV[2] == '0' then redis.call('set', KEYS[1], ARGV[1]) \
     else redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
     if KEYS[2] then redis.call('del', KEYS[2]) end \
     if ARGV[3] then redis.call('publish', ARGV[3], ARGV[4]) end return 1";

/// A claim in one round trip: the value if there is one, else the lock if it is free (or
/// already ours: a Redlock's fence on a store that is also one of its servers).
/// Replies `{1, value}`, `{2}` (locked: ours now) or `{0, token}` (held by another caller, whose
/// token a waiter that times out fences its own write with).
const READ_OR_LOCK: &str = "local v = redis.call('get', KEYS[1]) if v then return {1, v} end \
     if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end \
     local t = redis.call('get', KEYS[2]) if t == ARGV[1] then \
     redis.call('pexpire', KEYS[2], ARGV[2]) return {2} end \
     return {0, t}";

/// The value if there is one, else the token its lock name holds: `{1, value}`, `{0, token}`
/// or `{0}` (no lock). What a Redlock waiter polls the store's server with.
const READ_OR_PEEK: &str = "local v = redis.call('get', KEYS[1]) if v then return {1, v} end \
     local t = redis.call('get', KEYS[2]) if t then return {0, t} end return {0}";

/// A write fenced by another caller's lock (a waiter's that timed out): stores the value
/// (`ARGV[2]`: its time to live in ms, 0 for none) and publishes `ARGV[5]` on `ARGV[4]` if given,
/// only while the lock `KEYS[2]` still holds the token `ARGV[3]` seen before the value's
/// computation began; replies 1 if it did, else 0. The lock is left to its holder.
const SET_IF_HELD: &str = "if redis.call('get', KEYS[2]) ~= ARGV[3] then return 0 end \
     if ARGV[2] == '0' then redis.call('set', KEYS[1], ARGV[1]) \
     else redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
     if ARGV[4] then redis.call('publish', ARGV[4], ARGV[5]) end return 1";

/// A value to write: `SET key bytes [PX ttl_ms]`, then `announce` published.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Write<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) bytes: &'a [u8],
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) announce: Option<Announce<'a>>,
    /// The key's lock name, deleted with the write (a plain insert's): a computation of the key
    /// begun before, in any process, then stores nothing over the new value.
    pub(crate) outdates: Option<&'a [u8]>,
    /// A store with time to idle's mark of a value with a time to live of its own.
    pub(crate) own: Option<Own<'a>>,
}

/// In a store with time to idle (whose hits renew a value's time to live), the name beside a
/// value that says it has a time to live of its own (`insert_with_ttl`, `ttl_from`), which a hit
/// must not renew: set with the value's `PX` by such a write, deleted by any other, in the
/// write's script (and only if the write went through). Values stay plain bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Own<'a> {
    /// `<value name>:ttl`, in the value's hash tag.
    pub(crate) key: &'a [u8],
    /// The value's own time to live in ms; `None` for a value timed by the store (the mark goes).
    pub(crate) ttl_ms: Option<u64>,
}

impl Own<'_> {
    /// The mark's last argument: its `PX`, or empty to delete it.
    fn arg(&self) -> Vec<u8> {
        self.ttl_ms
            .map_or_else(Vec::new, |ttl| ttl.max(1).to_string().into_bytes())
    }
}

/// `body`, a write's script replying 1 when it wrote, with a store with time to idle's mark
/// ([`Own`]) set or deleted after it when it wrote: the mark's name is the last key, its `PX`
/// (empty: delete) the last argument, which `body` does not see.
fn marked(body: &str) -> String {
    format!(
        "local K, A = {{}}, {{}} for i = 1, #KEYS - 1 do K[i] = KEYS[i] end \
         for i = 1, #ARGV - 1 do A[i] = ARGV[i] end local m, f = KEYS[#KEYS], ARGV[#ARGV] \
         local r = (function() {} end)() \
         if r == 1 then if f == '' then redis.call('del', m) \
         else redis.call('set', m, '1', 'PX', f) end end return r",
        body.replace("KEYS", "K").replace("ARGV", "A")
    )
}

/// [`SET_NOTIFY`], [`SET_UNLOCK_NOTIFY`] and [`SET_IF_HELD`] with the mark ([`marked`]).
static MARKED_SET_NOTIFY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| marked(SET_NOTIFY));
static MARKED_SET_UNLOCK_NOTIFY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| marked(SET_UNLOCK_NOTIFY));
static MARKED_SET_IF_HELD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| marked(SET_IF_HELD));

/// `script`, or `with_mark` with `own`'s name and argument added last.
fn with_own(
    script: &'static str,
    with_mark: &'static std::sync::LazyLock<String>,
    own: Option<Own<'_>>,
    keys: &mut Vec<Vec<u8>>,
    args: &mut Vec<Vec<u8>>,
) -> &'static str {
    match own {
        None => script,
        Some(own) => {
            keys.push(own.key.to_vec());
            args.push(own.arg());
            with_mark
        }
    }
}

/// A read of a store with time to idle: the value, its time to live renewed unless its mark
/// ([`Own`]) says it has its own, whose `PTTL` is then replied beside it: `{1, value}`,
/// `{1, value, pttl}` or `{0}`.
const RENEW: &str = "local v = redis.call('get', KEYS[1]) if not v then return {0} end \
     if redis.call('exists', KEYS[2]) == 1 then return {1, v, redis.call('pttl', KEYS[1])} end \
     redis.call('pexpire', KEYS[1], ARGV[1]) return {1, v}";

/// A value to store as its lock is released ([`RedisClient::set_and_unlock`]).
pub(crate) struct Stored<'a> {
    pub(crate) value_key: &'a [u8],
    pub(crate) bytes: &'a [u8],
    /// Its time to live in ms; `None` for none.
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) lock_key: &'a [u8],
    pub(crate) token: &'a [u8],
    pub(crate) channel: &'a [u8],
    /// A message to publish once the value is stored, and its channel (a tiered store's
    /// announcement of the new value).
    pub(crate) announce: Option<Announce<'a>>,
    /// A store with time to idle's mark of a value with a time to live of its own.
    pub(crate) own: Option<Own<'a>>,
}

/// A message published beside a write: on `channel`, `head` then the encoded key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Announce<'a> {
    pub(crate) channel: &'a [u8],
    pub(crate) head: &'a [u8],
    pub(crate) key: &'a [u8],
}

impl Announce<'_> {
    /// The message.
    pub(crate) fn message(&self) -> Vec<u8> {
        [self.head, self.key].concat()
    }
}

impl Stored<'_> {
    /// The script's keys and arguments.
    fn into_parts(self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let ttl = self.ttl_ms.map_or(0, |ttl| ttl.max(1));
        let mut args = vec![
            self.bytes.to_vec(),
            ttl.to_string().into_bytes(),
            self.token.to_vec(),
            self.channel.to_vec(),
        ];
        if let Some(announce) = self.announce {
            args.extend([announce.channel.to_vec(), announce.message()]);
        }
        (vec![self.value_key.to_vec(), self.lock_key.to_vec()], args)
    }
}

/// What [`RedisClient::read_or_lock`] found.
#[derive(Debug)]
pub(crate) enum ReadOrLock {
    /// The value.
    Value(Vec<u8>),
    /// No value, and the lock is now ours.
    Locked,
    /// No value, and another caller holds the lock: its token.
    Held(Vec<u8>),
}

/// What [`RedisClient::read_or_peek`] found.
#[derive(Debug)]
pub(crate) enum Peeked {
    /// The value.
    Value(Vec<u8>),
    /// No value; the token the lock holds, if any.
    Absent(Option<Vec<u8>>),
}

/// A holder's last step in one round trip, only while the lock still holds our token: stores the
/// value (`ARGV[2]`: its time to live in ms, 0 for none), publishes `ARGV[6]` on `ARGV[5]` if
/// given (a tiered store's announcement), deletes the lock and tells the waiters on `ARGV[4]`.
/// Replies 1 if it did, else 0 and stores nothing: the lock was lost to its lease or removed with
/// the key by an invalidation ([`del_with_lock`](RedisClient::del_with_lock)), which a value
/// computed before it must not undo.
const SET_UNLOCK_NOTIFY: &str = "if redis.call('get', KEYS[2]) ~= ARGV[3] then return 0 end \
     if ARGV[2] == '0' then redis.call('set', KEYS[1], ARGV[1]) \
     else redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
     if ARGV[5] then redis.call('publish', ARGV[5], ARGV[6]) end \
     redis.call('del', KEYS[2]) redis.call('publish', ARGV[4], KEYS[2]) return 1";

/// Deletes a value and its lock, then publishes `ARGV[2]` on `ARGV[1]` if given: whether the
/// value was there.
const DEL_WITH_LOCK: &str = "local n = redis.call('del', KEYS[1]) redis.call('del', KEYS[2]) \
     if ARGV[1] then redis.call('publish', ARGV[1], ARGV[2]) end \
     if n > 0 then return 1 else return 0 end";

/// Extends the lease only while the lock still holds our token.
const EXTEND: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

/// A connection to one server (reconnecting on its own) or to a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

enum Target {
    Single(::redis::Client, ConnectionManagerConfig),
    Cluster(ClusterClient),
}

/// The connection, made on first use; a failed attempt is retried by the next call, and a probe
/// of the breaker starts afresh ([`reset`](Self::reset)).
struct Link {
    target: Target,
    conn: parking_lot::Mutex<Arc<OnceCell<Conn>>>,
}

impl Link {
    /// Forgets the connection: the next command connects anew. A connection manager remembers
    /// its last failed reconnect ("connection refused") and answers the next command with it, so
    /// a probe on it would fail on a server that is back, and the breaker would back off again.
    fn reset(&self) {
        *self.conn.lock() = Arc::new(OnceCell::new());
    }

    async fn conn(&self) -> Result<Conn, Error> {
        let cell = Arc::clone(&self.conn.lock());
        let conn = cell
            .get_or_try_init(|| async {
                Ok::<_, Error>(match &self.target {
                    Target::Single(client, config) => Conn::Single(
                        ConnectionManager::new_with_config(client.clone(), config.clone()).await?,
                    ),
                    Target::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
                })
            })
            .await?;
        Ok(conn.clone())
    }
}

struct Inner {
    config: RedisConfig,
    link: Arc<Link>,
    /// Pub/sub and per-node work (`scan_del` on a cluster) use plain connections to one node.
    first_node: ::redis::Client,
    /// The first node's URL, whose scheme and credentials the other cluster nodes share.
    seed: String,
    breaker: Breaker,
    /// Shared by the clients of one [`Redlock`](super::Redlock): its round is then one thread's
    /// parallel I/O instead of a hop to a thread per server.
    driver: Arc<Driver>,
}

/// A Redis client for byte keys and values, usable from sync and async code alike.
///
/// Commands run on a runtime thread the client owns, so a sync caller needs no runtime and an
/// async caller may use any executor. Each command adds at most the command timeout (the commands
/// of one memoized call share one: [`Error::Deadline`]); after repeated failures the [`Breaker`]
/// opens and calls fail at once ([`Error::Open`]) until a probe, on a fresh connection, succeeds.
/// Cloning is cheap and shares the connection.
///
/// # Examples
///
/// ```no_run
/// use memo::redis::{RedisClient, RedisConfig};
///
/// let client = RedisClient::new(RedisConfig::from_env()?)?;
/// client.set_px(b"greeting", b"hello", 60_000)?;
/// assert_eq!(client.get(b"greeting")?, Some(b"hello".to_vec()));
/// # Ok::<(), memo::redis::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("config", &self.inner.config)
            .field("breaker", &self.inner.breaker)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client for `config`. It connects on first use, so a server that is down now costs
    /// nothing here; the first calls fail (and count) until it is up.
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        Self::on_driver(config, Arc::new(Driver::start()?))
    }

    /// A client whose commands run on `driver`, which other clients may share.
    pub(crate) fn on_driver(config: RedisConfig, driver: Arc<Driver>) -> Result<Self, Error> {
        install_crypto_provider();
        let seed = config
            .nodes()
            .first()
            .ok_or_else(|| Error::Config("no node".into()))?;
        let first_node = open_node(seed, config.root_cert.as_deref())?;
        let target = if config.is_cluster() {
            let mut cluster = ClusterClient::builder(config.nodes().iter().map(String::as_str))
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .retries(1);
            if let Some(pem) = &config.root_cert {
                cluster = cluster.certs(certificates(pem));
            }
            Target::Cluster(cluster.build()?)
        } else {
            // No reconnect retries inside the manager: each would make every waiting call sleep
            // (15 ms a call against a refused port); the breaker is our back-off.
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.command_timeout))
                .set_number_of_retries(0)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(config.connect_timeout);
            Target::Single(first_node.clone(), manager)
        };
        // Named by its server, so that the lines of several (Redlock) tell which one failed.
        let breaker = Breaker::new(format!("redis {}", config.host()), config.breaker);
        Ok(Self {
            inner: Arc::new(Inner {
                link: Arc::new(Link {
                    target,
                    conn: parking_lot::Mutex::new(Arc::new(OnceCell::new())),
                }),
                first_node,
                seed: seed.clone(),
                breaker,
                driver,
                config,
            }),
        })
    }

    /// The configuration this client was made with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The circuit breaker: its error and rejection counters are what a cache reports.
    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// `GET key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        wait(self.get_async(key))
    }

    /// [`get`](Self::get), awaitable on any executor.
    pub async fn get_async(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.get_renewing(key, None).await
    }

    /// `GET key`, or with `renew_ms` `GETEX key PX renew_ms`: the value, its time to live
    /// renewed in the same round trip (time to idle).
    pub(crate) async fn get_renewing(
        &self,
        key: &[u8],
        renew_ms: Option<u64>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let key = key.to_vec();
        self.call(move |conn| ops::get(conn, key, renew_ms)).await
    }

    /// `GET key` and `PTTL key` in one round trip (a pipeline): the value, and how long it
    /// has left in milliseconds (negative: no expiry, or gone).
    pub(crate) async fn get_with_pttl(&self, key: &[u8]) -> Result<(Option<Vec<u8>>, i64), Error> {
        let key = key.to_vec();
        self.call(move |conn| ops::get_with_pttl(conn, key)).await
    }

    /// `SET key value PX ttl_ms`: value and expiry in one command (a `ttl_ms` of 0 counts as 1).
    pub fn set_px(&self, key: &[u8], value: &[u8], ttl_ms: u64) -> Result<(), Error> {
        wait(self.set_px_async(key, value, ttl_ms))
    }

    /// [`set_px`](Self::set_px), awaitable on any executor.
    pub async fn set_px_async(&self, key: &[u8], value: &[u8], ttl_ms: u64) -> Result<(), Error> {
        self.store(key, value, Some(ttl_ms)).await
    }

    /// `SET key value`, with no expiry (a cache without a `ttl`).
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        wait(self.set_async(key, value))
    }

    /// [`set`](Self::set), awaitable on any executor.
    pub async fn set_async(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.store(key, value, None).await
    }

    /// `SET key value [PX ttl_ms]`.
    async fn store(&self, key: &[u8], value: &[u8], ttl_ms: Option<u64>) -> Result<(), Error> {
        let (key, value) = (key.to_vec(), value.to_vec());
        self.call(move |conn| ops::set(conn, key, value, ttl_ms))
            .await
    }

    /// `DEL key`: whether a key was removed.
    pub fn del(&self, key: &[u8]) -> Result<bool, Error> {
        wait(self.del_async(key))
    }

    /// [`del`](Self::del), awaitable on any executor.
    pub async fn del_async(&self, key: &[u8]) -> Result<bool, Error> {
        let key = key.to_vec();
        self.call(move |conn| ops::del(conn, key)).await
    }

    /// `DEL value_key lock_key`, then `announce` (channel and message) published if given, in
    /// one round trip (a script: on a cluster both keys need one hash tag; a process killed in
    /// between cannot leave the deletion untold): whether the value was there. A holder of the
    /// lock then stores nothing ([`set_and_unlock`](Self::set_and_unlock)), so a value computed
    /// before an invalidation does not come back after it.
    pub(crate) fn del_with_lock(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
        announce: Option<(&[u8], &[u8])>,
    ) -> Result<bool, Error> {
        let keys = vec![value_key.to_vec(), lock_key.to_vec()];
        let args = announce.map_or_else(Vec::new, |(channel, message)| {
            vec![channel.to_vec(), message.to_vec()]
        });
        wait(self.call(move |conn| ops::scripted(conn, DEL_WITH_LOCK, keys, args)))
    }

    /// `SET lock_key token NX PX lease_ms`: whether this caller now holds the lock.
    pub fn lock(&self, lock_key: &[u8], token: &[u8], lease_ms: u64) -> Result<bool, Error> {
        wait(self.lock_async(lock_key, token, lease_ms))
    }

    /// [`lock`](Self::lock), awaitable on any executor.
    pub async fn lock_async(
        &self,
        lock_key: &[u8],
        token: &[u8],
        lease_ms: u64,
    ) -> Result<bool, Error> {
        let (key, token) = (lock_key.to_vec(), token.to_vec());
        self.call(move |conn| ops::lock(conn, key, token, lease_ms))
            .await
    }

    /// The value of `value_key`, else `SET lock_key token NX PX lease_ms`, in one round trip (a
    /// script: on a cluster both keys need one hash tag).
    pub(crate) async fn read_or_lock(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
        token: &[u8],
        lease_ms: u64,
    ) -> Result<ReadOrLock, Error> {
        let keys = [value_key.to_vec(), lock_key.to_vec()];
        let token = token.to_vec();
        self.call(move |conn| ops::read_or_lock(conn, keys, token, lease_ms))
            .await
    }

    /// The value of `value_key`, else the token `lock_key` holds (if any), in one round trip.
    pub(crate) async fn read_or_peek(
        &self,
        value_key: &[u8],
        lock_key: &[u8],
    ) -> Result<Peeked, Error> {
        let keys = [value_key.to_vec(), lock_key.to_vec()];
        self.call(move |conn| ops::read_or_peek(conn, keys)).await
    }

    /// Deletes `key` if it still holds `bytes` ([`DISCARD`]): whether it did.
    pub(crate) async fn discard(&self, key: &[u8], bytes: &[u8]) -> Result<bool, Error> {
        self.script(DISCARD, key, [bytes]).await
    }

    /// Deletes `lock_key` if it still holds `token` (a compare-and-delete script): whether it did.
    pub fn unlock(&self, lock_key: &[u8], token: &[u8]) -> Result<bool, Error> {
        wait(self.script(UNLOCK, lock_key, [token]))
    }

    /// [`unlock`](Self::unlock), then `PUBLISH channel lock_key` if it did, in one round trip.
    pub fn unlock_and_publish(
        &self,
        lock_key: &[u8],
        token: &[u8],
        channel: &[u8],
    ) -> Result<bool, Error> {
        wait(self.unlock_and_publish_async(lock_key, token, channel))
    }

    /// [`unlock_and_publish`](Self::unlock_and_publish), awaitable on any executor.
    pub async fn unlock_and_publish_async(
        &self,
        lock_key: &[u8],
        token: &[u8],
        channel: &[u8],
    ) -> Result<bool, Error> {
        self.script(UNLOCK_NOTIFY, lock_key, [token, channel]).await
    }

    /// The `SET` of `write`, with its announcement if any in the same round trip (a script: a
    /// process killed in between cannot leave other processes' copies of the old value; a
    /// write with a lock held goes through [`set_and_unlock`](Self::set_and_unlock) instead).
    pub(crate) async fn write(&self, write: Write<'_>) -> Result<(), Error> {
        if write.announce.is_none() && write.outdates.is_none() && write.own.is_none() {
            return self.store(write.key, write.bytes, write.ttl_ms).await;
        }
        let keys = [Some(write.key), write.outdates].into_iter().flatten();
        let mut keys = keys.map(<[u8]>::to_vec).collect();
        let ttl = write.ttl_ms.map_or(0, |ttl| ttl.max(1)).to_string();
        let mut args = vec![write.bytes.to_vec(), ttl.into_bytes()];
        if let Some(announce) = write.announce {
            args.extend([announce.channel.to_vec(), announce.message()]);
        }
        let script = with_own(
            SET_NOTIFY,
            &MARKED_SET_NOTIFY,
            write.own,
            &mut keys,
            &mut args,
        );
        self.call(move |conn| ops::scripted(conn, script, keys, args))
            .await
            .map(|_| ())
    }

    /// The `SET` of `write` (and its announcement), only while `lock_key` still holds
    /// `token`, another caller's (a script): whether it did. What a caller that waited for that
    /// caller's value in vain writes its own with: an invalidation, an insert or a forced
    /// refresh since it looked deletes or replaces the token, and the value, computed before
    /// them, is then not stored; so does the holder's release (its value is there).
    pub(crate) async fn write_if_held(
        &self,
        write: Write<'_>,
        lock_key: &[u8],
        token: &[u8],
    ) -> Result<bool, Error> {
        let mut keys = vec![write.key.to_vec(), lock_key.to_vec()];
        let ttl = write.ttl_ms.map_or(0, |ttl| ttl.max(1)).to_string();
        let mut args = vec![write.bytes.to_vec(), ttl.into_bytes(), token.to_vec()];
        if let Some(announce) = write.announce {
            args.extend([announce.channel.to_vec(), announce.message()]);
        }
        let script = with_own(
            SET_IF_HELD,
            &MARKED_SET_IF_HELD,
            write.own,
            &mut keys,
            &mut args,
        );
        self.call(move |conn| ops::scripted(conn, script, keys, args))
            .await
    }

    /// `script` over `key` with `args`, replying 1 or 0: whether it did its work.
    async fn script<const N: usize>(
        &self,
        script: &'static str,
        key: &[u8],
        args: [&[u8]; N],
    ) -> Result<bool, Error> {
        let keys = vec![key.to_vec()];
        let args = args.map(<[u8]>::to_vec).to_vec();
        self.call(move |conn| ops::scripted(conn, script, keys, args))
            .await
    }

    /// `SET value_key value [PX ttl_ms]`, then
    /// [`unlock_and_publish`](Self::unlock_and_publish), in one round trip (a script: on a
    /// cluster both keys need one hash tag), only while the lock holds our token: whether it did
    /// (`false`: the lock was lost, and nothing was stored). A `ttl_ms` of 0 counts as 1.
    pub(crate) async fn set_and_unlock(&self, stored: Stored<'_>) -> Result<bool, Error> {
        let own = stored.own;
        let (mut keys, mut args) = stored.into_parts();
        let script = with_own(
            SET_UNLOCK_NOTIFY,
            &MARKED_SET_UNLOCK_NOTIFY,
            own,
            &mut keys,
            &mut args,
        );
        self.call(move |conn| ops::scripted(conn, script, keys, args))
            .await
    }

    /// A read of a store with time to idle ([`RENEW`]): the value, its time to live renewed to
    /// `renew_ms` unless the mark `own` says it has its own, whose `PTTL` then comes beside it.
    pub(crate) async fn get_idle(
        &self,
        key: &[u8],
        own: &[u8],
        renew_ms: u64,
    ) -> Result<Option<(Vec<u8>, Option<i64>)>, Error> {
        let keys = [key.to_vec(), own.to_vec()];
        self.call(move |conn| ops::get_idle(conn, keys, renew_ms))
            .await
    }

    /// Sets the lease of `lock_key` to `lease_ms` if it still holds `token`: whether it did
    /// (`false`: the lock was lost, to expiry or to another owner).
    pub fn extend(&self, lock_key: &[u8], token: &[u8], lease_ms: u64) -> Result<bool, Error> {
        wait(self.extend_async(lock_key, token, lease_ms))
    }

    /// [`extend`](Self::extend), awaitable on any executor.
    pub async fn extend_async(
        &self,
        lock_key: &[u8],
        token: &[u8],
        lease_ms: u64,
    ) -> Result<bool, Error> {
        let lease_ms = lease_ms.to_string();
        self.script(EXTEND, lock_key, [token, lease_ms.as_bytes()])
            .await
    }

    /// `PUBLISH channel message`: how many subscribers got it (on a cluster, those of the node
    /// that took the command; the message still reaches every node).
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> Result<u64, Error> {
        wait(self.publish_async(channel, message))
    }

    /// [`publish`](Self::publish), awaitable on any executor.
    pub async fn publish_async(&self, channel: &[u8], message: &[u8]) -> Result<u64, Error> {
        let (channel, message) = (channel.to_vec(), message.to_vec());
        self.call(move |conn| ops::publish(conn, channel, message))
            .await
    }

    /// Calls `on_message` with each message published on `channel` until the returned
    /// [`Subscription`] is dropped; a lost connection is re-established with back-off (messages
    /// published meanwhile are missed, so treat them as hints).
    ///
    /// `on_message` runs on the client's runtime thread: keep it short, and never call this
    /// client's blocking methods from it.
    pub fn subscribe(
        &self,
        channel: &[u8],
        on_message: impl Fn(Vec<u8>) + Send + 'static,
    ) -> Result<Subscription, Error> {
        if !self.inner.breaker.allow() {
            return Err(Error::Open);
        }
        let (stop, stopped) = oneshot::channel();
        let (ready, subscribed) = oneshot::channel();
        let client = self.inner.first_node.clone();
        let channel = channel.to_vec();
        let timeout = self.inner.config.connect_timeout + self.inner.config.command_timeout;
        self.inner.driver.detach(pump(
            client,
            channel,
            timeout,
            Box::new(on_message),
            stopped,
            ready,
        ));
        let result = wait(self.inner.driver.run(timeout, async move {
            subscribed.await.unwrap_or(Err(Error::Closed))
        }));
        self.record(&result);
        result.map(|()| Subscription { _stop: stop })
    }

    /// [`subscribe`](Self::subscribe) without waiting for the first connection: never blocks,
    /// and keeps trying (with back-off) while the server is unreachable.
    pub(crate) fn subscribe_detached(
        &self,
        channel: &[u8],
        on_message: impl Fn(Vec<u8>) + Send + 'static,
    ) -> Subscription {
        let (stop, stopped) = oneshot::channel();
        let (ready, _) = oneshot::channel();
        let timeout = self.inner.config.connect_timeout + self.inner.config.command_timeout;
        self.inner.driver.detach(pump(
            self.inner.first_node.clone(),
            channel.to_vec(),
            timeout,
            Box::new(on_message),
            stopped,
            ready,
        ));
        Subscription { _stop: stop }
    }

    /// Deletes every key starting with `prefix` (`SCAN MATCH` + `UNLINK`; on a cluster, on every
    /// master): how many were deleted. Bounded by the bulk timeout, not the command timeout.
    pub fn scan_del(&self, prefix: &[u8]) -> Result<u64, Error> {
        self.scan(glob_prefix(prefix), true)
    }

    /// How many keys start with `prefix` and end with `ending`, counted with `SCAN` (on every
    /// master of a cluster): a walk of the whole keyspace, for inspection.
    pub(crate) fn scan_count(&self, prefix: &[u8], ending: &[u8]) -> Result<u64, Error> {
        let mut pattern = glob_prefix(prefix);
        pattern.extend_from_slice(&glob_prefix(ending)[..]);
        pattern.pop(); // the ending's `*`
        self.scan(pattern, false)
    }

    /// [`ops::scan`] on the server, or on every master of a cluster, summed; bounded by the bulk
    /// timeout, not the command timeout.
    fn scan(&self, pattern: Vec<u8>, unlink: bool) -> Result<u64, Error> {
        let link = self.admit()?;
        let seed = self.inner.seed.clone();
        let root_cert = self.inner.config.root_cert.clone();
        let scan = self
            .inner
            .driver
            .run(self.inner.config.bulk_timeout, async move {
                match link.conn().await? {
                    conn @ Conn::Single(_) => ops::scan(conn, &pattern, unlink).await,
                    mut conn @ Conn::Cluster(_) => {
                        let nodes: String =
                            cmd("CLUSTER").arg("NODES").query_async(&mut conn).await?;
                        let mut found = 0;
                        for address in masters(&nodes) {
                            let node = open_node(&node_url(&seed, address), root_cert.as_deref())?;
                            let conn = node.get_multiplexed_async_connection().await?;
                            found += ops::scan(conn, &pattern, unlink).await?;
                        }
                        Ok(found)
                    }
                }
            });
        let result = wait(scan);
        self.record(&result);
        result
    }

    /// Runs a command through the breaker, within its call's budget; the future can be awaited
    /// on any executor, or blocked on with [`wait`].
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let budget = budget::current();
        let timeout = self.timeout(budget.as_ref())?;
        let link = self.admit()?;
        let started = Instant::now();
        let result = self
            .inner
            .driver
            .run(timeout, async move { op(link.conn().await?).await })
            .await;
        Self::spent(budget.as_ref(), started, &result);
        self.record(&result);
        result
    }

    /// The bound of the next command: the command timeout, or what its call has left of it;
    /// [`Error::Deadline`] when that is nothing (the command is not sent).
    fn timeout(&self, budget: Option<&Budget>) -> Result<Duration, Error> {
        let timeout = self.inner.config.command_timeout;
        match budget.map(Budget::left) {
            Some(left) if left.is_zero() => Err(Error::Deadline),
            Some(left) => Ok(left.min(timeout)),
            None => Ok(timeout),
        }
    }

    /// The connection a command may use now: none while the breaker is open, a fresh one for
    /// its probe.
    fn admit(&self) -> Result<Arc<Link>, Error> {
        match self.inner.breaker.permit() {
            Permit::Refused => return Err(Error::Open),
            Permit::Probe => self.inner.link.reset(),
            Permit::Go => {}
        }
        Ok(Arc::clone(&self.inner.link))
    }

    /// Charges a command to its call: what it took, or everything if it timed out.
    fn spent<T>(budget: Option<&Budget>, started: Instant, result: &Result<T, Error>) {
        if let Some(budget) = budget {
            if matches!(result, Err(Error::Timeout)) {
                budget.spend();
            } else {
                budget.charge(started.elapsed());
            }
        }
    }

    fn record<T>(&self, result: &Result<T, Error>) {
        match result {
            Ok(_) => self.inner.breaker.success(),
            Err(err) => self.inner.breaker.failure(err),
        }
    }

    /// Sleeps on the client's runtime (an async caller's executor may have no timer) for
    /// `at_most`, or until `woken` completes.
    pub(crate) async fn sleep_until(
        &self,
        woken: impl Future<Output = ()> + Send + 'static,
        at_most: Duration,
    ) {
        let _ = self
            .inner
            .driver
            .run(at_most + Duration::from_millis(1), async move {
                let _ = tokio::time::timeout(at_most, woken).await;
                Ok(())
            })
            .await;
    }

    /// Runs `fut` on the client's runtime without waiting (lease renewal, release on drop).
    pub(crate) fn detach(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.inner.driver.detach(fut);
    }
}

/// Stops its subscription when dropped.
#[derive(Debug)]
pub struct Subscription {
    _stop: oneshot::Sender<()>,
}

/// Receives one channel's messages, reconnecting with back-off, until `stopped`.
async fn pump(
    client: ::redis::Client,
    channel: Vec<u8>,
    timeout: Duration,
    on_message: Box<dyn Fn(Vec<u8>) + Send>,
    mut stopped: oneshot::Receiver<()>,
    ready: oneshot::Sender<Result<(), Error>>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(20);
    loop {
        let attempt = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, Error>(pubsub)
        })
        .await
        .unwrap_or(Err(Error::Timeout));
        match attempt {
            Ok(pubsub) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
                backoff = Duration::from_millis(20);
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        message = messages.next() => match message {
                            Some(message) => on_message(message.get_payload_bytes().to_vec()),
                            None => break,
                        },
                    }
                }
            }
            Err(err) => {
                // A caller waiting for the first attempt gets the error and the pump ends; a
                // detached pump keeps trying.
                if let Some(ready) = ready.take()
                    && ready.send(Err(err)).is_ok()
                {
                    return;
                }
            }
        }
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(1)),
        }
    }
}

/// `ab*c` → `ab\*c*`: the prefix matched literally.
fn glob_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(prefix.len() + 1);
    for &byte in prefix {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'*');
    pattern
}

/// The `host:port` of each live master in `CLUSTER NODES` output.
fn masters(nodes: &str) -> impl Iterator<Item = &str> {
    nodes.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let address = fields.nth(1)?;
        let flags = fields.next()?;
        let live_master = flags.split(',').any(|flag| flag == "master")
            && !flags
                .split(',')
                .any(|flag| matches!(flag, "fail" | "noaddr" | "handshake"));
        live_master.then(|| address.split(['@', ',']).next().unwrap_or(address))
    })
}

/// A plain client for one node, trusting `root_cert` (PEM) if given.
fn open_node(url: &str, root_cert: Option<&[u8]>) -> Result<::redis::Client, Error> {
    Ok(match root_cert {
        Some(pem) => ::redis::Client::build_with_tls(url, certificates(pem))?,
        None => ::redis::Client::open(url)?,
    })
}

fn certificates(pem: &[u8]) -> ::redis::TlsCertificates {
    ::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}

/// rustls needs a process-wide crypto provider for `rediss://`; install ring's unless the
/// application already chose one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        #[allow(
            deprecated,
            reason = "rustls 0.23.48 prefers aws-lc-rs (post-quantum key exchange), which needs \
                      cmake to build; an application that wants it installs it first"
        )]
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The commands, as futures over an owned connection.
mod ops {
    use super::{Conn, Error, Peeked, READ_OR_LOCK, READ_OR_PEEK, RENEW, ReadOrLock, Value, cmd};
    use ::redis::aio::ConnectionLike;

    pub(super) async fn get(
        mut conn: Conn,
        key: Vec<u8>,
        renew_ms: Option<u64>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let mut read = cmd(if renew_ms.is_some() { "GETEX" } else { "GET" });
        read.arg(key);
        if let Some(ms) = renew_ms {
            read.arg("PX").arg(ms.max(1));
        }
        Ok(read.query_async(&mut conn).await?)
    }

    pub(super) async fn get_with_pttl(
        mut conn: Conn,
        key: Vec<u8>,
    ) -> Result<(Option<Vec<u8>>, i64), Error> {
        let mut batch = ::redis::pipe();
        batch.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        Ok(batch.query_async(&mut conn).await?)
    }

    pub(super) async fn set(
        mut conn: Conn,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), Error> {
        let mut set = cmd("SET");
        set.arg(key).arg(value);
        if let Some(ttl_ms) = ttl_ms {
            set.arg("PX").arg(ttl_ms.max(1));
        }
        Ok(set.query_async(&mut conn).await?)
    }

    pub(super) async fn del(mut conn: Conn, key: Vec<u8>) -> Result<bool, Error> {
        let removed: u64 = cmd("DEL").arg(key).query_async(&mut conn).await?;
        Ok(removed > 0)
    }

    pub(super) async fn lock(
        mut conn: Conn,
        key: Vec<u8>,
        token: Vec<u8>,
        lease_ms: u64,
    ) -> Result<bool, Error> {
        let reply: Value = cmd("SET")
            .arg(key)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(lease_ms.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(!matches!(reply, Value::Nil))
    }

    pub(super) async fn read_or_lock(
        mut conn: Conn,
        [value_key, lock_key]: [Vec<u8>; 2],
        token: Vec<u8>,
        lease_ms: u64,
    ) -> Result<ReadOrLock, Error> {
        let reply: Value = cmd("EVAL")
            .arg(READ_OR_LOCK)
            .arg(2)
            .arg(value_key)
            .arg(lock_key)
            .arg(token)
            .arg(lease_ms.max(1))
            .query_async(&mut conn)
            .await?;
        match reply {
            Value::Array(reply) => match <[Value; 2]>::try_from(reply) {
                Ok([Value::Int(1), Value::BulkString(value)]) => Ok(ReadOrLock::Value(value)),
                Err(reply) if matches!(reply[..], [Value::Int(2)]) => Ok(ReadOrLock::Locked),
                Ok([Value::Int(0), Value::BulkString(token)]) => Ok(ReadOrLock::Held(token)),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        }
    }

    pub(super) async fn get_idle(
        mut conn: Conn,
        [key, own]: [Vec<u8>; 2],
        renew_ms: u64,
    ) -> Result<Option<(Vec<u8>, Option<i64>)>, Error> {
        let reply: Value = cmd("EVAL")
            .arg(RENEW)
            .arg(2)
            .arg(key)
            .arg(own)
            .arg(renew_ms.max(1))
            .query_async(&mut conn)
            .await?;
        let Value::Array(reply) = reply else {
            return Err(unexpected());
        };
        match &reply[..] {
            [Value::Int(0)] => Ok(None),
            [Value::Int(1), Value::BulkString(value)] => Ok(Some((value.clone(), None))),
            [Value::Int(1), Value::BulkString(value), Value::Int(pttl)] => {
                Ok(Some((value.clone(), Some(*pttl))))
            }
            _ => Err(unexpected()),
        }
    }

    pub(super) async fn read_or_peek(
        mut conn: Conn,
        [value_key, lock_key]: [Vec<u8>; 2],
    ) -> Result<Peeked, Error> {
        let reply: Value = cmd("EVAL")
            .arg(READ_OR_PEEK)
            .arg(2)
            .arg(value_key)
            .arg(lock_key)
            .query_async(&mut conn)
            .await?;
        match reply {
            Value::Array(reply) => match <[Value; 2]>::try_from(reply) {
                Ok([Value::Int(1), Value::BulkString(value)]) => Ok(Peeked::Value(value)),
                Ok([Value::Int(0), Value::BulkString(token)]) => Ok(Peeked::Absent(Some(token))),
                Err(reply) if matches!(reply[..], [Value::Int(0)]) => Ok(Peeked::Absent(None)),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        }
    }

    fn unexpected() -> Error {
        Error::from(::redis::RedisError::from((
            ::redis::ErrorKind::UnexpectedReturnType,
            "unexpected reply to the claim script",
        )))
    }

    /// A script over several keys that replies 1 or 0.
    pub(super) async fn scripted(
        mut conn: Conn,
        script: &str,
        keys: Vec<Vec<u8>>,
        args: Vec<Vec<u8>>,
    ) -> Result<bool, Error> {
        let mut eval = cmd("EVAL");
        eval.arg(script).arg(keys.len());
        for key in keys {
            eval.arg(key);
        }
        for arg in args {
            eval.arg(arg);
        }
        let done: i64 = eval.query_async(&mut conn).await?;
        Ok(done == 1)
    }

    pub(super) async fn publish(
        mut conn: Conn,
        channel: Vec<u8>,
        message: Vec<u8>,
    ) -> Result<u64, Error> {
        Ok(cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query_async(&mut conn)
            .await?)
    }

    /// `SCAN MATCH pattern` + `UNLINK` of each batch found, one key per command so that a
    /// cluster node never sees a cross-slot request.
    /// `SCAN MATCH pattern`: how many keys match, each batch found `UNLINK`ed first when `unlink`
    /// (one key per command, so that a cluster node never sees a cross-slot request).
    pub(super) async fn scan(
        mut conn: impl ConnectionLike,
        pattern: &[u8],
        unlink: bool,
    ) -> Result<u64, Error> {
        let (mut cursor, mut found) = (0_u64, 0_u64);
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            if !unlink {
                found += keys.len() as u64;
            } else if !keys.is_empty() {
                let mut batch = ::redis::pipe();
                for key in &keys {
                    batch.cmd("UNLINK").arg(key);
                }
                let counts: Vec<u64> = batch.query_async(&mut conn).await?;
                found += counts.iter().sum::<u64>();
            }
            if next == 0 {
                return Ok(found);
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_prefix_escapes_pattern_bytes() {
        assert_eq!(super::glob_prefix(b"a*b?[c]\\"), b"a\\*b\\?\\[c\\]\\\\*");
    }

    #[test]
    fn masters_skip_replicas_and_failed_nodes() {
        let nodes = "id1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                     id2 127.0.0.1:7001@17001,host master - 0 0 2 connected 5461-10922\n\
                     id3 127.0.0.1:7002@17002 slave id1 0 0 3 connected\n\
                     id4 127.0.0.1:7003@17003 master,fail - 0 0 4 disconnected\n";
        let found: Vec<&str> = super::masters(nodes).collect();
        assert_eq!(found, ["127.0.0.1:7000", "127.0.0.1:7001"]);
    }
}
