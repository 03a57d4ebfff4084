//! The library of a package whose binary (`src/main.rs`) has a memoized function of the same path,
//! `app::label`, on the same disk store.

use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// The library's label of `n`.
#[memo::cached(store = disk)]
pub fn label(n: u64) -> String {
    RUNS.fetch_add(1, Ordering::Relaxed);
    format!("lib {n}")
}

/// How many times this process ran [`label`]'s body.
#[must_use]
pub fn runs() -> usize {
    RUNS.load(Ordering::Relaxed)
}
