//! A short guided run of everything memo does so far.
//!
//! Run: `cargo run --release --example tour`. The examples are built with the `disk`, `redis` and
//! `tokio` features (a dev-dependency turns them on), so every section runs; the
//! Redis one starts its own `redis-server` on a free loopback port when it is installed.

use std::sync::Barrier;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use memo::cached;

fn section(title: &str) {
    println!("\n== {title}");
}

// 1. One attribute: the function's results are cached by argument.
#[cached]
fn slow_square(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(100));
    n * n
}

// 2. Borrowed arguments are keyed by their owned form; a hit allocates no key.
#[cached(maxsize = 1_000)]
fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

// 3. `Result`: only `Ok` is cached.
static PARSES: AtomicU32 = AtomicU32::new(0);
#[cached]
fn parse_port(text: &str) -> Result<u16, std::num::ParseIntError> {
    PARSES.fetch_add(1, Ordering::SeqCst);
    text.parse()
}

// 4. Methods key on `self` (when it is `Hash + Eq + Clone`) or on what `key = ...` says.
struct Repo {
    name: String,
}
impl Repo {
    #[cached(key = path)]
    fn file(&self, path: &str) -> String {
        format!("{}:{path} ({} bytes)", self.name, path.len() * 100)
    }
}

// 5. Single-flight: concurrent callers of a missing key run the body once.
static REPORTS: AtomicU32 = AtomicU32::new(0);
#[cached]
fn daily_report(day: u32) -> String {
    REPORTS.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(200));
    format!("report for day {day}")
}

// 6. A bound: at most 3 entries; the default policy (S3-FIFO behind a TinyLFU door) picks which go.
#[cached(maxsize = 3)]
fn thumbnail(id: u32) -> Vec<u8> {
    vec![0; id as usize]
}

// 7. Expiry (tests move a mock clock instead of sleeping: tests/testing_recipe.rs).
#[cached(ttl = "200ms")]
fn exchange_rate(pair: &str) -> f64 {
    if pair == "EURUSD" { 1.08 } else { 1.0 }
}

// 8. `async fn`: the same single-flight, and a cancelled caller hands over to a waiting one.
static FETCHES: AtomicU32 = AtomicU32::new(0);
#[cached(ttl = "1h")]
async fn fetch(url: &str) -> Result<String, String> {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(format!("<html>{url}</html>"))
}

async fn async_section() {
    let start = Instant::now();
    let tasks: Vec<_> = (0..32).map(|_| tokio::spawn(fetch("/news"))).collect();
    for task in tasks {
        task.await.expect("task").expect("page");
    }
    println!(
        "32 tasks, one cold URL: {} fetch, {:?}",
        FETCHES.load(Ordering::SeqCst),
        start.elapsed()
    );
    let impatient = tokio::time::timeout(Duration::from_millis(20), fetch("/slow"));
    let patient = tokio::spawn(fetch("/slow"));
    println!(
        "a caller that gives up after 20 ms: {:?}",
        impatient.await.map(|_| ())
    );
    println!(
        "the one that waited still gets its page: {:?}",
        patient.await.expect("task")
    );
    println!("fetches so far: {}", FETCHES.load(Ordering::SeqCst));
}

// 9. On disk (feature `disk`): entries outlive the process and are shared with other processes.
#[cached(store = disk("tour"), ttl = "1h")]
fn geocode(city: &str) -> (f64, f64) {
    thread::sleep(Duration::from_millis(50));
    let code = city.bytes().map(f64::from).sum::<f64>();
    (code % 90.0, code % 180.0)
}

/// The disk section; `second` is this tour run again as another process.
fn disk_section(second: bool) {
    let started = Instant::now();
    let place = geocode("Lisbon");
    let stats = geocode_cache().stats();
    println!(
        "{} process: geocode(\"Lisbon\") = {place:?} in {:?} (misses {}, hits {})",
        if second { "second" } else { "first" },
        started.elapsed(),
        stats.misses,
        stats.hits
    );
    if second {
        return;
    }
    geocode("Lisbon");
    println!(
        "again: hits {}; stored in {}",
        geocode_cache().stats().hits,
        geocode_cache().store().dir().display()
    );
    // Committed (the writer does so within a millisecond; this waits for it).
    geocode_cache().store().flush();
    let second = std::process::Command::new(std::env::current_exe().expect("this tour"))
        .env("MEMO_TOUR_SECOND", "1")
        .status();
    println!("the second process ran: {second:?}");
}

