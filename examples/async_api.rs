//! An async API client, cached: a `ttl`, stale-while-revalidate with `stale`, and early refresh.
//!
//! Run: `cargo run --release --features tokio --example async_api`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memo::cached;

static CALLS: AtomicU32 = AtomicU32::new(0);

/// Pretends to call a remote API that answers in 150 ms with a fresh quote.
async fn remote_quote(symbol: &str) -> Result<String, String> {
    let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(150)).await;
    Ok(format!("{symbol} @ 101.{call:02} (API call #{call})"))
}

/// Entries live 1 s; for 5 s more an expired entry is still served while one task refreshes it.
#[cached(ttl = "1s", stale = "5s")]
async fn quote(symbol: &str) -> Result<String, String> {
    remote_quote(symbol).await
}

/// Refreshed in the background shortly before it expires, so callers never wait after the first.
#[cached(ttl = "1s", refresh = "early", beta = 3.0)]
async fn index(name: &str) -> Result<String, String> {
    remote_quote(name).await
}

async fn timed<F: Future<Output = Result<String, String>>>(label: &str, call: F) {
    let start = Instant::now();
    let result = call.await;
    println!(
        "{label:<42} {:<40} {:>9.1?}",
        result.unwrap_or_else(|e| e),
        start.elapsed()
    );
}

#[tokio::main]
async fn main() {
    println!("-- stale = \"5s\"");
    timed("first call (miss):", quote("ACME")).await;
    timed("again (hit):", quote("ACME")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    timed("after the ttl: stale value, refresh starts:", quote("ACME")).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    timed("after the refresh (hit, new value):", quote("ACME")).await;

    println!("-- refresh = \"early\"");
    timed("first call (miss):", index("DOW")).await;
    for round in 1..=4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        timed(
            &format!("{:.1} s later (never a miss):", f64::from(round) * 0.4),
            index("DOW"),
        )
        .await;
    }

    println!("-- 32 tasks, one cold key");
    let start = Instant::now();
    let tasks: Vec<_> = (0..32).map(|_| tokio::spawn(quote("INIT"))).collect();
    for task in tasks {
        task.await.expect("task").expect("quote");
    }
    println!("32 callers served in {:?}", start.elapsed());

    let q = quote_cache().stats();
    let i = index_cache().stats();
    println!(
        "API calls: {}; quote: {} misses, {} refreshes; index: {} misses, {} refreshes",
        CALLS.load(Ordering::SeqCst),
        q.misses,
        q.refreshes,
        i.misses,
        i.refreshes
    );
}
