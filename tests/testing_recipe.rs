//! The testing recipe: how to unit-test a memoized function, as `#[test]`s that run in parallel.
//!
//! Each test opens [`memo::testing::isolate`] first: until its guard drops, the test's calls use
//! caches of their own (and `store = disk` functions a directory of their own), so the counts it
//! asserts are its own whatever runs beside it. Time is moved by hand on a mock clock, without
//! sleeping. In your crate:
//!
//! ```toml
//! [dev-dependencies]
//! memo-kit = { version = "0.1", features = ["test-util"] }
//! ```
#![cfg(feature = "test-util")]

use std::time::Duration;

use memo::{Clock, cached};

/// The function under test: loads a user's settings, cached for 10 minutes.
#[cached(ttl = "10m", maxsize = 1_000)]
fn settings(user: &str) -> String {
    format!("settings of {user}")
}

/// The same on disk: its entries outlive the process.
#[cached(store = disk, ttl = "10m")]
fn profile(user: &str) -> String {
    format!("profile of {user}")
}

#[test]
fn a_miss_then_a_hit() {
    let _scope = memo::testing::isolate();
    assert_eq!(settings("ada"), "settings of ada");
    assert_eq!(settings("ada"), "settings of ada");
    let stats = settings_cache().stats();
    assert_eq!((stats.misses, stats.hits), (1, 1));
}

#[test]
fn entries_expire_at_the_ttl_without_sleeping() {
    let _scope = memo::testing::isolate();
    let (clock, time) = Clock::mock();
    settings_cache().set_clock(clock);
    settings("ada");
    time.increment(Duration::from_secs(599));
    settings("ada");
    assert_eq!(
        settings_cache().stats().misses,
        1,
        "fresh a second before the ttl"
    );
    time.increment(Duration::from_secs(1));
    settings("ada");
    assert_eq!(
        settings_cache().stats().misses,
        2,
        "loaded again at the ttl"
    );
}

#[test]
fn invalidation_forces_the_next_call_to_load() {
    let _scope = memo::testing::isolate();
    settings("ada");
    assert!(settings_cache().invalidate("ada"));
    assert!(!settings_cache().invalidate("ada"));
    settings("ada");
    assert_eq!(settings_cache().stats().misses, 2);
}

#[test]
fn reset_stats_counts_from_zero_and_keeps_the_entries() {
    let _scope = memo::testing::isolate();
    settings("ada");
    settings_cache().reset_stats();
    settings("ada");
    let stats = settings_cache().stats();
    assert_eq!((stats.misses, stats.hits), (0, 1));
    assert_eq!(settings_cache().keys(), ["ada".to_string()]);
}

#[test]
fn a_disk_function_keeps_its_entries_in_the_tests_own_directory() {
    let scope = memo::testing::isolate();
    assert_eq!(profile("ada"), "profile of ada");
    assert_eq!(profile("ada"), "profile of ada");
    assert_eq!(profile_cache().stats().misses, 1);
    profile_cache().store().flush();
    assert!(profile_cache().store().dir().starts_with(scope.disk_root()));
    drop(scope);
    let again = memo::testing::isolate();
    profile("ada");
    assert_eq!(
        profile_cache().stats().misses,
        1,
        "another test's scope starts empty"
    );
    assert!(profile_cache().store().dir().starts_with(again.disk_root()));
}

#[test]
fn outside_a_scope_calls_share_the_process_wide_cache() {
    // A key no other test uses, so that this test's counts of the shared cache are its own.
    settings("grace");
    {
        let _scope = memo::testing::isolate();
        settings("grace");
        assert_eq!(settings_cache().stats().misses, 1, "the scope starts empty");
        let _inner = memo::testing::isolate();
        assert_eq!(settings_cache().stats().misses, 0, "scopes nest");
    }
    assert!(settings_cache().contains_key("grace"));
}

/// Many scopes at once on many threads, as a parallel `cargo test` runs them: each sees exactly
/// its own calls.
#[test]
fn parallel_scopes_never_see_each_other() {
    std::thread::scope(|threads| {
        for thread in 0..16 {
            threads.spawn(move || {
                for round in 0..50 {
                    let _scope = memo::testing::isolate();
                    let user = format!("user {}", (thread + round) % 3);
                    settings(&user);
                    settings(&user);
                    settings("shared");
                    let stats = settings_cache().stats();
                    assert_eq!((stats.misses, stats.hits, stats.len), (2, 1, 2));
                }
            });
        }
    });
}

#[cached]
fn zero<T: Default + std::fmt::Display>(n: u64) -> String {
    format!("{n}:{}", T::default())
}

#[test]
fn a_generic_functions_instances_keep_apart_in_a_scope() {
    let _scope = memo::testing::isolate();
    assert_eq!(zero::<u8>(1), "1:0");
    assert_eq!(zero::<bool>(1), "1:false");
    assert_eq!(zero_cache::<u8>().stats().misses, 1);
}
