//! What `#[memo::cached]` costs at compile time, against `#[cached::proc_macro::cached]` and
//! against no attribute at all.
//!
//! `cargo bench --bench compile` measures two shapes of code, in `target/bench/compile/`:
//!
//! - **Distinct types** (the shape of real code, first): a binary with 40 memoized functions, each
//!   with its own key and value types (`K17 { id: u64, tag: String }` → `V17 { n: u64, text:
//!   String }`, `maxsize = 100`), whose `main` calls each function twice, written three ways
//!   (plain, memo, `cached`). Each flavor has its own target directory, where its dependencies
//!   are built once per profile; then the crate itself is rebuilt after a one-line edit of `main`,
//!   in release and in debug (non-incremental, so the whole crate is compiled and monomorphized),
//!   and the CPU time of the build (user + sys of cargo and everything it ran, from
//!   `getrusage(RUSAGE_CHILDREN)`) is kept, best of [`DISTINCT_RUNS`], builds of the three
//!   flavors taking turns. CPU time, not wall time: the machine is shared. It prints
//!   `BENCH compile/distinct_{release,debug}_cpu_ms_per_fn/<impl>` and
//!   `BENCH compile/distinct_release_bytes_per_fn/<impl>` (added over the plain crate, per
//!   function; bytes of the release binary as built) and `…_ratio/memo_over_cached`.
//! - **Same signature**: a library with 200 functions sharing one signature (so the store is
//!   compiled once), whose full build and incremental rebuild after a one-line edit are timed (wall
//!   time, best of [`RUNS`]): `BENCH compile/<mode>_ms_per_fn/<impl>` and
//!   `BENCH expand/lines_per_fn/memo`.

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
/// Memoized functions in the distinct-types crate, each with its own key and value types.
const DISTINCT: usize = 40;
/// Timed rebuilds per flavor and profile of the distinct-types crate (the best is kept).
const DISTINCT_RUNS: usize = 2;

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
            Self::Memo => format!(
                "memo = {{ package = \"memo-kit\", path = {:?} }}\n",
                root.display().to_string()
            ),
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

    fn distinct_attribute(self) -> &'static str {
        match self {
            Self::Plain => "",
            Self::Memo => "#[memo::cached(maxsize = 100)]\n",
            Self::Cached => "#[cached::proc_macro::cached(max_size = 100)]\n",
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

/// The distinct-types binary's source: `DISTINCT` functions, each from its own key type to its own
/// value type, and a `main` that calls each twice; `edit` changes one constant of `main`.
fn distinct_source(flavor: Flavor, edit: usize) -> String {
    let mut src = String::from("#![allow(clippy::all, dead_code)]\n\n");
    for i in 0..DISTINCT {
        let _ = write!(
            src,
            "#[derive(Clone, Debug, Hash, PartialEq, Eq)]\n\
             pub struct K{i} {{\n    pub id: u64,\n    pub tag: String,\n}}\n\n\
             #[derive(Clone, Debug)]\n\
             pub struct V{i} {{\n    pub n: u64,\n    pub text: String,\n}}\n\n\
             {}pub fn f{i}(k: K{i}) -> V{i} {{\n    \
             V{i} {{ n: k.id.wrapping_mul({}), text: format!(\"{{}}-{i}\", k.tag) }}\n}}\n\n",
            flavor.distinct_attribute(),
            i + 3,
        );
    }
    let _ = write!(
        src,
        "fn main() {{\n    \
         let seed = std::env::args().count() as u64 + {edit};\n    \
         let mut total = 0u64;\n    \
         for _ in 0..2 {{\n"
    );
    for i in 0..DISTINCT {
        let _ = writeln!(
            src,
            "        let v = f{i}(K{i} {{ id: seed + {i}, tag: String::from(\"t{i}\") }});\n        \
             total = total.wrapping_add(v.n).wrapping_add(v.text.len() as u64);"
        );
    }
    src.push_str("    }\n    println!(\"{total}\");\n}\n");
    src
}

/// CPU seconds (user + sys) of this process's waited-for children so far.
fn children_cpu_s() -> f64 {
    // SAFETY: `rusage` is plain data, filled in by `getrusage`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage);
        assert_eq!(rc, 0, "getrusage");
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    Release,
    Debug,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Debug => "debug",
        }
    }
}

/// One flavor of the distinct-types binary: its crate directory and its own target directory.
struct Distinct {
    flavor: Flavor,
    dir: PathBuf,
    target: PathBuf,
}

