//! A circuit breaker: after repeated failures a remote store is left alone for a back-off, so a
//! dead server costs the memoized function nothing instead of a timeout per call.
//!
//! Closed (calls go through) → `threshold` consecutive failures → open (calls fail at once) for
//! `base`, doubling on every failed probe up to `cap` → half-open (one probe goes through; its
//! success closes the breaker). The cap is short (1 s by default): a probe costs one request, and
//! a server that comes back is used again within about a second, not after a back-off that grew
//! during a long outage. Nothing here is Redis-specific: any store with a failure mode can own one.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// When a [`Breaker`] opens and how long it stays open.
///
/// # Examples
///
/// ```
/// use memo::redis::BreakerConfig;
/// use std::time::Duration;
///
/// let config = BreakerConfig { threshold: 3, ..BreakerConfig::default() };
/// assert_eq!(config.cap, Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub threshold: u32,
    /// The first back-off.
    pub base: Duration,
    /// The longest back-off.
    pub cap: Duration,
    /// At most one log line per this interval.
    pub log_interval: Duration,
}

impl Default for BreakerConfig {
    /// 5 failures; 250 ms back-off doubling to 1 s; a log line at most every 10 s.
    fn default() -> Self {
        Self {
            threshold: 5,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(1),
            log_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, backoff: Duration },
    HalfOpen { since: Instant, backoff: Duration },
}

/// What [`Breaker::permit`] lets a call do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Closed: go ahead.
    Go,
    /// The one probe of a half-open breaker: go ahead, on a fresh connection (whatever error the
    /// old one remembers is stale).
    Probe,
    /// Open: fail fast.
    Refused,
}

/// A circuit breaker with error counters and a rate-limited log.
///
/// # Examples
///
/// ```
/// use memo::redis::{Breaker, BreakerConfig};
///
/// let breaker = Breaker::new("example", BreakerConfig { threshold: 2, ..BreakerConfig::default() });
/// assert!(breaker.allow());
/// breaker.failure(&"connection refused");
/// breaker.failure(&"connection refused");
/// assert!(!breaker.allow()); // open: fail fast
/// assert_eq!((breaker.errors(), breaker.rejected()), (2, 1));
/// ```
#[derive(Debug)]
pub struct Breaker {
    name: String,
    config: BreakerConfig,
    state: Mutex<State>,
    errors: AtomicU64,
    rejected: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

impl Breaker {
    /// A closed breaker; `name` prefixes its log lines.
    #[must_use]
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self {
            name: name.into(),
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            errors: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_log: Mutex::new(None),
        }
    }

    /// Whether a call may go out now. `false` means fail fast: the call is counted as rejected.
    /// When the back-off has passed, one caller gets `true` as the probe; the others keep failing
    /// fast until it reports.
    pub fn allow(&self) -> bool {
        self.permit() != Permit::Refused
    }

    /// [`allow`](Self::allow), telling a probe apart.
    pub(crate) fn permit(&self) -> Permit {
        let mut state = self.state.lock();
        let now = Instant::now();
        let permit = match *state {
            State::Closed { .. } => Permit::Go,
            State::Open { until, backoff } if now >= until => {
                *state = State::HalfOpen {
                    since: now,
                    backoff,
                };
                Permit::Probe
            }
            // A probe that never reported (its caller panicked): let another one try.
            State::HalfOpen { since, backoff } if now.duration_since(since) >= self.config.cap => {
                *state = State::HalfOpen {
                    since: now,
                    backoff,
                };
                Permit::Probe
            }
            State::Open { .. } | State::HalfOpen { .. } => Permit::Refused,
        };
        drop(state);
        if permit == Permit::Refused {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        permit
    }

    /// The call that [`allow`](Self::allow) let through succeeded: the breaker closes.
    pub fn success(&self) {
        let mut state = self.state.lock();
        if !matches!(*state, State::Closed { failures: 0 }) {
            let reopened = !matches!(*state, State::Closed { .. });
            *state = State::Closed { failures: 0 };
            drop(state);
            if reopened {
                self.log(&format_args!("{}: recovered", self.name), true);
            }
        }
    }

    /// The call failed: counted, logged once per interval, and the breaker opens after
    /// `threshold` consecutive failures (at once after a failed probe, with a doubled back-off).
    pub fn failure(&self, error: &dyn Display) {
        let errors = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut state = self.state.lock();
        let opened = match *state {
            State::Closed { failures } if failures + 1 >= self.config.threshold.max(1) => {
                *state = State::Open {
                    until: now + self.config.base,
                    backoff: self.config.base,
                };
                Some(self.config.base)
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                None
            }
            State::HalfOpen { backoff, .. } => {
                let backoff = (backoff * 2).min(self.config.cap);
                *state = State::Open {
                    until: now + backoff,
                    backoff,
                };
                Some(backoff)
            }
            // A call let through before the breaker opened: the back-off stands.
            State::Open { .. } => None,
        };
        drop(state);
        match opened {
            Some(backoff) => self.log(
                &format_args!(
                    "{}: {error}; {errors} errors so far, not tried for {backoff:?}",
                    self.name
                ),
                true,
            ),
            None => self.log(
                &format_args!("{}: {error}; {errors} errors so far", self.name),
                false,
            ),
        }
    }

    /// Whether calls are failing fast now (open, or half-open with a probe out).
    #[must_use]
    pub fn is_open(&self) -> bool {
        !matches!(*self.state.lock(), State::Closed { .. })
    }

    /// Failed calls so far (what the cache adds to its error count).
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Calls refused without a try while the breaker was open.
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// One line per `log_interval`; a change of state (`force`) is always told.
    fn log(&self, line: &dyn Display, force: bool) {
        let now = Instant::now();
        {
            let mut last = self.last_log.lock();
            if !force && last.is_some_and(|at| now.duration_since(at) < self.config.log_interval) {
                return;
            }
            *last = Some(now);
        }
        crate::trace::warn(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Breaker {
        Breaker::new(
            "test",
            BreakerConfig {
                threshold: 2,
                base: Duration::from_millis(20),
                cap: Duration::from_millis(50),
                log_interval: Duration::from_secs(60),
            },
        )
    }

    #[test]
    fn opens_after_threshold_then_probes_once_and_closes() {
        let breaker = quick();
        breaker.failure(&"x");
        assert!(breaker.allow() && !breaker.is_open());
        breaker.failure(&"x");
        assert!(breaker.is_open() && !breaker.allow());
        std::thread::sleep(Duration::from_millis(25));
        assert!(breaker.allow(), "the probe");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.success();
        assert!(!breaker.is_open() && breaker.allow());
        assert_eq!(breaker.errors(), 2);
    }

    #[test]
    fn a_failed_probe_doubles_the_backoff_up_to_the_cap() {
        let breaker = quick();
        breaker.failure(&"x");
        breaker.failure(&"x");
        for expected in [40, 50, 50] {
            while !breaker.allow() {
                std::thread::yield_now();
            }
            breaker.failure(&"x");
            let State::Open { backoff, .. } = *breaker.state.lock() else {
                panic!("not open after a failed probe");
            };
            assert_eq!(backoff, Duration::from_millis(expected));
        }
    }
}
