//! memo against its peers, in one process: hit cost, two-thread scaling, stampedes; and bytes per
//! entry, one child process per implementation.
//!
//! `cargo bench --bench peers` prints `BENCH <name> <value> <unit>` lines and writes
//! `target/bench/peers.json`. Timings are meant to be read as ratios between rows of one run.

#![allow(
    missing_docs,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "a benchmark binary"
)]

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Report, best_ns_per_op, pin_to, scaling, shuffled};

const KEYS: u64 = 10_000;
/// Room for all warm keys in every sharded peer, so the hit loops measure hits only.
const ROOM: usize = 16_384;
/// Rounds over all implementations, timed passes per round, and key walks per timed pass.
const ROUNDS: usize = 5;
const PASSES: usize = 3;
const REPEAT: u64 = 20;

#[memo::cached(maxsize = 16_384)]
fn memo_u64(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9)
}

#[memo::cached(maxsize = 16_384)]
fn memo_str(s: &str) -> usize {
    s.len()
}

#[cached::proc_macro::cached(max_size = 10000)]
fn cached_u64(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9)
}

/// The same functions with a time to live (an hour: nothing expires while measured).
#[memo::cached(maxsize = 16_384, ttl = "1h")]
fn memo_ttl_u64(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9)
}

#[cached::proc_macro::cached(max_size = 10000, ttl_secs = 3600)]
fn cached_ttl_u64(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9)
}

