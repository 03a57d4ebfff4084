//! The Redis layer against a local `redis-server` that this binary starts: a bare `GET` round
//! trip, a single-instance lock, and what a dead or frozen server adds to a call.
//!
//! `cargo bench --bench redis --features redis` prints `BENCH <name> <value> <unit>` lines and
//! writes `target/bench/redis.json`. Needs `redis-server` (`apt-get install -y redis-server`).

#![allow(
    missing_docs,
    clippy::cast_precision_loss,
    reason = "a benchmark binary"
)]

mod support;

#[path = "../memo-runtime/tests/support/redis_server.rs"]
mod redis_server;

use std::hint::black_box;
use std::time::{Duration, Instant};

use memo::redis::{BreakerConfig, RedisClient, RedisConfig};
use redis_server::RedisServer;
use support::{Report, best_ns_per_op};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(100);

fn main() {
    let mut report = Report::new("redis");
    let mut server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url())
        .expect("the harness gives a valid URL")
        .command_timeout(COMMAND_TIMEOUT);
    let client = RedisClient::new(config.clone()).expect("a client");
    client.set(b"bench:k", &[7_u8; 100]).expect("SET");

    let gets = 2_000;
    let raw_get = best_ns_per_op(5, gets, || {
        for _ in 0..gets {
            black_box(client.get(b"bench:k").expect("GET"));
        }
    });
    report.figure("redis/raw_get_us", raw_get / 1e3, "us");

    let locks = 1_000;
    let lock = best_ns_per_op(5, locks, || {
        for _ in 0..locks {
            assert!(client.lock(b"bench:lock", b"token", 10_000).expect("lock"));
            assert!(client.unlock(b"bench:lock", b"token").expect("unlock"));
        }
    });
    report.figure("redis/lock_acquire_us", lock / 1e3, "us");

    // Killed: connections are refused at once. Frozen: nothing answers, so each call waits for
    // the command timeout. Both with a breaker that never opens, then with one that is open.
    let never_opens = BreakerConfig {
        threshold: u32::MAX,
        ..BreakerConfig::default()
    };
    let closed = RedisClient::new(config.clone().breaker(never_opens)).expect("a client");
    let opens = RedisClient::new(config.breaker(BreakerConfig {
        threshold: 3,
        base: Duration::from_secs(60),
        ..BreakerConfig::default()
    }))
    .expect("a client");
    closed.get(b"bench:k").expect("connected before the fault");
    opens.get(b"bench:k").expect("connected before the fault");

    server.pause();
    report.figure("redis/hung_added_ms", mean_ms(&closed, 20), "ms");
    server.kill();
    report.figure("redis/down_added_ms", mean_ms(&closed, 50), "ms");
    for _ in 0..3 {
        let _ = opens.get(b"bench:k");
    }
    assert!(opens.breaker().is_open(), "three failures open the breaker");
    report.figure("redis/down_open_added_ms", mean_ms(&opens, 10_000), "ms");
    report.write();
}

/// The mean time of `calls` failing `GET`s, in milliseconds.
fn mean_ms(client: &RedisClient, calls: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        assert!(client.get(b"bench:k").is_err(), "the server is down");
    }
    start.elapsed().as_secs_f64() * 1e3 / f64::from(calls)
}
