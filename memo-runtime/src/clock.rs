//! Time as the caches see it: the real monotonic clock, or a mock that tests advance by hand.
//!
//! Every expiry decision reads time through a [`Clock`], so a test can expire entries by calling
//! `MockClock::increment` instead of sleeping. The mock is compiled in only with the `test-util`
//! feature: without it, a cache reads the real clock directly, with no check for a mock.

#[cfg(any(test, feature = "test-util"))]
use std::ptr;
use std::sync::LazyLock;
#[cfg(any(test, feature = "test-util"))]
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
#[cfg(any(test, feature = "test-util"))]
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The source of "now" for a cache.
///
/// Time is counted in nanoseconds from a process-wide origin, which keeps expiry stamps in a `u64`.
///
/// # Examples
///
/// With the `test-util` feature:
///
/// ```
/// # #[cfg(feature = "test-util")] {
/// use memo_runtime::Clock;
/// use std::time::Duration;
///
/// let (clock, mock) = Clock::mock();
/// let start = clock.now();
/// mock.increment(Duration::from_secs(5));
/// assert_eq!(clock.now() - start, Duration::from_secs(5).as_nanos() as u64);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Clock {
    #[cfg(any(test, feature = "test-util"))]
    mock: Option<Arc<AtomicU64>>,
}

