//! Per-function metrics through the `metrics` facade (feature `metrics`), so any exporter works.
//!
//! Hits stay free of shared writes: a publisher thread reads each cache's striped statistics once
//! per [`PERIOD`] (and on [`publish`]) and sets absolute counters, labelled `fn` = module path and
//! function name:
//!
//! | metric | kind |
//! |---|---|
//! | `memo_hits_total`, `memo_misses_total`, `memo_coalesced_total`, `memo_evictions_total`, `memo_expired_total`, `memo_load_errors_total`, `memo_refreshes_total` | counter |
//! | `memo_backend_errors_total` (also labelled `backend`, e.g. `disk`; not for in-memory caches) | counter |
//! | `memo_backend_skipped_total` (labelled as above): requests not tried, the backend being known down | counter |
//! | `memo_entries` | gauge |
//! | `memo_load_seconds` | histogram, recorded on each computation (a miss, not a hit) |

use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use crate::stats::Stats;

/// How often the publisher thread updates the metrics.
///
/// # Examples
///
/// Between two publications a scrape sees the numbers of the last one;
/// [`publish_metrics`](crate::publish_metrics) publishes at once.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(memo::METRICS_PERIOD, Duration::from_secs(1));
/// ```
pub const PERIOD: Duration = Duration::from_secs(1);

/// A cache the publisher reports on.
pub(crate) trait Observed: Send + Sync {
    fn name(&self) -> &'static str;
    fn stats(&self) -> Stats;
    fn backend(&self) -> &'static str;
}

static OBSERVED: Mutex<Vec<&'static dyn Observed>> = Mutex::new(Vec::new());

/// Reports on `cache` from now on.
pub(crate) fn observe(cache: &'static dyn Observed) {
    static START: Once = Once::new();
    OBSERVED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(cache);
    START.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("memo-metrics".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(PERIOD);
                    publish();
                }
            });
    });
}

/// Each metric's help text (Prometheus `# HELP`).
const DESCRIPTIONS: [(&str, &str); 11] = [
    ("memo_hits_total", "Calls answered from the cache."),
    ("memo_misses_total", "Calls that ran the function's body."),
    (
        "memo_coalesced_total",
        "Calls that waited for another caller's computation of the same key.",
    ),
    (
        "memo_evictions_total",
        "Entries removed to stay within maxsize.",
    ),
    (
        "memo_expired_total",
        "Entries removed because their ttl passed.",
    ),
    (
        "memo_load_errors_total",
        "Computations that returned an error or None (not cached).",
    ),
    (
        "memo_refreshes_total",
        "Recomputations of a cached key (stale, refresh = \"early\", forced).",
    ),
    (
        "memo_backend_errors_total",
        "Failed requests to the store (disk, Redis); the call computed instead.",
    ),
    (
        "memo_backend_skipped_total",
        "Requests to the store not tried because it was known to be down.",
    ),
    ("memo_entries", "Entries in the cache."),
    (
        "memo_load_seconds",
        "Time taken by each computation of the function's body.",
    ),
];

/// Registers the help texts with the recorder installed now (a recorder installed later gets
/// them at the next publication).
fn describe() {
    for (name, help) in DESCRIPTIONS {
        match name {
            "memo_entries" => metrics::describe_gauge!(name, metrics::Unit::Count, help),
            "memo_load_seconds" => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
            _ => metrics::describe_counter!(name, metrics::Unit::Count, help),
        }
    }
}

/// Publishes every memoized function's counters now (a scrape right after sees them).
///
/// # Examples
///
/// ```
/// memo::publish_metrics();
/// ```
pub fn publish() {
    let observed = OBSERVED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    describe();
    for cache in observed {
        publish_one(cache.name(), &cache.stats(), cache.backend());
    }
}

/// Sets the counters of the cache `name` (its `stats`, over `backend`).
pub(crate) fn publish_one(name: &'static str, stats: &Stats, backend: &'static str) {
    let counters = [
        ("memo_hits_total", stats.hits),
        ("memo_misses_total", stats.misses),
        ("memo_coalesced_total", stats.coalesced),
        ("memo_evictions_total", stats.evictions),
        ("memo_expired_total", stats.expired),
        ("memo_load_errors_total", stats.load_errors),
        ("memo_refreshes_total", stats.refreshes),
    ];
    for (metric, value) in counters {
        metrics::counter!(metric, "fn" => name).absolute(value);
    }
    if backend != "memory" {
        metrics::counter!("memo_backend_errors_total", "fn" => name, "backend" => backend)
            .absolute(stats.backend_errors);
        metrics::counter!("memo_backend_skipped_total", "fn" => name, "backend" => backend)
            .absolute(stats.skipped);
    }
    #[allow(clippy::cast_precision_loss, reason = "a gauge is an f64")]
    metrics::gauge!("memo_entries", "fn" => name).set(stats.len as f64);
}

/// Records how long one computation of `name` took (a cache without a name has no metrics).
pub(crate) fn record_load(name: &'static str, took: Duration) {
    if !name.is_empty() {
        metrics::histogram!("memo_load_seconds", "fn" => name).record(took.as_secs_f64());
    }
}
