//! What an invalidation does to values computed before it: none is stored after it.
//!
//! A computation (a miss's leader, a background or forced refresh) reads its sources after it
//! starts, and stores its value when it ends. An `invalidate` (or `clear`) in between says the
//! sources changed, so that value must not be stored once the invalidation returns (Caffeine
//! discards such a refresh; a computation under its `compute` lock finishes before the
//! invalidation proceeds). A cache keeps, per stripe of key hashes, a generation, which an
//! invalidation of a key of the stripe advances, and the number of computations storing now.
//! A computation takes the generation when it starts ([`Writes::generation`]) and stores only
//! while it is unchanged ([`Writes::begin`]); an invalidation advances it, then waits for the
//! stores that began before it ([`Writes::invalidate`]), then removes the key, so that a value
//! is either refused or stored before the removal. Stripes make an invalidation refuse the
//! stores of 1 in 16 other keys computed meanwhile (they are computed again when next asked),
//! in exchange for 128 bytes a cache.
//!
//! A store runs user code (an eviction listener, a weigher, `Clone`, `Drop`) that may itself
//! invalidate: the thread's own stores in progress are not waited for ([`Writing::during`]).

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 16;
/// The low bits of a stripe count the stores in progress; the rest is its generation.
const WRITERS: u64 = (1 << 16) - 1;
const GENERATION: u64 = WRITERS + 1;

thread_local! {
    /// The stripe (its address) this thread is storing into now, inside a store's code, and how
    /// many of its stores into it are under way; a store into another, nested, keeps the outer
    /// one's aside ([`Mine`]) and forgets it meanwhile (a wait for it is bounded).
    static OWN: Cell<(usize, u64)> = const { Cell::new((0, 0)) };
}

/// A cache's stripes of generations and stores in progress.
pub(crate) struct Writes {
    stripes: [AtomicU64; STRIPES],
}

/// A store in progress of a value computed since a generation: ends when dropped.
pub(crate) struct Writing<'a> {
    stripe: &'a AtomicU64,
}

impl Writes {
    pub(crate) fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn stripe(&self, hash: u64) -> &AtomicU64 {
        // The top bits: the stores' shards and tables take theirs from a multiply of the whole.
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the top four bits of the hash"
        )]
        &self.stripes[(hash >> 60) as usize % STRIPES]
    }

    /// The generation of `hash`'s stripe, taken when a computation of a key of that hash starts.
    #[inline]
    pub(crate) fn generation(&self, hash: u64) -> u64 {
        self.stripe(hash).load(Ordering::Acquire) & !WRITERS
    }

    /// Whether no key of `hash`'s stripe was invalidated since `generation`.
    pub(crate) fn unchanged(&self, hash: u64, generation: u64) -> bool {
        self.generation(hash) == generation
    }

    /// A store of a value computed since `generation`, if no key of its stripe was invalidated
    /// since; `None`: the value must not be stored.
    pub(crate) fn begin(&self, hash: u64, generation: u64) -> Option<Writing<'_>> {
        let stripe = self.stripe(hash);
        stripe
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now & !WRITERS == generation && now & WRITERS < WRITERS).then_some(now + 1)
            })
            .ok()
            .map(|_| Writing { stripe })
    }

    /// Refuses every store of a value of `hash`'s stripe computed before now, and waits for
    /// those already storing: after this, a removal of the key cannot be overtaken by one.
    pub(crate) fn invalidate(&self, hash: u64) {
        let stripe = self.stripe(hash);
        stripe.fetch_add(GENERATION, Ordering::AcqRel);
        settle(stripe);
    }

    /// Refuses every store of a value of `hash`'s stripe computed before now, without waiting
    /// for those already storing ([`invalidate`](Self::invalidate) waits): for a write that
    /// may be made from a task whose runtime must go on running the stores under way.
    pub(crate) fn refuse_older(&self, hash: u64) {
        self.stripe(hash).fetch_add(GENERATION, Ordering::AcqRel);
    }

    /// [`invalidate`](Self::invalidate) of every stripe (`clear`).
    pub(crate) fn invalidate_all(&self) {
        for stripe in &self.stripes {
            stripe.fetch_add(GENERATION, Ordering::AcqRel);
        }
        for stripe in &self.stripes {
            settle(stripe);
        }
    }
}

