//! User profiles cached in Redis (cache-aside): every process of the service shares one cache,
//! a profile is loaded once across them, and an update invalidates it everywhere.
//!
//! Run: `cargo run --release --example redis_profile` with a server at
//! `MEMO_REDIS_URL` (default `redis://127.0.0.1:6379`; `redis+cluster://host:port,…` for a
//! cluster). Start one with `redis-server --save "" --appendonly no`.

use std::time::{Duration, Instant};

use memo::cached;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    plan: String,
}

/// The slow source of truth (a database query, say).
fn load_from_database(id: u64) -> Result<Profile, String> {
    std::thread::sleep(Duration::from_millis(50));
    if id == 0 {
        return Err("no user 0".into());
    }
    Ok(Profile {
        id,
        name: format!("user {id}"),
        plan: "free".into(),
    })
}

/// Cached for 5 minutes in Redis (JSON, so other languages can read it); errors are not cached.
#[cached(store = redis, ttl = "5m", jitter = 0.1, codec = "json")]
fn profile(id: u64) -> Result<Profile, String> {
    load_from_database(id)
}

fn main() {
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
    profile_cache().invalidate(&7); // a fresh start for this demo
    for round in 1..=3 {
        let started = Instant::now();
        let user = profile(7).expect("user 7 exists");
        println!("round {round}: {user:?} in {:?}", started.elapsed());
    }
    assert!(profile(0).is_err());
    // An update: invalidate, and every process loads the new profile on its next call.
    profile_cache().invalidate(&7);
    let started = Instant::now();
    let _ = profile(7);
    println!("after invalidate: loaded again in {:?}", started.elapsed());
    let stats = profile_cache().stats();
    println!(
        "hits {}, misses {}, backend errors {}",
        stats.hits, stats.misses, stats.backend_errors
    );
}
