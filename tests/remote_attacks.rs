//! Attacks on the promise "never a wrong value, never someone else's" through the stores shared
//! between processes: a Redis server frozen (`SIGSTOP`) while a cache is invalidated, removed
//! from or cleared, and processes killed (`kill -9`) between an invalidation and a read, or while
//! they write.
//!
//! Each store here has a client of its own (its own connections and its own subscription), as
//! each process has; the tests that kill a process run this binary again as a child, with
//! `MEMO_TEST_ROLE` set (see [`child`]).
#![cfg(feature = "redis")]

#[path = "../memo-runtime/tests/support/redis_server.rs"]
mod redis_server;

use std::sync::mpsc;
use std::time::Duration;

use memo::redis::{RedisClient, RedisConfig};
use memo::{Cache, Config, RedisOptions, RedisStore, Store as _, TieredStore};
use redis_server::RedisServer;

/// How long a call against a frozen server may take before the test calls it hung: far past
/// any budget (a command timeout of 100 ms, a bulk timeout for `clear`'s `SCAN`), so only a
/// hang trips it.
const HUNG: Duration = Duration::from_secs(10);

/// A client of `url` of its own, with a 100 ms command timeout and the default breaker.
fn client(url: &str) -> RedisClient {
    let config = RedisConfig::from_url(url)
        .unwrap()
        .command_timeout(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(100));
    RedisClient::new(config).unwrap()
}

fn config() -> Config {
    Config::new().ttl(Duration::from_secs(600)).maxsize(100)
}

type Tiered = Cache<String, String, TieredStore<String, String>>;
type Remote = Cache<String, String, RedisStore<String, String>>;

/// A tiered cache named `name` over its own client of `url`.
fn tiered(url: &str, name: &str) -> Tiered {
    Cache::with_store(
        RedisOptions::new(name)
            .client(client(url))
            .open_tiered(&config()),
    )
}

/// A Redis cache named `name` over its own client of `url`.
fn remote(url: &str, name: &str) -> Remote {
    Cache::with_store(
        RedisOptions::new(name)
            .client(client(url))
            .open(&Config::new().ttl(Duration::from_secs(600))),
    )
}

/// Runs `op` on a thread of its own and returns what it returned; fails the test if it has not
/// returned after [`HUNG`] (the thread is left behind: the test fails anyway).
fn returns<T: Send + 'static>(what: &str, op: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, returned) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(op());
    });
    returned
        .recv_timeout(HUNG)
        .unwrap_or_else(|_| panic!("{what} never returned against a frozen server"))
}

fn value_of(key: &str) -> String {
    format!("value of {key}")
}