/// The hand that moves a mock [`Clock`]; see [`Clock::mock`].
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "test-util")] {
/// use memo_runtime::Clock;
/// use std::time::Duration;
///
/// let (clock, mock) = Clock::mock();
/// let hand = mock.clone(); // every clone moves the same clock
/// let start = clock.now();
/// hand.increment(Duration::from_millis(1));
/// mock.increment(Duration::from_millis(1));
/// assert_eq!(clock.now() - start, 2_000_000);
/// # }
/// ```
#[cfg(any(test, feature = "test-util"))]
#[derive(Clone, Debug)]
pub struct MockClock {
    nanos: Arc<AtomicU64>,
}

static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Clock {
    /// The real monotonic clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Clock;
    ///
    /// let clock = Clock::real();
    /// let before = clock.now();
    /// assert!(clock.now() >= before); // never goes back
    /// ```
    #[must_use]
    pub fn real() -> Self {
        Self::default()
    }

    /// A clock that stands still until the returned [`MockClock`] moves it (feature `test-util`).
    ///
    /// It starts at the real clock's current reading, so stamps taken before and after
    /// switching a cache to it stay comparable.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "test-util")] {
    /// use memo_runtime::Clock;
    /// use std::time::Duration;
    ///
    /// let (clock, mock) = Clock::mock();
    /// let start = clock.now();
    /// assert_eq!(clock.now(), start); // stands still
    /// mock.increment(Duration::from_secs(1));
    /// assert_eq!(clock.now(), start + 1_000_000_000);
    /// # }
    /// ```
    #[cfg(any(test, feature = "test-util"))]
    #[must_use]
    pub fn mock() -> (Self, MockClock) {
        let nanos = Arc::new(AtomicU64::new(real_now()));
        (
            Self {
                mock: Some(Arc::clone(&nanos)),
            },
            MockClock { nanos },
        )
    }

    /// Nanoseconds since the process-wide origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Clock;
    ///
    /// let a = Clock::real().now();
    /// let b = Clock::real().now(); // every real clock counts from the same origin
    /// assert!(b >= a);
    /// ```
    #[inline]
    #[must_use]
    pub fn now(&self) -> u64 {
        #[cfg(any(test, feature = "test-util"))]
        if let Some(nanos) = &self.mock {
            return nanos.load(Ordering::Acquire);
        }
        real_now()
    }

    /// The reading `after` from now, saturating instead of overflowing.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::Clock;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Clock::real().deadline(Duration::MAX), u64::MAX); // saturates
    /// # #[cfg(feature = "test-util")] {
    /// let (clock, _mock) = Clock::mock(); // feature `test-util`: stands still
    /// assert_eq!(clock.deadline(Duration::from_secs(2)), clock.now() + 2_000_000_000);
    /// # }
    /// ```
    #[must_use]
    pub fn deadline(&self, after: Duration) -> u64 {
        self.now().saturating_add(duration_nanos(after))
    }
}

#[cfg(any(test, feature = "test-util"))]
impl MockClock {
    /// Moves the mock clock forward.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "test-util")] {
    /// use memo_runtime::Clock;
    /// use std::time::Duration;
    ///
    /// let (clock, mock) = Clock::mock();
    /// let start = clock.now();
    /// mock.increment(Duration::from_millis(250));
    /// mock.increment(Duration::from_millis(250));
    /// assert_eq!(clock.now() - start, 500_000_000);
    /// # }
    /// ```
    pub fn increment(&self, by: Duration) {
        self.nanos.fetch_add(duration_nanos(by), Ordering::AcqRel);
    }
}

fn real_now() -> u64 {
    // Saturate after ~584 years of uptime rather than wrap.
    u64::try_from(ORIGIN.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A cache's clock, switchable to a mock while the cache is in use (feature `test-util`).
///
/// Reading it is one atomic load plus the clock itself, so the hit path stays cheap; without the
/// feature, it is the real clock alone.
#[derive(Debug, Default)]
pub(crate) struct ClockCell {
    #[cfg(any(test, feature = "test-util"))]
    mock: AtomicPtr<AtomicU64>,
    /// Keeps every mock that was ever installed alive, so `mock` never dangles.
    #[cfg(any(test, feature = "test-util"))]
    installed: Mutex<Vec<Arc<AtomicU64>>>,
}

impl ClockCell {
    #[cfg(not(any(test, feature = "test-util")))]
    #[inline]
    #[allow(clippy::unused_self, reason = "the same call as with a mock")]
    pub(crate) fn now(&self) -> u64 {
        real_now()
    }

    #[cfg(any(test, feature = "test-util"))]
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        let mock = self.mock.load(Ordering::Acquire);
        if mock.is_null() {
            real_now()
        } else {
            // SAFETY: a non-null pointer comes from an `Arc` held in `installed` for as long as `self` lives.
            unsafe { &*mock }.load(Ordering::Acquire)
        }
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn set(&self, clock: Clock) {
        let ptr = match clock.mock {
            None => ptr::null_mut(),
            Some(nanos) => {
                let ptr = Arc::as_ptr(&nanos).cast_mut();
                self.installed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(nanos);
                ptr
            }
        };
        self.mock.store(ptr, Ordering::Release);
    }
}

pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch at `now` (a reading of a [`Clock`]): the wall time that
/// stores shared with other processes stamp expiry in. A mock clock moves it too.
#[cfg(feature = "disk")]
pub(crate) fn unix_millis(now: u64) -> u64 {
    static UNIX_AT_ORIGIN: LazyLock<u64> = LazyLock::new(|| {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, duration_nanos);
        since_epoch.saturating_sub(real_now())
    });
    UNIX_AT_ORIGIN.saturating_add(now) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_clock_moves_forward() {
        let clock = Clock::real();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }

    #[test]
    fn mock_clock_only_moves_when_told() {
        let (clock, mock) = Clock::mock();
        let a = clock.now();
        assert_eq!(clock.now(), a);
        mock.increment(Duration::from_millis(1500));
        assert_eq!(clock.now(), a + 1_500_000_000);
        assert_eq!(clock.deadline(Duration::MAX), u64::MAX);
    }

    #[test]
    fn clock_cell_switches_between_real_and_mock() {
        let cell = ClockCell::default();
        let (clock, mock) = Clock::mock();
        cell.set(clock);
        let a = cell.now();
        mock.increment(Duration::from_secs(1));
        assert_eq!(cell.now(), a + 1_000_000_000);
        cell.set(Clock::real());
        let before = real_now();
        assert!(cell.now() >= before);
    }
}
