//! Hit ratio of memo's policies beside its peers and the offline optimum, get-or-insert.
//!
//! `cargo bench --bench hitratio` prints `BENCH hit_pct/<trace>/<size>/<impl> <value> pct` lines and
//! writes `target/bench/hitratio.json`. Every implementation sees the same requests: on each one it
//! looks the key up and, on a miss, inserts it; none holds more than `size` entries. `impl` is
//! one of `memo` (the default policy), `memo_lru`, `memo_lfu`, `memo_fifo` (the `policy =`
//! choices, all through the real `memo_runtime::Cache`), `moka` (`moka::sync`), `quick_cache`
//! (`quick_cache::sync`), `lru` (the `lru` crate) and `opt` (Bélády's offline optimum, which may
//! also decline to store a key).
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
//! The broader families (issue 23), each over 100,000 keys and 2,000,000 requests, at 0.1 %, 1 %,
//! 10 % and 50 % of the keys the trace requests; split into a half to tune a policy on and a half
//! to check it on, never tuned on:
//! - `tune/zipf0.6`, `tune/zipf1.0`, `check/zipf0.8`, `check/zipf1.2`: Zipf.
//! - `tune/shift20k`, `check/shift200k`: a hot set of 2,000 keys (80 % of the requests, uniform
//!   within it) that moves to 2,000 new keys every 20,000 (200,000) requests; the rest uniform over
//!   all keys. Recency-heavy: a key hot now is cold soon.
//! - `tune/loopmix25`, `check/loopmix50`: 25 % (50 %) of the requests walk a loop of 20,000 keys in
//!   order, the rest are Zipf 0.8.
//! - `tune/scanmix10`, `check/scanmix30`: Zipf 0.9 with 10 % (30 %) of the requests in scans of
//!   5,000 keys never requested again.
//!
//! After the rows, per group (`today`, `tune`, `check`): `hitratio/<group>/rows/memo_within_0.2_of_best_peer`
//! (of moka, `quick_cache` and lru; and the number of rows), `hitratio/<group>/rows/memo_at_least_best_of_moka_quick_cache`,
//! the mean gap to `opt` in points of memo and of each peer (and of each lab policy that ran), and
//! how often each peer (and lab policy) is itself within 0.2 points of the best peer.
//!
//! Arguments filter the rows: each one is a substring that `<group>/<row>/` must contain (all of
//! them), so `today/` selects a group and `/3877/` one size (not also `38770`).
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
    /// `today` (the rows the default policy was chosen on), `tune` or `check`.
    group: &'static str,
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
    let mut table: Vec<Row> = Vec::new();
    for trace in traces() {
        let jobs: Vec<(usize, &str)> = trace
            .sizes
            .iter()
            .flat_map(|&size| impls.iter().map(move |i| (size, i.as_str())))
            .filter(|(size, imp)| {
                let row = format!("{}/hit_pct/{}/{size}/{imp}/", trace.group, trace.name);
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
        for (job, row, pct) in results {
            report.figure(&row, pct, "pct");
            let (size, imp) = jobs[job];
            table.push(Row {
                group: trace.group,
                trace: trace.name.clone(),
                size,
                imp: imp.to_string(),
                pct,
            });
        }
    }
    summarize(&table, &mut report);
    report.write();
}

/// One measured row.
struct Row {
    group: &'static str,
    trace: String,
    size: usize,
    imp: String,
    pct: f64,
}

/// Per group: how often memo is within 0.2 points of the best peer, and every implementation's
/// mean gap to the optimum, over the rows where all of them ran.
fn summarize(table: &[Row], report: &mut Report) {
    const PEERS: [&str; 3] = ["moka", "quick_cache", "lru"];
    for group in ["today", "tune", "check"] {
        let mut cells: HashMap<(&str, usize), HashMap<&str, f64>> = HashMap::new();
        for row in table.iter().filter(|r| r.group == group) {
            cells
                .entry((row.trace.as_str(), row.size))
                .or_default()
                .insert(row.imp.as_str(), row.pct);
        }
        let complete: Vec<&HashMap<&str, f64>> = cells
            .values()
            .filter(|c| {
                ["memo", "opt"]
                    .iter()
                    .chain(&PEERS)
                    .all(|i| c.contains_key(i))
            })
            .collect();
        if complete.is_empty() {
            continue;
        }
        let best =
            |c: &HashMap<&str, f64>, of: &[&str]| of.iter().map(|i| c[i]).fold(f64::MIN, f64::max);
        let within = complete
            .iter()
            .filter(|c| c["memo"] >= best(c, &PEERS) - 0.2)
            .count();
        let at_least = complete
            .iter()
            .filter(|c| c["memo"] >= best(c, &["moka", "quick_cache"]) - 0.005)
            .count();
        report.figure(
            &format!("hitratio/{group}/rows"),
            complete.len() as f64,
            "rows",
        );
        report.figure(
            &format!("hitratio/{group}/rows/memo_within_0.2_of_best_peer"),
            within as f64,
            "rows",
        );
        report.figure(
            &format!("hitratio/{group}/rows/memo_at_least_best_of_moka_quick_cache"),
            at_least as f64,
            "rows",
        );
        let labs: BTreeSet<&str> = complete
            .iter()
            .flat_map(|c| c.keys().copied().filter(|i| i.starts_with("lab_")))
            .filter(|i| complete.iter().all(|c| c.contains_key(i)))
            .collect();
        for imp in ["memo"].iter().chain(&PEERS).chain(&labs) {
            let gap =
                complete.iter().map(|c| c["opt"] - c[imp]).sum::<f64>() / complete.len() as f64;
            report.figure(
                &format!("hitratio/{group}/mean_gap_to_opt/{imp}"),
                gap,
                "points",
            );
        }
        for imp in PEERS.iter().chain(&labs) {
            let within = complete
                .iter()
                .filter(|c| c[imp] >= best(c, &PEERS) - 0.2)
                .count();
            report.figure(
                &format!("hitratio/{group}/rows/{imp}_within_0.2_of_best_peer"),
                within as f64,
                "rows",
            );
        }
        let mut worst: Vec<(f64, String)> = cells
            .iter()
            .filter(|(_, c)| complete.contains(c))
            .map(|((trace, size), c)| (c["memo"] - best(c, &PEERS), format!("{trace}/{size}")))
            .collect();
        worst.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (gap, row) in worst.iter().take(5) {
            eprintln!("{group}: memo - best peer on {row}: {gap:+.2} points");
        }
    }
}

fn traces() -> Vec<Trace> {
    let mut traces = Vec::new();
    for alpha in [0.7, 0.9, 1.1] {
        traces.push(Trace {
            group: "today",
            name: format!("zipf{alpha}"),
            build: Box::new(move |_| zipf_requests(alpha, REQUESTS, SEED, None)),
            per_size: false,
            sizes: SYNTHETIC_SIZES.to_vec(),
        });
    }
    traces.push(Trace {
        group: "today",
        name: "loop".to_string(),
        build: Box::new(|size| {
            let keys = (size + size / 10) as u64;
            (0..REQUESTS as u64).map(|i| i % keys).collect()
        }),
        per_size: true,
        sizes: SYNTHETIC_SIZES.to_vec(),
    });
    traces.push(Trace {
        group: "today",
        name: "zipf0.9_scan".to_string(),
        build: Box::new(|_| zipf_requests(0.9, REQUESTS, SEED, Some((400_000, 100_000)))),
        per_size: false,
        sizes: SYNTHETIC_SIZES.to_vec(),
    });
    traces.push(Trace {
        group: "today",
        name: "oltp".to_string(),
        build: Box::new(|_| arc_trace("OLTP")),
        per_size: false,
        sizes: vec![1_000, 2_000, 5_000, 10_000, 15_000],
    });
    traces.push(Trace {
        group: "today",
        name: "p3".to_string(),
        build: Box::new(|_| arc_trace("P3")),
        per_size: false,
        sizes: vec![20_000, 160_000],
    });
    traces.extend(broader_traces());
    traces
}

/// Keys and requests of the broader families.
const BROAD_KEYS: u64 = 100_000;
const BROAD_REQUESTS: usize = 2_000_000;

/// The broader families (see the module docs), each at 0.1 %, 1 %, 10 % and 50 % of its footprint.
fn broader_traces() -> Vec<Trace> {
    type Build = Box<dyn Fn(usize) -> Vec<u64> + Sync>;
    let families: Vec<(&'static str, String, Build)> = vec![
        ("tune", "zipf0.6".into(), Box::new(|_| broad_zipf(0.6, 1))),
        ("tune", "zipf1.0".into(), Box::new(|_| broad_zipf(1.0, 2))),
        ("check", "zipf0.8".into(), Box::new(|_| broad_zipf(0.8, 3))),
        ("check", "zipf1.2".into(), Box::new(|_| broad_zipf(1.2, 4))),
        (
            "tune",
            "shift20k".into(),
            Box::new(|_| shifting_hot_set(20_000, 5)),
        ),
        (
            "check",
            "shift200k".into(),
            Box::new(|_| shifting_hot_set(200_000, 6)),
        ),
        ("tune", "loopmix25".into(), Box::new(|_| loop_mix(0.25, 7))),
        ("check", "loopmix50".into(), Box::new(|_| loop_mix(0.5, 8))),
        ("tune", "scanmix10".into(), Box::new(|_| scan_mix(0.1, 9))),
        ("check", "scanmix30".into(), Box::new(|_| scan_mix(0.3, 10))),
    ];
    families
        .into_iter()
        .map(|(group, name, build)| {
            let footprint = footprint(&build(0));
            Trace {
                group,
                name: format!("{group}/{name}"),
                build,
                per_size: false,
                sizes: [0.001, 0.01, 0.1, 0.5]
                    .iter()
                    .map(|f| ((footprint as f64 * f).round() as usize).max(10))
                    .collect(),
            }
        })
        .collect()
}

/// How many distinct keys `requests` names.
fn footprint(requests: &[u64]) -> usize {
    requests
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// Zipf(`alpha`) over the broad keys.
fn broad_zipf(alpha: f64, seed: u64) -> Vec<u64> {
    let sampler = Zipf::new(alpha, BROAD_KEYS as usize);
    let mut rng = Rng(SEED ^ seed | 1);
    (0..BROAD_REQUESTS)
        .map(|_| sampler.sample(&mut rng))
        .collect()
}

/// 80 % of the requests to a hot set of 2,000 keys that moves every `every` requests, the rest
/// uniform over the broad keys.
fn shifting_hot_set(every: usize, seed: u64) -> Vec<u64> {
    const HOT: u64 = 2_000;
    let mut rng = Rng(SEED ^ seed | 1);
    (0..BROAD_REQUESTS)
        .map(|i| {
            let phase = (i / every) as u64;
            if rng.next_f64() < 0.8 {
                // The phase's hot keys, spread over the key space by a multiplicative hash.
                let hot = phase * HOT + (rng.next_f64() * HOT as f64) as u64;
                hot.wrapping_mul(0x9E37_79B9_7F4A_7C15) % BROAD_KEYS
            } else {
                (rng.next_f64() * BROAD_KEYS as f64) as u64
            }
        })
        .collect()
}

/// A `share` of the requests walk a loop of 20,000 keys (apart from the Zipf keys), the rest Zipf 0.8.
fn loop_mix(share: f64, seed: u64) -> Vec<u64> {
    const LOOP: u64 = 20_000;
    let sampler = Zipf::new(0.8, BROAD_KEYS as usize);
    let mut rng = Rng(SEED ^ seed | 1);
    let mut position = 0;
    (0..BROAD_REQUESTS)
        .map(|_| {
            if rng.next_f64() < share {
                position = (position + 1) % LOOP;
                BROAD_KEYS + position
            } else {
                sampler.sample(&mut rng)
            }
        })
        .collect()
}

/// Zipf 0.9, with a `share` of the requests in scans of 5,000 keys never requested again.
fn scan_mix(share: f64, seed: u64) -> Vec<u64> {
    const SCAN: usize = 5_000;
    let sampler = Zipf::new(0.9, BROAD_KEYS as usize);
    let mut rng = Rng(SEED ^ seed | 1);
    let mut requests = Vec::with_capacity(BROAD_REQUESTS);
    let mut fresh = BROAD_KEYS;
    while requests.len() < BROAD_REQUESTS {
        // A scan starts with the probability that makes its requests `share` of the total.
        if rng.next_f64() < share / ((1.0 - share) * SCAN as f64) {
            for _ in 0..SCAN.min(BROAD_REQUESTS - requests.len()) {
                requests.push(fresh);
                fresh += 1;
            }
        } else {
            requests.push(sampler.sample(&mut rng));
        }
    }
    requests
}

/// A Zipf law over `keys` keys (key `r` has rank `r + 1`), sampled by inverting its distribution.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(alpha: f64, keys: usize) -> Self {
        let mut total = 0.0;
        let cdf = (1..=keys)
            .map(|rank| {
                total += (rank as f64).powf(-alpha);
                total
            })
            .collect();
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let total = *self.cdf.last().expect("keys");
        let u = rng.next_f64() * total;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
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
            // Each write applied at once, so that moka holds at most `size` entries, as the
            // others do: its buffered writes let it hold up to 63 more.
            cache.insert(k, k);
            cache.run_pending_tasks();
            assert!(cache.entry_count() <= size as u64, "moka past its bound");
        }
        // The buffered reads applied as they come, so that none is dropped.
        if i % 64 == 63 {
            cache.run_pending_tasks();
        }
    }
    hits
}

fn quick_cache_hits(requests: &[u64], size: usize) -> u64 {
    // quick_cache rounds its capacity up to a multiple of its shards (11,913 holds 11,920): the
    // largest that holds at most `size`.
    let cache = (1..=size)
        .rev()
        .map(quick_cache::sync::Cache::<u64, u64>::new)
        .find(|cache| cache.capacity() <= size as u64)
        .expect("a capacity of one holds one");
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
    let sampler = Zipf::new(alpha, ZIPF_KEYS);
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
        requests.push(sampler.sample(&mut rng));
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
