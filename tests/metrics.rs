//! The `metrics` feature, end to end: a Prometheus endpoint on loopback, scraped over HTTP, shows
//! exactly the calls made. Its own test binary: it installs the process-wide recorder.

#![cfg(feature = "metrics")]

#[path = "support/calls.rs"]
mod calls;

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;
use metrics_exporter_prometheus::PrometheusBuilder;

#[cached(maxsize = 100)]
fn square(n: u64) -> u64 {
    n * n
}

#[cached]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

/// Comparisons of two `Waited` keys so far: a caller compares its key with the one in flight
/// (under the flight table's lock, which the leader takes to finish), and so waits for it.
static COMPARED: AtomicUsize = AtomicUsize::new(0);

/// A key whose comparisons are counted.
#[derive(Clone, Debug)]
struct Waited(u64);

impl Hash for Waited {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Waited {
    fn eq(&self, other: &Self) -> bool {
        COMPARED.fetch_add(1, Ordering::SeqCst);
        self.0 == other.0
    }
}

impl Eq for Waited {}

/// Computes until two other callers wait for it (10 s at most, a bound against a hang): nothing
/// else compares these keys, the store holding none while it computes.
#[cached]
fn joined(key: Waited) -> u64 {
    assert!(calls::eventually(|| COMPARED.load(Ordering::SeqCst) >= 2));
    key.0
}

/// One entry at a time: each new key evicts the one before.
#[cached(maxsize = 1, policy = "fifo")]
fn evicted(n: u64) -> u64 {
    n
}

/// Expires on the mock clock (see the test).
#[cfg(feature = "test-util")]
#[cached(ttl = "10s")]
fn expiring(n: u64) -> u64 {
    n
}

#[cached]
fn refreshed(n: u64) -> u64 {
    n
}

/// A Redis cache whose server dies (see the test): its reads of a key whose removal did not
/// reach Redis are not even tried.
#[cfg(feature = "redis")]
#[cached(store = redis)]
fn remote(n: u64) -> u64 {
    n
}

/// A disk cache whose directory cannot be made (see the test): each call is a backend error.
#[cfg(feature = "disk")]
#[cached(store = disk)]
fn stored(n: u64) -> u64 {
    n + 1
}

/// One Prometheus scrape of a loopback endpoint serving `render()`.
fn scrape(render: impl Fn() -> String + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0_u8; 1024];
        let _ = stream.read(&mut request).unwrap();
        let body = render();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    server.join().unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `promtool check metrics` (Debian package `prometheus`) finds nothing to say about `text`:
/// every metric has its HELP and TYPE, names and units follow Prometheus' rules.
fn promtool_accepts(text: &str) {
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: install it with `apt-get install -y prometheus`");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

/// The counters of `function` in the order of the README's list: hits, misses, coalesced,
/// evictions, expired, load errors, refreshes.
fn counters(text: &str, function: &str) -> [Option<f64>; 7] {
    [
        "memo_hits_total",
        "memo_misses_total",
        "memo_coalesced_total",
        "memo_evictions_total",
        "memo_expired_total",
        "memo_load_errors_total",
        "memo_refreshes_total",
    ]
    .map(|metric| value(text, &format!("{metric}{{fn=\"metrics::{function}\"}}")))
}

/// `counts` as a scrape shows them.
fn shown(counts: [u32; 7]) -> [Option<f64>; 7] {
    counts.map(|n| Some(f64::from(n)))
}

fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// Cache objects publish when asked, under their name; one without a name, nothing.
fn cache_objects_publish_when_asked() {
    let prices: memo::Cache<u32, u32> = memo::Cache::builder()
        .maxsize(5)
        .build()
        .named("shop::price");
    let unnamed: memo::Cache<u32, u32> = memo::Cache::builder().maxsize(5).build();
    for cache in [&prices, &unnamed] {
        cache.get_or_insert_with(1, || 3);
        cache.get_or_insert_with(1, || 3);
        cache.publish_metrics();
    }
    // Attack 3: `reset_stats` starts `stats()` from zero, not the published counters, which a
    // scrape takes as totals since the process began (Prometheus counters never go down; the
    // exporter keeps the larger of two values, so the hits after a reset were shown as 2, not
    // 3, until they outgrew the hits before it).
    prices.reset_stats();
    prices.get_or_insert_with(1, || 3);
    prices.get_or_insert_with(1, || 3);
    prices.publish_metrics();
    assert_eq!(prices.stats().hits, 2);
}

/// Each memoized function's counters in the scrape `text`: the calls made.
fn memoized_counters_shown(text: &str) {
    let square_fn = r#"{fn="metrics::square"}"#;
    // Hits, misses, coalesced, evictions, expired, load errors, refreshes: each function's, and
    // any two counters differ for some function (a scrape showing one for the other fails).
    let expected = [
        ("square", [4, 3, 0, 0, 0, 0, 0]),
        ("parse", [1, 2, 0, 0, 0, 1, 0]),
        ("joined", [0, 1, 2, 0, 0, 0, 0]),
        ("evicted", [0, 3, 0, 2, 0, 0, 0]),
        ("refreshed", [0, 1, 0, 0, 0, 0, 3]),
        #[cfg(feature = "test-util")]
        ("expiring", [0, 4, 0, 0, 2, 0, 0]),
    ];
    for (function, counts) in expected {
        assert_eq!(
            counters(text, function),
            shown(counts),
            "{function}:\n{text}"
        );
    }
    assert_eq!(value(text, &format!("memo_entries{square_fn}")), Some(3.0));
    assert_eq!(
        value(text, &format!("memo_load_seconds_count{square_fn}")),
        Some(3.0)
    );
}

#[test]
fn a_scrape_shows_the_calls_made() {
    #[cfg(feature = "redis")]
    let mut server = {
        let server = memo::testing::RedisServer::start();
        // SAFETY: the only test of this binary, before any cache opens or thread reads it.
        unsafe { std::env::set_var("MEMO_REDIS_URL", server.url()) };
        server
    };
    #[cfg(feature = "disk")]
    let file = {
        // A cache directory under a regular file: it cannot be created, not even by root.
        let file = std::env::temp_dir().join(format!("memo-metrics-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        // SAFETY: as above.
        unsafe { std::env::set_var("MEMO_CACHE_DIR", file.join("cache")) };
        assert_eq!(stored(1), 2);
        file
    };
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();

    for n in [1, 2, 3, 1, 2, 3, 1] {
        square(n);
    }
    assert!(parse("42").is_ok());
    assert!(parse("42").is_ok());
    assert!(parse("x").is_err());
    // Three callers of key 1: whichever leads computes until the other two wait for it.
    std::thread::scope(|s| {
        let callers = [(); 3].map(|()| s.spawn(|| joined(Waited(1))));
        assert!(callers.into_iter().all(|c| c.join().unwrap() == 1));
    });
    for n in [1, 2, 3] {
        evicted(n);
    }
    #[cfg(feature = "test-util")]
    {
        let (clock, mock) = memo::Clock::mock();
        expiring_cache().set_clock(clock);
        expiring(1);
        expiring(2);
        mock.increment(std::time::Duration::from_secs(60));
        // 1 is stored over its expired value, 2 freed by the purge, or either by the background
        // sweep first: two expired either way.
        expiring(1);
        expiring_cache().purge_expired();
        expiring(3);
    }
    refreshed(1);
    for _ in 0..3 {
        refreshed_cache().refresh(|| refreshed(1));
    }
    #[cfg(feature = "redis")]
    {
        remote(1);
        server.kill();
        // Not done in Redis (one backend error): the key is read there no more until it is.
        remote_cache().invalidate(&1);
        remote(1);
    }
    cache_objects_publish_when_asked();
    // A memoized function's published counters go on after its `reset_stats` too.
    square_cache().reset_stats();
    memo::publish_metrics();

    let text = scrape(move || handle.render());
    let prices_fn = r#"{fn="shop::price"}"#;
    for (metric, expected) in [
        ("memo_hits_total", 3.0),
        ("memo_misses_total", 1.0),
        ("memo_entries", 1.0),
        ("memo_load_seconds_count", 1.0),
    ] {
        assert_eq!(
            value(&text, &format!("{metric}{prices_fn}")),
            Some(expected),
            "{metric}:\n{text}"
        );
    }
    assert!(!text.contains(r#"fn="""#), "{text}");
    memoized_counters_shown(&text);
    promtool_accepts(&text);
    #[cfg(feature = "disk")]
    {
        let line = text
            .lines()
            .find(|l| l.starts_with("memo_backend_errors_total{") && l.contains("metrics::stored"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains(r#"backend="disk""#), "{line}");
        assert!(line.ends_with(" 1"), "{line}");
        assert!(!text.contains(r#"memo_backend_errors_total{fn="metrics::square""#));
        assert_eq!(
            backend_counters(&text, "stored", "disk"),
            [Some(1.0), Some(0.0)],
            "{text}"
        );
        std::fs::remove_file(file).unwrap();
    }
    // The read, the claim and the store of the call after the removal: each not tried.
    #[cfg(feature = "redis")]
    assert_eq!(
        backend_counters(&text, "remote", "redis"),
        [Some(1.0), Some(3.0)],
        "{text}"
    );
}

/// `memo_backend_errors_total` and `memo_backend_skipped_total` of `function`, whose store is
/// `backend`.
#[cfg(any(feature = "disk", feature = "redis"))]
fn backend_counters(text: &str, function: &str, backend: &str) -> [Option<f64>; 2] {
    ["memo_backend_errors_total", "memo_backend_skipped_total"].map(|metric| {
        let line = text.lines().find(|l| {
            l.starts_with(&format!("{metric}{{"))
                && l.contains(&format!("fn=\"metrics::{function}\""))
        })?;
        assert!(line.contains(&format!("backend=\"{backend}\"")), "{line}");
        line.rsplit(' ').next()?.parse().ok()
    })
}
