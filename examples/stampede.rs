//! Several processes ask for one missing key at once; one of them computes it, the others wait
//! for its value (a Redis lock per key, released with a pub/sub message).
//!
//! Run: `cargo run --release --example stampede` with a server at
//! `MEMO_REDIS_URL` (default `redis://127.0.0.1:6379`). Start one with
//! `redis-server --save "" --appendonly no`. It starts 4 copies of itself, 8 threads each.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use memo::cached;

/// A report that takes half a second to build.
#[cached(store = redis, ttl = "30s")]
fn report(day: String) -> String {
    std::thread::sleep(Duration::from_millis(500));
    println!("  process {} computed the report", std::process::id());
    format!("report of {day}")
}

fn worker(day: &str) {
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (barrier, day) = (Arc::clone(&barrier), day.to_string());
            std::thread::spawn(move || {
                barrier.wait();
                report(day)
            })
        })
        .collect();
    for thread in threads {
        assert!(thread.join().expect("a caller").starts_with("report of"));
    }
}

fn main() {
    if let Ok(day) = std::env::var("STAMPEDE_DAY") {
        worker(&day);
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
    // A day no earlier run cached.
    let day = format!("{:?}", std::time::SystemTime::now());
    println!("4 processes x 8 threads ask for one missing report:");
    let started = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().expect("this program"))
                .env("STAMPEDE_DAY", &day)
                .spawn()
                .expect("start a process")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("a process").success());
    }
    println!(
        "32 callers served in {:?}, one computation",
        started.elapsed()
    );
}
