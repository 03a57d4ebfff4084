//! What `#[memo::cached]` costs at compile time, against `#[cached::proc_macro::cached]` and
//! against no attribute at all.
//!
//! `cargo bench --bench compile` writes three small crates under `target/bench/compile/`, each
//! with the same 200 functions (plain, memoized by memo, memoized by `cached`), builds their
//! dependencies once, then times a full build of the crate itself and an incremental rebuild after
//! a one-line edit. It prints `BENCH compile/<mode>_ms_per_fn/<impl>` (the time added per
//! memoized function over the plain crate) and `BENCH expand/lines_per_fn/memo`.

#![allow(
    missing_docs,
    clippy::cast_precision_loss,
    reason = "a benchmark binary"
)]

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use support::Report;

const FUNCTIONS: usize = 200;
const RUNS: usize = 3;

#[derive(Clone, Copy)]
enum Flavor {
    Plain,
    Memo,
    Cached,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Memo => "memo",
            Self::Cached => "cached",
        }
    }

    fn dependency(self, root: &Path) -> String {
        match self {
            Self::Plain => String::new(),
            Self::Memo => format!("memo = {{ path = {:?} }}\n", root.display().to_string()),
            Self::Cached => "cached = \"4.1\"\n".to_string(),
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Self::Plain => "",
            Self::Memo => "#[memo::cached(maxsize = 1000)]\n",
            Self::Cached => "#[cached::proc_macro::cached(max_size = 1000)]\n",
        }
    }
}

/// The crate's source; `edit` changes one function body, as a developer's edit would.
fn source(flavor: Flavor, edit: usize) -> String {
    let mut src = String::from("#![allow(clippy::all)]\n");
    for i in 0..FUNCTIONS {
        let constant = if i == 0 { edit } else { i };
        let _ = write!(
            src,
            "{}pub fn f{i}(a: u64, b: &str) -> u64 {{ a.wrapping_mul({constant}) + b.len() as u64 }}\n\n",
            flavor.attribute()
        );
    }
    src
}

fn cargo(dir: &Path, target: &Path, incremental: bool) -> f64 {
    let start = Instant::now();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--offline"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_INCREMENTAL", if incremental { "1" } else { "0" })
        .status()
        .expect("cargo runs");
    assert!(status.success(), "build of {} failed", dir.display());
    start.elapsed().as_secs_f64() * 1e3
}

/// (full build ms, incremental rebuild ms) of the crate itself, best of `RUNS`.
fn measure(flavor: Flavor, root: &Path, work: &Path) -> (f64, f64) {
    let dir = work.join(flavor.name());
    let target = work.join("target");
    std::fs::create_dir_all(dir.join("src")).expect("work dir");
    let manifest = format!(
        "[package]\nname = \"compile_{}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[workspace]\n\n[dependencies]\n{}",
        flavor.name(),
        flavor.dependency(root)
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("manifest");
    let lib = dir.join("src/lib.rs");
    std::fs::write(&lib, source(flavor, 1)).expect("source");
    // Dependencies once, both ways, so that only the crate itself is timed below.
    cargo(&dir, &target, false);
    cargo(&dir, &target, true);
    let (mut full, mut incremental) = (f64::INFINITY, f64::INFINITY);
    for run in 0..RUNS {
        std::fs::write(&lib, source(flavor, 1000 + run)).expect("source");
        full = full.min(cargo(&dir, &target, false));
        std::fs::write(&lib, source(flavor, 2000 + run)).expect("source");
        cargo(&dir, &target, true);
        std::fs::write(&lib, source(flavor, 3000 + run)).expect("source");
        incremental = incremental.min(cargo(&dir, &target, true));
    }
    (full, incremental)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("target/bench/compile");
    let mut report = Report::new("compile");
    let (plain_full, plain_incremental) = measure(Flavor::Plain, &root, &work);
    for flavor in [Flavor::Memo, Flavor::Cached] {
        let (full, incremental) = measure(flavor, &root, &work);
        let per_fn = |ms: f64, base: f64| (ms - base) / FUNCTIONS as f64;
        report.figure(
            &format!("compile/full_ms_per_fn/{}", flavor.name()),
            per_fn(full, plain_full),
            "ms",
        );
        report.figure(
            &format!("compile/incremental_ms_per_fn/{}", flavor.name()),
            per_fn(incremental, plain_incremental),
            "ms",
        );
    }
    let expanded =
        std::fs::read_to_string(root.join("memo-macros/tests/expand/ttl_maxsize.expanded.rs"))
            .map_or(0, |text| {
                text.lines().filter(|l| !l.trim().is_empty()).count()
            });
    report.figure("expand/lines_per_fn/memo", expanded as f64, "lines");
    report.write();
}
