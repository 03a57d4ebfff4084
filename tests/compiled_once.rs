//! What `docs/compile-cost.md` says a memoized function in memory does not compile for its own
//! key and value types (issue 18), read off real builds, release and debug: a scratch crate of
//! three memoized functions, each with its own types, as a user's crate depends on memo, and the
//! symbols of its binary (`nm`, from binutils).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Memoized functions in the release build.
const FUNCTIONS: usize = 3;

/// Memoized functions in the debug build: a count no function of the runtime comes in by chance.
const DEBUG_FUNCTIONS: usize = 7;

fn source(functions: usize) -> String {
    let mut src = String::from("#![allow(dead_code)]\n");
    for i in 0..functions {
        let _ = write!(
            src,
            "#[derive(Clone, Debug, Hash, PartialEq, Eq)]\n\
             pub struct K{i} {{ pub id: u64, pub tag: String }}\n\
             #[derive(Clone, Debug)]\n\
             pub struct V{i} {{ pub n: u64, pub text: String }}\n\
             #[memo::cached(maxsize = 100)]\n\
             pub fn f{i}(k: K{i}) -> V{i} {{ V{i} {{ n: k.id + {i}, text: k.tag }} }}\n\n"
        );
    }
    src.push_str("fn main() {\n    let mut total = 0;\n    for _ in 0..2 {\n");
    for i in 0..functions {
        let _ = writeln!(
            src,
            "        total += f{i}(K{i} {{ id: {i}, tag: String::from(\"t\") }}).n;"
        );
    }
    src.push_str("    }\n    println!(\"{total}\");\n}\n");
    src
}

/// The scratch crate's binary, release or debug, built in a directory of the profile's own per
/// test binary's target directory.
fn binary(release: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let profile = if release { "release" } else { "debug" };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compiled_once_{profile}"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"compiled_once\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [workspace]\n\n[dependencies]\nmemo = {{ package = \"memo-kit\", path = {:?} }}\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    let functions = if release { FUNCTIONS } else { DEBUG_FUNCTIONS };
    std::fs::write(dir.join("src/main.rs"), source(functions)).unwrap();
    let target = dir.join("target");
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--offline"]);
    if release {
        build.arg("--release");
    }
    let status = build
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the scratch crate builds");
    target.join(profile).join("compiled_once")
}

/// How many functions of each name (generic arguments and hash left out, as `nm -C` prints
/// them) the binary holds.
fn functions(binary: &Path) -> BTreeMap<String, usize> {
    let out = Command::new("nm")
        .args(["-C", "--defined-only"])
        .arg(binary)
        .output()
        .expect("`nm` (binutils) runs");
    assert!(out.status.success(), "{out:?}");
    let mut names = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.splitn(3, ' ');
        let (_, kind, name) = (fields.next(), fields.next(), fields.next());
        if !matches!(kind, Some("t" | "T" | "w" | "W")) {
            continue;
        }
        let name = name.unwrap_or_default();
        let name = match name.rsplit_once("::h") {
            Some((name, hash))
                if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                name
            }
            _ => name,
        };
        *names.entry(name.to_string()).or_insert(0) += 1;
    }
    names
}

#[test]
fn a_memoized_function_in_memory_compiles_no_store_or_miss_steps_of_its_own() {
    let names = functions(&binary(true));
    let count = |part: &str| -> usize {
        names
            .iter()
            .filter(|(name, _)| name.contains(part))
            .map(|(_, n)| n)
            .sum()
    };
    // The miss loop's steps: one implementation for every memoized function's cache in memory.
    assert_eq!(
        count("Steps for memo_runtime::cache::MemoryCache>::store"),
        1,
        "the steps over memory, compiled once"
    );
    assert_eq!(
        count("memo_runtime::cache::Cache<K,V,S>> as memo_runtime::call::Steps>"),
        0,
        "no steps compiled for a function's key and value types"
    );
    // Nothing drops a memoized function's cache (it lives as long as the process).
    assert_eq!(
        count("drop_in_place<memo_runtime::store::memory::MemoryStore"),
        0,
        "no store's drop"
    );
    // The miss's insert: its entry built on the stack by code compiled once.
    assert_eq!(
        names.get("memo_runtime::call::memory::put"),
        None,
        "no insert per function"
    );
    // The cache's construction, from its types' constants, and the lead of a miss, kept in the
    // function's frame: compiled once.
    for once in [
        "memo_runtime::cache::boxed_memoized",
        "memo_runtime::private::resolve_memoized",
        "memo_runtime::private::RawLead::start_in",
        "memo_runtime::private::RawLead::finish",
    ] {
        assert_eq!(count(once), 1, "{once}, compiled once");
    }
    // The function's own code: its miss, out of line, once per function.
    assert_eq!(count("memo_runtime::private::out_of_line"), FUNCTIONS);
    // What code compiled once does to a key or a value without its type (compare, clone, lend):
    // one function per type, not one per operation (the runtime's own types add a few).
    let (keys, values) = (
        count("memo_runtime::erased::key_ops"),
        count("memo_runtime::erased::value_ops"),
    );
    assert_eq!(count("memo_runtime::erased::"), keys + values);
    assert!(
        keys <= FUNCTIONS + 1 && values <= FUNCTIONS + 2,
        "{keys} key and {values} value types' operations"
    );
}