/// Waits until the stores of `stripe` in progress are only this thread's own (a store whose
/// code invalidates cannot wait for itself), for at most [`SETTLE`]. A store in this process
/// takes microseconds; one over the network at most its call's budget. The bound is for a store
/// whose task cannot run while this thread waits (an async caller on this very thread, in a
/// single-threaded runtime): its value may then land after the invalidation, as it could
/// before generations.
fn settle(stripe: &AtomicU64) {
    let own = match OWN.get() {
        (at, count) if at == std::ptr::from_ref(stripe) as usize => count,
        _ => 0,
    };
    let deadline = std::time::Instant::now() + SETTLE;
    let mut spins = 0_u32;
    while stripe.load(Ordering::Acquire) & WRITERS > own && std::time::Instant::now() < deadline {
        spins += 1;
        if spins < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
}

/// How long an invalidation waits for the stores under way (see [`settle`]).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

impl Writing<'_> {
    /// Runs the store `make` starts (a store in this process writes as it is made) as this
    /// store: while it runs, this thread's invalidations (from the user code the store runs) do
    /// not wait for it.
    pub(crate) async fn during<F: Future>(&self, make: impl FnOnce() -> F) -> F::Output {
        let at = std::ptr::from_ref(self.stripe) as usize;
        let store = {
            let _mine = Mine::enter(at);
            make()
        };
        let mut store = std::pin::pin!(store);
        std::future::poll_fn(|cx| {
            let _mine = Mine::enter(at);
            store.as_mut().poll(cx)
        })
        .await
    }
}

/// A stripe this thread stores into, while it does: what it set aside is put back when
/// dropped, even by a panic.
struct Mine((usize, u64));

impl Mine {
    fn enter(at: usize) -> Self {
        let outer = OWN.get();
        let count = if outer.0 == at { outer.1 + 1 } else { 1 };
        OWN.set((at, count));
        Self(outer)
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        OWN.set(self.0);
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.stripe.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn ready<T>(fut: impl Future<Output = T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(fut).poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("pending"),
        }
    }

    #[test]
    fn a_store_of_a_value_computed_before_an_invalidation_is_refused() {
        let writes = Writes::new();
        let (hash, other) = (1 << 60, 2 << 60);
        let started = writes.generation(hash);
        let other_started = writes.generation(other);
        writes.invalidate(hash);
        assert!(writes.begin(hash, started).is_none());
        assert!(!writes.unchanged(hash, started));
        assert!(
            writes.begin(other, other_started).is_some(),
            "another stripe"
        );
        assert!(
            writes.begin(hash, writes.generation(hash)).is_some(),
            "started after"
        );
        writes.invalidate_all();
        assert!(writes.begin(other, other_started).is_none());
    }

    #[test]
    fn an_invalidation_waits_for_the_stores_that_began_before_it() {
        let writes = Writes::new();
        let hash = 3 << 60;
        let storing = writes.begin(hash, writes.generation(hash)).unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let invalidating = scope.spawn(|| {
                writes.invalidate(hash);
                done.load(Ordering::SeqCst)
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            done.store(true, Ordering::SeqCst);
            drop(storing);
            assert!(
                invalidating.join().unwrap(),
                "returned before the store ended"
            );
        });
    }

    /// A store whose task this thread would have to run (it never ends here): the
    /// invalidation gives up waiting rather than hang.
    #[test]
    fn an_invalidation_waits_for_a_store_that_never_ends_a_bounded_time() {
        let writes = Writes::new();
        let hash = 7 << 60;
        let _never = writes.begin(hash, writes.generation(hash)).unwrap();
        writes.invalidate(hash);
        assert!(writes.begin(hash, 0).is_none());
    }

    #[test]
    fn a_store_that_invalidates_from_inside_does_not_wait_for_itself() {
        let writes = Writes::new();
        let hash = 5 << 60;
        let storing = writes.begin(hash, writes.generation(hash)).unwrap();
        ready(storing.during(|| async { writes.invalidate(hash) }));
        assert_eq!(OWN.get(), (0, 0));
    }
}
