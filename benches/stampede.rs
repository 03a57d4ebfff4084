//! A hot key under load: 64 callers ask for it in a loop for 2 s; its body takes 20 ms and its
//! entries live 100 ms. How many times does the body run, and how long do callers wait?
//!
//! `cargo bench --features tokio --bench stampede` prints `BENCH stampede/<mode>/executions` and
//! `BENCH stampede/<mode>/p99_us`, sync and async (`…_async`), plus the cancellation case.

#![allow(
    missing_docs,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a benchmark binary"
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::Report;

const CALLERS: usize = 64;
const RUN_FOR: Duration = Duration::from_secs(2);
const BODY: Duration = Duration::from_millis(20);

static MEMO_RUNS: AtomicUsize = AtomicUsize::new(0);
static MEMO_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
static CACHED_RUNS: AtomicUsize = AtomicUsize::new(0);
static STALE_RUNS: AtomicUsize = AtomicUsize::new(0);
static STALE_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
static EARLY_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
static CACHED_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memo::cached(ttl = "100ms", stale = "1s")]
async fn memo_hot_stale_async(key: u64) -> u64 {
    STALE_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    key
}

#[memo::cached(ttl = "100ms", refresh = "early")]
async fn memo_hot_early_async(key: u64) -> u64 {
    EARLY_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    key
}

#[cached::proc_macro::cached(ttl_millis = 100, sync_writes = "by_key")]
async fn cached_hot_async(key: u64) -> u64 {
    CACHED_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    key
}
static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memo::cached(ttl = "100ms", stale = "1s")]
fn memo_hot_stale(key: u64) -> u64 {
    STALE_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    key
}

#[memo::cached(ttl = "100ms", refresh = "early")]
fn memo_hot_early(key: u64) -> u64 {
    EARLY_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    key
}

#[memo::cached(ttl = "100ms")]
fn memo_hot(key: u64) -> u64 {
    MEMO_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    key
}

#[memo::cached(ttl = "100ms")]
async fn memo_hot_async(key: u64) -> u64 {
    MEMO_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    key
}

#[cached::proc_macro::cached(ttl_millis = 100, sync_writes = "by_key")]
fn cached_hot(key: u64) -> u64 {
    CACHED_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    key
}

/// The 99th percentile of `latencies`, in microseconds.
fn p99_us(mut latencies: Vec<Duration>) -> f64 {
    latencies.sort_unstable();
    let index = (latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1));
    latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// `CALLERS` threads calling `call` in a loop for `RUN_FOR`; every call's latency.
fn hammer(call: impl Fn() + Sync) -> Vec<Duration> {
    let deadline = Instant::now() + RUN_FOR;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                let call = &call;
                s.spawn(move || {
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let start = Instant::now();
                        call();
                        latencies.push(start.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// `CALLERS` tasks calling `call` in a loop for `RUN_FOR`; every call's latency.
async fn hammer_async<F, Fut>(call: F) -> Vec<Duration>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let deadline = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let call = Arc::clone(&call);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    call().await;
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all
}

fn main() {
    let mut report = Report::new("stampede");
    let mut record =
        |report: &mut Report, mode: &str, executions: usize, latencies: Vec<Duration>| {
            report.figure(
                &format!("stampede/{mode}/executions"),
                executions as f64,
                "count",
            );
            report.figure(&format!("stampede/{mode}/p99_us"), p99_us(latencies), "us");
        };
    sync_modes(&mut |mode, executions, latencies| record(&mut report, mode, executions, latencies));
    async_modes(&mut report, &mut record);
    report.write();
}

/// The sync modes, one thread per caller.
fn sync_modes(record: &mut impl FnMut(&str, usize, Vec<Duration>)) {
    let latencies = hammer(|| {
        memo_hot(1);
    });
    record("memo_ttl", MEMO_RUNS.load(Ordering::SeqCst), latencies);

    let latencies = hammer(|| {
        memo_hot_stale(1);
    });
    record("memo_stale", STALE_RUNS.load(Ordering::SeqCst), latencies);

    let latencies = hammer(|| {
        memo_hot_early(1);
    });
    record("memo_early", EARLY_RUNS.load(Ordering::SeqCst), latencies);

    let latencies = hammer(|| {
        cached_hot(1);
    });
    record(
        "cached_by_key",
        CACHED_RUNS.load(Ordering::SeqCst),
        latencies,
    );

    let moka_runs = Arc::new(AtomicUsize::new(0));
    let moka = moka::sync::Cache::builder()
        .time_to_live(Duration::from_millis(100))
        .build();
    let latencies = hammer(|| {
        moka.get_with(1_u64, || {
            moka_runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(BODY);
            1_u64
        });
    });
    record("moka_get_with", moka_runs.load(Ordering::SeqCst), latencies);
}

/// The async modes, one task per caller.
fn async_modes(
    report: &mut Report,
    record: &mut impl FnMut(&mut Report, &str, usize, Vec<Duration>),
) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let latencies = runtime.block_on(hammer_async(|| async {
        memo_hot_async(1).await;
    }));
    record(
        report,
        "memo_ttl_async",
        MEMO_ASYNC_RUNS.load(Ordering::SeqCst),
        latencies,
    );

    let latencies = runtime.block_on(hammer_async(|| async {
        memo_hot_stale_async(1).await;
    }));
    record(
        report,
        "memo_stale_async",
        STALE_ASYNC_RUNS.load(Ordering::SeqCst),
        latencies,
    );

    let latencies = runtime.block_on(hammer_async(|| async {
        memo_hot_early_async(1).await;
    }));
    record(
        report,
        "memo_early_async",
        EARLY_ASYNC_RUNS.load(Ordering::SeqCst),
        latencies,
    );

    let latencies = runtime.block_on(hammer_async(|| async {
        cached_hot_async(1).await;
    }));
    record(
        report,
        "cached_by_key_async",
        CACHED_ASYNC_RUNS.load(Ordering::SeqCst),
        latencies,
    );

    let moka_async_runs = Arc::new(AtomicUsize::new(0));
    let moka_async: moka::future::Cache<u64, u64> = moka::future::Cache::builder()
        .time_to_live(Duration::from_millis(100))
        .build();
    let latencies = runtime.block_on({
        let (cache, runs) = (moka_async.clone(), Arc::clone(&moka_async_runs));
        hammer_async(move || {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            async move {
                cache
                    .get_with(1, async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(BODY).await;
                        1
                    })
                    .await;
            }
        })
    });
    record(
        report,
        "moka_get_with_async",
        moka_async_runs.load(Ordering::SeqCst),
        latencies,
    );

    let (executions, served) = runtime.block_on(cancelled_leader());
    report.figure(
        "stampede/cancel_async/executions",
        executions as f64,
        "count",
    );
    report.figure("stampede/cancel_async/served", served as f64, "count");
}

static CANCEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memo::cached]
async fn memo_cancellable(key: u64) -> u64 {
    CANCEL_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    key
}

/// A leader cancelled 5 ms into its computation, with 63 callers waiting on it: how many
/// executions, and how many of the 63 got the value.
async fn cancelled_leader() -> (usize, usize) {
    let leader = tokio::spawn(tokio::time::timeout(
        Duration::from_millis(5),
        memo_cancellable(9),
    ));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let waiters: Vec<_> = (1..CALLERS)
        .map(|_| tokio::spawn(memo_cancellable(9)))
        .collect();
    let _ = leader.await;
    let mut served = 0;
    for waiter in waiters {
        if waiter.await.is_ok_and(|v| v == 9) {
            served += 1;
        }
    }
    (CANCEL_RUNS.load(Ordering::SeqCst), served)
}
