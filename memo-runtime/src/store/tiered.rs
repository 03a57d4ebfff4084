//! An in-memory L1 in front of Redis (feature `redis`): what `#[cached(store = tiered)]` uses.
//!
//! Hits are served from the process's own [`MemoryStore`]; a miss there reads Redis and keeps
//! the value. A new value or an invalidation in one process is announced on the namespace's
//! channel, and every other process drops its L1 copy of that key (or all of them, on `clear`).
//! Announcements are hints (a process that is disconnected at that moment misses them), so the
//! L1 copies expire with the time to live as the safety net.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::fills::Fills;
use super::redis::RedisStore;
use super::{Claim, Counts, Lease, MemoryStore, RedisOptions, Store, TtlFrom};
#[cfg(any(test, feature = "test-util"))]
use crate::clock::Clock;
use crate::config::Config;
use crate::lookup::Lookup;
use crate::redis::{Subscription, wait};

/// Messages on the invalidation channel: this process's id, then what to drop.
const EVICT: u8 = 0;
const CLEAR: u8 = 1;

/// Runs its closure when dropped before [`settled`](Self::settled): what an async write,
/// cancelled while Redis may or may not have taken its value, does to the local copy.
struct Unsettled<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Unsettled<F> {
    fn settled(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for Unsettled<F> {
    fn drop(&mut self) {
        if let Some(cancelled) = self.0.take() {
            cancelled();
        }
    }
}

/// Local copies in front of a [`RedisStore`], kept coherent across processes by pub/sub.
///
/// # Concurrent calls on the same key
///
/// As [`RedisStore`]: one computation per missing key across processes.
///
/// # Coherence
///
/// An `insert` (a computed value) or an `invalidate` is published after it reaches Redis, and
/// the other processes drop their L1 copy when the message arrives (about a round trip later).
/// A message missed (the subscription was connecting, in the store's first milliseconds, or
/// reconnecting) leaves a copy until its time to live ends: give tiered caches a `ttl`. A copy
/// read from Redis ends when the entry does there (its `PTTL` comes in the same round trip as
/// the value).
///
/// Once `invalidate` or `clear` returns, no call of this process gets the removed value: a read
/// that found it in Redis just before keeps no copy, and neither does one in another process
/// once the message has arrived there.
pub struct TieredStore<K, V> {
    l1: Arc<MemoryStore<K, V>>,
    l2: RedisStore<K, V>,
    /// Orders the copies read from Redis after the removals and writes that race them.
    fills: Arc<Fills>,
    channel: Vec<u8>,
    origin: [u8; 16],
    l2_hits: AtomicU64,
    /// Each value's own time to live ([`ttl_from`](Self::ttl_from)), for both layers.
    ttl_from: Option<TtlFrom<V>>,
    _subscription: Option<Subscription>,
}

impl RedisOptions {
    /// Opens a [`TieredStore`]: an L1 bounded by `config`'s `maxsize` (and `ttl`) before the
    /// Redis store these options describe.
    #[must_use]
    pub fn open_tiered<K, V>(&self, config: &Config) -> TieredStore<K, V>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + DeserializeOwned + 'static,
        V: Clone + Send + Sync + DeserializeOwned + 'static,
    {
        self.open_tiered_shaped(config, crate::key::fingerprint::<K, V>(self.version))
    }

    /// [`open_tiered`](Self::open_tiered) with the fingerprint already taken (see
    /// [`RedisOptions::open_shaped`]).
    pub(crate) fn open_tiered_shaped<K, V>(
        &self,
        config: &Config,
        fingerprint: u64,
    ) -> TieredStore<K, V>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + DeserializeOwned + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let l1 = Arc::new(MemoryStore::new(config));
        let l2: RedisStore<K, V> = self.open_shaped(config, fingerprint);
        let mut channel = b"memo:evict:".to_vec();
        channel.extend_from_slice(l2.prefix());
        let origin: [u8; 16] = crate::redis::new_token()[..16]
            .try_into()
            .unwrap_or([0; 16]);
        let fills = Arc::new(Fills::new());
        let subscription = l2.client().map(|client| {
            let (l1, fills) = (Arc::clone(&l1), Arc::clone(&fills));
            client.subscribe_detached(&channel, move |message| {
                evicted(&l1, &fills, &origin, &message);
            })
        });
        TieredStore {
            l1,
            l2,
            fills,
            channel,
            origin,
            l2_hits: AtomicU64::new(0),
            ttl_from: None,
            _subscription: subscription,
        }
    }
}

/// Applies one message of another process to this one's L1: a copy its fill read from Redis
/// before the other process's change is not kept after it.
fn evicted<K, V>(l1: &MemoryStore<K, V>, fills: &Fills, origin: &[u8; 16], message: &[u8])
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + DeserializeOwned + 'static,
    V: Clone + Send + Sync + 'static,
{
    let Some((from, rest)) = message.split_at_checked(16) else {
        return;
    };
    if from == origin {
        return;
    }
    match rest.split_first() {
        Some((&CLEAR, _)) => fills.change_all(|| l1.clear()),
        Some((&EVICT, key)) => {
            if let Ok(key) = postcard::from_bytes::<K>(key) {
                let hash = l1.hash_of(&&key);
                fills.change(hash, || l1.remove(&&key));
            }
        }
        _ => {}
    }
}

impl<K, V> TieredStore<K, V> {
    /// Gives each value the time to live `ttl_from` reads from it, in Redis (the `PX` of its
    /// `SET`) and in the local copy alike; `None` leaves the store's `ttl`. See
    /// [`MemoryStore::ttl_from`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use memo::{Config, RedisOptions, Store, TieredStore};
    /// use std::time::Duration;
    ///
    /// let store: TieredStore<u32, Option<u64>> = RedisOptions::new("doc")
    ///     .open_tiered(&Config::new().ttl(Duration::from_secs(60)))
    ///     .ttl_from(|max_age| max_age.map(Duration::from_secs));
    /// store.insert(1, Some(5)); // 5 s in Redis and in memory
    /// ```
    #[must_use]
    pub fn ttl_from(mut self, ttl_from: TtlFrom<V>) -> Self {
        self.ttl_from = Some(ttl_from);
        self.l2 = self.l2.ttl_from(ttl_from);
        self
    }

