//! Hit ratio of memo's policies beside its peers and the offline optimum, get-or-insert.
//!
//! `cargo bench --bench hitratio` prints `BENCH hit_pct/<trace>/<size>/<impl> <value> pct` lines and
//! writes `target/bench/hitratio.json`. Every implementation sees the same requests: on each one it
//! looks the key up and, on a miss, inserts it. `impl` is one of `memo` (the default policy),
//! `memo_lru`, `memo_lfu`, `memo_fifo` (the `policy =` choices, all through the real
//! `memo_runtime::Cache`), `moka` (`moka::sync`), `quick_cache` (`quick_cache::sync`), `lru` (the
//! `lru` crate) and `opt` (Bélády's offline optimum, which may also decline to store a key).
//!
//! Traces:
//! - `zipf0.7`, `zipf0.9`, `zipf1.1`: Zipf over 1,000,000 keys, 10,000,000 requests, fixed seed.
//! - `loop`: the keys `0..size + size / 10` in order, over and over, 10,000,000 requests.
//! - `zipf0.9_scan`: Zipf 0.9, and after every 400,000 of its requests a scan of 100,000 keys
//!   never requested before or after (10,000,000 requests in all).
//! - `oltp`, `p3`: the ARC paper's traces from `../shared/traces/arc` (each `START COUNT` line is
//!   the requests `START..START + COUNT`). Results on them are shown with the paper's condition of
//!   use, its citation: Nimrod Megiddo and Dharmendra S. Modha, "ARC: A Self-Tuning, Low Overhead
//!   Replacement Cache", USENIX FAST '03, San Francisco, CA, pp. 115-130, 2003.
//!
//! Arguments filter the rows: each one is a substring that a row's name must contain (all of them).
//! `HITRATIO_THREADS` (default 2) sets how many rows run at once. `HITRATIO_LAB=1` adds the
//! reference policies of the policy lab (`benches/hitratio/lab.rs`) as `lab_<name>` rows (or
//! `HITRATIO_LAB="<name> <name>"` the ones named); `HITRATIO_IMPLS="moka opt"` replaces the
//! standard set.

#![allow(
    missing_docs,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a benchmark binary"
)]

#[path = "hitratio/lab.rs"]
mod lab;
mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::Read as _;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use memo_runtime::{Cache, Config, Policy};
use support::Report;

const ZIPF_KEYS: usize = 1_000_000;
const REQUESTS: usize = 10_000_000;
const SEED: u64 = 0x5EED_CAFE_F00D;
const SYNTHETIC_SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// The implementations of every row, in the order printed.
const IMPLS: [&str; 8] = [
    "memo",
    "memo_lru",
    "memo_lfu",
    "memo_fifo",
    "moka",
    "quick_cache",
    "lru",
    "opt",
];

/// A trace: a name, how to build its requests, and the sizes it runs at.
struct Trace {
    name: String,
    build: Box<dyn Fn(usize) -> Vec<u64> + Sync>,
    /// Whether the requests depend on the size (the loop); built once per size if so.
    per_size: bool,
    sizes: Vec<usize>,
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let threads = std::env::var("HITRATIO_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2_usize)
        .max(1);
    let mut impls: Vec<String> = IMPLS.iter().map(|s| (*s).to_string()).collect();
    if let Ok(only) = std::env::var("HITRATIO_IMPLS") {
        impls = only.split_whitespace().map(str::to_string).collect();
    }
    match std::env::var("HITRATIO_LAB").as_deref() {
        Ok("" | "0") | Err(_) => {}
        Ok("1") => impls.extend(lab::NAMES.iter().map(|n| format!("lab_{n}"))),
        Ok(names) => impls.extend(names.split_whitespace().map(|n| format!("lab_{n}"))),
    }

    let mut report = Report::new("hitratio");
    for trace in traces() {
        let jobs: Vec<(usize, &str)> = trace
            .sizes
            .iter()
            .flat_map(|&size| impls.iter().map(move |i| (size, i.as_str())))
            .filter(|(size, imp)| {
                let row = format!("hit_pct/{}/{size}/{imp}", trace.name);
                filters.iter().all(|f| row.contains(f.as_str()))
            })
            .collect();
        if jobs.is_empty() {
            continue;
        }
        let shared = (!trace.per_size).then(|| (trace.build)(0));
        let results = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.min(jobs.len()) {
                s.spawn(|| {
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(size, imp)) = jobs.get(job) else {
                            break;
                        };
                        let own;
                        let requests = if let Some(shared) = &shared {
                            shared
                        } else {
                            own = (trace.build)(size);
                            &own
                        };
                        let pct = hit_pct(imp, requests, size);
                        let row = format!("hit_pct/{}/{size}/{imp}", trace.name);
                        eprintln!("{row} {pct:.2}");
                        results.lock().expect("no panics").push((job, row, pct));
                    }
                });
            }
        });
        let mut results = results.into_inner().expect("no panics");
        results.sort_by_key(|r| r.0);
        for (_, row, pct) in results {
            report.figure(&row, pct, "pct");
        }
    }
    report.write();
}