#[allow(clippy::too_many_lines, reason = "one figure after another")]
fn main() {
    if let Ok(which) = std::env::var(MEMORY_CHILD) {
        memory_child(&which);
        return;
    }
    let mut report = Report::new("peers");
    // Every single-thread figure on the same core: the two cores of this machine differ.
    pin_to(0);
    let order = shuffled(KEYS, 0x5EED);
    // With the `metrics` feature, a recorder is installed, as an application exporting them would.
    #[cfg(feature = "metrics")]
    metrics::set_global_recorder(
        metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
    )
    .expect("the only recorder");

    // Warm every implementation with the same keys.
    let quick = quick_cache::sync::Cache::<u64, u64>::new(ROOM);
    let moka = moka::sync::Cache::<u64, u64>::new(ROOM as u64);
    let mut std_map = HashMap::new();
    for &k in &order {
        memo_u64(k);
        cached_u64(k);
        quick.insert(k, k);
        moka.insert(k, k);
        std_map.insert(k, k);
    }
    let memo_misses = memo_u64_cache().stats().misses;
    let u64_hits = [
        ("hit_ns/memo_u64", walk(&order, memo_u64)),
        ("hit_ns/cached_u64", walk(&order, cached_u64)),
        (
            "hit_ns/quick_cache_u64",
            walk(&order, |k| quick.get(&k).unwrap_or(0)),
        ),
        (
            "hit_ns/moka_u64",
            walk(&order, |k| moka.get(&k).unwrap_or(0)),
        ),
        (
            "hit_ns/std_hashmap_u64",
            walk(&order, |k| *std_map.get(&k).unwrap_or(&0)),
        ),
    ];
    for (name, ns) in interleaved(&u64_hits, KEYS) {
        report.figure(name, ns, "ns");
        #[cfg(feature = "metrics")]
        if name == "hit_ns/memo_u64" {
            memo::publish_metrics();
            report.figure("hit_ns/memo_u64_metrics", ns, "ns");
        }
    }
    let stray = memo_u64_cache().stats().misses - memo_misses;
    report.figure(
        "hit_check/memo_u64_misses_in_hit_loop",
        stray as f64,
        "count",
    );

    // Hits on entries with a time to live: each one reads the clock.
    let moka_ttl = moka::sync::Cache::<u64, u64>::builder()
        .max_capacity(ROOM as u64)
        .time_to_live(Duration::from_secs(3600))
        .build();
    for &k in &order {
        memo_ttl_u64(k);
        cached_ttl_u64(k);
        moka_ttl.insert(k, k);
    }
    let ttl_hits = [
        ("hit_ns/memo_ttl_u64", walk(&order, memo_ttl_u64)),
        ("hit_ns/cached_ttl_u64", walk(&order, cached_ttl_u64)),
        (
            "hit_ns/moka_ttl_u64",
            walk(&order, |k| moka_ttl.get(&k).unwrap_or(0)),
        ),
    ];
    for (name, ns) in interleaved(&ttl_hits, KEYS) {
        report.figure(name, ns, "ns");
    }

    let words: Vec<String> = order.iter().map(|k| format!("key-{k}")).collect();
    let word_map: HashMap<String, usize> = words.iter().map(|w| (w.clone(), w.len())).collect();
    for w in &words {
        memo_str(w);
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let str_hits = [
        ("hit_ns/memo_str", walk(&words, memo_str)),
        (
            "hit_ns/std_hashmap_str",
            walk(&words, |w: &str| *word_map.get(w).unwrap_or(&0)),
        ),
    ];
    for (name, ns) in interleaved(&str_hits, KEYS) {
        report.figure(name, ns, "ns");
    }

    // Two threads against one: each thread walks its own order of the warm keys.
    let orders = [shuffled(KEYS, 1), shuffled(KEYS, 2)];
    let scale = |f: &(dyn Fn(u64) -> u64 + Sync)| {
        let pass = |t: usize| {
            for &k in &orders[t] {
                black_box(f(black_box(k)));
            }
        };
        scaling(5, KEYS, pass)
    };
    report.figure("scale_2t/memo", scale(&memo_u64), "x");
    report.figure("scale_2t/cached", scale(&cached_u64), "x");
    report.figure(
        "scale_2t/quick_cache",
        scale(&|k| quick.get(&k).unwrap_or(0)),
        "x",
    );
    report.figure("scale_2t/moka", scale(&|k| moka.get(&k).unwrap_or(0)), "x");

    stampedes(&mut report);
    memory(&mut report);
    report.write();
}

/// Set in a child process of this benchmark: fill one implementation and print its footprint.
const MEMORY_CHILD: &str = "MEMO_BENCH_MEMORY_CHILD";
const MEMORY_ENTRIES: u64 = 1_000_000;
const MEMORY_IMPLS: [&str; 10] = [
    "memo",
    "memo_ttl",
    "memo_churn",
    "memo_ttl_churn",
    "quick_cache",
    "quick_cache_churn",
    "moka",
    "moka_ttl",
    "cached",
    "std_hashmap",
];

/// Bytes per entry (`u64 -> u64`, a million entries, room for all of them; `_churn`: three
/// million through room for one): the growth of the
/// resident set of a fresh process per implementation, so one's freed pages never count for another.
fn memory(report: &mut Report) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    for which in MEMORY_IMPLS {
        let out = std::process::Command::new(&exe)
            .env(MEMORY_CHILD, which)
            .output()
            .expect("run the memory child");
        let text = String::from_utf8_lossy(&out.stdout);
        let bytes: f64 = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("memory child {which} printed {text:?}"));
        report.figure(&format!("mem_bytes_per_entry/{which}"), bytes, "B");
    }
}

fn memory_child(which: &str) {
    let n = MEMORY_ENTRIES;
    let room = usize::try_from(n).expect("fits");
    let ttl = Duration::from_secs(3600);
    let before = resident_bytes();
    // Each implementation, and how many entries it holds (a sharded one may have evicted a few).
    let (keep, held): (Box<dyn std::any::Any>, usize) = match which {
        "memo" | "memo_ttl" | "memo_churn" | "memo_ttl_churn" => {
            let mut config = memo::Config::new().maxsize(room);
            if which.starts_with("memo_ttl") {
                config = config.ttl(ttl);
            }
            let cache = memo::Cache::<u64, u64>::new(config);
            (0..churned(which, n)).for_each(|k| cache.insert(k, k));
            let held = cache.len();
            (Box::new(cache), held)
        }
        "quick_cache" | "quick_cache_churn" => {
            let cache = quick_cache::sync::Cache::<u64, u64>::new(room);
            (0..churned(which, n)).for_each(|k| cache.insert(k, k));
            let held = cache.len();
            (Box::new(cache), held)
        }
        "moka" | "moka_ttl" => {
            let mut builder = moka::sync::Cache::<u64, u64>::builder().max_capacity(n);
            if which == "moka_ttl" {
                builder = builder.time_to_live(ttl);
            }
            let cache = builder.build();
            (0..n).for_each(|k| cache.insert(k, k));
            cache.run_pending_tasks();
            let held = usize::try_from(cache.entry_count()).expect("fits");
            (Box::new(cache), held)
        }
        "cached" => {
            use cached::Cached;
            let mut cache = cached::LruCache::<u64, u64>::new(room);
            (0..n).for_each(|k| {
                cache.cache_set(k, k);
            });
            let held = cache.cache_size();
            (Box::new(cache), held)
        }
        "std_hashmap" => (
            Box::new((0..n).map(|k| (k, k)).collect::<HashMap<u64, u64>>()),
            room,
        ),
        other => panic!("no implementation named {other}"),
    };
    let after = resident_bytes();
    black_box(&keep);
    println!("{:.1}", (after - before) as f64 / held as f64);
}

