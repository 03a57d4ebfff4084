//! A background sweep that frees expired entries nobody reads again.
//!
//! Inserts already remove every entry whose time has passed, but a cache that stops being
//! written keeps its expired entries until someone looks. One process-wide thread, started with the first cache
//! that has a time to live, purges each watched cache once per [`PERIOD`].

use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

/// How often the sweep runs.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// A cache the sweep can purge (shared with the janitor's thread: `Sync`).
pub(crate) trait Purge: Sync {
    fn purge_expired(&self) -> usize;
}

static WATCHED: Mutex<Vec<&'static dyn Purge>> = Mutex::new(Vec::new());

/// Purges `cache` once per period from now on.
pub(crate) fn watch(cache: &'static dyn Purge) {
    static START: Once = Once::new();
    WATCHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(cache);
    // Without the thread, expired entries still leave on inserts and `purge_expired`.
    START.call_once(start);
}

/// Starts the sweep's thread, named `memo-expiry`, by `pthread_create`: `std::thread`'s spawn
/// (its handles, hooks and errors) would add some 22 KB to every binary that memoizes a
/// function, with a time to live or not, as the call is linked whenever a cache is.
#[cfg(target_os = "linux")]
fn start() {
    use std::ffi::{c_char, c_ulong, c_void};

    unsafe extern "C" {
        fn pthread_create(
            thread: *mut c_ulong,
            attributes: *const c_void,
            run: extern "C" fn(*mut c_void) -> *mut c_void,
            argument: *mut c_void,
        ) -> i32;
        fn pthread_detach(thread: c_ulong) -> i32;
        fn pthread_setname_np(thread: c_ulong, name: *const c_char) -> i32;
    }

    extern "C" fn run(_: *mut c_void) -> *mut c_void {
        // Nothing may unwind into C (`sweep` catches the purges' panics itself).
        let _ = std::panic::catch_unwind(sweep);
        std::ptr::null_mut()
    }

    let mut thread = 0;
    // SAFETY: `pthread_t` is an `unsigned long` (or a pointer) on Linux; default attributes;
    // `run` takes no argument and unwinds nowhere.
    unsafe {
        if pthread_create(&raw mut thread, std::ptr::null(), run, std::ptr::null_mut()) == 0 {
            pthread_setname_np(thread, c"memo-expiry".as_ptr());
            pthread_detach(thread);
        }
    }
}

/// Starts the sweep's thread, named `memo-expiry`.
#[cfg(not(target_os = "linux"))]
fn start() {
    let _ = std::thread::Builder::new()
        .name("memo-expiry".into())
        .spawn(sweep);
}

fn sweep() {
    loop {
        std::thread::sleep(PERIOD);
        let watched = WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for cache in watched {
            // A panic (a listener's, a value's `Drop`) ends the sweep of that cache only: the
            // others are still purged.
            let purged = std::panic::catch_unwind(AssertUnwindSafe(|| cache.purge_expired()));
            if purged.is_err() {
                WATCHED
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|watched| !std::ptr::addr_eq(*watched, cache));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(AtomicUsize);

    impl Purge for Counted {
        fn purge_expired(&self) -> usize {
            self.0.fetch_add(1, Ordering::Relaxed);
            0
        }
    }

    /// The names of this process's threads (Linux: `/proc/self/task/*/comm`).
    #[cfg(target_os = "linux")]
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_owned())
            .collect()
    }

    struct Panicking(AtomicUsize);

    impl Purge for Panicking {
        fn purge_expired(&self) -> usize {
            self.0.fetch_add(1, Ordering::Relaxed);
            panic!("a listener that panics");
        }
    }

    /// One thread sweeps every cache, and a cache whose purge panics is dropped from the sweep
    /// after its first panic, not the others with it.
    #[test]
    fn one_named_thread_purges_every_watched_cache_once_per_period() {
        static FIRST: Counted = Counted(AtomicUsize::new(0));
        static PANICKING: Panicking = Panicking(AtomicUsize::new(0));
        static SECOND: Counted = Counted(AtomicUsize::new(0));
        watch(&FIRST);
        watch(&PANICKING);
        watch(&SECOND);
        // Two periods each, waited for by count (up to a minute on a loaded machine).
        for _ in 0..600 {
            if FIRST.0.load(Ordering::Relaxed) >= 2 && SECOND.0.load(Ordering::Relaxed) >= 2 {
                break;
            }
            std::thread::sleep(PERIOD / 10);
        }
        assert!(
            FIRST.0.load(Ordering::Relaxed) >= 2,
            "first not swept twice"
        );
        assert!(
            SECOND.0.load(Ordering::Relaxed) >= 2,
            "second not swept twice"
        );
        assert_eq!(
            PANICKING.0.load(Ordering::Relaxed),
            1,
            "swept after it panicked"
        );
        #[cfg(target_os = "linux")]
        {
            let names = thread_names();
            let sweeps = names.iter().filter(|name| *name == "memo-expiry").count();
            assert_eq!(sweeps, 1, "{names:?}");
        }
    }
}