fn traces() -> Vec<Trace> {
    let mut traces = Vec::new();
    for alpha in [0.7, 0.9, 1.1] {
        traces.push(Trace {
            name: format!("zipf{alpha}"),
            build: Box::new(move |_| zipf_requests(alpha, REQUESTS, SEED, None)),
            per_size: false,
            sizes: SYNTHETIC_SIZES.to_vec(),
        });
    }
    traces.push(Trace {
        name: "loop".to_string(),
        build: Box::new(|size| {
            let keys = (size + size / 10) as u64;
            (0..REQUESTS as u64).map(|i| i % keys).collect()
        }),
        per_size: true,
        sizes: SYNTHETIC_SIZES.to_vec(),
    });
    traces.push(Trace {
        name: "zipf0.9_scan".to_string(),
        build: Box::new(|_| zipf_requests(0.9, REQUESTS, SEED, Some((400_000, 100_000)))),
        per_size: false,
        sizes: SYNTHETIC_SIZES.to_vec(),
    });
    traces.push(Trace {
        name: "oltp".to_string(),
        build: Box::new(|_| arc_trace("OLTP")),
        per_size: false,
        sizes: vec![1_000, 2_000, 5_000, 10_000, 15_000],
    });
    traces.push(Trace {
        name: "p3".to_string(),
        build: Box::new(|_| arc_trace("P3")),
        per_size: false,
        sizes: vec![20_000, 160_000],
    });
    traces
}

/// The hit percentage of implementation `imp` with room for `size` entries.
fn hit_pct(imp: &str, requests: &[u64], size: usize) -> f64 {
    let hits = match imp {
        "memo" => memo_hits(requests, Config::new().maxsize(size)),
        "memo_lru" => memo_hits(requests, Config::new().maxsize(size).policy(Policy::Lru)),
        "memo_lfu" => memo_hits(requests, Config::new().maxsize(size).policy(Policy::Lfu)),
        "memo_fifo" => memo_hits(requests, Config::new().maxsize(size).policy(Policy::Fifo)),
        "moka" => moka_hits(requests, size),
        "quick_cache" => quick_cache_hits(requests, size),
        "lru" => lru_hits(requests, size),
        "opt" => opt_hits(requests, size),
        other => lab::hits(other.trim_start_matches("lab_"), requests, size),
    };
    100.0 * hits as f64 / requests.len() as f64
}

/// Through the real cache, as a memoized function would call it.
fn memo_hits(requests: &[u64], config: Config) -> u64 {
    let cache: Cache<u64, u64> = Cache::new(config);
    let mut misses = 0_u64;
    for k in requests {
        cache.get_or_compute(k, |k| {
            misses += 1;
            *k
        });
    }
    requests.len() as u64 - misses
}