    /// Reads the local copies' time from `clock` from now on (tests use
    /// [`Clock::mock`]; feature `test-util`); Redis keeps its own time.
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_clock(&self, clock: Clock) {
        self.l1.set_clock(clock);
    }

    /// Keeps a local copy of `value` under `key` (of hash `hash`, the local copies'), computed
    /// in `cost`, timed as `ttl_from` says (else by the store's `ttl`).
    fn keep_local(&self, hash: u64, key: K, value: V, cost: std::time::Duration)
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if let Some(ttl) = super::chosen(self.ttl_from, &value) {
            self.l1.insert_with_ttl_hashed(hash, key, value, ttl);
        } else {
            let cost = self.l2.measured(cost);
            self.l1.insert_timed_hashed(hash, key, value, cost);
        }
    }

    /// The Redis store behind the local copies.
    pub const fn remote(&self) -> &RedisStore<K, V> {
        &self.l2
    }

    /// What tells the other processes to drop the key encoded as `evicted` (`None`: everything).
    fn message(&self, evicted: Option<&[u8]>) -> Vec<u8> {
        let mut message = self.origin.to_vec();
        match evicted {
            None => message.push(CLEAR),
            Some(encoded) => {
                message.push(EVICT);
                message.extend_from_slice(encoded);
            }
        }
        message
    }

    /// The start of the message that drops one key, to which its encoding is added.
    fn evict_head(&self) -> Vec<u8> {
        let mut head = self.origin.to_vec();
        head.push(EVICT);
        head
    }

    /// Tells the other processes to drop the key encoded as `evicted` (`None`: everything).
    fn announce(&self, evicted: Option<&[u8]>) {
        // One that does not reach Redis is retried (see the Redis store's pending removals).
        self.l2.announce(&self.channel, self.message(evicted));
    }
}

