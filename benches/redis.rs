//! The Redis layer against local `redis-server`s that this binary starts: a bare `GET` round
//! trip beside a memoized hit of `#[cached(store = redis)]`, a miss's latency and round trips
//! (`redis/miss_us`, `redis/miss_round_trips`, counted with `MONITOR`), a tiered hit, a single-instance
//! lock, stampedes of processes on one cold key (through the cache, through Redlock over 5
//! servers, and through the cache with `lock = "redlock"`), and what a dead, frozen or slow server adds to a call
//! (a miss sends several commands; they share one command timeout: `redis/frozen_added_ms`,
//! `redis/slow_added_ms`).
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
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use memo::__private::hit_or_miss_async_in;
use memo::redis::{
    BreakerConfig, Claimed, LockConfig, RedisClient, RedisConfig, Redlock, RedlockConfig, URLS_VAR,
};
use memo::{Cache, Config, RedisOptions, RedisStore, TieredStore, cached};
use redis_server::{Monitor, RedisServer, SlowProxy, command};
use support::{Report, best_ns_per_op};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
/// Set in a stampede child process: `<store port>;<key>`; the servers are in `URLS_VAR`.
const CHILD: &str = "MEMO_BENCH_REDLOCK_CHILD";
const STAMPEDE_PROCESSES: usize = 4;
const STAMPEDE_THREADS: usize = 16;

/// A memoized function whose hits read Redis: a value of the raw `GET`'s size.
#[cached(store = redis)]
fn profile(id: u64) -> String {
    format!("{id:0>100}")
}

/// Hits from the local copy of a tiered store, beside the same function in memory.
#[cached(store = tiered, maxsize = 1000)]
fn tiered_square(n: u64) -> u64 {
    n * n
}

#[cached(maxsize = 1000)]
fn memory_square(n: u64) -> u64 {
    n * n
}

/// The stampede's body: 100 ms, each execution a line in `MEMO_BENCH_LOG`.
fn slow_double(key: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    let log = std::env::var_os("MEMO_BENCH_LOG").expect("the log file");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .expect("open the log");
    writeln!(file, "{}", std::process::id()).expect("log an execution");
    key * 2
}

#[cached(store = redis, ttl = "1m")]
fn cold(key: u64) -> u64 {
    slow_double(key)
}

/// The same, its lock taken on the Redlock servers of `MEMO_REDLOCK_URLS`.
#[cached(store = redis, lock = "redlock", ttl = "1m")]
fn cold_redlock(key: u64) -> u64 {
    slow_double(key)
}

/// One process of the stampede: 16 threads call `cold(1)` (or `cold_redlock(1)`) at once.
fn stampede_child(redlock: bool) {
    let barrier = Arc::new(Barrier::new(STAMPEDE_THREADS));
    let threads: Vec<_> = (0..STAMPEDE_THREADS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                if redlock { cold_redlock(1) } else { cold(1) }
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("a caller"), 2);
    }
}

/// Executions of `cold(1)` by 4 processes of 16 threads each; of `cold_redlock(1)` with the
/// lock servers `redlock_urls`.
fn stampede(url: &str, redlock_urls: Option<&str>) -> usize {
    let log = std::env::temp_dir().join(format!("memo-bench-stampede-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let children: Vec<_> = (0..STAMPEDE_PROCESSES)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().expect("this binary"))
                .env("MEMO_BENCH_ROLE", "stampede")
                .env("MEMO_REDIS_URL", url)
                .env("MEMO_BENCH_LOG", &log)
                .env(URLS_VAR, redlock_urls.unwrap_or_default())
                .spawn()
                .expect("spawn a stampede process")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("a stampede process").success());
    }
    let executions = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    executions.lines().count()
}

