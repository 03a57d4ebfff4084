//! Redlock: several threads (or processes) miss one key at once, and one of them computes it,
//! under a lock held on a majority of 5 independent Redis servers. One attribute:
//! `#[cached(store = redis, lock = "redlock")]`; values stay in the store's server
//! (`MEMO_REDIS_URL`), the lock goes to the servers of `MEMO_REDLOCK_URLS`.
//!
//! This recipe starts no server. Start five and name them in `MEMO_REDLOCK_URLS`:
//!
//! ```sh
//! for port in 7001 7002 7003 7004 7005; do redis-server --port $port --save "" --appendonly no --daemonize yes; done
//! export MEMO_REDLOCK_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003,redis://127.0.0.1:7004,redis://127.0.0.1:7005
//! cargo run --example redlock
//! ```
//!
//! Run it in two terminals at once: one computation between them. Kill two of the servers
//! (`redis-cli -p 7004 shutdown nosave`) and run it again: still one computation. Kill a third:
//! every process computes (its threads still share one computation), and a warning says why. The lock prevents duplicate work; it is not a
//! correctness lock (see docs/redlock.md).

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memo::cached;
use memo::redis::{RedlockConfig, URLS_VAR};

const THREADS: usize = 8;

static COMPUTATIONS: AtomicUsize = AtomicUsize::new(0);

/// The expensive part, computed once across every thread and process that asks at once.
#[cached(store = redis, lock = "redlock", ttl = "10m")]
fn report(quarter: u64) -> String {
    COMPUTATIONS.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    format!("report for quarter {quarter}")
}

fn main() {
    let Ok(config) = RedlockConfig::from_env() else {
        println!("{URLS_VAR} is not set: start five Redis servers, then name them:\n");
        println!(
            "  for port in 7001 7002 7003 7004 7005; do redis-server --port $port --save \"\" --appendonly no --daemonize yes; done"
        );
        println!(
            "  MEMO_REDLOCK_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003,redis://127.0.0.1:7004,redis://127.0.0.1:7005 \\\n      cargo run --example redlock"
        );
        return;
    };
    println!(
        "{} lock servers, a majority is {}",
        config.servers.len(),
        config.quorum()
    );
    if std::env::var_os("MEMO_REDIS_URL").is_none() {
        // Values need a store too: here the first lock server (any Redis will do).
        let first = config.servers[0]
            .nodes()
            .first()
            .cloned()
            .unwrap_or_default();
        // SAFETY: no other thread runs yet, and nothing reads the environment meanwhile.
        unsafe { std::env::set_var("MEMO_REDIS_URL", first) };
    }

    // A quarter no earlier run has computed (two terminals started in one minute share it).
    let quarter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 60);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                println!("thread {thread}: {}", report(quarter));
            });
        }
    });
    let stats = report_cache().stats();
    println!(
        "{THREADS} threads, {} computation(s) here; backend errors: {}",
        COMPUTATIONS.load(Ordering::Relaxed),
        stats.backend_errors
    );
}
