//! Memoized recursion: `fib` calls itself, and each `n` is computed once.
//!
//! Run: `cargo run --release --example fib`

use std::time::Instant;

use memo::cached;

/// The plain recursive definition: exponential time.
fn fib_plain(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

/// The same definition, memoized: linear time, because every `fib(k)` is computed once.
#[cached]
fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

fn main() {
    let start = Instant::now();
    let plain = fib_plain(32);
    println!("fib_plain(32) = {plain:>22}   in {:?}", start.elapsed());

    let start = Instant::now();
    let memoized = fib(32);
    println!("fib(32)       = {memoized:>22}   in {:?}", start.elapsed());
    assert_eq!(plain, memoized);

    let start = Instant::now();
    let big = fib(90);
    println!(
        "fib(90)       = {big:>22}   in {:?} (only 58 new values)",
        start.elapsed()
    );

    let start = Instant::now();
    let again = fib(90);
    println!(
        "fib(90) again = {again:>22}   in {:?} (a hit)",
        start.elapsed()
    );

    let stats = fib_cache().stats();
    println!(
        "stats: {} computed, {} hits, {} entries, hit ratio {:.1} %",
        stats.misses,
        stats.hits,
        stats.len,
        stats.hit_ratio() * 100.0
    );
}
