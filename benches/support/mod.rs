//! What every benchmark binary shares: the `BENCH` line format, the JSON file, timing helpers.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Figures of one benchmark binary, printed as they come and written to `target/bench/<name>.json`.
pub(crate) struct Report {
    name: &'static str,
    figures: Vec<(String, f64, &'static str)>,
}

impl Report {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            figures: Vec::new(),
        }
    }

    /// Prints `BENCH <name> <value> <unit>` and keeps the figure for the JSON file.
    pub(crate) fn figure(&mut self, name: &str, value: f64, unit: &'static str) {
        println!("BENCH {name} {} {unit}", fmt_value(value));
        self.figures.push((name.to_string(), value, unit));
    }

    /// Writes `target/bench/<name>.json`.
    pub(crate) fn write(&self) {
        let mut json = format!(
            "{{\n  \"benchmark\": \"{}\",\n  \"figures\": [\n",
            self.name
        );
        for (i, (name, value, unit)) in self.figures.iter().enumerate() {
            let comma = if i + 1 == self.figures.len() { "" } else { "," };
            let _ = writeln!(
                json,
                "    {{\"name\": \"{name}\", \"value\": {}, \"unit\": \"{unit}\"}}{comma}",
                fmt_value(*value)
            );
        }
        json.push_str("  ]\n}\n");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        let path = dir.join(format!("{}.json", self.name));
        if let Err(err) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
            eprintln!("could not write {}: {err}", path.display());
        }
    }
}

fn fmt_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// The median of `runs` timings of `f`, each over `ops` operations, in nanoseconds per operation.
pub(crate) fn median_ns_per_op(runs: usize, ops: u64, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A fixed pseudo-random permutation of `0..n` (xorshift), so every implementation sees the same order.
pub(crate) fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..n).collect();
    let mut state = seed | 1;
    for i in (1..keys.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        keys.swap(i, (state % (i as u64 + 1)) as usize);
    }
    keys
}

/// Operations per second when `threads` threads each run `per_thread(thread_index)` at once.
pub(crate) fn throughput(
    threads: usize,
    ops_per_thread: u64,
    per_thread: impl Fn(usize) + Sync,
) -> f64 {
    let barrier = std::sync::Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            let per_thread = &per_thread;
            s.spawn(move || {
                barrier.wait();
                per_thread(t);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    (threads as u64 * ops_per_thread) as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64()
}
