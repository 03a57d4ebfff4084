//! `Result` caches `Ok` and `Option` caches `Some`, unless told otherwise; `return` and `?` work.

use std::num::ParseIntError;
use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn parse_double(text: &str) -> Result<u32, ParseIntError> {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    let n: u32 = text.trim().parse()?;
    if n == 0 {
        return Ok(0);
    }
    Ok(n * 2)
}

#[test]
fn result_caches_ok_only_and_question_mark_and_return_work() {
    assert_eq!(parse_double("21"), Ok(42));
    assert_eq!(parse_double("21"), Ok(42));
    assert_eq!(PARSE_RUNS.load(Ordering::SeqCst), 1);
    assert!(parse_double("x").is_err());
    assert!(parse_double("x").is_err());
    assert_eq!(
        PARSE_RUNS.load(Ordering::SeqCst),
        3,
        "errors are not cached"
    );
    assert_eq!(parse_double("0"), Ok(0));
    assert_eq!(parse_double("0"), Ok(0));
    assert_eq!(
        PARSE_RUNS.load(Ordering::SeqCst),
        4,
        "an early `return` is cached like any value"
    );
    assert_eq!(parse_double_cache().len(), 2);
}

static STRICT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache_err = true)]
fn strict(text: &str) -> Result<u32, String> {
    STRICT_RUNS.fetch_add(1, Ordering::SeqCst);
    text.parse().map_err(|e| format!("{e}"))
}

#[test]
fn cache_err_caches_errors_too() {
    assert!(strict("no").is_err());
    assert!(strict("no").is_err());
    assert_eq!(STRICT_RUNS.load(Ordering::SeqCst), 1);
    // The whole `Result` is the value.
    let cache: &memo::Cache<String, Result<u32, String>> = strict_cache();
    assert_eq!(cache.len(), 1);
}

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn find(id: u32) -> Option<String> {
    FIND_RUNS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("item {id}"))
}

#[test]
fn option_caches_some_only() {
    assert_eq!(find(2).as_deref(), Some("item 2"));
    assert_eq!(find(2).as_deref(), Some("item 2"));
    assert_eq!(FIND_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(find(3), None);
    assert_eq!(find(3), None);
    assert_eq!(FIND_RUNS.load(Ordering::SeqCst), 3);
}

static LOOKUP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache_none = true)]
fn lookup(id: u32) -> Option<u32> {
    LOOKUP_RUNS.fetch_add(1, Ordering::SeqCst);
    (id < 10).then_some(id)
}

#[test]
fn cache_none_caches_none_too() {
    assert_eq!(lookup(50), None);
    assert_eq!(lookup(50), None);
    assert_eq!(LOOKUP_RUNS.load(Ordering::SeqCst), 1);
}

type AppResult<T> = Result<T, std::sync::Arc<std::io::Error>>;

static ALIAS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn read_setting(name: &str) -> AppResult<String> {
    ALIAS_RUNS.fetch_add(1, Ordering::SeqCst);
    if name.is_empty() {
        Err(std::io::Error::other("empty name").into())
    } else {
        Ok(name.to_uppercase())
    }
}

#[test]
fn result_aliases_cache_ok_only() {
    assert!(read_setting("").is_err());
    assert!(read_setting("").is_err());
    assert_eq!(read_setting("a").unwrap(), "A");
    assert_eq!(read_setting("a").unwrap(), "A");
    assert_eq!(ALIAS_RUNS.load(Ordering::SeqCst), 3);
    // An alias not spelled `…Result<…>` is stored whole (its error is `Clone`), `Ok` only.
    let cache: &memo::Cache<String, AppResult<String>> = read_setting_cache();
    assert_eq!(cache.len(), 1);
}
