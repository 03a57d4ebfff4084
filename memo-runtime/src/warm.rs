//! Warming caches before traffic arrives: compute a list of argument sets concurrently.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls `call` on every item, on up to `threads` threads at once, reporting progress as
/// `progress(done, total)` after each item. Call it with a memoized function to fill its cache.
///
/// # Examples
///
/// ```
/// use memo::{Cache, Config};
///
/// let squares: Cache<u64, u64> = Cache::new(Config::new());
/// memo::warm(0..100_u64, 4, |n| { squares.get_or_compute(&n, |n| n * n); }, |done, total| {
///     assert!(done <= total);
/// });
/// assert_eq!(squares.len(), 100);
/// ```
///
/// With a memoized function `f`, the call is simply `|args| { f(args); }`.
pub fn warm<T: Send>(
    items: impl IntoIterator<Item = T>,
    threads: usize,
    call: impl Fn(T) + Sync,
    progress: impl Fn(usize, usize) + Sync,
) {
    let items: Vec<T> = items.into_iter().collect();
    let total = items.len();
    let queue = Mutex::new(items.into_iter());
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, total.max(1)) {
            s.spawn(|| {
                loop {
                    // Take one item; the lock is not held while it is computed.
                    let next = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .next();
                    let Some(item) = next else { break };
                    call(item);
                    progress(done.fetch_add(1, Ordering::AcqRel) + 1, total);
                }
            });
        }
    });
}
