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
    #[must_use]
    pub const fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = Some(maxsize);
        self
    }

    /// Expires entries `ttl` after they are stored.
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Spreads each entry's time to live uniformly over `ttl × (1 ± fraction)`; the fraction is
    /// clamped to 0..=1.
    #[must_use]
    pub const fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Some(fraction.clamp(0.0, 1.0));
        self
    }

    /// Serves an entry up to `stale` past its time to live while one caller refreshes it.
    #[must_use]
    pub const fn stale(mut self, stale: Duration) -> Self {
        self.stale = Some(stale);
        self
    }

    /// Refreshes entries early (`XFetch` with this `β`; 1 is the usual choice).
    #[must_use]
    pub const fn refresh_early(mut self, beta: f64) -> Self {
        self.refresh_early = Some(beta);
        self
    }

    /// Whether entries are refreshed in the background (`stale` or early refresh).
    #[must_use]
    pub const fn renews(&self) -> bool {
        self.ttl.is_some() && (self.stale.is_some() || self.refresh_early.is_some())
    }
}