fn main() {
    if std::env::var_os("MEMO_TOUR_SECOND").is_some() {
        // Run by the first process, with its cache directory.
        disk_section(true);
        return;
    }
    let dir = std::env::temp_dir().join(format!("memo-tour-{}", std::process::id()));
    // SAFETY: the first statement of `main`: no other thread runs yet.
    unsafe { std::env::set_var("MEMO_CACHE_DIR", &dir) };
    let _redis = private_redis();
    section("1. memoize a slow function");
    let start = Instant::now();
    slow_square(12);
    println!("slow_square(12) first call: {:?}", start.elapsed());
    let start = Instant::now();
    slow_square(12);
    println!("slow_square(12) second call: {:?}", start.elapsed());

    section("2. &str arguments");
    word_count("the quick brown fox");
    word_count("the quick brown fox");
    println!("word_count stats: {:?}", word_count_cache().stats());
    println!(
        "invalidate(\"the quick brown fox\") -> {}",
        word_count_cache().invalidate("the quick brown fox")
    );

    section("3. Result caches Ok only");
    let _ = parse_port("8080");
    let _ = parse_port("8080");
    let _ = parse_port("http");
    let _ = parse_port("http");
    println!(
        "4 calls, {} parses (the error was not cached)",
        PARSES.load(Ordering::SeqCst)
    );

    section("4. methods and key = ...");
    let repo = Repo {
        name: "memo".into(),
    };
    println!("{}", repo.file("README.md"));
    println!("Repo::file_cache().len() = {}", Repo::file_cache().len());

    section("5. 64 threads, one cold key");
    let barrier = Barrier::new(64);
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..64 {
            s.spawn(|| {
                barrier.wait();
                daily_report(7)
            });
        }
    });
    let stats = daily_report_cache().stats();
    println!(
        "executions: {}, coalesced callers: {}, wall: {:?}",
        REPORTS.load(Ordering::SeqCst),
        stats.coalesced,
        start.elapsed()
    );

    section("6. maxsize = 3");
    for id in 1..=10 {
        thumbnail(id);
    }
    let stats = thumbnail_cache().stats();
    println!(
        "10 distinct calls: len {}, evictions {}",
        stats.len, stats.evictions
    );

    section("7. ttl");
    exchange_rate("EURUSD");
    exchange_rate("EURUSD");
    println!("at once: hits {}", exchange_rate_cache().stats().hits);
    thread::sleep(Duration::from_millis(250));
    exchange_rate("EURUSD");
    println!(
        "after 250ms (ttl 200ms): misses {} (expired, recomputed)",
        exchange_rate_cache().stats().misses
    );
    // A forced recomputation, e.g. after the rates were updated upstream.
    exchange_rate_cache().refresh(|| exchange_rate("EURUSD"));
    println!(
        "forced refresh: refreshes {}",
        exchange_rate_cache().stats().refreshes
    );

    section("8. async fn");
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(async_section());

    section("9. on disk (store = disk)");
    disk_section(false);
    // The temporary directory set at the start of `main`.
    if let Some(dir) = std::env::var_os("MEMO_CACHE_DIR") {
        let _ = std::fs::remove_dir_all(dir);
    }

    section("10. in Redis (store = redis)");
    redis_section();
}

// 10. In Redis (feature `redis`): shared by every process using the server; one computation per
// missing key across all of them.
#[cached(store = redis, ttl = "1m")]
fn shared_rate(currency: &str) -> f64 {
    thread::sleep(Duration::from_millis(100));
    if currency == "EUR" { 1.08 } else { 1.0 }
}

/// The server the tour's Redis store uses: `MEMO_REDIS_URL`'s when it is set, else a private one
/// (stopped when it is dropped) when `redis-server` is installed.
fn private_redis() -> Option<memo::testing::RedisServer> {
    if std::env::var_os("MEMO_REDIS_URL").is_some() || !memo::testing::RedisServer::installed() {
        return None;
    }
    let server = memo::testing::RedisServer::start();
    // SAFETY: called first thing in `main`: no other thread runs yet.
    unsafe { std::env::set_var("MEMO_REDIS_URL", server.url()) };
    Some(server)
}

fn redis_section() {
    if std::env::var_os("MEMO_REDIS_URL").is_none() {
        println!("redis-server is not installed: `apt-get install redis-server` (or `brew install");
        println!("redis`), then run the tour again; or set MEMO_REDIS_URL to a server of yours");
        return;
    }
    shared_rate_cache().invalidate("EUR");
    let started = Instant::now();
    let rate = shared_rate("EUR");
    println!("EUR {rate} computed in {:?}", started.elapsed());
    let started = Instant::now();
    let rate = shared_rate("EUR");
    println!(
        "EUR {rate} from Redis in {:?} (any process would hit it now)",
        started.elapsed()
    );
    let stats = shared_rate_cache().stats();
    println!("hits {}, misses {}", stats.hits, stats.misses);
}