impl<K, V> TieredStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Whether entries are refreshed in the background (`stale`, early refresh).
    fn renews(&self) -> bool {
        self.l1.config().renews()
    }

    /// Keeps a local copy of a value read from Redis whose time to live has `fresh_ms` left
    /// there (negative: served stale; `None`: none), so that it goes stale here when it does
    /// there and never outlives the entry; unless a removal or a write of the key came since
    /// `seen` (the count its fill took before the read).
    fn keep_fetched(&self, hash: u64, seen: u64, key: K, value: V, fresh_ms: Option<i64>) {
        let Some(fresh_ms) = fresh_ms else {
            let keep = || self.keep_local(hash, key, value, std::time::Duration::ZERO);
            return self.fills.fill(hash, seen, keep);
        };
        let fresh_ms = if super::chosen(self.ttl_from, &value).is_some() {
            // Its own time to live, which Redis holds without `stale`'s margin: all of its PTTL.
            fresh_ms.saturating_add(self.l2.stale_ms())
        } else {
            fresh_ms
        };
        let now = self.l1.clock_now();
        let expires = if fresh_ms >= 0 {
            now.saturating_add(fresh_ms.unsigned_abs().saturating_mul(1_000_000))
        } else {
            now.saturating_sub(fresh_ms.unsigned_abs().saturating_mul(1_000_000))
        };
        let cost = self.l2.cost();
        let keep = || {
            self.l1
                .insert_expiring_hashed(hash, key, value, expires.max(1), cost);
        };
        self.fills.fill(hash, seen, keep);
    }

    /// Keeps `value`, which this process has just written to Redis, as the local copy (by
    /// `keep`), with every fill of the key that read Redis before the write kept out. If another
    /// write or a removal of the key came since `seen` (taken before the write), which of the
    /// two Redis holds is unknown here: the local copy is dropped, for the next read to take
    /// Redis's.
    fn keep_written(&self, hash: u64, seen: u64, key: K, value: V, keep: impl FnOnce(K, V)) {
        self.fills.wrote(hash, seen, |alone| {
            if alone {
                keep(key, value);
            } else {
                self.l1.remove(&&key);
            }
        });
    }

    /// The value of `key` in Redis and how long its time to live has left there (as
    /// [`RedisStore::peek_fresh_for_async`]), in one round trip. Under time to idle the read
    /// renews the entry to a full `idle` (one script), as long as a new copy here lives.
    /// A value with a time to live of its own (`insert_with_ttl`, `ttl_from`, in any process) is
    /// not renewed, and its `PTTL` comes back: [`fetch_async`](Self::fetch_async) keeps its copy
    /// that long, unrenewed, as the copy of a value inserted here is.
    async fn read_remote(&self, key: &K) -> Option<(V, Option<i64>)> {
        if self.l2.config().idle.is_some() {
            return self.l2.read_owned_async(key, false).await;
        }
        self.l2.peek_fresh_for_async(key).await
    }

    /// [`Store::get_renewing_hashed`] of a store that renews entries: the local copy decides whether
    /// the value is due and makes one caller of this process the one to refresh it; a value
    /// read from Redis (with its `PTTL`, in the same round trip) becomes the local copy first.
    /// The key's hash is the local copies' ([`Store::hash_of`]), which the call carries.
    pub(crate) fn get_due<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        self.l1
            .get_renewing_hashed(hash, key)
            .or_else(|| wait(self.fetch_due(hash, &key.to_key())))
    }

    /// [`get_due`](Self::get_due), awaited.
    async fn get_due_async(&self, hash: u64, key: &K) -> Option<(V, bool)> {
        match self.l1.get_renewing_hashed(hash, &key) {
            Some(found) => Some(found),
            None => self.fetch_due(hash, key).await,
        }
    }

    /// [`get_due`](Self::get_due) past a local miss: the value read from Redis with its
    /// `PTTL`, kept here, then asked again.
    async fn fetch_due(&self, hash: u64, key: &K) -> Option<(V, bool)> {
        let seen = self.fills.seen(hash);
        let (value, fresh_ms) = self.l2.peek_fresh_for_async(key).await?;
        self.keep_fetched(hash, seen, key.clone(), value.clone(), fresh_ms);
        Some(self.l1.get_renewing_hashed(hash, &key).unwrap_or_else(|| {
            self.l2_hits.fetch_add(1, Ordering::Relaxed);
            (value, false)
        }))
    }

    /// The value of `key` (of hash `hash`) from Redis (the local copy missed), kept here until
    /// it expires there: a hit that refreshes nothing.
    fn fetch(&self, hash: u64, key: K) -> Option<V> {
        wait(self.fetch_async(hash, key))
    }

    /// [`fetch`](Self::fetch), awaited.
    async fn fetch_async(&self, hash: u64, key: K) -> Option<V> {
        let seen = self.fills.seen(hash);
        let (value, fresh_ms) = self.read_remote(&key).await?;
        self.l2_hits.fetch_add(1, Ordering::Relaxed);
        if self.l2.config().idle.is_some() {
            // Time to idle: a copy renewed by its hits (and renewing the shared key), unless
            // the value has a time to live of its own, which it keeps.
            let copy = value.clone();
            self.fills.fill(hash, seen, || match fresh_ms {
                Some(ms) => {
                    let ttl = std::time::Duration::from_millis(ms.max(1).unsigned_abs());
                    self.l1.insert_with_ttl_hashed(hash, key, copy, ttl);
                }
                None => self.keep_local(hash, key, copy, std::time::Duration::ZERO),
            });
            return Some(value);
        }
        self.keep_fetched(hash, seen, key, value.clone(), fresh_ms);
        Some(value)
    }
}

