//! How a cache is bounded and expired: what `#[cached(maxsize = …, ttl = …)]` turns into.

use std::time::Duration;

/// The settings of a cache.
///
/// # Examples
///
/// ```
/// use memo::Config;
/// use std::time::Duration;
///
/// let config = Config::new().maxsize(10_000).ttl(Duration::from_secs(300));
/// assert_eq!(config.maxsize, Some(10_000));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The most entries held at once; `None` for no bound. `Some(0)` caches nothing.
    pub maxsize: Option<usize>,
    /// How long an entry stays valid after it is stored; `None` for ever.
    pub ttl: Option<Duration>,
    /// How long an entry stays valid after its last use (time to idle): every hit renews it, so
    /// an entry lives while it is used; `None` for no such bound. It takes the place of `ttl`
    /// (setting one clears the other).
    pub idle: Option<Duration>,
    /// Spreads each entry's time to live by up to ± this fraction (0 to 1), so that entries
    /// stored together do not all expire together.
    pub jitter: Option<f64>,
    /// How long past its time to live an entry may still be served while one caller refreshes it
    /// in the background; `None` for not at all.
    pub stale: Option<Duration>,
    /// `β` of early refresh (`XFetch`): entries are refreshed in the background shortly before
    /// they expire; `None` for no early refresh.
    pub refresh_early: Option<f64>,
    /// Which entries leave first when the cache is full.
    pub policy: Policy,
    /// The most total weight held at once, as weighed by the store's weigher
    /// ([`MemoryStore::weigher`](crate::MemoryStore::weigher)); ignored without one.
    pub max_weight: Option<u64>,
}

/// Which entries a full cache evicts (and which new keys it keeps at all).
///
/// Every policy keeps `len() <= maxsize` at every instant, removes expired entries before live
/// ones, and lets a hit write nothing shared: a hit at most raises the entry's own use count, and
/// only while it is below the policy's cap, so a warm entry's cache line stays shared between
/// readers. `benches/hitratio.rs` measures them against moka, `quick_cache`, `lru` and the optimum.
///
/// # Examples
///
/// ```
/// use memo::{Config, Policy};
///
/// let config = Config::new().maxsize(1_000).policy(Policy::Lru);
/// assert_eq!(config.policy, Policy::Lru);
/// assert_eq!(Config::new().policy, Policy::Auto);
/// assert_eq!("lfu".parse(), Ok(Policy::Lfu));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// The default, and the best hit ratio across the traces measured: S3-FIFO (Yang et al.,
    /// SOSP '23) with a `TinyLFU` door on its main queue. New keys enter a small FIFO queue (3 %,
    /// widened where a wider one pays, as when the popular keys keep changing: by hill climbing
    /// on the hit ratio, or from 4,000 entries by shadow caches of sampled keys); those used
    /// again while there move to the main queue (CLOCK, up to 3 banked uses), the others leave
    /// and are remembered in a ghost, whose window (how long ago a key may have left and still
    /// count as returning) adapts as ARC sizes its lists. A returning key enters main
    /// in place of an entry without uses, main's or the small queue's oldest, and only if a
    /// frequency sketch says it is asked for more often than main's (or, once the small queue has
    /// widened past half the store, where recency pays, whatever the sketch says); otherwise it
    /// is not stored this time (and remembered afresh). The ghost also remembers, further back,
    /// which keys came back before: such a key, asked for again at intervals too long for the
    /// ghost, takes the place of the main entry under the hand if that one is unused. One-hit wonders and scans
    /// pass through the small queue without disturbing main, and a loop over more keys than the
    /// cache holds keeps a fixed part of itself cached, near the optimum, instead of churning (as
    /// LRU does, to no hits at all).
    #[default]
    Auto,
    /// Least recently used, approximated by CLOCK (second chance): each entry has a reference
    /// bit, set by a hit; eviction goes round the entries in insertion order, clearing set bits
    /// and evicting the first entry whose bit is clear. Exact LRU would relink a list on every
    /// hit, a shared write; CLOCK is the usual concurrent stand-in and evicts nearly the same
    /// entries.
    Lru,
    /// Least frequently used: each entry counts its hits (up to 127); eviction takes the least
    /// used of the 8 oldest entries (the others go round again). Counts are halved every
    /// 10 × `maxsize` insertions, so that once-popular keys age out.
    Lfu,
    /// First in, first out: the oldest entry leaves, whatever its hits (which write nothing).
    Fifo,
}

impl Policy {
    /// The name used by `#[cached(policy = "…")]`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Lru => "lru",
            Self::Lfu => "lfu",
            Self::Fifo => "fifo",
        }
    }
}

/// A policy name that is not one of `auto`, `lru`, `lfu`, `fifo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy;

impl std::fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unknown policy; expected one of `auto`, `lru`, `lfu`, `fifo`")
    }
}

impl std::error::Error for UnknownPolicy {}

impl std::str::FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(name: &str) -> Result<Self, UnknownPolicy> {
        match name {
            "auto" => Ok(Self::Auto),
            "lru" => Ok(Self::Lru),
            "lfu" => Ok(Self::Lfu),
            "fifo" => Ok(Self::Fifo),
            _ => Err(UnknownPolicy),
        }
    }
}

