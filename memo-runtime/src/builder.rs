//! [`Cache::builder`]: one way to make a cache object, in memory, on disk or in Redis.

use std::marker::PhantomData;
use std::time::Duration;

use crate::cache::Cache;
use crate::config::{Config, Policy};
use crate::store::listener::Listener;
#[cfg(feature = "disk")]
use crate::store::{DiskOptions, DiskStore};
use crate::store::{MemoryStore, RemovalCause, TtlFrom, Weigher};
#[cfg(feature = "redis")]
use crate::store::{RedisOptions, RedisStore, TieredStore};

/// A cache on disk, as [`CacheBuilder::disk`] builds it (feature `disk`).
#[cfg(feature = "disk")]
pub type DiskCache<K, V> = Cache<K, V, DiskStore<K, V>>;

/// A cache in Redis, as [`CacheBuilder::redis`] builds it (feature `redis`).
#[cfg(feature = "redis")]
pub type RedisCache<K, V> = Cache<K, V, RedisStore<K, V>>;

/// A cache in Redis with a copy of each entry in this process's memory, as
/// [`CacheBuilder::tiered`] builds it (feature `redis`; the attribute's `store = tiered`).
#[cfg(feature = "redis")]
pub type TieredCache<K, V> = Cache<K, V, TieredStore<K, V>>;

/// Where a tiered cache keeps its entries: in memory (bounded by `maxsize`) before Redis, as the
/// [`RedisOptions`] say; from [`CacheBuilder::tiered`] (feature `redis`).
#[cfg(feature = "redis")]
#[derive(Debug)]
pub struct Tiered(RedisOptions);

/// Settings of a [`Cache`] under construction, from [`Cache::builder`]: its bound, time to live
/// and policy, and where its entries live (`B`: `()` in memory, `DiskOptions` on disk,
/// `RedisOptions` in Redis).
///
/// # Examples
///
/// ```
/// use memo::{Cache, Policy};
/// use std::time::Duration;
///
/// let cache: Cache<String, u64> = Cache::builder()
///     .maxsize(10_000)
///     .ttl(Duration::from_secs(300))
///     .policy(Policy::Lru)
///     .build();
/// cache.insert("answer".to_string(), 42);
/// assert_eq!(cache.get("answer"), Some(42));
/// assert_eq!(cache.config().maxsize, Some(10_000));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct CacheBuilder<K, V, B = ()> {
    config: Config,
    backend: B,
    /// In memory: what weighs each entry, and what is told of each that leaves.
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    /// Each value's own time to live, in every store.
    ttl_from: Option<TtlFrom<V>>,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Cache<K, V> {
    /// A builder of a cache object: unbounded and never expiring in memory until told otherwise
    /// (moka's `Cache::builder()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder().maxsize(2).build();
    /// for n in 0..5 {
    ///     cache.insert(n, n * 10);
    /// }
    /// assert_eq!(cache.len(), 2); // held within `maxsize`
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder {
            config: Config::new(),
            backend: (),
            weigher: None,
            listener: None,
            ttl_from: None,
            types: PhantomData,
        }
    }
}

