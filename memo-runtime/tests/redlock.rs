//! Redlock against 5 real `redis-server`s started by each test: several processes (this binary,
//! run again as a child) and threads on one cold key compute it once, with all servers up and
//! with 2 of 5 killed; with 3 of 5 killed no call fails and one warning is logged; only the owner
//! releases; a round that leaves no validity is refused. Counts, not timings.
#![cfg(feature = "redis")]
#![allow(missing_docs, clippy::missing_panics_doc, reason = "tests")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::Duration;

use memo_runtime::redis::{
    Claimed, DistributedLock, Error, RedisClient, RedisConfig, Redlock, RedlockConfig, Refused,
    URLS_VAR,
};
use redis_server::{RedisServer, command};

/// Set in a child process: `<store port>;<threads>;<key>`; the servers are in `URLS_VAR`.
const CHILD: &str = "MEMO_REDLOCK_TEST_CHILD";
const VALUE: &[u8] = b"computed";

/// Generous: these tests count outcomes; the timeouts only have to be met on a loaded machine.
fn generous(server: RedisConfig) -> RedisConfig {
    server
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
}

fn redlock(config: RedlockConfig, store_url: &str) -> Redlock {
    let mut config = config.map_servers(generous);
    config.lock.wait = Duration::from_secs(30);
    let store = RedisClient::new(generous(RedisConfig::from_url(store_url).unwrap())).unwrap();
    Redlock::new(config, store).unwrap()
}

fn five() -> (Vec<RedisServer>, Vec<String>) {
    let servers: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    let urls = servers.iter().map(RedisServer::url).collect();
    (servers, urls)
}

/// One memoized call: the value, computed (and counted with `INCR`) only when told to.
fn call(lock: &impl DistributedLock, store_port: u16, key: &str) -> Vec<u8> {
    let (value_key, lock_key) = (format!("{{{key}}}:v"), format!("{{{key}}}:lock"));
    let compute = || {
        assert!(command(store_port, &format!("INCR {key}:executions")).starts_with(':'));
        std::thread::sleep(Duration::from_millis(200));
        let _ = lock.store().set_px(value_key.as_bytes(), VALUE, 60_000);
        VALUE.to_vec()
    };
    match lock.claim(value_key.as_bytes(), lock_key.as_bytes()) {
        Claimed::Value(value) => value,
        Claimed::Compute(guard) => {
            let value = compute();
            drop(guard);
            value
        }
        Claimed::TimedOut | Claimed::Unavailable(_) => compute(),
    }
}

fn executions(store_port: u16, key: &str) -> String {
    command(store_port, &format!("GET {key}:executions"))
}

/// `threads` callers at once in this process; every one gets the value.
fn stampede(lock: &impl DistributedLock, store_port: u16, key: &str, threads: usize) {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                assert_eq!(call(lock, store_port, key), VALUE);
            });
        }
    });
}

/// The child's side of [`processes`]: a no-op in an ordinary test run.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.split(';');
    let port: u16 = parts.next().unwrap().parse().unwrap();
    let threads: usize = parts.next().unwrap().parse().unwrap();
    let key = parts.next().unwrap();
    let redlock = redlock(
        RedlockConfig::from_env().unwrap(),
        &format!("redis://127.0.0.1:{port}"),
    );
    stampede(&redlock, port, key, threads);
}

/// Runs this binary `processes` times at once as [`child_process`], each with `threads`
/// callers on `key`, against `urls`; the store (and the execution counter) is `store`.
fn processes(urls: &[String], store: &RedisServer, key: &str, processes: usize, threads: usize) {
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_process", "--exact", "--test-threads=1"])
                .env(URLS_VAR, urls.join(","))
                .env(CHILD, format!("{};{threads};{key}", store.port()))
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child process failed");
    }
}

#[test]
fn processes_and_threads_on_one_cold_key_compute_it_once() {
    let (servers, urls) = five();
    processes(&urls, &servers[0], "all-up", 3, 8);
    assert_eq!(executions(servers[0].port(), "all-up"), "$1\r\n1\r\n");
}

#[test]
fn two_of_five_servers_down_still_one_execution() {
    let (mut servers, urls) = five();
    servers[3].kill();
    servers[4].kill();
    processes(&urls, &servers[0], "two-down", 3, 8);
    assert_eq!(executions(servers[0].port(), "two-down"), "$1\r\n1\r\n");
}

#[test]
fn three_of_five_down_no_call_fails_and_one_warning() {
    let (mut servers, urls) = five();
    for server in &mut servers[2..] {
        server.kill();
    }
    let redlock = redlock(RedlockConfig::from_urls(&urls).unwrap(), &urls[0]);
    let claimed = redlock.claim(b"{three}:v", b"{three}:lock");
    assert!(
        matches!(
            claimed,
            Claimed::Unavailable(Error::NoQuorum {
                answered: 2,
                needed: 3
            })
        ),
        "{claimed:?}"
    );
    // Every caller gets the value: computed without the lock, or stored by one that did.
    stampede(&redlock, servers[0].port(), "three", 16);
    assert_eq!(redlock.warnings(), 1, "one warning per interval");
}

