//! What every benchmark binary shares: the `BENCH` line format, the JSON file, timing helpers.
#![allow(dead_code, reason = "each benchmark binary uses a part of this module")]

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

/// The best of `runs` timings of `f`, each over `ops` operations, in nanoseconds per operation.
///
/// The best, not the median: this machine is a shared virtual one, and other tenants only ever
/// make a run slower, so the fastest run is the closest to the code's own cost.
pub(crate) fn best_ns_per_op(runs: usize, ops: u64, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64 / ops as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// A fixed pseudo-random permutation of `0..n` (xorshift), so every implementation sees the same order.
pub(crate) fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..n).collect();
    let mut state = seed | 1;
    for i in (1..keys.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "reduced below a slice length"
        )]
        keys.swap(i, (state % (i as u64 + 1)) as usize);
    }
    keys
}

/// How much more two threads get done than one.
///
/// Each run lasts a fixed time, with threads pinned to cores, so both threads of a pair run for
/// the whole of it. The two cores of this virtual machine are not equally fast, so one thread is
/// timed alone on each core and compared with the pair's combined rate: perfect scaling is 2.0.
/// The best of `rounds` rounds is kept (other tenants only ever slow a run down).
pub(crate) fn scaling(rounds: usize, ops_per_pass: u64, pass: impl Fn(usize) + Sync) -> f64 {
    let (mut alone, mut pair) = ([0.0_f64; 2], 0.0_f64);
    for _ in 0..rounds {
        for (core, best) in alone.iter_mut().enumerate() {
            *best = best.max(rate(&[core], ops_per_pass, &pass));
        }
        pair = pair.max(rate(&[0, 1], ops_per_pass, &pass));
    }
    pair / alone[0].midpoint(alone[1])
}

/// Operations per second of threads pinned to `cores`, each calling `pass(thread)` for 200 ms.
fn rate(cores: &[usize], ops_per_pass: u64, pass: &(impl Fn(usize) + Sync)) -> f64 {
    let run_for = Duration::from_millis(200);
    let barrier = std::sync::Barrier::new(cores.len());
    let passes: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = cores
            .iter()
            .enumerate()
            .map(|(t, &core)| {
                let barrier = &barrier;
                s.spawn(move || {
                    pin_to(core);
                    barrier.wait();
                    let start = Instant::now();
                    let mut done = 0;
                    while start.elapsed() < run_for {
                        pass(t);
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    (passes * ops_per_pass) as f64 / run_for.as_secs_f64()
}

/// Runs the calling thread on `core` only.
#[cfg(target_os = "linux")]
pub(crate) fn pin_to(core: usize) {
    // SAFETY: `cpu_set_t` is plain data; `sched_setaffinity(0, ..)` only affects this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_to(_core: usize) {}
