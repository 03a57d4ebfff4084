//! `f_cache().refresh(|| f(args))`: one call recomputes past the cached value and stores the new one.

use std::sync::atomic::{AtomicU32, Ordering};

use memo::cached;

static PRICE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached]
fn price(item: &str) -> u32 {
    100 + PRICE_RUNS.fetch_add(1, Ordering::SeqCst) + u32::try_from(item.len()).unwrap()
}

#[test]
fn refresh_recomputes_stores_and_counts_a_refresh_not_a_hit() {
    assert_eq!(price("tea"), 103);
    assert_eq!(price("tea"), 103);
    assert_eq!(price("milk"), 105);
    assert_eq!(price_cache().refresh(|| price("tea")), 105);
    assert_eq!(price("tea"), 105, "the refreshed value is cached");
    assert_eq!(price("milk"), 105, "other keys are untouched");
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 3);
    let stats = price_cache().stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.refreshes),
        (3, 2, 1),
        "{stats:?}"
    );
    // After the refresh, calls hit again: the mark was used up.
    assert_eq!(price("tea"), 105);
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 3);
}

static FIB_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached]
fn fib(n: u64) -> u64 {
    FIB_RUNS.fetch_add(1, Ordering::SeqCst);
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

#[test]
fn only_the_outermost_call_is_forced() {
    assert_eq!(fib(30), 832_040);
    assert_eq!(FIB_RUNS.load(Ordering::SeqCst), 31);
    assert_eq!(fib_cache().refresh(|| fib(30)), 832_040);
    assert_eq!(
        FIB_RUNS.load(Ordering::SeqCst),
        32,
        "fib(29) and fib(28) inside the body hit"
    );
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

#[cached]
fn lookup(id: u32) -> Result<String, String> {
    let run = LOOKUPS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        Ok(format!("user {id}"))
    } else {
        Err("backend down".into())
    }
}

#[test]
fn a_refresh_that_errs_keeps_the_old_value() {
    assert_eq!(lookup(7).as_deref(), Ok("user 7"));
    assert_eq!(
        lookup_cache().refresh(|| lookup(7)),
        Err("backend down".to_string()),
        "the caller sees the error"
    );
    assert_eq!(lookup(7).as_deref(), Ok("user 7"), "the old value stays");
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);
    assert_eq!(lookup_cache().stats().refresh_failures, 1);
}

#[test]
fn a_refresh_of_another_cache_leaves_this_one_alone() {
    let _ = double(4);
    // The closure calls `double`, but the mark is for `price`'s cache: `double` hits.
    assert_eq!(price_cache().refresh(|| double(4)), 8);
    assert_eq!(double_cache().stats().hits, 1);
    assert_eq!(double_cache().stats().refreshes, 0);
}

#[cached]
fn double(n: u32) -> u32 {
    n * 2
}

static QUOTES: AtomicU32 = AtomicU32::new(0);

#[cached]
async fn quote(item: &str) -> u32 {
    tokio::task::yield_now().await;
    QUOTES.fetch_add(1, Ordering::SeqCst) + u32::try_from(item.len()).unwrap()
}

#[tokio::test]
async fn refresh_async_recomputes_an_async_fn() {
    assert_eq!(quote("tea").await, 3);
    assert_eq!(quote("tea").await, 3);
    assert_eq!(quote_cache().refresh_async(quote("tea")).await, 4);
    assert_eq!(quote("tea").await, 4);
    assert_eq!(QUOTES.load(Ordering::SeqCst), 2);
    assert_eq!(quote_cache().stats().refreshes, 1);
}
