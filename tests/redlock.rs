//! `#[cached(store = redis | tiered, lock = "redlock")]` end to end: values in one real
//! `redis-server`, the lock on a majority of five others, all started by each test. Several
//! processes (this binary, run again as a child) × threads on one cold key compute it once with
//! all lock servers up and with 2 of 5 killed; with 3 of 5 killed no call fails and the error is
//! counted; without `MEMO_REDLOCK_URLS` the lock falls back to the store's server and says so.
//! Counts, not timings.
#![cfg(feature = "redis")]

#[path = "support/child.rs"]
mod child;
#[path = "../memo-runtime/tests/support/redis_server.rs"]
mod redis_server;
#[path = "support/timed_out.rs"]
mod timed_out;

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use memo::cached;
use redis_server::{RedisServer, command};

/// Set in a child process: the store server's port, where executions are counted.
const STORE_PORT: &str = "MEMO_TEST_STORE_PORT";
/// Set in a child process: the key its callers ask for.
const KEY: &str = "MEMO_TEST_KEY";
const THREADS: usize = 8;

/// Counts one execution in the store server (`INCR <key>:executions`), then takes its time.
fn execute(key: &str) -> String {
    let port: u16 = std::env::var(STORE_PORT).unwrap().parse().unwrap();
    assert!(command(port, &format!("INCR {key}:executions")).starts_with(':'));
    std::thread::sleep(Duration::from_millis(200));
    format!("value of {key}")
}

#[cached(store = redis, lock = "redlock", ttl = "1m")]
fn load(key: &str) -> String {
    execute(key)
}

#[cached(store = tiered, lock = "redlock", maxsize = 100, ttl = "1m")]
async fn load_tiered(key: String) -> String {
    tokio::task::spawn_blocking(move || execute(&key))
        .await
        .unwrap()
}

/// What this binary does when run as a child: `THREADS` threads call `load(key)` at once, then
/// `THREADS` tasks call `load_tiered(key + "-tiered")` at once; every caller must get the value.
#[test]
fn child() {
    let Ok(key) = std::env::var(KEY) else {
        return;
    };
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (barrier, key) = (Arc::clone(&barrier), key.clone());
            std::thread::spawn(move || {
                barrier.wait();
                load(&key)
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), format!("value of {key}"));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tiered = format!("{key}-tiered");
    let values = runtime.block_on(async {
        let tasks: Vec<_> = (0..THREADS)
            .map(|_| tokio::spawn(load_tiered(tiered.clone())))
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values
    });
    assert!(
        values
            .iter()
            .all(|value| *value == format!("value of {tiered}"))
    );
    let errors = load_cache().stats().backend_errors + load_tiered_cache().stats().backend_errors;
    println!("RESULT errors={errors}");
}

/// A store server and five lock servers.
struct Servers {
    store: RedisServer,
    locks: Vec<RedisServer>,
}

impl Servers {
    fn start() -> Self {
        Self {
            store: RedisServer::start(),
            locks: (0..5).map(|_| RedisServer::start()).collect(),
        }
    }

