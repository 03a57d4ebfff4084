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
/// use memo::Clock;
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
/// use memo::Clock;
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
    /// use memo::Clock;
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
    /// use memo::Clock;
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
    /// use memo::Clock;
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
    /// use memo::Clock;
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
    /// use memo::Clock;
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

/// Whether the real clock still reads before `deadline`.
///
/// Reading the real clock costs about 30 ns here, four times a hit; a hit on an entry with a time
/// to live asks only this. Where the kernel keeps a coarse monotonic clock (Linux), a deadline
/// more than [`COARSE_SLACK`] past it is ahead without a precise reading: the coarse clock is the
/// precise one as of the last timer tick, never ahead of it.
#[inline]
fn real_before(deadline: u64) -> bool {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    if coarse::since_origin().is_some_and(|coarse| deadline > coarse.saturating_add(COARSE_SLACK)) {
        return true;
    }
    real_now() < deadline
}

/// How far the coarse clock may lag the precise one for [`real_before`] to trust it. The kernel
/// moves it every tick (4 ms here, at most 10 ms with any usual setting); a second leaves room for
/// late ticks on a loaded or preempted machine. Entries within a second of their end, and caches
/// whose time to live is shorter, read the precise clock.
const COARSE_SLACK: u64 = 1_000_000_000;

/// Linux's coarse monotonic clock, read directly (std has no way to it): `CLOCK_MONOTONIC` as of
/// the last tick, at a quarter of its cost. `Instant` reads `CLOCK_MONOTONIC` itself on Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod coarse {
    use std::sync::LazyLock;

    #[repr(C)]
    struct Timespec {
        secs: i64,
        nanos: i64,
    }

    const CLOCK_MONOTONIC: i32 = 1;
    const CLOCK_MONOTONIC_COARSE: i32 = 6;

    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }

    fn read(clock: i32) -> Option<u64> {
        let mut time = Timespec { secs: 0, nanos: 0 };
        // SAFETY: `time` is a `struct timespec` (two 64-bit fields on 64-bit Linux), writable.
        let ok = unsafe { clock_gettime(clock, &raw mut time) } == 0;
        let secs = u64::try_from(time.secs).ok()?;
        let nanos = u64::try_from(time.nanos).ok()?;
        ok.then(|| secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// The process-wide origin in `CLOCK_MONOTONIC`'s terms, or a hair after it: the time since
    /// the origin is taken first, the clock read second, so coarse readings counted from here are
    /// never ahead of the precise ones (`real_now`).
    static ORIGIN: LazyLock<Option<u64>> = LazyLock::new(|| {
        let since = super::real_now();
        read(CLOCK_MONOTONIC).map(|now| now.saturating_sub(since))
    });

    /// The coarse clock in nanoseconds since the process-wide origin; `None` where it cannot be
    /// read.
    #[inline]
    pub(super) fn since_origin() -> Option<u64> {
        let origin = (*ORIGIN)?;
        Some(read(CLOCK_MONOTONIC_COARSE)?.saturating_sub(origin))
    }
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
    /// The current reading of this clock.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.mocked().unwrap_or_else(real_now)
    }

    /// Whether this clock still reads before `deadline`: the hit path's question, answered
    /// without the precise real clock far from the deadline ([`real_before`]).
    #[inline]
    pub(crate) fn before(&self, deadline: u64) -> bool {
        self.mocked()
            .map_or_else(|| real_before(deadline), |now| now < deadline)
    }

    /// The installed mock's reading; `None` for the real clock (always, without `test-util`).
    #[cfg(not(any(test, feature = "test-util")))]
    #[inline]
    #[allow(clippy::unused_self, reason = "the same call as with a mock")]
    fn mocked(&self) -> Option<u64> {
        None
    }

    #[cfg(any(test, feature = "test-util"))]
    #[inline]
    fn mocked(&self) -> Option<u64> {
        let mock = self.mock.load(Ordering::Acquire);
        // SAFETY: a non-null pointer comes from an `Arc` held in `installed` for as long as `self` lives.
        (!mock.is_null()).then(|| unsafe { &*mock }.load(Ordering::Acquire))
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

    /// The premise of `real_before`: the coarse clock is the precise one as of a recent tick,
    /// never ahead of it, and well within `COARSE_SLACK` behind.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn the_coarse_clock_trails_the_precise_one_closely() {
        for _ in 0..100_000 {
            let coarse = coarse::since_origin().expect("Linux has a coarse clock");
            let precise = real_now();
            assert!(coarse <= precise, "coarse {coarse} ahead of {precise}");
            assert!(
                precise - coarse < COARSE_SLACK,
                "coarse {coarse}, precise {precise}"
            );
        }
    }

    /// A deadline `nanos` ahead of the real clock, which `cell` finds still ahead. A check that
    /// the scheduler held past the deadline proves nothing, and is made again with a new one.
    fn ahead(cell: &ClockCell, nanos: u64) -> u64 {
        loop {
            let deadline = real_now() + nanos;
            let before = cell.before(deadline);
            if real_now() < deadline {
                assert!(before, "{nanos} ns ahead");
                return deadline;
            }
        }
    }

    #[test]
    fn a_deadline_is_before_until_the_real_clock_reaches_it() {
        let cell = ClockCell::default();
        let now = real_now();
        assert!(!cell.before(0));
        assert!(!cell.before(now));
        assert!(cell.before(now + 3_600_000_000_000), "an hour ahead");
        // Near the deadline the precise clock decides, on both sides of it.
        let soon = ahead(&cell, 20_000_000);
        std::thread::sleep(Duration::from_millis(25));
        assert!(!cell.before(soon));
        // Far from it the coarse clock may; once the deadline has passed, it does not.
        let later = ahead(&cell, COARSE_SLACK + 50_000_000);
        std::thread::sleep(Duration::from_nanos(COARSE_SLACK + 60_000_000));
        assert!(!cell.before(later));
        // A mock decides alone.
        let (clock, mock) = Clock::mock();
        cell.set(clock);
        let at = cell.now();
        assert!(cell.before(at + 1));
        mock.increment(Duration::from_nanos(1));
        assert!(!cell.before(at + 1));
    }
}
