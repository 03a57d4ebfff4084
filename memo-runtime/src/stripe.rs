//! Per-thread stripes: each thread claims a small index of its own for as long as it lives.
//!
//! Per-thread state that many threads update (hit counters, "I am reading this shard" marks) lives
//! in arrays indexed by stripe, one cache line per stripe, so that each line is written by one
//! thread only. Up to [`STRIPES`] threads hold a stripe at once; the others get [`SHARED`] and take
//! a slower path that is safe to share.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Stripes a process hands out.
pub(crate) const STRIPES: usize = 64;

/// What [`current`] returns to a thread without a stripe of its own.
pub(crate) const SHARED: usize = STRIPES;

/// This thread's stripe (below [`STRIPES`]) or [`SHARED`]; claims one on first use.
#[inline]
pub(crate) fn current() -> usize {
    let stripe = STRIPE.with(Cell::get);
    if stripe <= SHARED { stripe } else { claim() }
}

/// This thread's stripe if it has claimed one, else [`SHARED`] or more: one load and one
/// comparison for the hit path, which leaves claiming to its slower way.
#[inline]
pub(crate) fn claimed() -> usize {
    STRIPE.with(Cell::get)
}

/// One more than the highest stripe ever claimed: scans of per-stripe state stop there.
pub(crate) fn high_water() -> usize {
    HIGH_WATER.load(Ordering::SeqCst)
}

/// Which stripes are owned by a live thread.
static CLAIMED: [AtomicBool; STRIPES] = [const { AtomicBool::new(false) }; STRIPES];

const UNCLAIMED: usize = usize::MAX;

thread_local! {
    /// This thread's stripe; read on every hit, so it has no destructor of its own.
    static STRIPE: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the stripe back when the thread ends.
    static RELEASE: StripeRelease = const { StripeRelease(Cell::new(UNCLAIMED)) };
}

struct StripeRelease(Cell<usize>);

impl Drop for StripeRelease {
    fn drop(&mut self) {
        let stripe = self.0.get();
        if stripe < STRIPES {
            // This thread's other destructors may still call in: send them to the shared path.
            let _ = STRIPE.try_with(|s| s.set(SHARED));
            CLAIMED[stripe].store(false, Ordering::Release);
        }
    }
}

static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

#[cold]
fn claim() -> usize {
    let claimed = (0..STRIPES)
        .find(|&i| {
            CLAIMED[i]
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
        .unwrap_or(STRIPES);
    // Register the release; if that is impossible (thread ending), do not keep the stripe.
    let registered = RELEASE.try_with(|r| r.0.set(claimed)).is_ok();
    let stripe = if registered || claimed == SHARED {
        claimed
    } else {
        CLAIMED[claimed].store(false, Ordering::Release);
        SHARED
    };
    if stripe < STRIPES {
        HIGH_WATER.fetch_max(stripe + 1, Ordering::SeqCst);
    }
    let _ = STRIPE.try_with(|s| s.set(stripe));
    stripe
}

/// Makes this thread take the shared path from now on, as a thread beyond the first
/// [`STRIPES`] does (for tests of that path). Must be called before the thread claims a stripe.
#[cfg(all(test, not(loom)))]
pub(crate) fn go_without_stripe() {
    STRIPE.with(|s| {
        assert_eq!(
            s.get(),
            UNCLAIMED,
            "the thread has claimed a stripe already"
        );
        s.set(SHARED);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_reused_after_threads_end() {
        // Far more short-lived threads than stripes: if ended threads kept their stripes, the
        // later ones would all get the shared one.
        let owned = (0..4 * STRIPES)
            .filter(|_| std::thread::spawn(current).join().unwrap() < STRIPES)
            .count();
        assert!(
            owned > 2 * STRIPES,
            "only {owned} threads got a stripe of their own"
        );
        assert!(high_water() <= STRIPES);
    }
}