fn main() {
    if std::env::var_os("MEMO_BENCH_ROLE").is_some() {
        stampede_child(std::env::var_os(URLS_VAR).is_some_and(|urls| !urls.is_empty()));
        return;
    }
    if let Ok(spec) = std::env::var(CHILD) {
        redlock_stampede_child(&spec);
        return;
    }
    let mut report = Report::new("redis");
    let mut server = RedisServer::start();
    // SAFETY: set before any cache is opened, with no other thread running.
    unsafe { std::env::set_var("MEMO_REDIS_URL", server.url()) };
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

    // A memoized hit through the store (no local copy: every hit is a `GET`), measured in
    // alternation with the raw `GET` so both see the same machine.
    assert_eq!(profile(7).len(), 100);
    let (mut hit, mut raw) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        raw = raw.min(best_ns_per_op(1, gets, || {
            for _ in 0..gets {
                black_box(client.get(b"bench:k").expect("GET"));
            }
        }));
        hit = hit.min(best_ns_per_op(1, gets, || {
            for _ in 0..gets {
                black_box(profile(black_box(7)));
            }
        }));
    }
    assert_eq!(profile_cache().stats().backend_errors, 0);
    report.figure("redis/raw_get_alternated_us", raw / 1e3, "us");
    report.figure("redis/hit_us", hit / 1e3, "us");
    report.figure("redis/hit_vs_raw_get", hit / raw, "x");

    miss_trips(&mut report, &server, raw);

    assert_eq!((tiered_square(9), memory_square(9)), (81, 81));
    let local_hits = 1_000_000;
    let (mut tiered, mut memory) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        memory = memory.min(best_ns_per_op(1, local_hits, || {
            for _ in 0..local_hits {
                black_box(memory_square(black_box(9)));
            }
        }));
        tiered = tiered.min(best_ns_per_op(1, local_hits, || {
            for _ in 0..local_hits {
                black_box(tiered_square(black_box(9)));
            }
        }));
    }
    report.figure("redis/memory_hit_ns", memory, "ns");
    report.figure("redis/tiered_hit_ns", tiered, "ns");
    report.figure("redis/tiered_vs_memory_hit", tiered / memory, "x");

    report.figure(
        "redis/stampede_executions",
        stampede(&server.url(), None) as f64,
        "executions",
    );

    redlock(&mut report, &client);

    faults(&mut report, &mut server, config);
    report.write();
}

/// A miss with no contention: its latency (fresh keys of the memoized `profile`, a body that costs
/// next to nothing) beside the raw `GET`'s, and its round trips, counted with `MONITOR`
/// (commands sent by the client; those a script runs are not round trips), with a hit's.
fn miss_trips(report: &mut Report, server: &RedisServer, raw_get_ns: f64) {
    let misses = 500;
    let mut next = 1_u64 << 32;
    let miss = best_ns_per_op(5, misses, || {
        for _ in 0..misses {
            black_box(profile(black_box(next)));
            next += 1;
        }
    });
    report.figure("redis/miss_us", miss / 1e3, "us");
    report.figure("redis/miss_vs_raw_get", miss / raw_get_ns, "x");
    let monitor = Monitor::start(server.port());
    let mark = monitor.mark();
    black_box(profile(black_box(next)));
    let miss_sent = monitor.sent_since(mark);
    let mark = monitor.mark();
    black_box(profile(black_box(next)));
    let hit_sent = monitor.sent_since(mark);
    println!("# a miss sends {miss_sent:?}, a hit {hit_sent:?}");
    report.figure(
        "redis/miss_round_trips",
        miss_sent.len() as f64,
        "round trips",
    );
    report.figure(
        "redis/hit_round_trips",
        hit_sent.len() as f64,
        "round trips",
    );
    assert_eq!(profile_cache().stats().backend_errors, 0);
}