/// The functions of memo's runtime that a debug build compiles for each memoized function's own
/// key and value types: those of `names` that name the runtime and come once per function (the
/// scratch crate's types written alike), by name.
fn per_function(names: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    let mut alike = BTreeMap::new();
    for (name, n) in names {
        let mut written = name.clone();
        for i in 0..DEBUG_FUNCTIONS {
            written = written
                .replace(&format!("compiled_once::K{i}"), "K")
                .replace(&format!("compiled_once::V{i}"), "V");
        }
        *alike.entry(written).or_insert(0) += n;
    }
    alike
        .into_iter()
        .filter(|(name, n)| name.contains("memo_runtime") && *n % DEBUG_FUNCTIONS == 0)
        .map(|(name, n)| (name, n / DEBUG_FUNCTIONS))
        .collect()
}

/// Unoptimized, every generic function is a function of its own: the miss's layers, the
/// flights' boxes, the cache's construction and its purge are compiled once, and what is left
/// per memoized function stays within a count (21 now; `docs/compile-cost.md` lists them).
#[test]
fn a_debug_build_compiles_few_functions_of_the_runtime_per_memoized_function() {
    let names = per_function(&functions(&binary(false)));
    for gone in [
        "memo_runtime::private::answer",
        "memo_runtime::private::Miss<K,V>::new",
        "memo_runtime::private::Miss<K,V>::lead",
        "memo_runtime::private::lead",
        "memo_runtime::flight::boxed",
        "memo_runtime::cache::Cache<K,V,S>::from_parts",
        "memo_runtime::store::memory::MemoryStore<K,V>::new",
        "memo_runtime::store::memory::MemoryStore<K,V>::insert_timed_hashed",
        "memo_runtime::call::value_found",
        "memo_runtime::private::Lead<K,V>::finish",
        "memo_runtime::cache::Cache<K,V,S>::watch_expiry",
        "memo_runtime::flight::Flights<K,V>::from_raw",
        "memo_runtime::cell::CacheCell::first",
        "memo_runtime::private::register",
        "memo_runtime::store::memory::MemoryStore<K,V>::get_cold",
        "<memo_runtime::store::memory::MemoryStore<K,V> as memo_runtime::store::Store<K,V>>::hash_of",
        "memo_runtime::store::memory::MemoryStore<K,V>::slot_kind",
        "memo_runtime::store::shard::slab::Slab<T>::kind",
        "memo_runtime::cache::Cache<K,V,S>::store",
        "memo_runtime::cache::Cache<K,V>::new_boxed",
        "memo_runtime::private::resolve_cache",
    ] {
        assert!(
            !names.keys().any(|name| name.starts_with(gone)),
            "{gone} is compiled per function: {names:#?}"
        );
    }
    let total: usize = names.values().sum();
    assert!(
        total <= 24,
        "{total} functions of the runtime per memoized function: {names:#?}"
    );
}

/// What memo adds to every binary once, whatever its functions: the runtime links none of the
/// parts of std that cost the most bytes for little (`docs/compile-cost.md`): the cgroup parsing
/// of `available_parallelism`, `std::thread`'s spawn (the janitor's thread is started by
/// `pthread_create`), the random seeds and `SipHash` of std's `HashMap`, a software `fma`,
/// string searches by pattern, and `read_to_string`'s growing reads (of the cgroup's quota).
#[test]
fn a_memoized_function_links_none_of_the_heavier_parts_of_std() {
    let names = functions(&binary(true));
    let mut heavy = vec![
        "std::sys::random",
        "core::hash::sip",
        "fma_fallback",
        "core::str::pattern::TwoWaySearcher",
        "str>::replace",
        "std::fs::read_to_string",
    ];
    if cfg!(target_os = "linux") {
        heavy.extend([
            "std::thread::functions::available_parallelism",
            "std::thread::lifecycle::spawn_unchecked",
        ]);
    }
    let linked: Vec<_> = names
        .keys()
        .filter(|name| heavy.iter().any(|part| name.contains(part)))
        .collect();
    assert!(linked.is_empty(), "linked: {linked:#?}");
}