impl<K, V, B> CacheBuilder<K, V, B> {
    /// Holds at most `maxsize` entries at once (in memory and on disk; Redis bounds its memory
    /// itself, with `maxmemory`).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder().maxsize(100).build();
    /// assert_eq!(cache.config().maxsize, Some(100));
    /// ```
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.config.maxsize = Some(maxsize);
        self
    }

    /// Entries expire `ttl` after they are stored ([`Cache::insert_with_ttl`] sets one entry's).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache: memo::Cache<u32, u32> =
    ///     memo::Cache::builder().ttl(Duration::from_secs(60)).build();
    /// assert_eq!(cache.config().ttl, Some(Duration::from_secs(60)));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config = self.config.ttl(ttl);
        self
    }

    /// Entries expire `idle` after their last use, in place of a [`ttl`](Self::ttl): a hit
    /// renews the entry (at most once per sixteenth of `idle`), in memory, on disk and in Redis
    /// alike. moka's `time_to_idle`; the attribute's `#[cached(idle = …)]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let sessions: memo::Cache<u32, String> =
    ///     memo::Cache::builder().idle(Duration::from_secs(600)).build();
    /// sessions.insert(7, "ada".to_string());
    /// assert_eq!(sessions.config().idle, Some(Duration::from_secs(600)));
    /// ```
    pub fn idle(mut self, idle: Duration) -> Self {
        self.config = self.config.idle(idle);
        self
    }

    /// Gives each value the time to live `ttl_from` reads from it (an HTTP response's
    /// `max-age`, a token's expiry), in memory, on disk and in Redis alike; where it answers
    /// `None`, [`ttl`](Self::ttl) applies (and [`jitter`](Self::jitter) spreads that one only).
    /// Every insert reads it, a hit never does, and [`Cache::insert_with_ttl`] wins over it.
    /// A `fn` or a closure that captures nothing (it is kept as a function pointer): a value
    /// that needs more context carries it.
    ///
    /// moka calls this `expire_after` (its `Expiry`); the name here is the attribute's,
    /// `#[cached(ttl_from = …)]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[derive(Clone)]
    /// struct Token {
    ///     expires_in: Option<Duration>,
    /// }
    ///
    /// let cache: memo::Cache<u32, Token> = memo::Cache::builder()
    ///     .ttl(Duration::from_secs(3600)) // for tokens that do not say
    ///     .ttl_from(|token: &Token| token.expires_in)
    ///     .build();
    /// cache.insert(1, Token { expires_in: Some(Duration::from_secs(300)) });
    /// assert!(cache.get(&1).is_some());
    /// ```
    pub fn ttl_from(mut self, ttl_from: TtlFrom<V>) -> Self {
        self.ttl_from = Some(ttl_from);
        self
    }

    /// Spreads each entry's time to live by up to ± this fraction (clamped to 0..=1, as
    /// [`Config::jitter`] does), so that entries stored together do not expire together.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache: memo::Cache<u32, u32> =
    ///     memo::Cache::builder().ttl(Duration::from_secs(60)).jitter(0.1).build();
    /// assert_eq!(cache.config().jitter, Some(0.1));
    /// let wide: memo::Cache<u32, u32> = memo::Cache::builder().jitter(5.0).build();
    /// assert_eq!(wide.config().jitter, Some(1.0));
    /// ```
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.config = self.config.jitter(fraction);
        self
    }

    /// Which entries a full cache evicts (in memory; the disk store evicts the oldest).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Policy;
    ///
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder().policy(Policy::Lfu).build();
    /// assert_eq!(cache.config().policy, Policy::Lfu);
    /// ```
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Keeps the entries on disk (feature `disk`): in the store called `name`, shared by the
    /// programs of this user that name it, under the cache directory (see [`DiskOptions`]).
    /// Keys and values need serde.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let cache: memo::DiskCache<String, u64> = memo::Cache::builder()
    ///     .maxsize(10_000)
    ///     .disk("thumbnails") // in ~/.cache/memo/thumbnails on Linux
    ///     .build();
    /// cache.insert("answer".to_string(), 42);
    /// assert_eq!(cache.get("answer"), Some(42));
    /// ```
    #[cfg(feature = "disk")]
    pub fn disk(self, name: &str) -> CacheBuilder<K, V, DiskOptions> {
        self.disk_options(DiskOptions::new(name))
    }

    /// Keeps the entries on disk as `options` say (a directory of your own, the codec, …;
    /// feature `disk`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, DiskCache, DiskOptions};
    ///
    /// let dir = std::env::temp_dir().join(format!("memo-doc-builder-{}", std::process::id()));
    /// let cache: DiskCache<u32, String> = Cache::builder()
    ///     .disk_options(DiskOptions::new("doc").root(&dir))
    ///     .build();
    /// cache.insert(1, "one".to_string());
    /// assert_eq!(cache.get(&1).as_deref(), Some("one"));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// ```
    #[cfg(feature = "disk")]
    pub fn disk_options(self, options: DiskOptions) -> CacheBuilder<K, V, DiskOptions> {
        self.keeping_in(options)
    }

    /// Keeps the entries in Redis (feature `redis`), in the namespace `name`, on the server of
    /// `MEMO_REDIS_URL` (then `REDIS_URL`, then `redis://127.0.0.1:6379`). Keys and values need
    /// serde; `maxsize` does not apply.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let cache: memo::RedisCache<String, u64> = memo::Cache::builder()
    ///     .ttl(std::time::Duration::from_secs(300))
    ///     .redis("sessions")
    ///     .build();
    /// cache.insert("answer".to_string(), 42);
    /// assert_eq!(cache.get("answer"), Some(42));
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(self, name: &str) -> CacheBuilder<K, V, RedisOptions> {
        self.redis_options(RedisOptions::new(name))
    }

    /// Keeps the entries in Redis as `options` say (a client of your own, a key prefix, …;
    /// feature `redis`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::redis::{RedisClient, RedisConfig};
    /// use memo::testing::RedisServer;
    /// use memo::{Cache, RedisCache, RedisOptions};
    ///
    /// # if !RedisServer::installed() { return; }
    /// let server = RedisServer::start(); // a private `redis-server`, stopped on drop
    /// let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    /// let cache: RedisCache<String, u64> = Cache::builder()
    ///     .redis_options(RedisOptions::new("doc").client(client))
    ///     .build();
    /// cache.insert("answer".to_string(), 42);
    /// assert_eq!(cache.get("answer"), Some(42));
    /// assert_eq!(cache.len(), 1); // counted with SCAN
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis_options(self, options: RedisOptions) -> CacheBuilder<K, V, RedisOptions> {
        self.keeping_in(options)
    }

    /// Keeps the entries in Redis as [`redis`](Self::redis) does, and a copy of each in this
    /// process's memory, at most `maxsize` of them: a hit on a copy is a hit without a round trip,
    /// and a new value or an invalidation anywhere drops the other processes' copies (feature
    /// `redis`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let cache: memo::TieredCache<String, u64> = memo::Cache::builder()
    ///     .maxsize(1_000) // copies kept in this process
    ///     .ttl(std::time::Duration::from_secs(300))
    ///     .tiered("sessions")
    ///     .build();
    /// cache.insert("answer".to_string(), 42);
    /// assert_eq!(cache.get("answer"), Some(42)); // from the copy
    /// ```
    #[cfg(feature = "redis")]
    pub fn tiered(self, name: &str) -> CacheBuilder<K, V, Tiered> {
        self.tiered_options(RedisOptions::new(name))
    }

    /// [`tiered`](Self::tiered), in Redis as `options` say (a client of your own, a key prefix,
    /// …; feature `redis`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::redis::{RedisClient, RedisConfig};
    /// use memo::testing::RedisServer;
    /// use memo::{Cache, RedisOptions, TieredCache};
    ///
    /// # if !RedisServer::installed() { return; }
    /// let server = RedisServer::start(); // a private `redis-server`, stopped on drop
    /// let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    /// let cache: TieredCache<String, u64> = Cache::builder()
    ///     .maxsize(100)
    ///     .tiered_options(RedisOptions::new("doc").client(client))
    ///     .build();
    /// cache.insert("answer".to_string(), 42);
    /// assert_eq!(cache.get("answer"), Some(42));
    /// assert_eq!(cache.backend(), "tiered");
    /// ```
    #[cfg(feature = "redis")]
    pub fn tiered_options(self, options: RedisOptions) -> CacheBuilder<K, V, Tiered> {
        self.keeping_in(Tiered(options))
    }

    /// The same settings, the entries kept in `backend`.
    #[cfg(any(feature = "disk", feature = "redis"))]
    fn keeping_in<C>(self, backend: C) -> CacheBuilder<K, V, C> {
        CacheBuilder {
            config: self.config,
            backend,
            weigher: None,
            listener: None,
            ttl_from: self.ttl_from,
            types: PhantomData,
        }
    }
}

