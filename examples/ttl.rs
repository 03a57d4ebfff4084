//! An API-call cache that expires: results are reused for one second, then fetched again.
//!
//! Run: `cargo run --release --example ttl`

use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use memo::cached;

static CALLS: AtomicU32 = AtomicU32::new(0);

/// Pretends to call a slow remote API (200 ms) that returns a fresh quote each time.
#[cached(ttl = "1s", maxsize = 100)]
fn quote(symbol: &str) -> Result<String, String> {
    let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    thread::sleep(Duration::from_millis(200));
    if symbol.is_empty() {
        return Err("empty symbol".into());
    }
    Ok(format!("{symbol}: 101.{call:02} (API call #{call})"))
}

fn timed(label: &str, symbol: &str) {
    let start = Instant::now();
    let result = quote(symbol);
    println!("{label:<28} {result:?}   {:>8.1?}", start.elapsed());
}

fn main() {
    timed("first call (miss):", "ACME");
    timed("again (hit):", "ACME");
    timed("another key (miss):", "INIT");
    timed("an error (not cached):", "");
    timed("the error again (miss):", "");
    println!("... waiting 1.1 s for the entries to expire ...");
    thread::sleep(Duration::from_millis(1_100));
    timed("after the ttl (miss):", "ACME");
    timed("again (hit):", "ACME");

    let stats = quote_cache().stats();
    println!(
        "API calls: {}, hits: {}, misses: {}",
        CALLS.load(Ordering::SeqCst),
        stats.hits,
        stats.misses
    );
}