/// What a killed, frozen or slow server adds to a call.
fn faults(report: &mut Report, server: &mut RedisServer, config: RedisConfig) {
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

    // Slow: every reply 30 ms or 60 ms late. A miss is three round trips (GET, claim, the SET
    // that releases the lock);
    // past the one command timeout of the call, what is left is not sent.
    for (delay_ms, name) in [(30, "redis/slow30_added_ms"), (60, "redis/slow_added_ms")] {
        let proxy = SlowProxy::start(server.port(), Duration::ZERO);
        let slow = RedisClient::new(
            RedisConfig::from_url(&proxy.url())
                .expect("a valid URL")
                .command_timeout(COMMAND_TIMEOUT)
                .breaker(never_opens),
        )
        .expect("a client");
        slow.get(b"bench:k").expect("connected before the slowdown");
        proxy.set_delay(Duration::from_millis(delay_ms));
        let cache = Cache::with_store(
            RedisOptions::new(name)
                .client(slow)
                .open::<u64, u64>(&Config::new()),
        );
        report.figure(
            name,
            miss_ms(10, |key| cache.get_or_compute(&key, |n| *n)),
            "ms",
        );
    }

    // Frozen: each miss pays one command timeout at most, however many commands it has.
    let misses = Misses::new(&closed);
    server.pause();
    report.figure(
        "redis/frozen_added_ms",
        miss_ms(5, |key| misses.sync(key)),
        "ms",
    );
    report.figure(
        "redis/frozen_added_async_ms",
        miss_ms(5, |key| misses.run_async(key)),
        "ms",
    );
    report.figure(
        "redis/frozen_added_tiered_ms",
        miss_ms(5, |key| misses.tiered(key)),
        "ms",
    );
    report.figure("redis/hung_added_ms", mean_ms(&closed, 20), "ms");
    server.kill();
    report.figure("redis/down_added_ms", mean_ms(&closed, 50), "ms");
    for _ in 0..3 {
        let _ = opens.get(b"bench:k");
    }
    assert!(opens.breaker().is_open(), "three failures open the breaker");
    report.figure("redis/down_open_added_ms", mean_ms(&opens, 10_000), "ms");
}

/// Caches for the frozen server's misses: sync, async and tiered.
struct Misses {
    redis: &'static Cache<u64, u64, RedisStore<u64, u64>>,
    tiered: &'static Cache<u64, u64, TieredStore<u64, u64>>,
    runtime: tokio::runtime::Runtime,
}

impl Misses {
    fn new(client: &RedisClient) -> Self {
        let options = RedisOptions::new("bench-frozen").client(client.clone());
        let redis = Box::leak(Box::new(Cache::with_store(options.open(&Config::new()))));
        let tiered = Box::leak(Box::new(Cache::with_store(
            options.open_tiered(&Config::new()),
        )));
        Self {
            redis,
            tiered,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
        }
    }

    fn sync(&self, key: u64) -> u64 {
        self.redis.get_or_compute(&key, |n| *n)
    }

    fn tiered(&self, key: u64) -> u64 {
        self.tiered.get_or_compute(&key, |n| *n)
    }

    fn run_async(&self, key: u64) -> u64 {
        let redis = self.redis;
        self.runtime.block_on(async move {
            match hit_or_miss_async_in(redis, &key).await {
                Ok(value) => value,
                Err(miss) => miss.compute_async(async move { key }, |_| true).await,
            }
        })
    }
}

/// The mean time of `calls` misses (keys never used before, a body that costs nothing), in
/// milliseconds: what the server adds to a call that computes.
fn miss_ms(calls: u64, mut miss: impl FnMut(u64) -> u64) -> f64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
    let first = NEXT.fetch_add(calls, std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    for key in first..first + calls {
        assert_eq!(miss(key), key);
    }
    start.elapsed().as_secs_f64() * 1e3 / calls as f64
}

/// The mean time of `calls` failing `GET`s, in milliseconds.
fn mean_ms(client: &RedisClient, calls: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        assert!(client.get(b"bench:k").is_err(), "the server is down");
    }
    start.elapsed().as_secs_f64() * 1e3 / f64::from(calls)
}