impl<K, V> CacheBuilder<K, V> {
    /// Keeps the total weight of the entries at most `max_weight`, as weighed by
    /// [`weigher`](Self::weigher) (moka's `max_capacity` with a `weigher`); each needs the other.
    /// See [`MemoryStore::weigher`] for how the bound is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<u32, String> = memo::Cache::builder()
    ///     .max_weight(10)
    ///     .weigher(|_key, text: &String| text.len() as u64)
    ///     .build();
    /// cache.insert(1, "abcd".to_string());
    /// cache.insert(2, "efgh".to_string());
    /// cache.insert(3, "ijkl".to_string()); // 12 > 10: one leaves
    /// assert!(cache.weight().unwrap() <= 10);
    /// ```
    pub fn max_weight(mut self, max_weight: u64) -> Self {
        self.config.max_weight = Some(max_weight);
        self
    }

    /// Weighs each entry (bytes, usually) for [`max_weight`](Self::max_weight) and
    /// [`Cache::weight`]: quick, and the same answer for the same entry every time. A `fn` or a
    /// closure that captures nothing (it is kept as a function pointer, which a hit never calls).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<u32, String> =
    ///     memo::Cache::builder().weigher(|_key, text: &String| text.len() as u64).build();
    /// cache.insert(1, "tea".to_string());
    /// assert_eq!(cache.weight(), Some(3));
    /// ```
    pub fn weigher(mut self, weigher: Weigher<K, V>) -> Self {
        self.weigher = Some(weigher);
        self
    }

