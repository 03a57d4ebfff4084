//! The Redis layer against real `redis-server`s started by the test (`tests/support/redis_server.rs`):
//! commands, the lock protocol, pub/sub, the circuit breaker across a server crash, and a cluster.
#![cfg(feature = "redis")]
#![allow(missing_docs, clippy::missing_panics_doc, reason = "tests")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, mpsc};
use std::time::{Duration, Instant};

use memo_runtime::redis::{
    BreakerConfig, Claimed, Error, LockConfig, Locks, RedisClient, RedisConfig,
};
use redis_server::{RedisCluster, RedisServer, command};

/// Generous: these tests count outcomes; the timeout only has to be met on a loaded machine.
fn config(url: &str) -> RedisConfig {
    RedisConfig::from_url(url)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
}

/// A server of the test's own (a static one would outlive the test binary: statics are never
/// dropped) and a client for it.
fn server() -> (RedisServer, RedisClient) {
    let server = RedisServer::start();
    let client = RedisClient::new(config(&server.url())).unwrap();
    (server, client)
}

/// Polls `check` for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn get_set_del_and_expiry() {
    let (server, client) = server();
    assert_eq!(client.get(b"gsd:missing").unwrap(), None);
    client.set_px(b"gsd:a", b"\x00binary\xff", 60_000).unwrap();
    assert_eq!(
        client.get(b"gsd:a").unwrap().as_deref(),
        Some(&b"\x00binary\xff"[..])
    );
    assert!(client.del(b"gsd:a").unwrap());
    assert!(!client.del(b"gsd:a").unwrap());
    client.set_px(b"gsd:short", b"v", 30).unwrap();
    eventually("a 30 ms key expires", || {
        client.get(b"gsd:short").unwrap().is_none()
    });
    client.set(b"gsd:forever", b"v").unwrap();
    // A key of the wrong type (garbage, to a cache): an error, never a panic.
    assert!(command(server.port(), "LPUSH gsd:list x").starts_with(':'));
    assert!(matches!(client.get(b"gsd:list"), Err(Error::Redis(_))));
    assert_eq!(command(server.port(), "PTTL gsd:forever").trim(), ":-1");
}

#[test]
fn async_calls_need_no_runtime_timer_of_their_own() {
    let (_server, client) = server();
    // A runtime without time or IO drivers: the client's own thread does the waiting.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        client.set_px_async(b"async:k", b"v", 60_000).await.unwrap();
        assert_eq!(
            client.get_async(b"async:k").await.unwrap(),
            Some(b"v".to_vec())
        );
        assert!(client.del_async(b"async:k").await.unwrap());
        client.set_async(b"async:forever", b"v").await.unwrap();
        assert_eq!(
            client.publish_async(b"async:nobody", b"m").await.unwrap(),
            0
        );
    });
}

#[test]
fn lock_is_exclusive_across_threads() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20;
    let (_server, client) = server();
    let (inside, most, acquired) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (client, inside, most, acquired) = (&client, &inside, &most, &acquired);
            s.spawn(move || {
                let token = format!("thread-{t}");
                for _ in 0..ROUNDS {
                    while !client.lock(b"excl:lock", token.as_bytes(), 10_000).unwrap() {
                        std::thread::yield_now();
                    }
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(200));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    acquired.fetch_add(1, Ordering::SeqCst);
                    assert!(client.unlock(b"excl:lock", token.as_bytes()).unwrap());
                }
            });
        }
    });
    assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
    assert_eq!(acquired.load(Ordering::SeqCst), THREADS * ROUNDS);
}

#[test]
fn unlock_and_extend_only_by_the_owner() {
    let (server, client) = server();
    assert!(client.lock(b"own:lock", b"alice", 100).unwrap());
    assert!(!client.lock(b"own:lock", b"bob", 100).unwrap());
    assert!(!client.unlock(b"own:lock", b"bob").unwrap());
    assert!(!client.extend(b"own:lock", b"bob", 60_000).unwrap());
    assert!(client.extend(b"own:lock", b"alice", 60_000).unwrap());
    let pttl: i64 = command(server.port(), "PTTL own:lock")
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(pttl > 1_000, "the lease was not extended: {pttl} ms left");
    assert!(client.unlock(b"own:lock", b"alice").unwrap());
    assert!(!client.unlock(b"own:lock", b"alice").unwrap());
    assert!(!client.extend(b"own:lock", b"alice", 60_000).unwrap());
}

