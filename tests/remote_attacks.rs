//! Attacks on the promise "never a wrong value, never someone else's" through the stores shared
//! between processes: a Redis server frozen (`SIGSTOP`) while a cache is invalidated, removed
//! from or cleared, and processes killed (`kill -9`) between an invalidation and a read, or while
//! they write.
//!
//! Each store here has a client of its own (its own connections and its own subscription), as
//! each process has; the tests that kill a process run this binary again as a child, with
//! `MEMO_TEST_ROLE` set (see [`child`]).
#![cfg(feature = "redis")]

#[path = "support/child.rs"]
mod child;
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
const HUNG: Duration = Duration::from_secs(30);

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
    let served = |stores: &[(&str, &dyn Fn(&String) -> Option<String>)]| -> Vec<String> {
        let mut served = Vec::new();
        for key in &keys {
            for (store, get) in stores {
                if let Some(value) = get(key) {
                    served.push(format!("{store}: {key} = {value}"));
                }
            }
        }
        served
    };
    let writer_get = |key: &String| writer.get(key);
    let reader_get = |key: &String| reader.get(key);
    let plain_get = |key: &String| plain.get(key);
    let here = served(&[("writer", &writer_get)]);
    assert!(here.is_empty(), "removed values served: {here:?}");
    // Nor, once Redis has done the removals and told the other processes, is any other store.
    let deadline = std::time::Instant::now() + HUNG;
    loop {
        let everywhere = served(&[
            ("writer", &writer_get),
            ("reader", &reader_get),
            ("plain", &plain_get),
        ]);
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