/// How many keys to insert: `n`, or for a `_churn` row `3 × n`, so that two thirds of them are
/// evicted on the way (a bounded cache's steady state, tombstones and all).
fn churned(which: &str, n: u64) -> u64 {
    if which.ends_with("_churn") { 3 * n } else { n }
}

/// The process's resident set, from `/proc/self/statm` (pages of 4 KiB).
fn resident_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's second field");
    pages * 4096
}

/// One walk over a key set, calling one implementation on each key.
type Walk<'a> = Box<dyn Fn() + 'a>;

/// One walk over `keys`, calling `f` on each.
fn walk<'a, K: Copy, R>(keys: &'a [K], f: impl Fn(K) -> R + 'a) -> Walk<'a> {
    Box::new(move || {
        for &k in keys {
            black_box(f(black_box(k)));
        }
    })
}

/// Nanoseconds per call of each implementation (`walks` of `ops` calls): rounds in turn, so that
/// a slow spell of the machine touches them all alike, keeping each one's best.
fn interleaved<'a>(walks: &[(&'a str, Walk<'_>)], ops: u64) -> Vec<(&'a str, f64)> {
    let mut best = vec![f64::INFINITY; walks.len()];
    for _ in 0..ROUNDS {
        for (i, (_, walk)) in walks.iter().enumerate() {
            best[i] = best[i].min(best_ns_per_op(PASSES, ops * REPEAT, || {
                for _ in 0..REPEAT {
                    walk();
                }
            }));
        }
    }
    walks.iter().map(|(name, _)| *name).zip(best).collect()
}

static SAME_KEY_RUNS: AtomicUsize = AtomicUsize::new(0);
static CACHED_SAME_KEY_RUNS: AtomicUsize = AtomicUsize::new(0);
const BODY: Duration = Duration::from_millis(50);

#[memo::cached]
fn memo_slow(k: u64) -> u64 {
    SAME_KEY_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    k
}

#[cached::proc_macro::cached]
fn cached_slow(k: u64) -> u64 {
    CACHED_SAME_KEY_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    k
}

/// Wall time of 64 threads calling `f(key_of(thread))` at once.
fn stampede_wall(f: fn(u64) -> u64, key_of: impl Fn(u64) -> u64 + Sync) -> Duration {
    let barrier = Barrier::new(64);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..64 {
            let (barrier, key_of) = (&barrier, &key_of);
            s.spawn(move || {
                barrier.wait();
                black_box(f(key_of(t)));
            });
        }
    });
    start.elapsed()
}

fn stampedes(report: &mut Report) {
    stampede_wall(memo_slow, |_| 1_000_000);
    report.figure(
        "stampede/same_key_executions",
        SAME_KEY_RUNS.load(Ordering::SeqCst) as f64,
        "count",
    );
    stampede_wall(cached_slow, |_| 1_000_000);
    report.figure(
        "stampede/cached_same_key_executions",
        CACHED_SAME_KEY_RUNS.load(Ordering::SeqCst) as f64,
        "count",
    );
    let wall = stampede_wall(memo_slow, |t| t);
    report.figure(
        "stampede/distinct_keys_wall_ms",
        wall.as_secs_f64() * 1e3,
        "ms",
    );
    let wall = stampede_wall(cached_slow, |t| t);
    report.figure(
        "stampede/cached_distinct_keys_wall_ms",
        wall.as_secs_f64() * 1e3,
        "ms",
    );
}
