//! A background sweep that frees expired entries nobody reads again.
//!
//! Inserts already remove every entry whose time has passed, but a cache that stops being
//! written keeps its expired entries until someone looks. One process-wide thread, started with the first cache
//! that has a time to live, purges each watched cache once per [`PERIOD`].

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
    START.call_once(|| {
        // Without the thread, expired entries still leave on inserts and `purge_expired`.
        let _ = std::thread::Builder::new()
            .name("memo-expiry".into())
            .spawn(sweep);
    });
}

fn sweep() {
    loop {
        std::thread::sleep(PERIOD);
        let watched = WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for cache in watched {
            cache.purge_expired();
        }
    }
}
