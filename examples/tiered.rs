//! A local copy in front of Redis (`store = tiered`): hits cost about as much as an in-memory
//! cache's, and a new value stored by one process drops the copies of every other.
//!
//! Run: `cargo run --release --example tiered` with a server at
//! `MEMO_REDIS_URL` (default `redis://127.0.0.1:6379`). Start one with
//! `redis-server --save "" --appendonly no`.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memo::cached;

/// A price list entry, 1,000 of them kept locally; 10 minutes at most in any copy.
#[cached(store = tiered, maxsize = 1000, ttl = "10m")]
fn price(item: String) -> u32 {
    std::thread::sleep(Duration::from_millis(20));
    u32::try_from(item.len()).unwrap_or(u32::MAX) * 100
}

fn main() {
    if std::env::var_os("TIERED_WRITER").is_some() {
        // The other process: a new price for tea.
        price_cache().insert("tea".to_string(), 999);
        return;
    }
    let url = std::env::var("MEMO_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let reachable = memo::redis::RedisConfig::from_url(&url)
        .and_then(memo::redis::RedisClient::new)
        .and_then(|client| client.get(b"memo:ping"))
        .is_ok();
    if !reachable {
        println!("no Redis at {url}: start one with `redis-server --save \"\" --appendonly no`");
        println!("(or `docker run -p 6379:6379 redis`), or set MEMO_REDIS_URL");
        return;
    }
    price_cache().clear();
    println!("tea: {} (computed)", price("tea".into()));
    let started = Instant::now();
    for _ in 0..1_000_000 {
        std::hint::black_box(price(std::hint::black_box("tea".into())));
    }
    println!("1,000,000 local hits in {:?}", started.elapsed());
    let status = Command::new(std::env::current_exe().expect("this program"))
        .env("TIERED_WRITER", "1")
        .stdout(Stdio::piped())
        .output()
        .expect("run the writer");
    let _ = status.stdout.lines().count();
    let deadline = Instant::now() + Duration::from_secs(5);
    while price("tea".into()) != 999 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "another process stored a new price; here now: {}",
        price("tea".into())
    );
}