fn moka_hits(requests: &[u64], size: usize) -> u64 {
    let cache = moka::sync::Cache::<u64, u64>::new(size as u64);
    let mut hits = 0;
    for (i, &k) in requests.iter().enumerate() {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k);
        }
        // Apply the buffered reads and writes as they come, so that none is dropped and the
        // bound holds as it would in a quiet application.
        if i % 64 == 63 {
            cache.run_pending_tasks();
        }
    }
    hits
}

fn quick_cache_hits(requests: &[u64], size: usize) -> u64 {
    let cache = quick_cache::sync::Cache::<u64, u64>::new(size);
    let mut hits = 0;
    for &k in requests {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k);
        }
    }
    hits
}

fn lru_hits(requests: &[u64], size: usize) -> u64 {
    let mut cache = lru::LruCache::<u64, u64>::new(NonZeroUsize::new(size).expect("a size"));
    let mut hits = 0;
    for &k in requests {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.put(k, k);
        }
    }
    hits
}

/// Bélády's optimum: on a miss with the cache full, drop whichever of the held keys and the new one
/// is next requested furthest in the future (possibly the new one: it is then not stored).
fn opt_hits(requests: &[u64], size: usize) -> u64 {
    let n = requests.len();
    // next[i]: where requests[i]'s key comes next; n + i when never (unique, past every index).
    let mut next = vec![0_usize; n];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for i in (0..n).rev() {
        next[i] = seen.insert(requests[i], i).unwrap_or(n + i);
    }
    drop(seen);
    // Held keys, each by the position of its next request: unique, so the position names the key.
    let mut held: BTreeSet<usize> = BTreeSet::new();
    let mut hits = 0;
    for (i, &then) in next.iter().enumerate() {
        if held.remove(&i) {
            hits += 1;
        } else if held.len() >= size {
            let furthest = *held.last().expect("full");
            if then >= furthest {
                continue;
            }
            held.pop_last();
        }
        if then < n {
            held.insert(then);
        }
    }
    hits
}

/// A xorshift64* stream: deterministic, fast, good enough to sample a Zipf law.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// `count` Zipf(`alpha`) requests over `ZIPF_KEYS` keys (key `r` has rank `r + 1`), by inverting a
/// precomputed distribution. With `scan = Some((every, length))`, after every `every` Zipf requests
/// come `length` requests for keys never seen elsewhere; `count` includes them.
fn zipf_requests(alpha: f64, count: usize, seed: u64, scan: Option<(usize, usize)>) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(ZIPF_KEYS);
    let mut total = 0.0;
    for rank in 1..=ZIPF_KEYS {
        total += (rank as f64).powf(-alpha);
        cdf.push(total);
    }
    let mut rng = Rng(seed | 1);
    let mut requests = Vec::with_capacity(count);
    let mut since_scan = 0;
    let mut fresh = ZIPF_KEYS as u64;
    while requests.len() < count {
        if let Some((every, length)) = scan
            && since_scan == every
        {
            since_scan = 0;
            for _ in 0..length.min(count - requests.len()) {
                requests.push(fresh);
                fresh += 1;
            }
            continue;
        }
        let u = rng.next_f64() * total;
        let key = cdf.partition_point(|&c| c < u).min(ZIPF_KEYS - 1);
        requests.push(key as u64);
        since_scan += 1;
    }
    requests
}

/// The requests of ARC trace `name` (`../shared/traces/arc/<name>.lis.zst`).
fn arc_trace(name: &str) -> Vec<u64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/traces/arc")
        .join(format!("{name}.lis.zst"));
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (see ../shared/traces)", path.display()));
    let mut text = String::new();
    ruzstd::decoding::StreamingDecoder::new(std::io::BufReader::new(file))
        .expect("a zstd stream")
        .read_to_string(&mut text)
        .expect("a readable trace");
    let mut requests = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            continue;
        };
        let start: u64 = start.parse().expect("a START number");
        let count: u64 = count.parse().expect("a COUNT number");
        requests.extend(start..start + count);
    }
    requests
}