impl<K, V> Store<K, V> for TieredStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    #[inline]
    fn get<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.get_hashed(self.l1.hash_of(key), key)
    }

    /// The local copies': the hash a call carries finds the key there.
    #[inline]
    fn hash_of<L: Lookup<Key = K>>(&self, key: &L) -> u64 {
        self.l1.hash_of(key)
    }

    fn get_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<V> {
        if self.l2.config().idle.is_some() {
            // Time to idle: a renewal of the copy here renews the shared entry too, and ends
            // the copy if the entry is gone or another (a message missed).
            if let Some((value, renewed)) = self.l1.get_renewed(hash, key) {
                if renewed && !self.l2.renew(&key.to_key(), &value) {
                    self.fills.change(hash, || self.l1.remove(key));
                    return self.fetch(hash, key.to_key());
                }
                return Some(value);
            }
        } else if let Some(value) = self.l1.get_hashed(hash, key) {
            return Some(value);
        }
        self.fetch(hash, key.to_key())
    }

    fn peek<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.l1.peek(key).or_else(|| self.l2.peek(key))
    }

    fn insert(&self, key: K, value: V) {
        wait(self.insert_async(key, value));
    }

    fn get_renewing_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        if !self.renews() {
            return self.get_hashed(hash, key).map(|value| (value, false));
        }
        self.get_due(hash, key)
    }

    /// The local copy, by the call's hash (the async hit path's first step). None under time
    /// to idle: a hit that renews its copy renews the shared key too, an awaited round trip
    /// that [`get_async`](Store::get_async) makes.
    fn get_local<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<V> {
        if self.l2.config().idle.is_some() {
            return None;
        }
        self.l1.get_hashed(hash, key)
    }

    /// The local copy, which says when a value is due.
    fn get_local_due<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        self.l1.get_renewing_hashed(hash, key)
    }

    /// The local copy first; one read of Redis fills it.
    async fn get_renewing_async<'a>(&'a self, hash: u64, key: &'a K) -> Option<(V, bool)>
    where
        V: Send + 'a,
    {
        if !self.renews() {
            return self.get_async(hash, &key).await.map(|value| (value, false));
        }
        self.get_due_async(hash, key).await
    }

    fn release_refresh<L: Lookup<Key = K>>(&self, key: &L) {
        self.l1.release_refresh(key);
    }

    /// The Redis lock of the key, so that one process refreshes it.
    async fn claim_refresh_async<'a>(&'a self, key: &'a K) -> Option<Lease>
    where
        V: 'a,
    {
        self.l2.claim_refresh_async(key).await
    }

    /// The Redis mark of the key (see [`Store::mark_refresh_async`]): a refused write keeps
    /// no copy here either.
    async fn mark_refresh_async<'a>(&'a self, hash: u64, key: &'a K) -> Lease
    where
        V: 'a,
    {
        self.l2.mark_refresh_async(hash, key).await
    }

    async fn get_async<'a, L: Lookup<Key = K> + Sync>(&'a self, hash: u64, key: &'a L) -> Option<V>
    where
        V: Send + 'a,
    {
        if self.l2.config().idle.is_some() {
            // Time to idle: as `get_hashed`, a renewal of the copy renews the shared entry,
            // awaited here (an `async fn`'s hit).
            if let Some((value, renewed)) = self.l1.get_renewed(hash, key) {
                if renewed && !self.l2.renew_async(&key.to_key(), &value).await {
                    self.fills.change(hash, || self.l1.remove(key));
                    return self.fetch_async(hash, key.to_key()).await;
                }
                return Some(value);
            }
        } else if let Some(value) = self.l1.get_hashed(hash, key) {
            return Some(value);
        }
        self.fetch_async(hash, key.to_key()).await
    }

    async fn claim_async<'a>(&'a self, hash: u64, key: &'a K) -> Claim<V>
    where
        V: Send + 'a,
    {
        if let Some(value) = self.l1.peek_hashed(hash, &key) {
            return Claim::Found(value);
        }
        // A value the claim found was stored by another process moments ago, but the claim
        // does not say how long it has left in Redis (a jittered or `ttl_from` time to live may
        // be shorter than this store's): no copy is kept, so that none outlives the entry. The
        // next call's read (one round trip, with the `PTTL`) keeps one.
        self.l2.claim_async(hash, key).await
    }

    async fn insert_async<'a>(&'a self, key: K, value: V)
    where
        K: Send + 'a,
        V: Send + 'a,
    {
        let hash = self.hash_of(&&key);
        self.insert_claimed_async(hash, key, value, std::time::Duration::ZERO, Lease::none())
            .await;
    }

    /// The write, its lock's release and the announcement, with the key encoded once (by the
    /// read that missed); the announcement counts against the same call's deadline. The local
    /// copy is filed by the call's `hash`.
    async fn insert_claimed_async<'a>(
        &'a self,
        hash: u64,
        key: K,
        value: V,
        cost: std::time::Duration,
        lease: Lease,
    ) where
        K: Send + 'a,
        V: Send + 'a,
    {
        let seen = self.fills.seen(hash);
        let head = self.evict_head();
        // Cancelled, Redis may or may not hold the new value: no copy here, old or new.
        let unsettled = Unsettled(Some(|| {
            self.fills.change(hash, || self.l1.remove(&&key));
        }));
        let stored = self
            .l2
            .insert_then_async(&key, &value, lease, Some((&self.channel, &head)))
            .await;
        unsettled.settled();
        if !stored {
            // Refused: invalidated in some process since the claim. No copy here either.
            self.fills.change(hash, || self.l1.remove(&&key));
            return;
        }
        self.keep_written(hash, seen, key, value, |key, value| {
            self.keep_local(hash, key, value, cost);
        });
    }

    fn insert_with_ttl(&self, key: K, value: V, ttl: std::time::Duration) {
        let head = self.evict_head();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let announce = Some((&self.channel[..], &head[..]));
        let hash = self.hash_of(&&key);
        let seen = self.fills.seen(hash);
        self.l2
            .write_then(&key, &value, Lease::none(), announce, Some(ttl_ms));
        self.keep_written(hash, seen, key, value, |key, value| {
            self.l1.insert_with_ttl_hashed(hash, key, value, ttl);
        });
    }

    /// Redis first, then the local copy (see `Fills`): a read of this process that found
    /// the value in Redis before the `DEL` keeps no copy after it.
    fn remove<L: Lookup<Key = K>>(&self, key: &L) -> bool {
        let owned = key.to_key();
        // The message goes in the deletion's round trip: a process killed after the one is
        // never without the other.
        let message = crate::key::encode(&owned).map(|encoded| self.message(Some(&encoded)));
        let announce = message.map(|message| (&self.channel[..], message));
        let remote = self.l2.remove_announcing(&owned, announce);
        let local = self.fills.change(self.hash_of(key), || self.l1.remove(key));
        local || remote
    }

    /// Redis first, then the local copies, as [`remove`](Self::remove).
    fn clear(&self) {
        self.l2.clear();
        self.fills.change_all(|| self.l1.clear());
        self.announce(None);
    }

    /// The entries in Redis, counted with `SCAN` (see [`RedisStore`]'s "Length").
    fn len(&self) -> usize {
        self.l2.len()
    }

    /// The local copies: Redis's count takes a `SCAN`.
    fn held(&self) -> usize {
        self.l1.len()
    }

    fn keys(&self) -> Vec<K> {
        self.l1.keys()
    }

    fn has_ttl(&self) -> bool {
        self.l1.has_ttl()
    }

    fn purge_expired(&self) -> usize {
        self.l1.purge_expired()
    }

    fn config(&self) -> Config {
        self.l1.config()
    }

    fn backend(&self) -> &'static str {
        "tiered"
    }

    /// Redis's count of this store's refused writes (see `RedisStore`'s): a refused value is
    /// neither kept here nor handed to the callers that joined its computation.
    fn changes_seen(&self) -> u64 {
        self.l2.changes_seen()
    }

    fn release_async(&self, lease: Lease) -> impl Future<Output = ()> + Send + '_ {
        self.l2.release_async(lease)
    }

    /// The claim reads Redis in its round trip, after a look at the local copies.
    fn claim_reads(&self) -> bool {
        true
    }

    fn counts(&self) -> Counts {
        let (l1, l2) = (self.l1.counts(), self.l2.counts());
        Counts {
            hits: l1.hits + self.l2_hits.load(Ordering::Relaxed),
            evicted: l1.evicted,
            expired: l1.expired,
            errors: l2.errors,
        }
    }

    fn skipped(&self) -> u64 {
        self.l2.skipped()
    }

    fn faults(&self) -> u64 {
        self.l2.faults()
    }
}

