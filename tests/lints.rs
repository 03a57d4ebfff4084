//! Expansions are compiled in the user's crate under the user's lints: this file holds every code
//! shape under strict ones, so `cargo clippy --all-targets -- -D warnings` fails if an expansion
//! trips any of them.

#![forbid(unsafe_code)]
#![deny(
    warnings,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unused_results,
    clippy::all,
    clippy::pedantic,
    clippy::nursery
)]

use std::time::Duration;

use memo::cached;

/// A free function with borrowed arguments and options.
#[cached(maxsize = 100, ttl = "5m")]
pub fn words(text: &str, limit: usize) -> Vec<String> {
    text.split_whitespace()
        .take(limit)
        .map(str::to_owned)
        .collect()
}

/// A weight bound and an eviction listener.
#[cached(
    maxweight = 1 << 20,
    weight = |_text, words| words.len(),
    on_evict = |_text, _words, _cause| {}
)]
pub fn weighed_words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// `Result`, `?` and an early `return`.
#[cached(ttl = Duration::from_secs(60))]
pub fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    if text.is_empty() {
        return Ok(0);
    }
    let n = text.parse::<u32>()?;
    Ok(n)
}

/// An `io::Result` (its error is not `Clone`) in an `async fn`, refreshed in the background.
#[cached(ttl = "1m", stale = "10s")]
pub async fn read_text(path: &str) -> std::io::Result<String> {
    if path.is_empty() {
        return Err(std::io::Error::other("no path"));
    }
    Ok(path.to_uppercase())
}

/// A body on one line, refreshed in the background: its braces are the user's, not needless
/// braces around the copy the refresh runs (`unused_braces`).
#[rustfmt::skip]
#[cached(ttl = "1m", stale = "10s")]
pub async fn one_line(n: u32) -> u32 { n * 2 }

/// The same in a sync function, refreshed early.
#[rustfmt::skip]
#[cached(ttl = "1m", refresh = "early")]
pub fn tripled(n: u32) -> u32 { n * 3 }

/// A `Result` with `cache_err`: stored whole.
#[cached(cache_err = true)]
fn checked(n: u64) -> Result<u64, String> {
    n.checked_sub(1).ok_or_else(|| "zero".to_owned())
}

/// `Option` with `cache_none`.
#[cached(cache_none = true)]
fn find(id: u64) -> Option<u64> {
    id.checked_sub(1)
}

/// An `async fn`.
#[cached(maxsize = 10)]
pub async fn doubled(n: u64) -> u64 {
    n * 2
}

/// No arguments, no return value.
#[cached]
fn init() {}

/// A type with cached methods.
#[derive(Clone, Hash, PartialEq, Eq)]
pub struct Shape {
    side: u64,
}

impl Shape {
    /// Keyed by `self` and the argument.
    #[cached]
    pub fn area(&self, scale: u64) -> u64 {
        self.side * self.side * scale
    }

    /// Refreshed in the background, from a copy of the body that reads `self` from the key.
    #[cached(ttl = "1m", stale = "10s", refresh = "early")]
    pub fn label(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.side)
    }

    /// An associated function keyed by an expression.
    #[cached(key = side / 2, key_type = u64)]
    #[must_use]
    pub fn halved(side: u64) -> Self {
        Self { side: side / 2 }
    }
}

#[test]
fn strict_lints_compile() {
    assert_eq!(words("a b c", 2), ["a", "b"]);
    assert_eq!(parse("7"), Ok(7));
    assert_eq!(find(3), Some(2));
    assert_eq!(checked(0), Err("zero".to_owned()));
    assert_eq!(tripled(2), 6);
    init();
    assert_eq!(Shape { side: 2 }.area(3), 12);
    assert_eq!(Shape::halved(8).side, 4);
    assert_eq!(
        words_cache().len() + parse_cache().len() + find_cache().len() + init_cache().len(),
        4
    );
    assert_eq!(Shape { side: 2 }.label("s="), "s=2");
    assert_eq!(Shape::area_cache().len() + Shape::halved_cache().len(), 2);
}