/// `invalidate`, `remove` and `clear` of a tiered cache while its server is frozen (`SIGSTOP`):
/// each returns (none hangs: a watchdog fails the test), and once the server runs again no
/// store, the one that removed included, is served a value that was removed: not from Redis,
/// not from a local copy of this or another tiered store.
#[test]
fn removals_during_a_frozen_server_return_and_leave_no_removed_value_served() {
    let server = RedisServer::start();
    let url = server.url();
    let name = "frozen-removals";
    let writer: &'static Tiered = Box::leak(Box::new(tiered(&url, name)));
    let reader = tiered(&url, name);
    let plain = remote(&url, name);
    let keys = ["a", "b", "c", "d"].map(String::from);
    for key in &keys {
        assert_eq!(
            writer.get_or_compute(key, |key| value_of(key)),
            value_of(key)
        );
    }
    for key in &keys {
        // Found in Redis (nothing computed), then held as a local copy.
        assert_eq!(reader.get(key), Some(value_of(key)));
        assert_eq!(plain.get(key), Some(value_of(key)));
    }
    assert_eq!(writer.stats().misses, 4);
    assert!(
        reader.store().held() >= 4,
        "the reader holds local copies: {}",
        reader.store().held()
    );

    server.pause();
    let errors_before = writer.stats().backend_errors;
    let (invalidated, removed) = returns("invalidate and remove", || {
        (writer.invalidate("a"), writer.remove("b"))
    });
    // What they answer is unknown to a store that cannot reach Redis; they answer.
    let _ = (invalidated, removed);
    returns("clear", || writer.clear());
    let errors = writer.stats().backend_errors - errors_before;
    let skipped = writer.stats().skipped;
    assert!(
        errors + skipped > 0,
        "a frozen server is counted: {:?}",
        writer.stats()
    );
    server.resume();

    // This store is served none of them at once, though Redis may still hold them: its
    // removals did not all reach the server.
    let writer_get = |key: &str| writer.get(key);
    let reader_get = |key: &str| reader.get(key);
    let plain_get = |key: &str| plain.get(key);
    let here = served_of(&keys, &[("writer", &writer_get)]);
    assert!(here.is_empty(), "removed values served: {here:?}");
    // Nor, once Redis has done the removals and told the other processes, is any other store.
    let deadline = std::time::Instant::now() + HUNG;
    loop {
        let everywhere = served_of(
            &keys,
            &[
                ("writer", &writer_get),
                ("reader", &reader_get),
                ("plain", &plain_get),
            ],
        );
        if everywhere.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "removed values still served {HUNG:?} after the server came back: {everywhere:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A store's name and its read of a key.
type Get<'a> = (&'a str, &'a dyn Fn(&str) -> Option<String>);

/// What each of `gets` is served for each of `keys`, as `store: key = value`.
fn served_of(keys: &[String], gets: &[Get<'_>]) -> Vec<String> {
    let mut found = Vec::new();
    for key in keys {
        for (store, get) in gets {
            if let Some(value) = get(key) {
                found.push(format!("{store}: {key} = {value}"));
            }
        }
    }
    found
}

/// The tiered store a child process opens: named `MEMO_TEST_NAME`, over `MEMO_TEST_URL` (a
/// proxy that may hold replies back), with a 5 s command timeout so that a held reply keeps it
/// waiting.
fn child_store() -> Tiered {
    let url = std::env::var("MEMO_TEST_URL").unwrap();
    let name = std::env::var("MEMO_TEST_NAME").unwrap();
    let patient = RedisConfig::from_url(&url)
        .unwrap()
        .command_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5));
    let client = RedisClient::new(patient).unwrap();
    Cache::with_store(
        RedisOptions::new(&name)
            .client(client)
            .open_tiered(&config()),
    )
}

/// A value of `key` that shows whether it is whole: its key, a length, then that many bytes
/// made from the key.
fn long_value_of(key: &str, len: usize) -> String {
    let body: String = key.chars().cycle().take(len).collect();
    format!("{key}|{len}|{body}")
}

/// Whether `value` is a whole [`long_value_of`] `key`.
fn is_whole(key: &str, value: &str) -> bool {
    let mut parts = value.splitn(3, '|');
    let (Some(of), Some(len), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    len.parse().is_ok_and(|len: usize| {
        of == key && body == long_value_of(key, len).rsplit('|').next().unwrap()
    })
}

/// What this binary does when run as a child process (killed by the parent, so it never ends
/// on its own).
#[test]
fn child() {
    let Ok(role) = std::env::var("MEMO_TEST_ROLE") else {
        return;
    };
    let store = child_store();
    match role.as_str() {
        "invalidate" => {
            // Connected and subscribed before the parent slows the replies down.
            assert_eq!(store.get("k"), Some(value_of("k")));
            println!("READY");
            std::io::stdin().read_line(&mut String::new()).unwrap();
            store.invalidate("k");
            println!("RETURNED");
        }
        "replace" => {
            assert_eq!(store.get("k"), Some(value_of("k")));
            println!("READY");
            std::io::stdin().read_line(&mut String::new()).unwrap();
            store.insert("k".to_string(), "new value of k".to_string());
            println!("RETURNED");
        }
        "write" => {
            for round in 0.. {
                for n in 0..20 {
                    let key = format!("w{n}");
                    store.insert(
                        key.clone(),
                        long_value_of(&key, 1 + (round * 7919 + n) % 200_000),
                    );
                }
                if round == 0 {
                    println!("WRITING");
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
    std::thread::sleep(Duration::from_secs(60));
}

/// Runs this binary as `role` against `url`, over the store named `name`; its stdout piped.
fn spawn(role: &str, url: &str, name: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("MEMO_TEST_ROLE", role)
        .env("MEMO_TEST_URL", url)
        .env("MEMO_TEST_NAME", name)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads the child's lines until one contains `marker`.
fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, marker: &str) {
    for line in lines.by_ref() {
        if line.unwrap().contains(marker) {
            return;
        }
    }
    panic!("the child ended before {marker}");
}

/// Fails unless, within [`HUNG`], none of `gets` serves a value of `key`.
fn eventually_unserved(key: &str, gets: &[Get<'_>]) {
    let deadline = std::time::Instant::now() + HUNG;
    let keys = [key.to_string()];
    loop {
        let served = served_of(&keys, gets);
        if served.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a removed value still served {HUNG:?} after its remover died: {served:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process killed (`kill -9`) in the middle of an `invalidate`, once Redis deleted the value
/// (the reply held back by a proxy), or just after it returned: the other processes' local
/// copies go too, and no store is served the removed value.
#[test]
fn a_process_killed_during_or_after_its_invalidation_leaves_no_removed_value_served() {
    use std::io::{BufRead as _, Write as _};
    for (name, delay) in [
        ("killed-mid-invalidation", Duration::from_secs(3)),
        ("killed-after-invalidation", Duration::ZERO),
    ] {
        let server = RedisServer::start();
        let proxy = redis_server::SlowProxy::start(server.port(), Duration::ZERO);
        let reader = tiered(&server.url(), name);
        let plain = remote(&server.url(), name);
        assert_eq!(reader.get_or_compute("k", value_of), value_of("k"));
        assert_eq!(plain.get("k"), Some(value_of("k")));
        assert_eq!(reader.store().held(), 1, "{name}: a copy in the reader");
        let mut child = spawn("invalidate", &proxy.url(), name);
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        wait_for(&mut lines, "READY");
        proxy.set_delay(delay);
        writeln!(stdin).unwrap();
        if delay.is_zero() {
            wait_for(&mut lines, "RETURNED");
        } else {
            // Deleted in Redis; the child waits for the reply.
            let deadline = std::time::Instant::now() + HUNG;
            while plain.get("k").is_some() {
                assert!(std::time::Instant::now() < deadline, "never deleted");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let reader_get = |key: &str| reader.get(key);
        let plain_get = |key: &str| plain.get(key);
        eventually_unserved(
            "k",
            &[
                (&format!("{name} reader"), &reader_get),
                ("plain", &plain_get),
            ],
        );
        assert_eq!(reader.store().held(), 0, "{name}: the copy went");
    }
}

/// A tiered process killed (`kill -9`) while it writes values of up to 200 kB: every value the
/// others are served afterwards is whole and of its own key.
#[test]
fn a_tiered_process_killed_mid_write_leaves_no_torn_value() {
    use std::io::BufRead as _;
    let server = RedisServer::start();
    let name = "killed-mid-write";
    let mut child = spawn("write", &server.url(), name);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for(&mut lines, "WRITING");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let reader = tiered(&server.url(), name);
    let plain = remote(&server.url(), name);
    let mut found = 0;
    for n in 0..20 {
        let key = format!("w{n}");
        for value in [reader.get(&key), plain.get(&key)].into_iter().flatten() {
            assert!(is_whole(&key, &value), "{key}: a torn or foreign value");
            found += 1;
        }
    }
    assert_eq!(found, 40, "every key written in the first round is there");
    assert_eq!(reader.stats().backend_errors, 0);
}

/// A process killed (`kill -9`) in the middle of a tiered `insert`, once Redis holds the new
/// value (the reply held back by a proxy): the other processes' local copies of the old value
/// go too, and every store is served the new one.
#[test]
fn a_process_killed_during_a_tiered_insert_leaves_no_old_copy_served() {
    use std::io::{BufRead as _, Write as _};
    let server = RedisServer::start();
    let proxy = redis_server::SlowProxy::start(server.port(), Duration::ZERO);
    let name = "killed-mid-insert";
    let reader = tiered(&server.url(), name);
    let plain = remote(&server.url(), name);
    assert_eq!(reader.get_or_compute("k", value_of), value_of("k"));
    assert_eq!(reader.store().held(), 1, "a copy in the reader");
    let mut child = spawn("replace", &proxy.url(), name);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for(&mut lines, "READY");
    proxy.set_delay(Duration::from_secs(3));
    writeln!(stdin).unwrap();
    // Stored in Redis; the child waits for the reply.
    let deadline = std::time::Instant::now() + HUNG;
    while plain.get("k") != Some("new value of k".to_string()) {
        assert!(std::time::Instant::now() < deadline, "never stored");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let keys = ["k".to_string()];
    let old = |key: &str| reader.get(key).filter(|value| *value == value_of(key));
    let deadline = std::time::Instant::now() + HUNG;
    loop {
        let stale = served_of(&keys, &[("reader", &old)]);
        if stale.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced value still served {HUNG:?} after its writer died: {stale:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(reader.get("k").as_deref(), Some("new value of k"));
}

/// A miss in one process computing while another process inserts the key: the inserted value
/// stays, as in memory (`Cache::insert` supersedes a computation begun before it), where the
/// miss's older value was stored over it.
fn an_insert_elsewhere_supersedes_a_miss<S>(
    first: &Cache<String, String, S>,
    second: &Cache<String, String, S>,
) where
    S: memo::Store<String, String>,
{
    let (entered, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|scope| {
        let miss = scope.spawn(|| {
            first.get_or_insert_with("k".to_string(), || {
                entered.wait();
                go.wait();
                "older".to_string()
            })
        });
        entered.wait();
        second.insert("k".to_string(), "inserted".to_string());
        go.wait();
        assert_eq!(miss.join().unwrap(), "older", "its own caller gets it");
    });
    assert_eq!(second.get("k").as_deref(), Some("inserted"));
    assert_eq!(first.peek("k").as_deref(), Some("inserted"));
}

#[test]
fn an_insert_in_another_process_supersedes_a_redis_miss() {
    let server = RedisServer::start();
    let url = server.url();
    an_insert_elsewhere_supersedes_a_miss(
        &remote(&url, "insert-over"),
        &remote(&url, "insert-over"),
    );
}

#[test]
fn an_insert_in_another_process_supersedes_a_tiered_miss() {
    let server = RedisServer::start();
    let url = server.url();
    an_insert_elsewhere_supersedes_a_miss(
        &tiered(&url, "insert-over"),
        &tiered(&url, "insert-over"),
    );
}

/// Joiners: a call in one process that misses joins that process's own computation of the key
/// (stampede protection). One begun after another process's `invalidate` returned must not be
/// handed the value of a computation begun before it: that value is rightly refused by Redis
/// (the invalidate deleted the computation's lock, which fences its write), and its joiners
/// must look again rather than take it. Two caches of one namespace, each with a client of its
/// own, stand for the two processes: each has its own computations in flight, as a process has.
mod joiners {
    use super::*;
    use redis_server::Monitor;

    /// Waits until the server has seen a command since `mark` (the joiner's read that missed),
    /// then leaves the joiner time to join the computation in flight (microseconds after its
    /// read: the monitor's own settling waits 100 ms more).
    fn joining(monitor: &Monitor, mark: usize) {
        let deadline = std::time::Instant::now() + HUNG;
        while monitor.sent_since(mark).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the joiner never read"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    /// In `first`, a computation of `k` begins (its body waits); `second` invalidates `k` and
    /// returns; then a call in `first` misses and joins the computation; the body ends. The
    /// computing caller gets its own value; the joiner, begun after the invalidate, must not get
    /// it (`older`): it computes (or reads) a newer one.
    fn a_call_begun_after_an_invalidate_elsewhere<S>(
        port: u16,
        first: &Cache<String, String, S>,
        second: &Cache<String, String, S>,
    ) where
        S: memo::Store<String, String>,
    {
        let monitor = Monitor::start(port);
        let (entered, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            let leader = scope.spawn(|| {
                first.get_or_insert_with("k".to_string(), || {
                    entered.wait();
                    go.wait();
                    "older".to_string()
                })
            });
            entered.wait();
            second.invalidate("k");
            let mark = monitor.mark();
            let joiner =
                scope.spawn(|| first.get_or_insert_with("k".to_string(), || "newer".to_string()));
            joining(&monitor, mark);
            go.wait();
            assert_eq!(leader.join().unwrap(), "older", "its own caller gets it");
            assert_eq!(
                joiner.join().unwrap(),
                "newer",
                "a call begun after the invalidate returned was handed the value of a \
                 computation begun before it"
            );
        });
        assert_eq!(second.get("k").as_deref(), Some("newer"));
        assert_eq!(first.get("k").as_deref(), Some("newer"));
    }

    /// [`a_call_begun_after_an_invalidate_elsewhere`] with async callers on a runtime of their
    /// own, the body waiting on a signal.
    fn an_async_call_begun_after_an_invalidate_elsewhere<S>(
        port: u16,
        first: Cache<String, String, S>,
        second: &Cache<String, String, S>,
    ) where
        S: memo::Store<String, String> + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let first = std::sync::Arc::new(first);
        let monitor = Monitor::start(port);
        let (entered_tx, entered) = mpsc::channel();
        let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
        let leader = runtime.spawn({
            let first = std::sync::Arc::clone(&first);
            async move {
                first
                    .get_or_insert_with_async("k".to_string(), async move {
                        entered_tx.send(()).unwrap();
                        go_rx.await.unwrap();
                        "older".to_string()
                    })
                    .await
            }
        });
        entered.recv_timeout(HUNG).unwrap();
        second.invalidate("k");
        let mark = monitor.mark();
        let joiner = runtime.spawn({
            let first = std::sync::Arc::clone(&first);
            async move {
                first
                    .get_or_insert_with_async("k".to_string(), async { "newer".to_string() })
                    .await
            }
        });
        joining(&monitor, mark);
        go.send(()).unwrap();
        assert_eq!(
            runtime.block_on(leader).unwrap(),
            "older",
            "its own caller gets it"
        );
        assert_eq!(
            runtime.block_on(joiner).unwrap(),
            "newer",
            "an async call begun after the invalidate returned was handed the value of a \
             computation begun before it"
        );
        assert_eq!(second.get("k").as_deref(), Some("newer"));
        assert_eq!(first.get("k").as_deref(), Some("newer"));
    }

    /// A Redis cache named `name` over its own client of `url`, its lock a Redlock over
    /// `lock_urls`.
    fn redlocked(url: &str, name: &str, lock_urls: &[String]) -> Remote {
        Cache::with_store(
            RedisOptions::new(name)
                .client(client(url))
                .redlock_with(memo::redis::RedlockConfig::from_urls(lock_urls).unwrap())
                .open(&Config::new().ttl(Duration::from_secs(600))),
        )
    }

    fn lock_servers() -> (Vec<RedisServer>, Vec<String>) {
        let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let urls = servers.iter().map(RedisServer::url).collect();
        (servers, urls)
    }

    #[test]
    fn a_redis_call_begun_after_an_invalidate_elsewhere_is_not_handed_an_older_value() {
        let server = RedisServer::start();
        let url = server.url();
        a_call_begun_after_an_invalidate_elsewhere(
            server.port(),
            &remote(&url, "joiners"),
            &remote(&url, "joiners"),
        );
    }

    #[test]
    fn a_tiered_call_begun_after_an_invalidate_elsewhere_is_not_handed_an_older_value() {
        let server = RedisServer::start();
        let url = server.url();
        a_call_begun_after_an_invalidate_elsewhere(
            server.port(),
            &tiered(&url, "joiners"),
            &tiered(&url, "joiners"),
        );
    }

    #[test]
    fn a_redlock_call_begun_after_an_invalidate_elsewhere_is_not_handed_an_older_value() {
        let server = RedisServer::start();
        let url = server.url();
        let (_locks, lock_urls) = lock_servers();
        a_call_begun_after_an_invalidate_elsewhere(
            server.port(),
            &redlocked(&url, "joiners", &lock_urls),
            &redlocked(&url, "joiners", &lock_urls),
        );
    }

    #[test]
    fn an_async_redis_call_begun_after_an_invalidate_elsewhere_is_not_handed_an_older_value() {
        let server = RedisServer::start();
        let url = server.url();
        an_async_call_begun_after_an_invalidate_elsewhere(
            server.port(),
            remote(&url, "joiners"),
            &remote(&url, "joiners"),
        );
    }

    #[test]
    fn an_async_tiered_call_begun_after_an_invalidate_elsewhere_is_not_handed_an_older_value() {
        let server = RedisServer::start();
        let url = server.url();
        an_async_call_begun_after_an_invalidate_elsewhere(
            server.port(),
            tiered(&url, "joiners"),
            &tiered(&url, "joiners"),
        );
    }

    #[test]
    fn an_async_redlock_call_begun_after_an_invalidate_elsewhere_is_not_handed_an_older_value() {
        let server = RedisServer::start();
        let url = server.url();
        let (_locks, lock_urls) = lock_servers();
        an_async_call_begun_after_an_invalidate_elsewhere(
            server.port(),
            redlocked(&url, "joiners", &lock_urls),
            &redlocked(&url, "joiners", &lock_urls),
        );
    }
}
