//! memo against its peers, in one process: hit cost, two-thread scaling, stampedes.
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

use support::{Report, median_ns_per_op, shuffled, throughput};

const KEYS: u64 = 10_000;
/// Room for all warm keys in every sharded peer, so the hit loops measure hits only.
const ROOM: usize = 16_384;
const RUNS: usize = 9;

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

fn main() {
    let mut report = Report::new("peers");
    let order = shuffled(KEYS, 0x5EED);
    let ops = order.len() as u64 * 20;

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

    let hit = |f: &dyn Fn(u64) -> u64| {
        median_ns_per_op(RUNS, ops, || {
            for _ in 0..20 {
                for &k in &order {
                    black_box(f(black_box(k)));
                }
            }
        })
    };
    report.figure("hit_ns/memo_u64", hit(&memo_u64), "ns");
    report.figure("hit_ns/cached_u64", hit(&cached_u64), "ns");
    report.figure(
        "hit_ns/quick_cache_u64",
        hit(&|k| quick.get(&k).unwrap_or(0)),
        "ns",
    );
    report.figure("hit_ns/moka_u64", hit(&|k| moka.get(&k).unwrap_or(0)), "ns");
    report.figure(
        "hit_ns/std_hashmap_u64",
        hit(&|k| *std_map.get(&k).unwrap_or(&0)),
        "ns",
    );
    let stray = memo_u64_cache().stats().misses - memo_misses;
    report.figure(
        "hit_check/memo_u64_misses_in_hit_loop",
        stray as f64,
        "count",
    );

    let words: Vec<String> = order.iter().map(|k| format!("key-{k}")).collect();
    let word_map: HashMap<String, usize> = words.iter().map(|w| (w.clone(), w.len())).collect();
    for w in &words {
        memo_str(w);
    }
    let str_ops = words.len() as u64 * 20;
    let str_hit = |f: &dyn Fn(&str) -> usize| {
        median_ns_per_op(RUNS, str_ops, || {
            for _ in 0..20 {
                for w in &words {
                    black_box(f(black_box(w.as_str())));
                }
            }
        })
    };
    report.figure("hit_ns/memo_str", str_hit(&memo_str), "ns");
    report.figure(
        "hit_ns/std_hashmap_str",
        str_hit(&|w| *word_map.get(w).unwrap_or(&0)),
        "ns",
    );

    // Two threads against one: each thread walks its own order of the warm keys.
    let orders = [shuffled(KEYS, 1), shuffled(KEYS, 2)];
    let scale = |f: &(dyn Fn(u64) -> u64 + Sync)| {
        let per_thread = |t: usize| {
            for _ in 0..20 {
                for &k in &orders[t] {
                    black_box(f(black_box(k)));
                }
            }
        };
        let mut ratios: Vec<f64> = (0..5)
            .map(|_| throughput(2, ops, per_thread) / throughput(1, ops, per_thread))
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
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
    report.write();
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
