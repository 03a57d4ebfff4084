//! How a cache is bounded and expired: what `#[cached(maxsize = …, ttl = …)]` turns into.

use std::time::Duration;

/// The settings of a cache.
///
/// # Examples
///
/// ```
/// use memo_runtime::Config;
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
    /// Spreads each entry's time to live by up to ± this fraction (0 to 1), so that entries
    /// stored together do not all expire together.
    pub jitter: Option<f64>,
    /// How long past its time to live an entry may still be served while one caller refreshes it
    /// in the background; `None` for not at all.
    pub stale: Option<Duration>,
    /// `β` of early refresh (`XFetch`): entries are refreshed in the background shortly before
    /// they expire; `None` for no early refresh.
    pub refresh_early: Option<f64>,
}

impl Config {
    /// Unbounded, never expiring.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Config;
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
            jitter: None,
            stale: None,
            refresh_early: None,
        }
    }

    /// Bounds the cache to `maxsize` entries.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Config;
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
    /// use memo_runtime::Config;
    /// use std::time::Duration;
    ///
    /// let config = Config::new().ttl(Duration::from_secs(30));
    /// assert_eq!(config.ttl, Some(Duration::from_secs(30)));
    /// ```
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Spreads each entry's time to live uniformly over `ttl × (1 ± fraction)`; the fraction is
    /// clamped to 0..=1.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Config;
    /// use std::time::Duration;
    ///
    /// let config = Config::new().ttl(Duration::from_secs(60)).jitter(0.1); // 54 s to 66 s
    /// assert_eq!(config.jitter, Some(0.1));
    /// assert_eq!(Config::new().jitter(1.5).jitter, Some(1.0)); // clamped
    /// ```
    #[must_use]
    pub const fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Some(fraction.clamp(0.0, 1.0));
        self
    }

    /// Serves an entry up to `stale` past its time to live while one caller refreshes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Config;
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
    /// use memo_runtime::Config;
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
    /// use memo_runtime::Config;
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