    /// Runs `processes` children at once on `key`, the lock servers named when `redlock`; their
    /// outputs.
    fn run(&self, key: &str, processes: usize, redlock: bool) -> Vec<Output> {
        let urls: Vec<String> = self.locks.iter().map(RedisServer::url).collect();
        let children: Vec<_> = (0..processes)
            .map(|_| {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command
                    .args(["--exact", "child", "--nocapture", "--test-threads=1"])
                    .env(KEY, key)
                    .env(STORE_PORT, self.store.port().to_string())
                    .env("MEMO_REDIS_URL", self.store.url())
                    .env_remove(memo::redis::URLS_VAR)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                if redlock {
                    command.env(memo::redis::URLS_VAR, urls.join(","));
                }
                command.spawn().unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect()
    }

    /// How many times `key` was computed, across processes.
    fn executions(&self, key: &str) -> u64 {
        let reply = command(self.store.port(), &format!("GET {key}:executions"));
        reply
            .lines()
            .nth(1)
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The `errors=` of every child, each of which must have succeeded.
fn errors(outputs: &[Output]) -> Vec<u64> {
    outputs
        .iter()
        .map(|out| {
            let result = child::result(out);
            result
                .strip_prefix("errors=")
                .and_then(|errors| errors.parse().ok())
                .unwrap_or_else(|| panic!("no error count in RESULT {result}"))
        })
        .collect()
}

#[test]
fn processes_and_threads_on_one_cold_key_compute_it_once() {
    let servers = Servers::start();
    let outputs = servers.run("all-up", 3, true);
    assert_eq!(errors(&outputs), [0, 0, 0]);
    assert_eq!(servers.executions("all-up"), 1);
    assert_eq!(servers.executions("all-up-tiered"), 1);
    // The lock was taken on the lock servers (`SET … NX PX`; nothing else writes there).
    for server in &servers.locks {
        let stats = command(server.port(), "INFO commandstats");
        assert!(stats.contains("cmdstat_set:calls="), "{stats}");
    }
}

#[test]
fn two_of_five_lock_servers_down_still_one_execution() {
    let mut servers = Servers::start();
    servers.locks[3].kill();
    servers.locks[4].kill();
    let outputs = servers.run("two-down", 3, true);
    // Each process counted the servers that failed its claims, a majority answering.
    assert!(
        errors(&outputs).iter().all(|&errors| errors >= 1),
        "{:?}",
        errors(&outputs)
    );
    assert_eq!(servers.executions("two-down"), 1);
    assert_eq!(servers.executions("two-down-tiered"), 1);
}

#[test]
fn three_of_five_down_no_call_fails_and_the_error_is_counted() {
    let mut servers = Servers::start();
    for server in &mut servers.locks[2..] {
        server.kill();
    }
    let outputs = servers.run("three-down", 2, true);
    // Every call got its value (the child checks); each process counted the missing majority.
    assert!(errors(&outputs).iter().all(|&errors| errors >= 1));
    assert!(servers.executions("three-down") >= 1);
    #[cfg(not(feature = "tracing"))]
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("redlock: 2 of 5 servers answered, a majority needs 3"),
            "{stderr}"
        );
    }
}

#[test]
fn without_the_servers_the_lock_falls_back_to_the_stores_server() {
    let servers = Servers::start();
    let outputs = servers.run("no-urls", 2, false);
    // One counted error per store (the fallback), and the one-server lock still works.
    assert_eq!(errors(&outputs), [2, 2]);
    assert_eq!(servers.executions("no-urls"), 1);
    assert_eq!(servers.executions("no-urls-tiered"), 1);
    #[cfg(not(feature = "tracing"))]
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("MEMO_REDLOCK_URLS is not set"), "{stderr}");
    }
}

/// Attacks of session attack6 on the Redlock paths.
mod attack6 {
    use super::*;
    use memo::redis::{RedisClient, RedisConfig, RedlockConfig};
    use memo::{Cache, RedisOptions};

    /// The options of a store called `name` on `store`, locked with Redlock over `locks`, on
    /// clients and a Redlock of their own (a process of its own), patient (2 s a call).
    fn options(store: &RedisServer, locks: &[RedisServer], name: &str) -> RedisOptions {
        let patient = |config: RedisConfig| {
            config
                .command_timeout(Duration::from_secs(2))
                .connect_timeout(Duration::from_secs(2))
        };
        let client = RedisClient::new(patient(RedisConfig::from_url(&store.url()).unwrap()));
        let redlock = RedlockConfig::from_urls(locks.iter().map(RedisServer::url))
            .unwrap()
            .map_servers(patient);
        RedisOptions::new(name)
            .client(client.unwrap())
            .redlock_with(redlock)
    }

    /// `timed_out::timed_out_waiter` over three handles `open` gives.
    fn timed_out_waiter<S>(open: &(impl Fn() -> Cache<String, String, S> + Sync), invalidate: bool)
    where
        S: memo::Store<String, String> + Send + Sync + 'static,
    {
        let (holder, waiter, other) = (open(), open(), open());
        timed_out::timed_out_waiter([&holder, &waiter, &other], invalidate, "in Redis");
    }

    #[test]
    fn a_timed_out_redlock_waiters_value_computed_before_an_invalidation_is_not_stored() {
        let servers = Servers::start();
        let (store, locks) = (&servers.store, &servers.locks[..3]);
        std::thread::scope(|s| {
            for (name, invalidate) in [("redis-kept", false), ("redis-invalidated", true)] {
                s.spawn(move || {
                    let open = || -> memo::RedisCache<String, String> {
                        Cache::builder()
                            .redis_options(options(store, locks, name))
                            .build()
                    };
                    timed_out_waiter(&open, invalidate);
                });
            }
            for (name, invalidate) in [("tiered-kept", false), ("tiered-invalidated", true)] {
                s.spawn(move || {
                    let open = || -> memo::TieredCache<String, String> {
                        Cache::builder()
                            .maxsize(10)
                            .tiered_options(options(store, locks, name))
                            .build()
                    };
                    timed_out_waiter(&open, invalidate);
                });
            }
        });
    }
}
