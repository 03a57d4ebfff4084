//! Hit, miss and eviction counters that cost a hit no shared write.
//!
//! Each thread claims one of [`STRIPES`] counter stripes for its lifetime and bumps its own stripe
//! with a plain load and store; no other thread writes there, so no cache line bounces between
//! cores. Threads beyond [`STRIPES`] share one overflow stripe and pay an atomic add instead.
//! Reading the statistics sums the stripes.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::store::Removals;

/// A snapshot of one cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// # Examples
///
/// ```
/// use memo_runtime::{Cache, Config};
///
/// let cache: Cache<u32, u32> = Cache::new(Config::new());
/// cache.insert(1, 10);
/// assert_eq!(cache.get(&1), Some(10));
/// assert_eq!(cache.stats().len, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that ran the function body.
    pub misses: u64,
    /// Calls that found another caller computing the same key and shared its result.
    pub coalesced: u64,
    /// Entries removed to keep the cache within its bound.
    pub evictions: u64,
    /// Entries removed because their time to live had passed.
    pub expired: u64,
    /// Entries held when the snapshot was taken.
    pub len: usize,
}

impl Stats {
    /// Hits over all calls (`hits / (hits + misses + coalesced)`), or 0 before the first call.
    #[must_use]
    #[allow(
        clippy::cast_precision_loss,
        reason = "a ratio does not need 64-bit precision"
    )]
    pub fn hit_ratio(&self) -> f64 {
        let calls = self.hits + self.misses + self.coalesced;
        if calls == 0 {
            0.0
        } else {
            self.hits as f64 / calls as f64
        }
    }
}

/// What a counter counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Hit,
    Miss,
    Coalesced,
}

const EVENTS: usize = 3;

/// Stripes a process hands out to threads; the shared stripe comes on top.
pub(crate) const STRIPES: usize = 64;

/// One stripe per cache line pair, so neighbouring stripes never share a line (nor its prefetch twin).
#[repr(align(128))]
struct Stripe([AtomicU64; EVENTS]);

impl Stripe {
    const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; EVENTS])
    }
}

/// A cache's striped counters: one stripe per thread that holds a claim, plus one shared.
pub(crate) struct Counters {
    owned: [Stripe; STRIPES],
    shared: Stripe,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            owned: [const { Stripe::new() }; STRIPES],
            shared: Stripe::new(),
        }
    }
}

impl Counters {
    /// Counts one event on this thread's stripe.
    #[inline]
    pub(crate) fn record(&self, event: Event) {
        self.add(event, 1);
    }

    /// Counts `n` events on this thread's stripe.
    #[inline]
    pub(crate) fn add(&self, event: Event, n: u64) {
        let stripe = STRIPE.with(Cell::get);
        if stripe < STRIPES {
            // Only this thread writes an owned stripe, so a plain read-modify-write is exact.
            let counter = &self.owned[stripe].0[event as usize];
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            self.add_slow(event, n);
        }
    }

    #[cold]
    fn add_slow(&self, event: Event, n: u64) {
        match this_thread_stripe() {
            STRIPES => {
                self.shared.0[event as usize].fetch_add(n, Ordering::Relaxed);
            }
            _ => self.add(event, n),
        }
    }

    /// Sums one counter over all stripes.
    pub(crate) fn sum(&self, event: Event) -> u64 {
        self.owned
            .iter()
            .chain([&self.shared])
            .map(|s| s.0[event as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// A snapshot, completed with what the store counts itself.
    pub(crate) fn snapshot(&self, len: usize, removals: Removals) -> Stats {
        Stats {
            hits: self.sum(Event::Hit),
            misses: self.sum(Event::Miss),
            coalesced: self.sum(Event::Coalesced),
            evictions: removals.evicted,
            expired: removals.expired,
            len,
        }
    }
}

/// Which stripes are owned by a live thread.
static CLAIMED: [AtomicBool; STRIPES] = [const { AtomicBool::new(false) }; STRIPES];

const UNCLAIMED: usize = usize::MAX;

thread_local! {
    /// This thread's stripe; read on every counted event, so it has no destructor of its own.
    static STRIPE: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the stripe back when the thread ends.
    static RELEASE: StripeRelease = const { StripeRelease(Cell::new(UNCLAIMED)) };
}

struct StripeRelease(Cell<usize>);

impl Drop for StripeRelease {
    fn drop(&mut self) {
        let stripe = self.0.get();
        if stripe < STRIPES {
            // The stripe may be read again by this thread's other destructors: send them to overflow.
            let _ = STRIPE.try_with(|s| s.set(STRIPES));
            CLAIMED[stripe].store(false, Ordering::Release);
        }
    }
}

/// This thread's stripe, claiming one on first use; `STRIPES` means the shared one.
fn this_thread_stripe() -> usize {
    match STRIPE.try_with(Cell::get) {
        Ok(UNCLAIMED) => claim_stripe(),
        Ok(stripe) => stripe,
        // Thread-local storage is being torn down.
        Err(_) => STRIPES,
    }
}

#[cold]
fn claim_stripe() -> usize {
    let claimed = (0..STRIPES)
        .find(|&i| {
            CLAIMED[i]
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
        .unwrap_or(STRIPES);
    // Register the release; if that is impossible (thread ending), do not keep the stripe.
    let registered = RELEASE.try_with(|r| r.0.set(claimed)).is_ok();
    let stripe = if registered || claimed == STRIPES {
        claimed
    } else {
        CLAIMED[claimed].store(false, Ordering::Release);
        STRIPES
    };
    let _ = STRIPE.try_with(|s| s.set(stripe));
    stripe
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_are_exact() {
        let counters = Arc::new(Counters::default());
        // More threads than stripes, alive at once, so the overflow stripe is used too.
        let barrier = Arc::new(std::sync::Barrier::new(STRIPES + 16));
        let threads: Vec<_> = (0..STRIPES + 16)
            .map(|_| {
                let counters = Arc::clone(&counters);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..1000 {
                        counters.record(Event::Hit);
                    }
                    counters.add(Event::Miss, 2);
                    barrier.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = counters.snapshot(7, Removals::default());
        assert_eq!(stats.hits, (STRIPES as u64 + 16) * 1000);
        assert_eq!(stats.misses, (STRIPES as u64 + 16) * 2);
        assert_eq!(stats.len, 7);
    }

    #[test]
    fn stripes_are_reused_after_threads_end() {
        // Far more short-lived threads than stripes: if ended threads kept their stripes, the
        // later ones would all land on the overflow stripe.
        let owned = (0..4 * STRIPES)
            .filter(|_| std::thread::spawn(this_thread_stripe).join().unwrap() < STRIPES)
            .count();
        assert!(
            owned > 2 * STRIPES,
            "only {owned} threads got a stripe of their own"
        );
    }

    #[test]
    fn hit_ratio_of_no_calls_is_zero() {
        assert!(Stats::default().hit_ratio().abs() < f64::EPSILON);
        let s = Stats {
            hits: 3,
            misses: 1,
            ..Stats::default()
        };
        assert!((s.hit_ratio() - 0.75).abs() < 1e-9);
    }
}
