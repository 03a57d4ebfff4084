//! Redlock: several threads (or processes) miss one key at once, and one of them computes it,
//! under a lock held on a majority of 5 independent Redis servers.
//!
//! This recipe starts no server. Start five and name them in `MEMO_REDLOCK_URLS`:
//!
//! ```sh
//! for port in 7001 7002 7003 7004 7005; do redis-server --port $port --save "" --appendonly no --daemonize yes; done
//! export MEMO_REDLOCK_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003,redis://127.0.0.1:7004,redis://127.0.0.1:7005
//! cargo run --example redlock --features redis
//! ```
//!
//! Kill two of the servers (`redis-cli -p 7004 shutdown nosave`) and run it again: still one
//! computation. Kill a third: every thread computes, and one warning says why. The lock prevents
//! duplicate work; it is not a correctness lock (see the README's Redlock section).

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memo::redis::{Claimed, DistributedLock, RedisClient, RedisConfig, Redlock, RedlockConfig};

const THREADS: usize = 8;

fn main() -> Result<(), memo::redis::Error> {
    let Ok(config) = RedlockConfig::from_env() else {
        println!("MEMO_REDLOCK_URLS is not set: start five Redis servers, then name them:\n");
        println!(
            "  for port in 7001 7002 7003 7004 7005; do redis-server --port $port --save \"\" --appendonly no --daemonize yes; done"
        );
        println!(
            "  MEMO_REDLOCK_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003,redis://127.0.0.1:7004,redis://127.0.0.1:7005 \\\n      cargo run --example redlock --features redis"
        );
        return Ok(());
    };
    // Values live in the store: here the first lock server (any Redis will do).
    let store = RedisClient::new(RedisConfig::from_url(
        config.servers[0].nodes().first().map_or("", String::as_str),
    )?)?;
    println!(
        "{} servers, a majority is {}",
        config.servers.len(),
        config.quorum()
    );
    let redlock = Redlock::new(config, store)?;

    // A key no earlier run has computed.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let value_key = format!("{{report:{run}}}:v");
    let lock_key = format!("{{report:{run}}}:lock");

    let computations = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (redlock, computations, barrier) = (&redlock, &computations, &barrier);
            let (value_key, lock_key) = (value_key.as_bytes(), lock_key.as_bytes());
            scope.spawn(move || {
                barrier.wait();
                let value = report(redlock, value_key, lock_key, computations);
                println!("thread {thread}: {}", String::from_utf8_lossy(&value));
            });
        }
    });
    println!(
        "{THREADS} threads, {} computation(s)",
        computations.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Cache-aside over the lock: the stored value, or compute it (once across every caller).
fn report(
    lock: &impl DistributedLock,
    value_key: &[u8],
    lock_key: &[u8],
    computations: &AtomicUsize,
) -> Vec<u8> {
    let compute = || {
        computations.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300)); // the expensive part
        b"quarterly report".to_vec()
    };
    match lock.claim(value_key, lock_key) {
        Claimed::Value(value) => value,
        Claimed::Compute(guard) => {
            let value = compute();
            let _ = lock.store().set_px(value_key, &value, 60_000);
            drop(guard); // releases on every server; the waiters read the value
            value
        }
        // The holder took too long, or no majority answered: compute without the lock.
        Claimed::TimedOut | Claimed::Unavailable(_) => {
            let value = compute();
            let _ = lock.store().set_px(value_key, &value, 60_000);
            value
        }
    }
}