/// `redlock/acquire_us` (one round on 5 servers in parallel, then the release) against the
/// single-instance lock on `client` (`redis/lock_acquire_us`), measured in alternation so that a
/// slow spell of the machine touches both; and the stampedes.
fn redlock(report: &mut Report, client: &RedisClient) {
    let servers: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let redlock = new_redlock(
        RedlockConfig::from_urls(&urls).expect("the harness gives valid URLs"),
        &urls[0],
    );
    // The single-instance lock's protocol, as `store = redis` runs it: `SET NX PX`, then
    // compare-and-delete announcing the release on the lock channel, which a process listens to
    // (as the Redlock listens on each of its servers).
    let channel = LockConfig::default().channel;
    let _listening = client.subscribe(&channel, |_| {}).expect("SUBSCRIBE");
    let (locks, rounds) = (500, 250);
    let (mut single, mut acquire) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        single = single.min(best_ns_per_op(1, locks, || {
            for _ in 0..locks {
                assert!(client.lock(b"bench:lock", b"token", 10_000).expect("lock"));
                let released = client.unlock_and_publish(b"bench:lock", b"token", &channel);
                assert!(released.expect("unlock"));
            }
        }));
        acquire = acquire.min(best_ns_per_op(1, rounds, || {
            for _ in 0..rounds {
                let guard = redlock
                    .try_lock(b"bench:redlock", Duration::from_secs(10))
                    .expect("an uncontended lock");
                assert!(guard.release().expect("release"));
            }
        }));
    }
    report.figure("redis/lock_acquire_us", single / 1e3, "us");
    report.figure("redlock/acquire_us", acquire / 1e3, "us");
    report.figure("redlock/acquire_vs_lock", acquire / single, "x");

    let children: Vec<_> = (0..STAMPEDE_PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().expect("this binary"))
                .env(URLS_VAR, urls.join(","))
                .env(CHILD, format!("{};stampede", servers[0].port()))
                .stdout(Stdio::null())
                .spawn()
                .expect("a child process")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("a child").success(), "a child failed");
    }
    let executions = command(servers[0].port(), "GET stampede:executions");
    let executions: f64 = executions
        .lines()
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or(0.0);
    report.figure("redlock/stampede_executions", executions, "count");
    let cached = stampede(&urls[0], Some(&urls.join(","))) as f64;
    report.figure("redlock/cached_stampede_executions", cached, "count");
}

fn new_redlock(config: RedlockConfig, store_url: &str) -> Redlock {
    let config = config.map_servers(|server| server.command_timeout(COMMAND_TIMEOUT * 10));
    let store = RedisClient::new(
        RedisConfig::from_url(store_url)
            .expect("a valid URL")
            .command_timeout(COMMAND_TIMEOUT * 10),
    )
    .expect("a client");
    Redlock::new(config, store).expect("a Redlock")
}

/// One Redlock stampede process: 16 threads miss one key at once; a computation takes 100 ms
/// and is counted with `INCR` on the store.
fn redlock_stampede_child(spec: &str) {
    let (port, key) = spec.split_once(';').expect("<port>;<key>");
    let port: u16 = port.parse().expect("a port");
    let redlock = new_redlock(
        RedlockConfig::from_env().expect(URLS_VAR),
        &format!("redis://127.0.0.1:{port}"),
    );
    let (value_key, lock_key) = (format!("{{{key}}}:v"), format!("{{{key}}}:lock"));
    let compute = || {
        command(port, &format!("INCR {key}:executions"));
        std::thread::sleep(Duration::from_millis(100));
        let _ = redlock
            .store()
            .set_px(value_key.as_bytes(), b"value", 60_000);
    };
    let barrier = Barrier::new(STAMPEDE_THREADS);
    std::thread::scope(|scope| {
        for _ in 0..STAMPEDE_THREADS {
            scope.spawn(|| {
                barrier.wait();
                match redlock.claim(value_key.as_bytes(), lock_key.as_bytes()) {
                    Claimed::Value(_) => {}
                    Claimed::Compute(guard) => {
                        compute();
                        drop(guard);
                    }
                    Claimed::TimedOut | Claimed::Unavailable(_) => compute(),
                }
            });
        }
    });
}