impl Distinct {
    fn new(flavor: Flavor, root: &Path, work: &Path) -> Self {
        let name = format!("distinct_{}", flavor.name());
        let dir = work.join(&name);
        let target = work.join(format!("target-{name}"));
        std::fs::create_dir_all(dir.join("src")).expect("work dir");
        let manifest = format!(
            "[package]\nname = \"compile_{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [workspace]\n\n[dependencies]\n{}",
            flavor.dependency(root)
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("manifest");
        Self {
            flavor,
            dir,
            target,
        }
    }

    /// Builds the crate after an edit of `main`; returns the CPU milliseconds of the build.
    fn build(&self, profile: Profile, edit: usize) -> f64 {
        std::fs::write(
            self.dir.join("src/main.rs"),
            distinct_source(self.flavor, edit),
        )
        .expect("source");
        let mut args = vec!["build", "--quiet", "--offline"];
        if profile == Profile::Release {
            args.push("--release");
        }
        let before = children_cpu_s();
        let status = Command::new(env!("CARGO"))
            .args(&args)
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_INCREMENTAL", "0")
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "{} build of {} failed",
            profile.name(),
            self.dir.display()
        );
        (children_cpu_s() - before) * 1e3
    }

    /// Bytes of the release binary.
    fn release_bytes(&self) -> f64 {
        let binary = self.target.join(format!(
            "release/compile_distinct_{}{}",
            self.flavor.name(),
            std::env::consts::EXE_SUFFIX
        ));
        std::fs::metadata(&binary)
            .unwrap_or_else(|err| panic!("{}: {err}", binary.display()))
            .len() as f64
    }
}

/// The distinct-types rows: per flavor, (release CPU ms, debug CPU ms, release binary bytes).
fn measure_distinct(root: &Path, work: &Path) -> [(f64, f64, f64); 3] {
    let flavors = [Flavor::Plain, Flavor::Memo, Flavor::Cached];
    let crates = flavors.map(|flavor| Distinct::new(flavor, root, work));
    let mut best = [(f64::INFINITY, f64::INFINITY, 0.0); 3];
    for profile in [Profile::Release, Profile::Debug] {
        // Dependencies once per flavor and profile, so that only the crate itself is timed below.
        for krate in &crates {
            krate.build(profile, 0);
        }
        for run in 1..=DISTINCT_RUNS {
            // The flavors take turns, so that a burst of load elsewhere hits them alike.
            for (krate, best) in crates.iter().zip(&mut best) {
                let cpu = krate.build(profile, run);
                eprintln!(
                    "compile: distinct {} {} run {run}: {cpu:.0} ms CPU",
                    krate.flavor.name(),
                    profile.name()
                );
                match profile {
                    Profile::Release => best.0 = best.0.min(cpu),
                    Profile::Debug => best.1 = best.1.min(cpu),
                }
            }
        }
    }
    for (krate, best) in crates.iter().zip(&mut best) {
        best.2 = krate.release_bytes();
    }
    best
}

fn report_distinct(report: &mut Report, root: &Path, work: &Path) {
    let [plain, memo, cached] = measure_distinct(root, work);
    let per_fn = |value: f64, base: f64| (value - base) / DISTINCT as f64;
    let added = |f: (f64, f64, f64)| {
        (
            per_fn(f.0, plain.0),
            per_fn(f.1, plain.1),
            per_fn(f.2, plain.2),
        )
    };
    let (memo, cached) = (added(memo), added(cached));
    for (name, (release, debug, bytes)) in [("memo", memo), ("cached", cached)] {
        report.figure(
            &format!("compile/distinct_release_cpu_ms_per_fn/{name}"),
            release,
            "ms",
        );
        report.figure(
            &format!("compile/distinct_debug_cpu_ms_per_fn/{name}"),
            debug,
            "ms",
        );
        report.figure(
            &format!("compile/distinct_release_bytes_per_fn/{name}"),
            bytes.round(),
            "bytes",
        );
    }
    report.figure(
        "compile/distinct_release_cpu_ratio/memo_over_cached",
        memo.0 / cached.0,
        "x",
    );
    report.figure(
        "compile/distinct_debug_cpu_ratio/memo_over_cached",
        memo.1 / cached.1,
        "x",
    );
    report.figure(
        "compile/distinct_release_bytes_ratio/memo_over_cached",
        memo.2 / cached.2,
        "x",
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("target/bench/compile");
    let mut report = Report::new("compile");
    report_distinct(&mut report, &root, &work);
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
