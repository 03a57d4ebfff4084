//! Forced recomputation: `f_cache().refresh(|| f(args))` runs `f` past its cached value.
//!
//! The handle cannot call `f` itself (it knows the key, not the function), so the caller makes the
//! call and the handle marks it: while the closure runs, this thread's next lookup in that one
//! cache is a forced miss. The mark is a thread-local holding the cache's address, and a count on
//! the cache tells the hit path whether to look at it at all, so ordinary hits pay one load of a
//! field nobody writes.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// The address of the cache whose next lookup on this thread is forced; 0 for none.
    static FORCED: Cell<usize> = const { Cell::new(0) };
}

/// The mark of one refresh on this thread; the previous mark comes back when it drops (a panic
/// included), and so does the cache's count.
pub(crate) struct Forcing<'a> {
    pending: &'a AtomicUsize,
    previous: usize,
}

impl<'a> Forcing<'a> {
    /// Marks the cache at `cache` (whose refresh count is `pending`) for this thread's next lookup.
    pub(crate) fn start(cache: usize, pending: &'a AtomicUsize) -> Self {
        pending.fetch_add(1, Ordering::AcqRel);
        let previous = FORCED.with(|forced| forced.replace(cache));
        Self { pending, previous }
    }
}

impl Drop for Forcing<'_> {
    fn drop(&mut self) {
        FORCED.with(|forced| forced.set(self.previous));
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether this lookup in the cache at `cache` is forced; takes the mark, so only the outermost
/// call (not the recursive calls its body makes) recomputes.
#[cold]
#[inline(never)]
pub(crate) fn take(cache: usize) -> bool {
    FORCED.with(|forced| {
        let hit = forced.get() == cache;
        if hit {
            forced.set(0);
        }
        hit
    })
}