#[test]
fn one_claimant_computes_and_the_others_get_its_value() {
    const THREADS: usize = 8;
    let (_server, client) = server();
    let locks = Locks::new(client, LockConfig::default());
    let executions = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    let values: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (locks, executions, barrier) = (&locks, &executions, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    match locks.claim(b"{sf}:v", b"{sf}:lock") {
                        Claimed::Value(value) => value,
                        Claimed::Compute(guard) => {
                            executions.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            locks
                                .client()
                                .set_px(b"{sf}:v", b"computed", 60_000)
                                .unwrap();
                            guard.release().unwrap();
                            b"computed".to_vec()
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(executions.load(Ordering::SeqCst), 1);
    assert!(values.iter().all(|v| v == b"computed"));
}

#[test]
fn a_dead_holders_lock_expires_with_its_lease() {
    let (_server, client) = server();
    let locks = Locks::new(client, LockConfig::default());
    // A holder that took the lock and died: nobody renews or releases it.
    assert!(
        locks
            .client()
            .lock(b"{dead}:lock", b"crashed", 300)
            .unwrap()
    );
    match locks.claim(b"{dead}:v", b"{dead}:lock") {
        Claimed::Compute(guard) => assert!(!guard.is_lost()),
        other => panic!("the waiter should take over the expired lock, got {other:?}"),
    }
}

#[test]
fn the_lease_is_renewed_while_the_holder_computes() {
    let lease = Duration::from_millis(300);
    let (_server, client) = server();
    let locks = Locks::new(
        client,
        LockConfig {
            lease,
            ..LockConfig::default()
        },
    );
    let Claimed::Compute(guard) = locks.claim(b"{renew}:v", b"{renew}:lock") else {
        panic!("nobody else holds this lock");
    };
    std::thread::sleep(lease * 4);
    // Still ours: the others cannot take it.
    assert!(
        !locks
            .client()
            .lock(b"{renew}:lock", b"intruder", 1_000)
            .unwrap()
    );
    assert!(!guard.is_lost());
    assert!(guard.release().unwrap());
}

#[test]
fn a_release_wakes_a_waiter_without_polling() {
    // The waiter never polls before its 60 s wait is over: only the notification can wake it.
    let slow = LockConfig {
        wait: Duration::from_secs(60),
        poll_min: Duration::from_secs(60),
        poll_max: Duration::from_secs(60),
        ..LockConfig::default()
    };
    let (server, client) = server();
    let holder = Locks::new(client, slow.clone());
    // Another client, as another process would have.
    let waiter = Locks::new(RedisClient::new(config(&server.url())).unwrap(), slow);
    let Claimed::Compute(guard) = holder.claim(b"{wake}:v", b"{wake}:lock") else {
        panic!("nobody else holds this lock");
    };
    let started = Instant::now();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| waiter.claim(b"{wake}:v", b"{wake}:lock"));
        // Both processes' subscriptions are up (they start on first use, in the background).
        eventually("both listen for releases", || {
            let reply = command(server.port(), "PUBSUB NUMSUB memo:released");
            reply.trim_end().ends_with(":2")
        });
        std::thread::sleep(Duration::from_millis(50));
        holder
            .client()
            .set_px(b"{wake}:v", b"done", 60_000)
            .unwrap();
        guard.release().unwrap();
        match waiting.join().unwrap() {
            Claimed::Value(value) => assert_eq!(value, b"done"),
            other => panic!("unexpected {other:?}"),
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "woken by the poll, not the message"
    );
}

#[test]
fn claim_async_runs_on_a_bare_executor() {
    let (_server, client) = server();
    let locks = Locks::new(client, LockConfig::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Claimed::Compute(guard) = locks.claim_async(b"{ca}:v", b"{ca}:lock").await else {
            panic!("nobody else holds this lock");
        };
        locks
            .client()
            .set_px_async(b"{ca}:v", b"x", 60_000)
            .await
            .unwrap();
        assert!(guard.release_async().await.unwrap());
        match locks.claim_async(b"{ca}:v", b"{ca}:lock").await {
            Claimed::Value(value) => assert_eq!(value, b"x"),
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn sync_calls_block_a_runtimes_thread_and_its_blocking_threads() {
    let (_server, client) = server();
    let locks = std::sync::Arc::new(Locks::new(client, LockConfig::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        // On the runtime's own thread: the sync call blocks it, as any sync call does.
        let Claimed::Compute(guard) = locks.claim(b"{sb}:v", b"{sb}:lock") else {
            panic!("nobody else holds this lock");
        };
        let waiter = std::sync::Arc::clone(&locks);
        let waiting = tokio::task::spawn_blocking(move || waiter.claim(b"{sb}:v", b"{sb}:lock"));
        locks.client().set_px(b"{sb}:v", b"x", 60_000).unwrap();
        assert!(guard.release().unwrap());
        match waiting.await.unwrap() {
            Claimed::Value(value) => assert_eq!(value, b"x"),
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn pubsub_delivers_messages() {
    let (_server, client) = server();
    let (tx, rx) = mpsc::channel();
    let subscription = client
        .subscribe(b"ps:channel", move |message| {
            let _ = tx.send(message);
        })
        .unwrap();
    assert_eq!(client.publish(b"ps:channel", b"hello").unwrap(), 1);
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"hello");
    drop(subscription);
    eventually("the subscription ends on drop", || {
        client.publish(b"ps:channel", b"bye").unwrap() == 0
    });
}

#[test]
fn scan_del_removes_exactly_the_prefix() {
    let (_server, client) = server();
    for i in 0..1_200 {
        client
            .set_px(format!("sd*:{i}").as_bytes(), b"v", 60_000)
            .unwrap();
    }
    client.set_px(b"sdx:other", b"v", 60_000).unwrap();
    assert_eq!(client.scan_del(b"sd*:").unwrap(), 1_200);
    assert_eq!(client.get(b"sd*:7").unwrap(), None);
    assert_eq!(client.get(b"sdx:other").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn a_dead_server_at_start_up_is_an_error_not_a_panic() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let client = RedisClient::new(config(&url)).unwrap();
    assert!(client.get(b"k").is_err());
    let locks = Locks::new(client, LockConfig::default());
    assert!(matches!(locks.claim(b"v", b"l"), Claimed::Unavailable(_)));
}

#[test]
fn breaker_opens_on_a_crash_mid_load_and_recovers_on_its_own() {
    const THREADS: usize = 4;
    let mut server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .connect_timeout(Duration::from_millis(200))
        .command_timeout(Duration::from_millis(200))
        .breaker(BreakerConfig {
            threshold: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(400),
            log_interval: Duration::from_secs(60),
        });
    let client = RedisClient::new(config).unwrap();
    client.set(b"brk:k", b"v").unwrap();
    let stop = AtomicBool::new(false);
    let (ok, failed, fast, slow) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                // Bounded in time as well as by the flag.
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let started = Instant::now();
                    match client.get(b"brk:k") {
                        // Before the crash the value, after the restart an empty server: never
                        // anything else.
                        Ok(value) => {
                            assert!(value.is_none() || value.as_deref() == Some(&b"v"[..]));
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Open) => {
                            fast.fetch_add(1, Ordering::Relaxed);
                            // Failing fast costs nothing; leave the cores to the server.
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        Err(_) => _ = failed.fetch_add(1, Ordering::Relaxed),
                    }
                    // Bounded by the command timeout (plus scheduling slack), never hanging.
                    if started.elapsed() > Duration::from_secs(2) {
                        slow.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        eventually("calls succeed under load", || {
            ok.load(Ordering::Relaxed) > 100
        });
        server.kill();
        eventually("the breaker opens", || client.breaker().is_open());
        eventually("calls fail fast", || fast.load(Ordering::Relaxed) > 100);
        server.restart();
        let before = ok.load(Ordering::Relaxed);
        eventually("the client recovers on its own", || {
            !client.breaker().is_open() && ok.load(Ordering::Relaxed) > before + 100
        });
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        failed.load(Ordering::Relaxed) >= 3,
        "the dead server was tried"
    );
    assert_eq!(
        slow.load(Ordering::Relaxed),
        0,
        "a call outlived the command timeout"
    );
    assert!(client.breaker().errors() >= 3 && client.breaker().rejected() > 100);
    // The restarted server is empty: a miss, not an error.
    assert_eq!(client.get(b"brk:k").unwrap(), None);
}

#[test]
fn a_subscription_survives_a_server_restart() {
    let mut server = RedisServer::start();
    let client = RedisClient::new(config(&server.url())).unwrap();
    let (tx, rx) = mpsc::channel();
    let _subscription = client
        .subscribe(b"ps:restart", move |message| {
            let _ = tx.send(message);
        })
        .unwrap();
    server.restart();
    eventually("the subscription is back", || {
        client
            .publish(b"ps:restart", b"again")
            .is_ok_and(|receivers| receivers == 1)
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"again");
}

#[test]
fn cluster_spans_slots_and_hash_tags_pin_value_and_lock_together() {
    let cluster = RedisCluster::start();
    let client = RedisClient::new(config(&cluster.url())).unwrap();
    for i in 0..200 {
        client
            .set_px(
                format!("cl:{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                60_000,
            )
            .unwrap();
    }
    for i in 0..200 {
        let value = client.get(format!("cl:{i}").as_bytes()).unwrap();
        assert_eq!(value, Some(format!("v{i}").into_bytes()));
    }
    // The keys landed on every master.
    for node in cluster.nodes() {
        let size = command(node.port(), "DBSIZE");
        assert_ne!(size.trim(), ":0", "a master holds no key");
    }
    let port = cluster.nodes()[0].port();
    let slot = |key: &str| command(port, &format!("CLUSTER KEYSLOT {key}"));
    assert_eq!(slot("{f:42}:v"), slot("{f:42}:lock"));
    assert_ne!(slot("f:42:v"), slot("f:42:lock"));

    let (tx, rx) = mpsc::channel();
    let _releases = client
        .subscribe(&LockConfig::default().channel, move |message| {
            let _ = tx.send(message);
        })
        .unwrap();
    let locks = Locks::new(client.clone(), LockConfig::default());
    let Claimed::Compute(guard) = locks.claim(b"{f:42}:v", b"{f:42}:lock") else {
        panic!("nobody else holds this lock");
    };
    client.set_px(b"{f:42}:v", b"42", 60_000).unwrap();
    assert!(guard.release().unwrap());
    // The release (a PUBLISH inside the unlock script, on the slot's node) reaches a subscriber
    // connected to the first seed node.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        b"{f:42}:lock"
    );
    assert!(matches!(locks.claim(b"{f:42}:v", b"{f:42}:lock"), Claimed::Value(v) if v == b"42"));

    assert_eq!(client.scan_del(b"cl:").unwrap(), 200);
    assert_eq!(client.get(b"cl:7").unwrap(), None);
}

#[test]
fn rediss_with_a_private_ca() {
    let server = RedisServer::start_tls();
    let client = RedisClient::new(config(&server.url()).tls_root_cert(server.ca_pem())).unwrap();
    client.set_px(b"tls:k", b"secret", 60_000).unwrap();
    assert_eq!(client.get(b"tls:k").unwrap(), Some(b"secret".to_vec()));
    // Without the CA, the certificate is not trusted: an error, not a panic.
    let untrusting = RedisClient::new(config(&server.url())).unwrap();
    assert!(untrusting.get(b"tls:k").is_err());
}

#[test]
fn acl_users_authenticate_through_the_url() {
    let (server, _) = server();
    let port = server.port();
    assert!(command(port, "ACL SETUSER app on >s3cret ~* &* +@all").starts_with("+OK"));
    let url = |auth: &str| format!("redis://{auth}@127.0.0.1:{port}");
    let app = RedisClient::new(config(&url("app:s3cret"))).unwrap();
    app.set_px(b"acl:k", b"v", 60_000).unwrap();
    assert_eq!(app.get(b"acl:k").unwrap(), Some(b"v".to_vec()));
    let wrong = RedisClient::new(config(&url("app:wrong"))).unwrap();
    assert!(wrong.get(b"acl:k").is_err());
}

// ---- Trust: one deadline per call, no leaked lock, quick recovery (issue 17) ----

mod trust {
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use memo_runtime::private::{
        Backend, hit_or_miss_async_in, hit_or_miss_in, hit_or_renew, lead,
    };
    use memo_runtime::redis::{
        BreakerConfig, Claimed, Error, LockConfig, Locks, RedisClient, RedisConfig,
    };
    use memo_runtime::{
        Cache, Config, DiskOptions, DiskStore, RedisOptions, RedisStore, Store, TieredStore,
    };

    use super::redis_server::{Monitor, RedisServer, SlowProxy, command};

    const TIMEOUT: Duration = Duration::from_millis(100);

    /// A client whose breaker never opens, so that every call tries the server.
    fn stubborn(url: &str) -> RedisClient {
        stubborn_within(url, TIMEOUT)
    }

    fn stubborn_within(url: &str, timeout: Duration) -> RedisClient {
        let config = RedisConfig::from_url(url)
            .unwrap()
            .connect_timeout(timeout)
            .command_timeout(timeout)
            .breaker(BreakerConfig {
                threshold: u32::MAX,
                ..BreakerConfig::default()
            });
        RedisClient::new(config).unwrap()
    }

    fn options(name: &str, client: &RedisClient) -> RedisOptions {
        RedisOptions::new(name).client(client.clone())
    }

    fn config() -> Config {
        Config::new().ttl(Duration::from_secs(60))
    }

    fn keep(_: &String) -> bool {
        true
    }

    /// Polls `fut` to completion on this thread (the client's own thread does the I/O).
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The backend errors of `calls` calls of distinct keys through `call`, each of which must
    /// return the computed value, and the longest call.
    fn errors_of<S: Store<u64, String>>(
        cache: &Cache<u64, String, S>,
        first: u64,
        calls: u64,
        call: impl Fn(u64) -> String,
    ) -> (u64, Duration) {
        let before = cache.stats().backend_errors;
        let mut longest = Duration::ZERO;
        for key in first..first + calls {
            let started = Instant::now();
            assert_eq!(call(key), format!("value {key}"));
            longest = longest.max(started.elapsed());
        }
        (cache.stats().backend_errors - before, longest)
    }

    /// A frozen server (`SIGSTOP`) costs each call at most one timed-out command: the call's
    /// later commands find its deadline passed and are not sent. Sync, async and tiered.
    #[test]
    fn a_frozen_server_costs_a_call_one_timeout_not_one_per_command() {
        const CALLS: u64 = 3;
        let server = RedisServer::start();
        let client = stubborn(&server.url());
        let redis: &'static Cache<u64, String, RedisStore<u64, String>> = Box::leak(Box::new(
            Cache::with_store(options("frozen", &client).open(&config())),
        ));
        let tiered: &'static Cache<u64, String, TieredStore<u64, String>> = Box::leak(Box::new(
            Cache::with_store(options("frozen-tiered", &client).open_tiered(&config())),
        ));
        let compute = |key: &u64| format!("value {key}");
        // Connected and warm before the fault.
        assert_eq!(redis.get_or_compute(&0, compute), "value 0");
        assert_eq!(tiered.get_or_compute(&0, compute), "value 0");
        server.pause();
        let sync = errors_of(redis, 100, CALLS, |key| redis.get_or_compute(&key, compute));
        let sync_tiered = errors_of(tiered, 200, CALLS, |key| {
            tiered.get_or_compute(&key, compute)
        });
        let async_redis = errors_of(redis, 300, CALLS, |key| {
            block_on(async move {
                match hit_or_miss_async_in(redis, &key).await {
                    Ok(value) => value,
                    Err(miss) => miss.compute_async(async move { compute(&key) }, keep).await,
                }
            })
        });
        let async_tiered = errors_of(tiered, 400, CALLS, |key| {
            block_on(async move {
                match hit_or_miss_async_in(tiered, &key).await {
                    Ok(value) => value,
                    Err(miss) => miss.compute_async(async move { compute(&key) }, keep).await,
                }
            })
        });
        server.resume();
        let runs = [sync, sync_tiered, async_redis, async_tiered];
        assert_eq!(
            runs.map(|(errors, _)| errors),
            [CALLS; 4],
            "timed-out commands per {CALLS} calls: sync, sync tiered, async, async tiered"
        );
        // A loose wall-clock check beside the count (a loaded machine adds its own delays).
        let longest = runs.iter().map(|(_, took)| *took).max().unwrap();
        assert!(longest < TIMEOUT * 3, "a call took {longest:?}");
    }

    /// xorshift: the tests need spread, not quality.
    fn random(state: &AtomicU64, below: u64) -> u64 {
        let mut x = state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.store(x, Ordering::Relaxed);
        x % below
    }

    /// The lock keys left on the server.
    fn locks_left(port: u16) -> usize {
        let reply = command(port, "KEYS *:lock");
        reply
            .strip_prefix('*')
            .and_then(|rest| rest.split("\r\n").next())
            .and_then(|count| count.parse().ok())
            .unwrap_or(usize::MAX)
    }

    /// Polls `call` up to `polls` times, `random` microseconds apart, then drops it: whether it
    /// finished first.
    fn poll_then_drop(call: impl Future, polls: u64, mut pause: impl FnMut() -> u64) -> bool {
        let mut call = std::pin::pin!(call);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..polls {
            if call.as_mut().poll(&mut cx).is_ready() {
                return true;
            }
            std::thread::sleep(Duration::from_micros(pause()));
        }
        false
    }

    /// Cancelled at random await points (polled a random number of times, then dropped), at
    /// least 100 async callers of a `redis` store and 100 of a `tiered` one leave no lock behind:
    /// once their releases have run, which takes a round trip, not the 10 s lease, no lock key is
    /// left for a later caller to wait on. (A loaded machine lets more calls finish between two
    /// polls: the callers go on until that many were cancelled.)
    #[test]
    fn cancelled_async_callers_leave_no_lock_behind() {
        const CANCELLED: u32 = 100;
        let server = RedisServer::start();
        let client = RedisClient::new(
            RedisConfig::from_url(&server.url())
                .unwrap()
                .command_timeout(Duration::from_secs(2)),
        )
        .unwrap();
        let redis: &'static Cache<u64, String, RedisStore<u64, String>> = Box::leak(Box::new(
            Cache::with_store(options("cancel", &client).open(&config())),
        ));
        let tiered: &'static Cache<u64, String, TieredStore<u64, String>> = Box::leak(Box::new(
            Cache::with_store(options("cancel-tiered", &client).open_tiered(&config())),
        ));
        let seed = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
        // Cancelled callers of each store: redis, tiered.
        let mut cancelled = [0_u32; 2];
        let mut key = 0_u64;
        while cancelled.iter().any(|&count| count < CANCELLED) {
            assert!(key < 20_000, "only {cancelled:?} of {key} cancelled");
            let polls = 1 + random(&seed, 8);
            let body = async move { format!("value {key}") };
            let on_tiered = key % 2 == 1;
            let finished = if on_tiered {
                let call = async move {
                    match hit_or_miss_async_in(tiered, &key).await {
                        Ok(value) => value,
                        Err(miss) => miss.compute_async(body, keep).await,
                    }
                };
                poll_then_drop(call, polls, || random(&seed, 1500))
            } else {
                let call = async move {
                    match hit_or_miss_async_in(redis, &key).await {
                        Ok(value) => value,
                        Err(miss) => miss.compute_async(body, keep).await,
                    }
                };
                poll_then_drop(call, polls, || random(&seed, 1500))
            };
            cancelled[usize::from(on_tiered)] += u32::from(!finished);
            key += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while locks_left(server.port()) != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            locks_left(server.port()),
            0,
            "locks outlived their cancelled callers"
        );
    }

    /// Redis stopped for 12 s under light load, then started again on the same port: with the
    /// default breaker and timeouts, a call hits again within 2 s (the promise), not after a
    /// back-off that doubled through the outage.
    #[test]
    fn caching_resumes_within_two_seconds_of_the_server_coming_back() {
        let mut server = RedisServer::start();
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let cache = Cache::with_store(options("outage", &client).open::<u64, u64>(&config()));
        let stop = std::sync::atomic::AtomicBool::new(false);
        let restarted = std::sync::Mutex::new(None::<Instant>);
        let resumed = std::thread::scope(|s| {
            let load = s.spawn(|| {
                // Light load: one call every 10 ms, bounded in time as well as by the flag.
                let end = Instant::now() + Duration::from_secs(40);
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    let before = cache.stats().hits;
                    assert_eq!(cache.get_or_compute(&7, |n| n * 2), 14);
                    let back = *restarted.lock().unwrap();
                    if let Some(back) = back
                        && cache.stats().hits > before
                    {
                        return Some(back.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                None
            });
            std::thread::sleep(Duration::from_millis(300));
            assert!(cache.stats().hits > 0, "hits before the outage");
            server.kill();
            std::thread::sleep(Duration::from_secs(12));
            server.restart();
            *restarted.lock().unwrap() = Some(Instant::now());
            let resumed = load.join().unwrap();
            stop.store(true, Ordering::Relaxed);
            resumed
        });
        let resumed = resumed.expect("no hit within 40 s of the restart");
        assert!(
            resumed < Duration::from_secs(2),
            "the first hit came {resumed:?} after the restart"
        );
    }

    /// How many times the server ran `command` at top level or from a script (`INFO
    /// commandstats`).
    pub(super) fn runs_of(port: u16, command_name: &str) -> u64 {
        let info = command(port, "INFO commandstats");
        let prefix = format!("cmdstat_{command_name}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .and_then(|count| count.parse().ok())
            .unwrap_or(0)
    }

    /// A slow server (each reply 110 ms late, a command timeout of 200 ms): a miss sends its
    /// `GET` and its claim, whose reply the deadline cuts, then nothing: the value's `SET` would
    /// start past the deadline, so it is skipped, not sent (only the claim's lock is released).
    #[test]
    fn a_slow_server_gets_no_command_past_the_calls_deadline() {
        let server = RedisServer::start();
        let proxy = SlowProxy::start(server.port(), Duration::ZERO);
        let client = stubborn_within(&proxy.url(), Duration::from_millis(200));
        let cache = Cache::with_store(options("slow", &client).open::<u64, String>(&config()));
        assert!(
            client.get(b"warm").unwrap().is_none(),
            "connected before the slowdown"
        );
        proxy.set_delay(Duration::from_millis(110));
        let (gets, sets, claims) = (
            runs_of(server.port(), "get"),
            runs_of(server.port(), "set"),
            runs_of(server.port(), "eval"),
        );
        assert_eq!(
            cache.get_or_compute(&1, |n| format!("value {n}")),
            "value 1"
        );
        std::thread::sleep(Duration::from_millis(300));
        // Two scripts (the claim, its release) and one `GET` of the call's own (each script
        // reads the key too); one `SET`, the claim's `SET NX`: the value's was never sent.
        assert_eq!(runs_of(server.port(), "eval") - claims, 2);
        assert_eq!(runs_of(server.port(), "get") - gets, 3);
        assert_eq!(runs_of(server.port(), "set") - sets, 1);
        assert_eq!(
            command(server.port(), "DBSIZE"),
            ":0\r\n",
            "a value or a lock left"
        );
        let stats = cache.stats();
        assert_eq!((stats.backend_errors, stats.skipped), (1, 1), "{stats:?}");
    }

    /// A forced refresh on a slow server (each reply 110 ms late, a command timeout of 100 ms):
    /// its mark's `SET` times out, which spends the call's budget, and nothing else of the call
    /// is sent; the value is computed and returned, the failure counted, and no value is
    /// written unmarked (only the mark's release follows, in the background).
    #[test]
    fn a_forced_refresh_on_a_slow_server_sends_nothing_past_its_marks_timeout() {
        let server = RedisServer::start();
        let proxy = SlowProxy::start(server.port(), Duration::ZERO);
        let client = stubborn(&proxy.url());
        let cache =
            Cache::with_store(options("slow-refresh", &client).open::<u64, String>(&config()));
        assert_eq!(cache.get_or_compute(&1, |_| "old".to_string()), "old");
        proxy.set_delay(Duration::from_millis(110));
        let (sets, scripts) = (
            runs_of(server.port(), "set"),
            runs_of(server.port(), "eval"),
        );
        let new = cache.refresh(|| cache.get_or_compute(&1, |_| "new".to_string()));
        assert_eq!(new, "new");
        std::thread::sleep(Duration::from_millis(400));
        // The mark's `SET` (its reply cut by the deadline), then its release (one script).
        assert_eq!(runs_of(server.port(), "set") - sets, 1);
        assert_eq!(runs_of(server.port(), "eval") - scripts, 1);
        let stats = cache.stats();
        assert_eq!((stats.backend_errors, stats.refreshes), (1, 1), "{stats:?}");
        proxy.set_delay(Duration::ZERO);
        assert_eq!(cache.get(&1).as_deref(), Some("old"), "written unmarked");
        assert_eq!(
            command(server.port(), "KEYS *lock"),
            "*0\r\n",
            "the mark left behind"
        );
    }

    /// A server 40 ms away (each reply held back 40 ms; the command timeout, 250 ms, is the
    /// call's budget, of which the read and the first claim take 80 ms): a process waiting on
    /// another's lock polls for a second and a half, 40 ms a round trip, far more than its
    /// budget in all. Answered polls are the lock's wait, not a slow server: it takes the
    /// holder's value, and the key is computed once. Redis and tiered.
    #[test]
    fn a_waiter_far_from_the_server_waits_out_the_holder() {
        let server = RedisServer::start();
        let proxy = SlowProxy::start(server.port(), Duration::from_millis(40));
        let client = stubborn_within(&proxy.url(), Duration::from_millis(250));
        // Two caches of one name: two processes sharing the server (each its own flights).
        let redis = || options("far", &client).open::<u64, String>(&config());
        waits_out_the_holder(
            server.port(),
            &Cache::with_store(redis()),
            &Cache::with_store(redis()),
        );
        let tiered = || options("far-tiered", &client).open_tiered::<u64, String>(&config());
        waits_out_the_holder(
            server.port(),
            &Cache::with_store(tiered()),
            &Cache::with_store(tiered()),
        );
    }

    /// A server that freezes (`SIGSTOP`) while a process waits on another's lock: the waiter's
    /// poll times out once, within what its call has left, and it computes; it does not wait on.
    #[test]
    fn a_waiter_whose_server_freezes_computes_after_one_timeout() {
        let server = RedisServer::start();
        let client = stubborn(&server.url());
        let holder = Cache::with_store(options("freeze", &client).open::<u64, String>(&config()));
        let waiter = Cache::with_store(options("freeze", &client).open::<u64, String>(&config()));
        std::thread::scope(|scope| {
            let held = scope.spawn(|| {
                holder.get_or_compute(&1, |key| {
                    std::thread::sleep(Duration::from_secs(1));
                    format!("holder's {key}")
                })
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while !command(server.port(), "KEYS *:lock").starts_with("*1") {
                assert!(Instant::now() < deadline, "the holder never took its lock");
                std::thread::sleep(Duration::from_millis(5));
            }
            let computed =
                scope.spawn(|| waiter.get_or_compute(&1, |key| format!("waiter's {key}")));
            std::thread::sleep(Duration::from_millis(200));
            server.pause();
            assert_eq!(computed.join().unwrap(), "waiter's 1");
            server.resume();
            assert_eq!(held.join().unwrap(), "holder's 1");
        });
        let stats = waiter.stats();
        assert_eq!((stats.misses, stats.backend_errors), (1, 1), "{stats:?}");
    }

    /// `waiter` asks for the key `holder` is computing (1.5 s, under its lock): one run,
    /// the holder's value for both, and nothing counted against the waiter.
    fn waits_out_the_holder<S: Store<u64, String>>(
        port: u16,
        holder: &Cache<u64, String, S>,
        waiter: &Cache<u64, String, S>,
    ) {
        let runs = AtomicU64::new(0);
        std::thread::scope(|scope| {
            let held = scope.spawn(|| {
                holder.get_or_compute(&1, |key| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1500));
                    format!("holder's {key}")
                })
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while !command(port, "KEYS *:lock").starts_with("*1") {
                assert!(Instant::now() < deadline, "the holder never took its lock");
                std::thread::sleep(Duration::from_millis(5));
            }
            let taken = waiter.get_or_compute(&1, |key| {
                runs.fetch_add(1, Ordering::SeqCst);
                format!("waiter's {key}")
            });
            assert_eq!(taken, "holder's 1");
            assert_eq!(held.join().unwrap(), "holder's 1");
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let stats = waiter.stats();
        assert_eq!(
            (stats.misses, stats.skipped, stats.backend_errors),
            (0, 0, 0),
            "{stats:?}"
        );
    }

    /// The claim's reply lost to a timeout after Redis ran it (replies held back 300 ms, a
    /// 100 ms command timeout): the release armed before the request deletes the lock, so no
    /// caller waits out its 10 s lease.
    #[test]
    fn a_timed_out_lock_reply_leaves_no_lock_behind() {
        let server = RedisServer::start();
        let proxy = SlowProxy::start(server.port(), Duration::ZERO);
        let client = stubborn(&proxy.url());
        assert!(
            client.get(b"warm").unwrap().is_none(),
            "connected before the slowdown"
        );
        proxy.set_delay(Duration::from_millis(300));
        let locks = Locks::new(client, LockConfig::default());
        let claims = runs_of(server.port(), "eval");
        for round in 0..5 {
            let lock = format!("{{t{round}}}:lock");
            let claimed = locks.claim(format!("{{t{round}}}:v").as_bytes(), lock.as_bytes());
            assert!(
                matches!(claimed, Claimed::Unavailable(Error::Timeout)),
                "{claimed:?}"
            );
            let deadline = Instant::now() + Duration::from_secs(2);
            while command(server.port(), &format!("EXISTS {lock}")) != ":0\r\n" {
                assert!(Instant::now() < deadline, "{lock} outlived its caller");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Each claim reached Redis (and took its lock), then its release did.
        assert_eq!(runs_of(server.port(), "eval") - claims, 10);
    }

    /// With `idle`, a hit is one script that renews the key's time to live as it reads it (no
    /// second command: the script's own `GET` and `PEXPIRE` run inside it, unless the value has
    /// a time to live of its own), counted with `MONITOR`; the key lives a full period from the
    /// hit.
    #[test]
    fn an_idle_hit_is_one_round_trip() {
        let server = RedisServer::start();
        let client = stubborn(&server.url());
        let idle = Config::new().idle(Duration::from_secs(600));
        let cache = Cache::with_store(options("idle-trips", &client).open::<u64, String>(&idle));
        let compute = |key: &u64| format!("value {key}");
        assert_eq!(cache.get_or_compute(&1, compute), "value 1");
        let name = command(server.port(), "KEYS memo:*idle-trips*");
        let name = name
            .split("\r\n")
            .find(|line| line.starts_with("memo:"))
            .expect("the value's key")
            .to_string();
        command(server.port(), &format!("PEXPIRE {name} 1000"));
        let monitor = Monitor::start(server.port());
        let mark = monitor.mark();
        assert_eq!(cache.get_or_compute(&1, compute), "value 1");
        assert_eq!(
            monitor.sent_since(mark),
            ["eval"],
            "one round trip, one command"
        );
        let pttl: i64 = command(server.port(), &format!("PTTL {name}"))
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap();
        assert!(pttl > 1_000, "renewed to the period by the hit: {pttl}");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
    }

    /// With the server down and the breaker open, calls are counted as skipped, not as errors:
    /// `backend_errors` keeps to the real failures (those that opened the breaker, and its
    /// probes).
    #[test]
    fn a_known_down_server_counts_skips_apart_from_errors() {
        let mut server = RedisServer::start();
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let cache = Cache::with_store(options("down", &client).open::<u64, u64>(&config()));
        assert_eq!(cache.get_or_compute(&1, |n| n + 1), 2);
        server.kill();
        let end = Instant::now() + Duration::from_millis(1500);
        let mut calls = 0_u64;
        while Instant::now() < end {
            assert_eq!(
                cache.get_or_compute(&(calls % 10), |n| n + 1),
                calls % 10 + 1
            );
            calls += 1;
        }
        let stats = cache.stats();
        // Five failures open it; then one probe per back-off (250 ms doubling to 1 s), each
        // call sending at most one command that fails.
        assert!(stats.backend_errors <= 15, "{calls} calls: {stats:?}");
        assert!(stats.skipped >= calls, "{calls} calls: {stats:?}");
    }

    /// a miss without contention is three round trips, counted with `MONITOR`: the
    /// `GET`, the claim's script (read or lock), and one script that stores the value and
    /// releases the lock; a hit is one `GET`. Sync and async, redis and tiered.
    #[test]
    fn a_miss_is_three_round_trips_and_a_hit_one() {
        let server = RedisServer::start();
        let client = stubborn(&server.url());
        let redis: &'static Cache<u64, String, RedisStore<u64, String>> = Box::leak(Box::new(
            Cache::with_store(options("trips", &client).open(&config())),
        ));
        let compute = |key: &u64| format!("value {key}");
        // Connected, subscribed to releases, before the count.
        assert_eq!(redis.get_or_compute(&0, compute), "value 0");
        let monitor = Monitor::start(server.port());
        let trips = |call: &dyn Fn()| {
            let mark = monitor.mark();
            call();
            monitor.sent_since(mark)
        };
        let sync_miss = trips(&|| assert_eq!(redis.get_or_compute(&1, compute), "value 1"));
        let sync_hit = trips(&|| assert_eq!(redis.get_or_compute(&1, compute), "value 1"));
        let call_async = |key: u64| {
            block_on(async move {
                match hit_or_miss_async_in(redis, &key).await {
                    Ok(value) => value,
                    Err(miss) => miss.compute_async(async move { compute(&key) }, keep).await,
                }
            })
        };
        let async_miss = trips(&|| assert_eq!(call_async(2), "value 2"));
        let async_hit = trips(&|| assert_eq!(call_async(2), "value 2"));
        assert_eq!(sync_miss, ["get", "eval", "eval"], "a sync miss");
        assert_eq!(async_miss, ["get", "eval", "eval"], "an async miss");
        assert_eq!(sync_hit, ["get"], "a sync hit");
        assert_eq!(async_hit, ["get"], "an async hit");
        assert_eq!(locks_left(server.port()), 0);
        let stats = redis.stats();
        assert_eq!((stats.misses, stats.hits, stats.backend_errors), (3, 2, 0));

        // Tiered: the same three round trips, the new value's announcement published by the
        // script that stores it; a hit is served by the local copy, with none. The read sends
        // `PTTL` beside its `GET` (one pipeline), so that its copy ends with the entry.
        let tiered: &'static Cache<u64, String, TieredStore<u64, String>> = Box::leak(Box::new(
            Cache::with_store(options("trips-tiered", &client).open_tiered(&config())),
        ));
        assert_eq!(tiered.get_or_compute(&0, compute), "value 0");
        let tiered_async = |key: u64| {
            block_on(async move {
                match hit_or_miss_async_in(tiered, &key).await {
                    Ok(value) => value,
                    Err(miss) => miss.compute_async(async move { compute(&key) }, keep).await,
                }
            })
        };
        let sync_miss = trips(&|| assert_eq!(tiered.get_or_compute(&1, compute), "value 1"));
        let sync_hit = trips(&|| assert_eq!(tiered.get_or_compute(&1, compute), "value 1"));
        let async_miss = trips(&|| assert_eq!(tiered_async(2), "value 2"));
        let async_hit = trips(&|| assert_eq!(tiered_async(2), "value 2"));
        let miss = ["get", "pttl", "eval", "eval"];
        assert_eq!(sync_miss, miss, "a sync tiered miss");
        assert_eq!(async_miss, miss, "an async tiered miss");
        assert!(
            sync_hit.is_empty() && async_hit.is_empty(),
            "{sync_hit:?} {async_hit:?}"
        );
        assert_eq!(tiered.stats().backend_errors, 0);
    }

    /// `jitter` spreads the time to live of each Redis entry
    /// (`SET … PX`): with ±50 % of 100 s, 32 entries stored together expire from 50 s to 150 s.
    #[test]
    fn jitter_spreads_each_redis_entrys_time_to_live() {
        let server = RedisServer::start();
        let client = stubborn(&server.url());
        let config = Config::new().ttl(Duration::from_secs(100)).jitter(0.5);
        let store = options("jitter", &client).open::<u64, u64>(&config);
        for n in 0..32 {
            store.insert(n, n);
        }
        let keys = command(server.port(), "KEYS *");
        let ttls: Vec<u64> = keys
            .lines()
            .filter(|line| line.starts_with("memo:"))
            .map(|key| {
                let reply = command(server.port(), &format!("PTTL {key}"));
                reply.trim_start_matches(':').trim().parse().unwrap()
            })
            .collect();
        assert_eq!(ttls.len(), 32, "{keys}");
        assert!(
            ttls.iter().all(|ttl| (49_000..150_000).contains(ttl)),
            "{ttls:?}"
        );
        let (low, high) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
        assert!(*low < 75_000 && *high > 125_000, "spread: {low}..{high} ms");
    }

    /// Hashes and encodings of [`Counted`] keys, counted by its `Hash` and `Serialize`.
    static HASHES: AtomicU64 = AtomicU64::new(0);
    static ENCODES: AtomicU64 = AtomicU64::new(0);

    /// A key that counts how often it is hashed and encoded.
    #[derive(Clone, PartialEq, Eq)]
    struct Counted(u64);

    impl std::hash::Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            HASHES.fetch_add(1, Ordering::SeqCst);
            self.0.hash(state);
        }
    }

    impl serde::Serialize for Counted {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            ENCODES.fetch_add(1, Ordering::SeqCst);
            serializer.serialize_u64(self.0)
        }
    }

    impl<'de> serde::Deserialize<'de> for Counted {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            <u64 as serde::Deserialize>::deserialize(deserializer).map(Counted)
        }
    }

    /// The hashes and encodings of the key during `call`.
    fn counted(call: impl FnOnce()) -> (u64, u64) {
        let before = (
            HASHES.load(Ordering::SeqCst),
            ENCODES.load(Ordering::SeqCst),
        );
        call();
        (
            HASHES.load(Ordering::SeqCst) - before.0,
            ENCODES.load(Ordering::SeqCst) - before.1,
        )
    }

    /// A call's key is hashed once, hit or miss, sync or async, on every store (the hash made by
    /// the hit path goes to the store's lookup, the single-flight and the insert, and to a tiered
    /// store's local copies), and a store outside the process encodes it once (a miss's claim
    /// and write reuse what its read worked out). Python's `functools` tests ask for one hash
    /// per call.
    #[test]
    fn a_key_is_hashed_at_most_once_and_encoded_once_per_call() {
        let memory: &'static Cache<Counted, String> = Box::leak(Box::new(Cache::new(config())));
        for (call, counts) in per_call(memory, false) {
            assert_eq!(counts.0, 1, "memory, {call}: hashes");
        }
        let stale = config().stale(Duration::from_secs(60));
        let renewing: &'static Cache<Counted, String> = Box::leak(Box::new(Cache::new(stale)));
        for outcome in ["miss", "hit"] {
            let key = Counted(7);
            let refresh = |key: Counted| Some(format!("value {}", key.0));
            let (hashes, _) = counted(|| {
                let value = match lead(hit_or_renew(renewing, &key, refresh, keep), keep) {
                    Ok(value) => value,
                    Err(lead) => lead.finish(format!("value {}", key.0)),
                };
                assert_eq!(value, "value 7");
            });
            assert_eq!(
                hashes, 1,
                "memory with `stale`, a sync function, {outcome}: hashes"
            );
        }
        let dir = std::env::temp_dir().join(format!("memo-hashes-{}", std::process::id()));
        let disk = DiskOptions::new("counted").root(&dir).open(&config());
        let disk: &'static Cache<Counted, String, DiskStore<Counted, String>> =
            Box::leak(Box::new(Cache::with_store(disk)));
        // Disk encodes a miss's key once (its row lookups, lock and write share the encoding);
        // a hit in its front encodes nothing.
        for (call, counts) in per_call(disk, false) {
            let miss = u64::from(call.ends_with("miss"));
            assert_eq!(counts, (1, miss), "disk, {call}: (hashes, encodings)");
        }
        drop(std::fs::remove_dir_all(&dir));
        let server = RedisServer::start();
        let client = stubborn(&server.url());
        let redis: &'static Cache<Counted, String, RedisStore<Counted, String>> =
            Box::leak(Box::new(Cache::with_store(
                options("counted", &client).open(&config()),
            )));
        for (call, counts) in per_call(redis, true) {
            assert_eq!(counts, (1, 1), "redis, {call}: (hashes, encodings)");
        }
        assert_eq!(redis.stats().backend_errors, 0);
        let tiered: &'static Cache<Counted, String, TieredStore<Counted, String>> =
            Box::leak(Box::new(Cache::with_store(
                options("counted-tiered", &client).open_tiered(&config()),
            )));
        // Tiered's local copies are looked at, claimed and filled by the call's hash; a hit
        // there reaches no Redis name.
        for (call, counts) in per_call(tiered, true) {
            let miss = u64::from(call.ends_with("miss"));
            assert_eq!(counts, (1, miss), "tiered, {call}: (hashes, encodings)");
        }
    }

    /// The hashes and encodings of the key in a miss, then a hit, of each way in: the cache
    /// object's `get_or_compute`, `get_or_insert_with` and `get_or_insert_with_async`, and a
    /// memoized function's sync and async calls as the expansion writes them (`remote`: as for
    /// `store = redis`).
    fn per_call<S: Backend<Counted, String>>(
        cache: &'static Cache<Counted, String, S>,
        remote: bool,
    ) -> Vec<(String, (u64, u64))> {
        let compute = |key: &Counted| format!("value {}", key.0);
        let calls: [(&str, &dyn Fn(Counted) -> String); 5] = [
            ("get_or_compute", &|key| cache.get_or_compute(&key, compute)),
            ("get_or_insert_with", &|key| {
                let value = compute(&key);
                cache.get_or_insert_with(key, || value)
            }),
            ("get_or_insert_with_async", &|key| {
                let value = compute(&key);
                block_on(cache.get_or_insert_with_async(key, async { value }))
            }),
            (
                "a sync function",
                &|key| match lead(hit_or_miss_in(cache, &key), keep) {
                    Ok(value) => value,
                    Err(lead) => lead.finish(compute(&key)),
                },
            ),
            ("an async function", &|key| {
                block_on(async {
                    let body = async { compute(&key) };
                    if remote {
                        match hit_or_miss_async_in(cache, &key).await {
                            Ok(value) => value,
                            Err(miss) => miss.compute_async(body, keep).await,
                        }
                    } else {
                        match hit_or_miss_in(cache, &key) {
                            Ok(value) => value,
                            Err(miss) => miss.compute_async(body, keep).await,
                        }
                    }
                })
            }),
        ];
        let mut counts = Vec::new();
        for (n, (name, call)) in (100..).zip(calls) {
            for outcome in ["miss", "hit"] {
                let key = Counted(n);
                let found = counted(|| assert_eq!(call(key), format!("value {n}")));
                counts.push((format!("{name}, {outcome}"), found));
            }
        }
        counts
    }

    /// Issue 19: with `stale` (or early refresh), a hit is the `GET` and the `PTTL` in one
    /// pipelined round trip; a background refresh takes the key's lock only when it is free (so
    /// one process refreshes a key), and its value's write releases it.
    #[test]
    fn a_renewing_hit_reads_the_pttl_beside_the_value_and_one_refresh_holds_the_lock() {
        let server = RedisServer::start();
        let client = stubborn(&server.url());
        let config = config().stale(Duration::from_secs(60));
        let a = options("renewing", &client).open::<u64, u64>(&config);
        let b = options("renewing", &client).open::<u64, u64>(&config);
        a.insert(1, 10);
        let monitor = Monitor::start(server.port());
        let mark = monitor.mark();
        let renewing = a.get_renewing_hashed(a.hash_of(&&1), &&1);
        assert_eq!(renewing, Some((10, false)), "fresh: not due");
        assert_eq!(monitor.sent_since(mark), ["get", "pttl"]);
        let lease = block_on(a.claim_refresh_async(&1)).expect("the lock is free");
        assert!(
            block_on(b.claim_refresh_async(&1)).is_none(),
            "held by a's refresh"
        );
        let cost = Duration::from_millis(5);
        block_on(a.insert_claimed_async(a.hash_of(&&1), 1, 11, cost, lease));
        assert_eq!(locks_left(server.port()), 0, "released with the value");
        assert_eq!(b.get(&&1), Some(11));
        drop(block_on(b.claim_refresh_async(&1)).expect("free again"));
        // A plain store's hit stays one `GET`.
        let plain = options("plain", &client).open::<u64, u64>(&super::trust::config());
        plain.insert(1, 10);
        let mark = monitor.mark();
        let renewing = plain.get_renewing_hashed(plain.hash_of(&&1), &&1);
        assert_eq!(renewing, Some((10, false)));
        assert_eq!(monitor.sent_since(mark), ["get"]);
    }

    /// A miss whose claim failed with an error reply (`BUSY`: a script holds the server) and
    /// whose write, after its computation, goes through: an invalidation in another process
    /// during that computation must not be undone by the value, computed before it. Before, it
    /// was written unfenced (a plain `SET`).
    #[test]
    fn a_miss_whose_claim_failed_stores_nothing_over_a_later_invalidation() {
        let server = RedisServer::start();
        let port = server.port();
        assert!(command(port, "CONFIG SET busy-reply-threshold 20").starts_with("+OK"));
        let client = stubborn(&server.url());
        let here =
            Cache::with_store(options("claim-failed", &client).open::<u64, String>(&config()));
        let direct = stubborn(&server.url());
        let there = options("claim-failed", &direct).open::<u64, String>(&config());
        assert!(client.get(b"warm").unwrap().is_none(), "connected");
        assert!(direct.get(b"warm").unwrap().is_none(), "connected");
        // A script that keeps the server busy: other commands are answered `BUSY` at once.
        let busy = std::thread::spawn(move || command(port, "EVAL \"while true do end\" 0"));
        std::thread::sleep(Duration::from_millis(200));
        let value = here.get_or_compute(&1, |_| {
            assert!(command(port, "SCRIPT KILL").starts_with("+OK"), "killed");
            assert!(!there.remove(&&1), "invalidated in another process");
            "old".to_string()
        });
        let _ = busy.join();
        assert_eq!(value, "old", "its caller gets it");
        assert_eq!(
            there.get(&&1),
            None,
            "a value computed before the invalidation was stored after it"
        );
    }

    /// [`a_miss_whose_claim_failed_stores_nothing_over_a_later_invalidation`] on tiered stores:
    /// nor does the process keep a copy of the value (the invalidation's message came during
    /// its computation, before its write).
    #[test]
    fn a_tiered_miss_whose_claim_failed_keeps_no_copy_over_a_later_invalidation() {
        let server = RedisServer::start();
        let port = server.port();
        assert!(command(port, "CONFIG SET busy-reply-threshold 20").starts_with("+OK"));
        let client = stubborn(&server.url());
        let here = Cache::with_store(
            options("claim-failed-tiered", &client).open_tiered::<u64, String>(&config()),
        );
        let direct = stubborn(&server.url());
        let there: TieredStore<u64, String> =
            options("claim-failed-tiered", &direct).open_tiered(&config());
        assert!(client.get(b"warm").unwrap().is_none(), "connected");
        assert!(direct.get(b"warm").unwrap().is_none(), "connected");
        // Subscribed (a message sent before would be missed): `there`'s removal of a key `here`
        // holds reaches it.
        here.insert(2, "two".to_string());
        assert!(there.remove(&&2));
        let deadline = Instant::now() + Duration::from_secs(5);
        while here.store().held() > 0 {
            assert!(
                Instant::now() < deadline,
                "the removal's message never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let busy = std::thread::spawn(move || command(port, "EVAL \"while true do end\" 0"));
        std::thread::sleep(Duration::from_millis(200));
        let value = here.get_or_compute(&1, |_| {
            assert!(command(port, "SCRIPT KILL").starts_with("+OK"), "killed");
            assert!(!there.remove(&&1), "invalidated in another process");
            // Its message arrives before the computation ends.
            std::thread::sleep(Duration::from_millis(200));
            "old".to_string()
        });
        let _ = busy.join();
        assert_eq!(value, "old", "its caller gets it");
        assert_eq!(there.get(&&1), None, "stored in Redis");
        assert_eq!(here.get(&1), None, "kept as a copy here");
    }

    /// A background refresh whose claim of the key's lock failed (its `SET NX` timed out on a
    /// slow server) must not compute and write unfenced: an invalidation in another process
    /// during its computation would be undone by its plain write of a value computed before.
    /// Before, it refreshed anyway (`Fence::None`), with a fresh budget for its write.
    #[test]
    fn a_refresh_whose_claim_failed_stores_nothing_over_a_later_invalidation() {
        let server = RedisServer::start();
        let proxy = SlowProxy::start(server.port(), Duration::ZERO);
        let slow = stubborn(&proxy.url());
        let config = config().stale(Duration::from_secs(60));
        let here = options("refresh-unclaimed", &slow).open::<u64, u64>(&config);
        let direct = stubborn(&server.url());
        let there = options("refresh-unclaimed", &direct).open::<u64, u64>(&config);
        here.insert(1, 10);
        proxy.set_delay(Duration::from_millis(150));
        let lease = block_on(here.claim_refresh_async(&1));
        proxy.set_delay(Duration::ZERO);
        // The claim's `SET NX` reaches Redis late, and its armed release follows it.
        std::thread::sleep(Duration::from_millis(300));
        assert!(there.remove(&&1), "invalidated in another process");
        if let Some(lease) = lease {
            let cost = Duration::from_millis(5);
            block_on(here.insert_claimed_async(here.hash_of(&&1), 1, 11, cost, lease));
        }
        assert_eq!(
            there.get(&&1),
            None,
            "a refresh begun before the invalidation stored its value after it"
        );
    }
}

// ---- A Redlock miss within the call's budget: its reads of the store's server are charged ----

mod redlock_budget {
    use std::time::Duration;

    use memo_runtime::redis::{BreakerConfig, RedisClient, RedisConfig, RedlockConfig};
    use memo_runtime::{Cache, Config, RedisOptions, RedisStore, Stats};

    use super::redis_server::{Monitor, RedisServer, SlowProxy, command};

    type Redlocked = Cache<u64, String, RedisStore<u64, String>>;

    /// Three lock servers, healthy, and their URLs.
    fn lock_servers() -> (Vec<RedisServer>, Vec<String>) {
        let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let urls = servers.iter().map(RedisServer::url).collect();
        (servers, urls)
    }

    /// A cache named `name` whose values are at `url` (a client of its own, whose breaker never
    /// opens, with a command timeout of `timeout`: each call's budget) and whose lock is a
    /// Redlock over `lock_urls`.
    fn redlocked(name: &str, url: &str, timeout: Duration, lock_urls: &[String]) -> Redlocked {
        let config = RedisConfig::from_url(url)
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .command_timeout(timeout)
            .breaker(BreakerConfig {
                threshold: u32::MAX,
                ..BreakerConfig::default()
            });
        let store = RedisOptions::new(name)
            .client(RedisClient::new(config).unwrap())
            .redlock_with(RedlockConfig::from_urls(lock_urls).unwrap())
            .open(&Config::new().ttl(Duration::from_secs(60)));
        Cache::with_store(store)
    }

    /// A cache of [`redlocked`] named `name`, with a budget of `budget`, over a store server
    /// whose replies come 110 ms late once the cache has connected: the server, its proxy, the
    /// lock servers and the cache.
    fn slowed(
        name: &str,
        budget: Duration,
    ) -> (RedisServer, SlowProxy, Vec<RedisServer>, Redlocked) {
        let server = RedisServer::start();
        let proxy = SlowProxy::start(server.port(), Duration::ZERO);
        let (locks, urls) = lock_servers();
        let cache = redlocked(name, &proxy.url(), budget, &urls);
        assert_eq!(cache.get(&0), None, "connected before the slowdown");
        proxy.set_delay(Duration::from_millis(110));
        (server, proxy, locks, cache)
    }
    /// How many `SET` (the Redlock's `SET NX`) the lock servers ran.
    fn lock_sets(servers: &[RedisServer]) -> u64 {
        servers
            .iter()
            .map(|server| super::trust::runs_of(server.port(), "set"))
            .sum()
    }

    /// `(backend_errors, skipped)`.
    fn faults(stats: &Stats) -> (u64, u64) {
        (stats.backend_errors, stats.skipped)
    }

    /// The round trips of a Redlock miss on the store's server, counted with `MONITOR`: the
    /// read, the claim's read, the read-or-lock after the round (which fences the key), and
    /// the script that writes the value and releases the fence; a hit is one `GET`. The
    /// Redlock's rounds go to the lock servers only (their `SET NX`, then their release).
    #[test]
    fn a_redlock_miss_is_four_round_trips_on_the_store_s_server_and_a_hit_one() {
        let server = RedisServer::start();
        let (locks, urls) = lock_servers();
        let cache = redlocked(
            "trips-redlock",
            &server.url(),
            Duration::from_secs(2),
            &urls,
        );
        assert_eq!(
            cache.get_or_compute(&0, |n| format!("value {n}")),
            "value 0"
        );
        let monitor = Monitor::start(server.port());
        let sets = lock_sets(&locks);
        let mark = monitor.mark();
        assert_eq!(
            cache.get_or_compute(&1, |n| format!("value {n}")),
            "value 1"
        );
        assert_eq!(monitor.sent_since(mark), ["get", "get", "eval", "eval"]);
        assert_eq!(
            lock_sets(&locks) - sets,
            3,
            "one round, on every lock server"
        );
        let mark = monitor.mark();
        assert_eq!(
            cache.get_or_compute(&1, |n| format!("value {n}")),
            "value 1"
        );
        assert_eq!(monitor.sent_since(mark), ["get"]);
        assert_eq!(
            command(server.port(), "KEYS *:lock"),
            "*0\r\n",
            "a fence left"
        );
        assert_eq!(faults(&cache.stats()), (0, 0));
    }

    /// The README's promise for `store = redis` (a slow server adds at most the command
    /// timeout in total to a call) under `lock = "redlock"`: the store's server answers each
    /// command 110 ms late, the call's budget is 200 ms. The miss's read takes 110 ms of it;
    /// the claim's read of the value, bounded by the 90 ms left, times out, and nothing else
    /// is sent: no Redlock round, no claim script, no write. Before, the Redlock's claim read
    /// the value with a full command timeout of its own (only a budget of exactly nothing
    /// was checked): it was answered, the round taken, the claim script and the write sent
    /// past the deadline (`["get", "get", "eval", "eval", "eval"]`, the lock servers ran 3
    /// `SET`, and the stats were (1, 0)).
    #[test]
    fn a_slow_store_server_gets_no_redlock_command_past_the_calls_deadline() {
        let (server, _proxy, locks, cache) = slowed("slow-redlock", Duration::from_millis(200));
        let monitor = Monitor::start(server.port());
        let (mark, sets) = (monitor.mark(), lock_sets(&locks));
        let before = cache.stats();
        assert_eq!(
            cache.get_or_compute(&1, |n| format!("value {n}")),
            "value 1"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            monitor.sent_since(mark),
            ["get", "get"],
            "the read, then the claim's read cut by the deadline"
        );
        assert_eq!(
            lock_sets(&locks) - sets,
            0,
            "a Redlock round past the deadline"
        );
        let after = cache.stats();
        assert_eq!(
            (
                after.backend_errors - before.backend_errors,
                after.skipped - before.skipped
            ),
            (1, 1),
            "one command timed out, the write skipped: {after:?}"
        );
    }

    /// The claim's read-or-lock on the store's server after the Redlock is won is charged too:
    /// replies 110 ms late, a budget of 300 ms. The read and the claim's read take 220 ms;
    /// the read-or-lock, bounded by the 80 ms left, times out (the script ran: the lock name
    /// it took there is released with the Redlock, not left for its lease), and the write
    /// is skipped. Before, the read-or-lock had a full timeout and the write what the call's
    /// own commands had left: the call made four round trips of 110 ms on a budget of 300,
    /// and its stats said nothing of it (0, 0). (With the read-or-lock's timeout but not the
    /// release of the name it took, that name stays for its lease: `DBSIZE` is 1.)
    #[test]
    fn a_redlock_claim_s_read_or_lock_is_charged_to_the_call() {
        let (server, _proxy, _locks, cache) = slowed("slow-fence", Duration::from_millis(300));
        let before = cache.stats();
        assert_eq!(
            cache.get_or_compute(&1, |n| format!("value {n}")),
            "value 1"
        );
        let after = cache.stats();
        assert_eq!(
            faults(&after),
            (before.backend_errors + 1, before.skipped + 1),
            "the read-or-lock timed out, the write skipped: {after:?}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while command(server.port(), "DBSIZE") != ":0\r\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "a value written past the deadline, or a lock name left: {}",
                command(server.port(), "KEYS *")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A store server that freezes (`SIGSTOP`) while a Redlock waiter polls it for another
    /// process's value: the poll times out within what the call has left, and the call's
    /// write is then not sent. Before, the poll had a full command timeout of its own and the
    /// write the call's whole budget: two timeouts, two backend errors, for one call.
    #[test]
    fn a_redlock_waiter_whose_store_server_freezes_pays_one_timeout() {
        let server = RedisServer::start();
        let (locks, urls) = lock_servers();
        let timeout = Duration::from_millis(100);
        let holder = redlocked("freeze-redlock", &server.url(), timeout, &urls);
        let waiter = redlocked("freeze-redlock", &server.url(), timeout, &urls);
        std::thread::scope(|scope| {
            let held = scope.spawn(|| {
                holder.get_or_compute(&1, |key| {
                    std::thread::sleep(Duration::from_secs(1));
                    format!("holder's {key}")
                })
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !command(locks[0].port(), "KEYS *:lock").starts_with("*1") {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the holder never took its lock"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            let computed =
                scope.spawn(|| waiter.get_or_compute(&1, |key| format!("waiter's {key}")));
            std::thread::sleep(Duration::from_millis(200));
            server.pause();
            assert_eq!(computed.join().unwrap(), "waiter's 1");
            server.resume();
            assert_eq!(held.join().unwrap(), "holder's 1");
        });
        let stats = waiter.stats();
        assert_eq!(
            (stats.misses, stats.backend_errors, stats.skipped),
            (1, 1, 1),
            "{stats:?}"
        );
    }
}