impl<K, V> std::fmt::Debug for TieredStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("remote", &self.l2)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::wait;
    use crate::redis::{RedisClient, RedisConfig};
    use crate::testing::RedisServer;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// Tests that hold a fill: each owns the values `slot * 1000 ..` and its slot of these.
    static ARMED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
    static REACHED: [AtomicBool; 8] = [const { AtomicBool::new(false) }; 8];
    static RELEASED: [AtomicBool; 8] = [const { AtomicBool::new(false) }; 8];

    /// A value whose decoding, once armed, waits for the test's release: a read of Redis held
    /// between its `GET` and the keeping of its copy.
    #[derive(Clone, Debug, PartialEq)]
    struct Held(u64);

    impl Serialize for Held {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_u64(self.0)
        }
    }

    impl<'de> serde::Deserialize<'de> for Held {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let value = u64::deserialize(deserializer)?;
            let slot = usize::try_from(value / 1000).unwrap();
            if ARMED[slot]
                .compare_exchange(value, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                REACHED[slot].store(true, Ordering::SeqCst);
                until("the test releases the read", || {
                    RELEASED[slot].load(Ordering::SeqCst)
                });
            }
            Ok(Held(value))
        }
    }

    /// Holds the next decoding of `value` until [`release`].
    fn arm(value: u64) {
        let slot = usize::try_from(value / 1000).unwrap();
        REACHED[slot].store(false, Ordering::SeqCst);
        RELEASED[slot].store(false, Ordering::SeqCst);
        ARMED[slot].store(value, Ordering::SeqCst);
    }

    /// Waits for a read to have fetched `value` from Redis and be held.
    fn reached(value: u64) {
        let slot = usize::try_from(value / 1000).unwrap();
        until("a read reaches the held value", || {
            REACHED[slot].load(Ordering::SeqCst)
        });
    }

    fn release(value: u64) {
        RELEASED[usize::try_from(value / 1000).unwrap()].store(true, Ordering::SeqCst);
    }

    /// Waits (up to 10 s) for `done`.
    fn until(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited for: {what}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn open<V>(server: &RedisServer, name: &str, config: &Config) -> TieredStore<u64, V>
    where
        V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        RedisOptions::new(name).client(client).open_tiered(config)
    }

    fn ten_minutes() -> Config {
        Config::new().maxsize(100).ttl(Duration::from_secs(600))
    }

    /// The local copy of `key`, if any.
    fn local<V>(store: &TieredStore<u64, V>, key: u64) -> Option<V>
    where
        V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        store.get_local(store.hash_of(&&key), &&key)
    }

    /// Makes sure `reader` hears `writer`'s announcements: `writer` removes a key `reader`
    /// holds until `reader` drops it.
    fn subscribed<V>(reader: &TieredStore<u64, V>, writer: &TieredStore<u64, V>, value: V)
    where
        V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        let probe = u64::MAX;
        reader.insert(probe, value);
        until("the reader's subscription hears the writer", || {
            writer.remove(&&probe);
            local(reader, probe).is_none()
        });
    }

    /// The ways a read of this process fills its copy from Redis.
    type Read = fn(&TieredStore<u64, Held>, u64) -> Option<Held>;

    fn reads() -> [(&'static str, Config, Read); 3] {
        let stale = ten_minutes().stale(Duration::from_secs(600));
        [
            ("get", ten_minutes(), |store, key| store.get(&&key)),
            ("get_async", ten_minutes(), |store, key| {
                wait(store.get_async(store.hash_of(&&key), &&key))
            }),
            ("get_renewing (stale)", stale, |store, key| {
                wait(store.get_renewing_async(store.hash_of(&&key), &key)).map(|found| found.0)
            }),
        ]
    }

    /// A read that fetched the value from Redis before a `remove` (here, or in another
    /// process) or a `clear` keeps no copy after it: no call after it returned gets the value.
    /// Before, the copy was kept and served for the ttl.
    #[test]
    fn a_read_that_fetched_before_a_removal_keeps_no_copy_after_it() {
        if !RedisServer::installed() {
            return;
        }
        let server = RedisServer::start();
        for (round, (read, config, call)) in reads().into_iter().enumerate() {
            let round = u64::try_from(round).unwrap();
            let store = open::<Held>(&server, &format!("fill-race-{round}"), &config);
            let other = open::<Held>(&server, &format!("fill-race-{round}"), &config);
            subscribed(&store, &other, Held(1999));
            let removals: [(&str, &dyn Fn(u64)); 4] = [
                ("remove", &|key| assert!(store.remove(&&key))),
                ("clear", &|_| store.clear()),
                ("another process's remove", &|key| {
                    assert!(other.remove(&&key));
                    // Its announcement is heard once a later one is.
                    subscribed(&store, &other, Held(1999));
                }),
                ("another process's clear", &|_| {
                    other.clear();
                    subscribed(&store, &other, Held(1999));
                }),
            ];
            for (key, (removal, remove)) in (0..).zip(removals) {
                let value = 1000 + round * 10 + key;
                store.remote().insert(key, Held(value));
                arm(value);
                std::thread::scope(|scope| {
                    let reader = scope.spawn(|| call(&store, key));
                    reached(value);
                    remove(key);
                    release(value);
                    // Its read came before the removal: it may return the value.
                    assert_eq!(reader.join().unwrap(), Some(Held(value)), "{read}");
                });
                assert_eq!(store.remote().peek(&&key), None, "{read}, {removal}");
                assert_eq!(local(&store, key), None, "{read}, {removal}: a copy");
                assert_eq!(call(&store, key), None, "{read}, {removal}: served");
            }
        }
    }

    /// A read of this process while an `invalidate` runs (its key's encoding, before the `DEL`,
    /// slowed on the invalidating thread to hold the moment open) leaves no copy after it
    /// returned. Before, the copy was dropped first and the read put the old value back.
    #[test]
    fn a_read_during_invalidate_keeps_no_copy_after_it() {
        use std::cell::Cell;
        thread_local! { static SLOW: Cell<bool> = const { Cell::new(false) }; }
        #[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Deserialize)]
        struct SlowKey(u64);
        impl Serialize for SlowKey {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if SLOW.with(Cell::get) {
                    std::thread::sleep(Duration::from_millis(30));
                }
                s.serialize_newtype_struct("SlowKey", &self.0)
            }
        }
        if !RedisServer::installed() {
            return;
        }
        let server = RedisServer::start();
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let cache: crate::TieredCache<SlowKey, u64> = crate::Cache::builder()
            .maxsize(100)
            .ttl(Duration::from_secs(600))
            .tiered_options(RedisOptions::new("slow-invalidate").client(client))
            .build();
        cache.insert(SlowKey(1), 1);
        assert_eq!(cache.get(&SlowKey(1)), Some(1));
        std::thread::scope(|scope| {
            let invalidating = scope.spawn(|| {
                SLOW.with(|slow| slow.set(true));
                cache.invalidate(&SlowKey(1))
            });
            std::thread::sleep(Duration::from_millis(10));
            let _ = cache.get(&SlowKey(1));
            assert!(invalidating.join().unwrap(), "a live entry was invalidated");
        });
        assert_eq!(cache.store().remote().peek(&&SlowKey(1)), None);
        assert_eq!(
            cache.get(&SlowKey(1)),
            None,
            "served after invalidate returned"
        );
    }

    /// A read that fetched an older value from Redis before this process wrote a new one does
    /// not replace the new one's copy. Before, it did, and the old value was served for the
    /// ttl.
    #[test]
    fn a_read_that_fetched_before_a_write_keeps_the_newer_copy() {
        if !RedisServer::installed() {
            return;
        }
        let server = RedisServer::start();
        for (round, (read, config, call)) in reads().into_iter().enumerate() {
            let round = u64::try_from(round).unwrap();
            let store = open::<Held>(&server, &format!("write-race-{round}"), &config);
            let (old, new) = (2000 + round * 10, 2000 + round * 10 + 5);
            store.remote().insert(1, Held(old));
            arm(old);
            std::thread::scope(|scope| {
                let reader = scope.spawn(|| call(&store, 1));
                reached(old);
                store.insert(1, Held(new));
                release(old);
                // Its read came before the write: it may return either value.
                let got = reader.join().unwrap();
                assert!(
                    [Some(Held(old)), Some(Held(new))].contains(&got),
                    "{read}: {got:?}"
                );
            });
            assert_eq!(store.remote().peek(&&1), Some(Held(new)), "{read}");
            assert_eq!(
                call(&store, 1),
                Some(Held(new)),
                "{read}: the older value served"
            );
        }
    }

    /// `clear` while readers fill copies in a loop: after it returns, no key is served.
    #[test]
    fn clear_racing_many_readers_leaves_no_copy() {
        if !RedisServer::installed() {
            return;
        }
        let server = RedisServer::start();
        let store = open::<u64>(&server, "clear-race", &ten_minutes());
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for reader in 0..4 {
                let (store, done) = (&store, &done);
                scope.spawn(move || {
                    while !done.load(Ordering::SeqCst) {
                        for key in 0..20 {
                            let _ = store.get(&&(key * 4 + reader));
                        }
                    }
                });
            }
            let kept = (0..50).find_map(|round| {
                for key in 0..80 {
                    store.remote().insert(key, round);
                }
                std::thread::sleep(Duration::from_millis(2));
                store.clear();
                let kept: Vec<u64> = (0..80).filter(|key| store.get(&key).is_some()).collect();
                (!kept.is_empty()).then_some((round, kept))
            });
            done.store(true, Ordering::SeqCst);
            assert_eq!(kept, None, "(round, keys served after clear() returned)");
        });
    }

    /// An async write dropped at its await leaves no copy that Redis may not hold: the next
    /// read here gets what Redis has. Before, the old copy stayed.
    #[test]
    fn a_cancelled_async_write_leaves_no_stale_copy() {
        if !RedisServer::installed() {
            return;
        }
        let server = RedisServer::start();
        let store = open::<u64>(&server, "cancelled-write", &ten_minutes());
        let mut cancelled = 0;
        for round in 0..20 {
            store.insert(1, round * 2);
            let mut write = Box::pin(store.insert_async(1, round * 2 + 1));
            let pending = write
                .as_mut()
                .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
                .is_pending();
            cancelled += u32::from(pending);
            drop(write);
            // A write Redis had taken may still land: the copy and Redis agree once it has (a
            // stale copy never does; it would be served for the ttl).
            std::thread::sleep(Duration::from_millis(50));
            until(&format!("round {round}: the copy as in Redis"), || {
                store.get(&&1) == store.remote().peek(&&1)
            });
        }
        assert!(cancelled >= 5, "only {cancelled} writes cancelled");
    }

    /// A read of a store of `u64` values that may copy one.
    type ReadCopy = fn(&TieredStore<u64, u64>) -> Option<u64>;

    /// A copy read from Redis goes when the entry does there, not a whole ttl after the read
    /// (the copies' clock is a mock; Redis's entry lives 2 s). Sync and async reads, a store
    /// with `ttl_from`, and a value found by a claim (which keeps no copy).
    #[test]
    fn a_copy_read_from_redis_does_not_outlive_the_entry() {
        if !RedisServer::installed() {
            return;
        }
        let server = RedisServer::start();
        let with_ttl_from = |name| {
            open::<u64>(&server, name, &ten_minutes()).ttl_from(|_| Some(Duration::from_secs(600)))
        };
        let reads: [(&str, TieredStore<u64, u64>, ReadCopy); 3] = [
            (
                "get",
                open(&server, "outlive-get", &ten_minutes()),
                |store| store.get(&&1),
            ),
            (
                "get_async",
                open(&server, "outlive-async", &ten_minutes()),
                |store| wait(store.get_async(store.hash_of(&&1), &&1)),
            ),
            (
                "get, ttl_from",
                with_ttl_from("outlive-ttl-from"),
                |store| store.get(&&1),
            ),
        ];
        for (read, store, call) in reads {
            let (clock, mock) = Clock::mock();
            store.set_clock(clock);
            store.remote().insert_with_ttl(1, 7, Duration::from_secs(2));
            assert_eq!(call(&store), Some(7), "{read}");
            assert_eq!(local(&store, 1), Some(7), "{read}: copied");
            mock.increment(Duration::from_millis(2100));
            assert_eq!(
                local(&store, 1),
                None,
                "{read}: the copy outlives the entry"
            );
        }
        let store = open::<u64>(&server, "outlive-claim", &ten_minutes());
        store.remote().insert(1, 7);
        let claim = wait(store.claim_async(store.hash_of(&&1), &1));
        assert!(matches!(claim, Claim::Found(7)));
        assert_eq!(local(&store, 1), None, "a claim's value is copied");
    }
}
