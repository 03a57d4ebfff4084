//! The disk store: sets and gets of 100-byte values in one process and in two processes at once
//! on one cache directory, and a memoized hit through `#[cached(store = disk)]`.
//!
//! `cargo bench --features disk --bench disk` prints `BENCH <name> <value> <unit>` lines and
//! writes `target/bench/disk.json`. Sets are timed until they are committed (the last `flush`
//! included). For reference, Python's diskcache measured 21,225 sets/s and 213,394 gets/s per
//! process on this kind of machine (`shared/PEERS.md`).

#![allow(
    missing_docs,
    clippy::cast_precision_loss,
    reason = "a benchmark binary"
)]

mod support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use memo::{Config, DiskOptions, DiskStore, Store};
use support::{Report, best_ns_per_op, shuffled};

const OPS: u64 = 100_000;
const VALUE: [u8; 100] = [7; 100];

#[memo::cached(store = disk)]
fn disk_hit(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9)
}

fn store(root: &Path, function: &str) -> DiskStore<u64, Vec<u8>> {
    DiskOptions::new("bench")
        .root(root)
        .function(function, 0)
        .open(&Config::new())
}

/// Sets of keys `first..first + OPS`, committed; returns sets per second.
fn sets(store: &DiskStore<u64, Vec<u8>>, first: u64) -> f64 {
    let start = Instant::now();
    for k in first..first + OPS {
        store.insert(k, VALUE.to_vec());
    }
    store.flush();
    OPS as f64 / start.elapsed().as_secs_f64()
}

/// Gets of keys `first..first + OPS` in a shuffled order; returns gets per second.
fn gets(store: &DiskStore<u64, Vec<u8>>, first: u64) -> f64 {
    let order = shuffled(OPS, 0x5EED);
    let start = Instant::now();
    for k in &order {
        assert!(black_box(store.get(&&(first + k))).is_some());
    }
    OPS as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let root = std::env::var_os("MEMO_BENCH_ROOT").map_or_else(
        || {
            let root = std::env::temp_dir().join(format!("memo-bench-disk-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            root
        },
        PathBuf::from,
    );
    if let Some(first) = std::env::var_os("MEMO_BENCH_CHILD") {
        // One of the two processes: sets then gets of its own keys; prints its rates.
        let first: u64 = first.to_str().and_then(|f| f.parse().ok()).unwrap_or(0);
        let store = store(&root, "bench::two");
        let set_rate = sets(&store, first);
        let get_rate = gets(&store, first);
        println!("{set_rate} {get_rate}");
        return;
    }
    // The memoized function's cache (below) opens under this root; set before any thread runs.
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var("MEMO_CACHE_DIR", &root) };
    let mut report = Report::new("disk");

    let one = store(&root, "bench::one");
    report.figure("disk/set_ops_per_s", sets(&one, 0).round(), "ops/s");
    report.figure("disk/get_ops_per_s", gets(&one, 0).round(), "ops/s");
    // The same gets with no in-memory front: every one is an SQLite read.
    let sqlite_only: DiskStore<u64, Vec<u8>> = DiskOptions::new("bench")
        .root(&root)
        .function("bench::one", 0)
        .memory(0)
        .open(&Config::new());
    report.figure(
        "disk/get_sqlite_ops_per_s",
        gets(&sqlite_only, 0).round(),
        "ops/s",
    );

    // Two processes at once on the same directory, each with its own keys.
    let exe = std::env::current_exe().expect("the benchmark binary");
    let children: Vec<_> = [1_000_000_u64, 2_000_000]
        .iter()
        .map(|first| {
            Command::new(&exe)
                .env("MEMO_BENCH_CHILD", first.to_string())
                .env("MEMO_BENCH_ROOT", &root)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("a second process")
        })
        .collect();
    let (mut set_total, mut get_total) = (0.0, 0.0);
    for child in children {
        let out = child.wait_with_output().expect("the child's output");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rates = text
            .split_whitespace()
            .map(|r| r.parse::<f64>().unwrap_or(0.0));
        set_total += rates.next().unwrap_or(0.0);
        get_total += rates.next().unwrap_or(0.0);
    }
    report.figure("disk/set_ops_per_s_2proc", set_total.round(), "ops/s");
    report.figure("disk/get_ops_per_s_2proc", get_total.round(), "ops/s");

    // A memoized hit: the function's cache in the default store under MEMO_CACHE_DIR.
    for k in 0..10_000 {
        disk_hit(k);
    }
    let order = shuffled(10_000, 0xF00D);
    let ns = best_ns_per_op(5, 10_000, || {
        for &k in &order {
            black_box(disk_hit(black_box(k)));
        }
    });
    report.figure("disk/hit_us", ns / 1000.0, "us");
    report.write();
    drop((one, sqlite_only));
    let _ = std::fs::remove_dir_all(&root);
}