    /// Calls `listener` with every entry that leaves, and why (moka's `eviction_listener`): see
    /// [`MemoryStore::eviction_listener`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::RemovalCause;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let evicted = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&evicted);
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder()
    ///     .maxsize(1)
    ///     .eviction_listener(move |_key, _value, cause| {
    ///         if cause == RemovalCause::Evicted {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build();
    /// cache.insert(1, 10);
    /// cache.insert(2, 20);
    /// assert_eq!(evicted.load(Ordering::Relaxed), 1);
    /// ```
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// The in-memory cache.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: memo::Cache<u32, u32> = memo::Cache::builder().build();
    /// assert_eq!(cache.backend(), "memory");
    /// ```
    #[must_use]
    pub fn build(self) -> Cache<K, V> {
        if self.weigher.is_none() && self.listener.is_none() && self.ttl_from.is_none() {
            return Cache::new(self.config);
        }
        let mut store = MemoryStore::new(&self.config);
        if let Some(ttl_from) = self.ttl_from {
            store = store.ttl_from(ttl_from);
        }
        if let Some(weigher) = self.weigher {
            store = store.weigher(weigher);
        }
        if let Some(listener) = self.listener {
            store = store.listening(listener);
        }
        Cache::from_parts(store, Some(&self.config), "")
    }
}

#[cfg(feature = "disk")]
impl<K, V> CacheBuilder<K, V, DiskOptions>
where
    K: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
{
    /// The disk cache. It never fails: a directory that cannot be used (or is refused, being
    /// writable by another user) leaves a cache in memory only, with the error counted in
    /// `stats().backend_errors` and logged once ([`DiskStore::is_persistent`] tells).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("memo-doc-build-{}", std::process::id()));
    /// let cache: memo::DiskCache<u32, u32> = memo::Cache::builder()
    ///     .disk_options(memo::DiskOptions::new("doc").root(&dir))
    ///     .build();
    /// assert!(cache.store().is_persistent());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// ```
    #[must_use]
    pub fn build(self) -> DiskCache<K, V> {
        let store = self.backend.open(&self.config);
        Cache::with_store(match self.ttl_from {
            Some(ttl_from) => store.ttl_from(ttl_from),
            None => store,
        })
    }
}

#[cfg(feature = "redis")]
impl<K, V> CacheBuilder<K, V, RedisOptions>
where
    K: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
{
    /// The Redis cache. It never fails: a server that cannot be reached makes every lookup a
    /// miss (counted in `stats().backend_errors`) until it can.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let cache: memo::RedisCache<u32, u32> = memo::Cache::builder().redis("doc").build();
    /// assert_eq!(cache.backend(), "redis");
    /// ```
    #[must_use]
    pub fn build(self) -> RedisCache<K, V> {
        let store = self.backend.open(&self.config);
        Cache::with_store(match self.ttl_from {
            Some(ttl_from) => store.ttl_from(ttl_from),
            None => store,
        })
    }
}

#[cfg(feature = "redis")]
impl<K, V> CacheBuilder<K, V, Tiered>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + serde::de::DeserializeOwned + 'static,
    V: Clone + Send + Sync + serde::de::DeserializeOwned + 'static,
{
    /// The tiered cache. It never fails: while Redis cannot be reached, the copies in memory
    /// still answer, and the misses are counted in `stats().backend_errors`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let cache: memo::TieredCache<u32, u32> = memo::Cache::builder().tiered("doc").build();
    /// assert_eq!(cache.backend(), "tiered");
    /// ```
    #[must_use]
    pub fn build(self) -> TieredCache<K, V> {
        let store = self.backend.0.open_tiered(&self.config);
        Cache::with_store(match self.ttl_from {
            Some(ttl_from) => store.ttl_from(ttl_from),
            None => store,
        })
    }
}

impl<K, V, B: std::fmt::Debug> std::fmt::Debug for CacheBuilder<K, V, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("config", &self.config)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}