#[test]
fn only_the_owner_releases() {
    let (servers, urls) = five();
    let redlock = redlock(RedlockConfig::from_urls(&urls).unwrap(), &urls[0]);
    let guard = redlock.try_lock(b"owned", Duration::from_secs(30)).unwrap();
    let holding = format!("${}\r\n{}\r\n", guard.token().len(), {
        std::str::from_utf8(guard.token()).unwrap()
    });
    assert_eq!(redlock.release(b"owned", b"someone-else"), 0);
    assert!(matches!(
        redlock.try_lock(b"owned", Duration::from_secs(30)),
        Err(Refused::Held { granted: 0 })
    ));
    for server in &servers {
        assert_eq!(command(server.port(), "GET owned"), holding);
    }
    assert!(guard.release().unwrap());
    for server in &servers {
        assert_eq!(command(server.port(), "EXISTS owned"), ":0\r\n");
    }
}

/// A claim's lock is fenced on the store's server (its lock name there holds its token), which
/// an invalidation deletes: its release then says the lock was no longer all ours, as a
/// single-server lock's does, so that a result not stored is not handed to callers that
/// joined after that change.
#[test]
fn a_release_after_the_fence_was_taken_away_says_the_lock_was_lost() {
    let (servers, urls) = five();
    let store = RedisServer::start();
    let redlock = redlock(RedlockConfig::from_urls(&urls).unwrap(), &store.url());
    for taken_away in [false, true] {
        let Claimed::Compute(guard) = redlock.claim(b"{fenced}:v", b"{fenced}:lock") else {
            panic!("a cold key is computed")
        };
        assert_eq!(
            command(store.port(), "EXISTS {fenced}:lock"),
            ":1\r\n",
            "fenced"
        );
        if taken_away {
            assert_eq!(command(store.port(), "DEL {fenced}:lock"), ":1\r\n");
        }
        assert_eq!(guard.release().unwrap(), !taken_away);
        for server in &servers {
            assert_eq!(command(server.port(), "EXISTS {fenced}:lock"), ":0\r\n");
        }
    }
}

#[test]
fn a_round_that_leaves_no_validity_is_refused() {
    let (servers, urls) = five();
    let redlock = redlock(RedlockConfig::from_urls(&urls).unwrap(), &urls[0]);
    // The drift allowance alone (lease / 100 + 2 ms) uses up a 2 ms lease.
    let refused = redlock.try_lock(b"short", Duration::from_millis(2));
    assert!(
        matches!(refused, Err(Refused::Expired { .. })),
        "{refused:?}"
    );
    for server in &servers {
        assert_eq!(command(server.port(), "EXISTS short"), ":0\r\n");
    }
}

#[test]
fn the_lease_is_extended_on_the_servers_while_the_body_runs() {
    let (servers, urls) = five();
    let redlock = redlock(RedlockConfig::from_urls(&urls).unwrap(), &urls[0]);
    let guard = redlock
        .try_lock(b"long", Duration::from_millis(1500))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!guard.is_lost());
    for server in &servers {
        assert_eq!(command(server.port(), "EXISTS long"), ":1\r\n");
    }
    assert!(guard.release().unwrap());
}

#[test]
fn claim_async_runs_on_a_bare_executor() {
    let (servers, urls) = five();
    let redlock = redlock(RedlockConfig::from_urls(&urls).unwrap(), &urls[0]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Claimed::Compute(guard) = redlock.claim_async(b"{a}:v", b"{a}:lock").await else {
            panic!("a cold key is ours to compute");
        };
        redlock
            .store()
            .set_px_async(b"{a}:v", VALUE, 60_000)
            .await
            .unwrap();
        assert!(guard.release_async().await.unwrap());
        let Claimed::Value(value) = redlock.claim_async(b"{a}:v", b"{a}:lock").await else {
            panic!("the value is there");
        };
        assert_eq!(value, VALUE);
    });
    drop(servers);
}

#[test]
fn a_store_given_redlock_servers_in_code_takes_its_lock_there() {
    use memo_runtime::{Cache, Config, RedisOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (servers, urls) = five();
    let store_server = RedisServer::start();
    let store = RedisOptions::new("given")
        .client(
            RedisClient::new(generous(
                RedisConfig::from_url(&store_server.url()).unwrap(),
            ))
            .unwrap(),
        )
        .redlock_with(
            RedlockConfig::from_urls(&urls)
                .unwrap()
                .map_servers(generous),
        )
        .open::<u64, String>(&Config::new().ttl(Duration::from_secs(60)));
    let cache = Cache::with_store(store);
    let executions = AtomicUsize::new(0);
    let barrier = Barrier::new(8);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                barrier.wait();
                let value = cache.get_or_compute(&7, |n| {
                    executions.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                    format!("value {n}")
                });
                assert_eq!(value, "value 7");
            });
        }
    });
    assert_eq!(executions.load(Ordering::Relaxed), 1);
    assert_eq!(cache.stats().backend_errors, 0);
    // The lock went to the Redlock servers; the value to the store's.
    for server in &servers {
        assert!(command(server.port(), "INFO commandstats").contains("cmdstat_set:calls="));
    }
    assert!(command(store_server.port(), "DBSIZE").starts_with(":1"));
}