impl Config {
    /// Unbounded, never expiring.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Config;
    ///
    /// const CONFIG: Config = Config::new(); // usable in a `const` or `static`
    /// assert_eq!((CONFIG.maxsize, CONFIG.ttl), (None, None));
    /// assert_eq!(CONFIG, Config::default());
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self {
            maxsize: None,
            ttl: None,
            idle: None,
            jitter: None,
            stale: None,
            refresh_early: None,
            policy: Policy::Auto,
            max_weight: None,
        }
    }

    /// Bounds the total weight of the entries to `max_weight`, in the unit of the store's weigher
    /// (bytes, usually); see [`MemoryStore::weigher`](crate::MemoryStore::weigher).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Cache, Config, MemoryStore};
    ///
    /// let config = Config::new().max_weight(1 << 20); // 1 MiB of values
    /// let store = MemoryStore::new(&config).weigher(|_: &u32, page: &Vec<u8>| page.len() as u64);
    /// let cache = Cache::with_store(store);
    /// cache.insert(1, vec![0; 4096]);
    /// assert_eq!(cache.weight(), Some(4096));
    /// ```
    #[must_use]
    pub const fn max_weight(mut self, max_weight: u64) -> Self {
        self.max_weight = Some(max_weight);
        self
    }

    /// Evicts by `policy` when the cache is full.
    #[must_use]
    pub const fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Bounds the cache to `maxsize` entries.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Config;
    ///
    /// assert_eq!(Config::new().maxsize(1_000).maxsize, Some(1_000));
    /// ```
    #[must_use]
    pub const fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = Some(maxsize);
        self
    }

    /// Expires entries `ttl` after they are stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Config;
    /// use std::time::Duration;
    ///
    /// let config = Config::new().ttl(Duration::from_secs(30));
    /// assert_eq!(config.ttl, Some(Duration::from_secs(30)));
    /// ```
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self.idle = None;
        self
    }

    /// Expires entries `idle` after their last use: a hit renews the entry (at most once per
    /// sixteenth of `idle`, so that a hot key does not write on every hit), as moka's
    /// `time_to_idle` and Caffeine's `expireAfterAccess`. It takes the place of a `ttl`. An
    /// entry given a time to live of its own (`insert_with_ttl`, `ttl_from`) keeps it: a hit
    /// does not renew it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Config;
    /// use std::time::Duration;
    ///
    /// let config = Config::new().idle(Duration::from_secs(600));
    /// assert_eq!((config.idle, config.ttl), (Some(Duration::from_secs(600)), None));
    /// ```
    #[must_use]
    pub const fn idle(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self.ttl = None;
        self
    }

    /// How long an entry lives after it is stored (or last used, with [`idle`](Self::idle)).
    #[must_use]
    pub(crate) fn lifetime(&self) -> Option<Duration> {
        self.ttl.or(self.idle)
    }

    /// Spreads each entry's time to live uniformly over `ttl × (1 ± fraction)`; the fraction is
    /// clamped to 0..=1 (NaN is no jitter).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Config;
    /// use std::time::Duration;
    ///
    /// let config = Config::new().ttl(Duration::from_secs(60)).jitter(0.1); // 54 s to 66 s
    /// assert_eq!(config.jitter, Some(0.1));
    /// assert_eq!(Config::new().jitter(1.5).jitter, Some(1.0)); // clamped
    /// assert_eq!(Config::new().jitter(f64::NAN).jitter, None);
    /// ```
    #[must_use]
    pub const fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            None
        } else {
            Some(fraction.clamp(0.0, 1.0))
        };
        self
    }

    /// Serves an entry up to `stale` past its time to live while one caller refreshes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Config;
    /// use std::time::Duration;
    ///
    /// let config = Config::new().ttl(Duration::from_secs(60)).stale(Duration::from_secs(30));
    /// assert_eq!(config.stale, Some(Duration::from_secs(30)));
    /// assert!(config.renews());
    /// ```
    #[must_use]
    pub const fn stale(mut self, stale: Duration) -> Self {
        self.stale = Some(stale);
        self
    }

    /// Refreshes entries early (`XFetch` with this `β`; 1 is the usual choice).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Config;
    /// use std::time::Duration;
    ///
    /// let config = Config::new().ttl(Duration::from_secs(60)).refresh_early(1.0);
    /// assert_eq!(config.refresh_early, Some(1.0));
    /// assert!(config.renews());
    /// ```
    #[must_use]
    pub const fn refresh_early(mut self, beta: f64) -> Self {
        self.refresh_early = Some(beta);
        self
    }

    /// Whether entries are refreshed in the background (`stale` or early refresh).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::Config;
    /// use std::time::Duration;
    ///
    /// let minute = Duration::from_secs(60);
    /// assert!(Config::new().ttl(minute).stale(minute).renews());
    /// assert!(!Config::new().ttl(minute).renews()); // expires, and is computed again on a call
    /// assert!(!Config::new().stale(minute).renews()); // never expires: nothing to renew
    /// ```
    #[must_use]
    pub const fn renews(&self) -> bool {
        self.ttl.is_some() && (self.stale.is_some() || self.refresh_early.is_some())
    }
}
