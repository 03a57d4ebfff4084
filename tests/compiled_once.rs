//! What `docs/compile-cost.md` says a memoized function in memory does not compile for its own
//! key and value types (issue 18), read off a real release build: a scratch crate of three
//! memoized functions, each with its own types, as a user's crate depends on memo, and the
//! symbols of its binary (`nm`, from binutils).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const FUNCTIONS: usize = 3;

fn source() -> String {
    let mut src = String::from("#![allow(dead_code)]\n");
    for i in 0..FUNCTIONS {
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
    for i in 0..FUNCTIONS {
        let _ = writeln!(
            src,
            "        total += f{i}(K{i} {{ id: {i}, tag: String::from(\"t\") }}).n;"
        );
    }
    src.push_str("    }\n    println!(\"{total}\");\n}\n");
    src
}

/// The scratch crate's release binary, built once per test binary's target directory.
fn binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled_once");
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
    std::fs::write(dir.join("src/main.rs"), source()).unwrap();
    let target = dir.join("target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the scratch crate builds");
    target.join("release/compiled_once")
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
        let name = name.rsplit_once("::h").map_or(name, |(name, _)| name);
        *names.entry(name.to_string()).or_insert(0) += 1;
    }
    names
}

#[test]
fn a_memoized_function_in_memory_compiles_no_store_or_miss_steps_of_its_own() {
    let names = functions(&binary());
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
    // The function's own code: its miss, out of line, once per function.
    assert_eq!(count("memo_runtime::private::out_of_line"), FUNCTIONS);
}
