//! The global switch: its own test binary, since it affects every cache in the process.

#![cfg(feature = "switch")]

use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn lookup(id: u32) -> u32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id * 2
}

#[cached]
async fn fetch(id: u32) -> u32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id * 3
}

#[test]
fn disable_bypasses_every_cache_and_enable_restores_them() {
    // SAFETY: this binary has a single test, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var("MEMO_DISABLE", "1") };
    assert_eq!(lookup(1), 2);
    assert!(
        memo::is_disabled(),
        "MEMO_DISABLE=1 is read when the first cache is created"
    );
    assert_eq!(lookup(1), 2);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2, "every call runs the body");
    assert!(lookup_cache().is_empty(), "nothing is stored");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(fetch(1)), 3);
    assert_eq!(runtime.block_on(fetch(1)), 3);
    assert_eq!(RUNS.load(Ordering::SeqCst), 4);

    memo::enable();
    assert_eq!(lookup(1), 2);
    assert_eq!(lookup(1), 2);
    assert_eq!(RUNS.load(Ordering::SeqCst), 5, "cached again");
    memo::disable();
    assert_eq!(lookup(1), 2);
    assert_eq!(RUNS.load(Ordering::SeqCst), 6);
    memo::enable();
}
