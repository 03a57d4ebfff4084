//! `memo-cli disk …` against real disk stores written by this test through memo-runtime, as a
//! program using `#[cached(store = disk)]` writes them.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use memo_runtime::{Cache, Codec, Config, DiskOptions, DiskStore};

/// A root of stores of its own for each test, removed at the end.
struct Root(PathBuf);

impl Root {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "memo-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    /// `app::price` (JSON values, text keys) in the store `shop`, with two entries.
    fn prices(&self) -> Cache<String, u64, DiskStore<String, u64>> {
        let store = DiskOptions::new("shop")
            .root(&self.0)
            .function("app::price", 0)
            .codec(Codec::Json)
            .open(&Config::new());
        let cache = Cache::with_store(store);
        cache.insert("apple".to_string(), 3);
        cache.insert("pear".to_string(), 5);
        cache.store().flush();
        cache
    }

    /// `app::price` edited since [`prices`](Self::prices) stored its entries (version 1: a
    /// namespace of its own), with one entry.
    fn edited_prices(&self) -> Cache<String, u64, DiskStore<String, u64>> {
        let cache = Cache::with_store(
            DiskOptions::new("shop")
                .root(&self.0)
                .function("app::price", 1)
                .codec(Codec::Json)
                .open(&Config::new()),
        );
        cache.insert("plum".to_string(), 8);
        cache.store().flush();
        cache
    }

    /// `app::stock` (binary values, number keys) in the same store, with one entry.
    fn stock(&self) -> Cache<u64, String, DiskStore<u64, String>> {
        let store = DiskOptions::new("shop")
            .root(&self.0)
            .function("app::stock", 0)
            .open(&Config::new());
        let cache = Cache::with_store(store);
        cache.insert(7, "seven crates".to_string());
        cache.store().flush();
        cache
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_memo-cli"))
            .arg("disk")
            .arg("--root")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_the_stores_and_their_functions_with_counts() {
    let root = Root::new();
    let _prices = root.prices();
    let _stock = root.stock();
    let stores = stdout(&root.cli(&["stores"]));
    assert!(
        stores.starts_with("shop\t2 functions\t3 entries\t"),
        "{stores}"
    );
    let functions = stdout(&root.cli(&["functions", "shop"]));
    let lines: Vec<&str> = functions.lines().collect();
    assert_eq!(lines.len(), 2, "{functions}");
    assert!(lines[0].starts_with("app::price\t2 entries\t") && lines[0].contains("\tjson\t"));
    assert!(lines[1].starts_with("app::stock\t1 entries\t") && lines[1].contains("\tbinary\t"));
}

#[test]
fn shows_entries_as_json_with_text_keys() {
    let root = Root::new();
    let _prices = root.prices();
    let _stock = root.stock();
    let shown = stdout(&root.cli(&["show", "shop", "price"]));
    let entries: Vec<serde_json::Value> = shown
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["key"], "apple");
    assert_eq!(entries[0]["value"], 3);
    assert_eq!(entries[1]["key"], "pear");
    assert_eq!(entries[1]["value"], 5);
    assert!(entries[0]["expires_ms"].is_null());
    assert_eq!(entries[0]["expired"], false);
    // A binary store's value is shown as its bytes; a number key is not text.
    let stock = stdout(&root.cli(&["show", "shop", "app::stock"]));
    let entry: serde_json::Value = serde_json::from_str(stock.trim()).unwrap();
    assert_eq!(entry["key"], "0x07");
    assert!(
        entry["value"].as_str().unwrap().starts_with("0x0c"),
        "{entry}"
    );
}

/// A row past its lifetime stays until a sweep removes it; `show` says it is expired.
#[test]
fn shows_which_rows_have_expired() {
    let root = Root::new();
    let store = DiskOptions::new("shop")
        .root(&root.0)
        .function("app::quote", 0)
        .codec(Codec::Json)
        .open(&Config::new().ttl(std::time::Duration::from_millis(1)));
    let cache: Cache<String, u64, _> = Cache::with_store(store);
    cache.insert("old".to_string(), 1);
    cache.store().flush();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let shown = stdout(&root.cli(&["show", "shop", "quote"]));
    let entry: serde_json::Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(entry["key"], "old");
    assert_eq!(entry["expired"], true, "{entry}");
}

/// The entries `show` prints, one JSON object a line.
fn shown(root: &Root, args: &[&str]) -> Vec<serde_json::Value> {
    stdout(&root.cli(args))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn shows_which_values_changed_since_they_were_written() {
    let root = Root::new();
    let prices = root.prices();
    let db = root.0.join("shop").join("cache.db");
    // A value changed on disk: "5" is now "6", which still decodes.
    let changed = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1])\n\
             db.execute(\"UPDATE entries SET value = CAST('6' AS BLOB) WHERE value = CAST('5' AS BLOB)\")\n\
             db.commit()",
        )
        .arg(&db)
        .status()
        .unwrap();
    assert!(changed.success());
    let entries = shown(&root, &["show", "shop", "price"]);
    let intact: Vec<_> = entries
        .iter()
        .map(|entry| {
            (
                entry["key"].as_str().unwrap(),
                entry["intact"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(intact, [("apple", true), ("pear", false)], "{entries:?}");
    drop(prices);

    // A value of its own file, sound and then cut short.
    let store = DiskOptions::new("shop")
        .root(&root.0)
        .function("app::page", 0)
        .open(&Config::new());
    let pages: Cache<u64, String, _> = Cache::with_store(store);
    pages.insert(1, "p".repeat(40_000));
    pages.store().flush();
    let entry = &shown(&root, &["show", "shop", "page"])[0];
    assert_eq!(entry["intact"], true, "{entry}");
    let file = std::fs::read_dir(root.0.join("shop").join("values"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let entry = &shown(&root, &["show", "shop", "page"])[0];
    assert_eq!(entry["intact"], false, "{entry}");
}

#[test]
fn clearing_a_function_leaves_the_others_and_reaches_running_programs() {
    let root = Root::new();
    let prices = root.prices();
    let stock = root.stock();
    assert_eq!(prices.get("apple"), Some(3));
    let cleared = stdout(&root.cli(&["clear", "shop", "price"]));
    assert_eq!(cleared.trim(), "cleared app::price (2 entries)");
    let functions = stdout(&root.cli(&["functions", "shop"]));
    assert!(functions.contains("app::price\t0 entries"), "{functions}");
    assert!(functions.contains("app::stock\t1 entries"), "{functions}");
    // This process kept a copy of "apple" in memory: the other process's clear drops it.
    assert_eq!(prices.get("apple"), None);
    assert_eq!(stock.get(&7), Some("seven crates".to_string()));
    stdout(&root.cli(&["clear", "shop"]));
    assert_eq!(stock.get(&7), None);
}

#[test]
fn an_unknown_or_ambiguous_function_is_an_error_naming_the_candidates() {
    let root = Root::new();
    let _prices = root.prices();
    let _stock = root.stock();
    let out = root.cli(&["show", "shop", "nothing"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no function `nothing`") && said.contains("app::price, app::stock"),
        "{said}"
    );
    let out = root.cli(&["functions", "no-such-store"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no disk store at"));
}

/// A function edited since its entries were stored has two namespaces (its code's hash is part
/// of its fingerprint): `show` and `clear` by its name reach both, as `memo-cli redis` does,
/// and `functions` tells them apart by their fingerprint. Before, each answered that `price`
/// names several functions, `app::price` and `app::price`, and nothing could name either one.
#[test]
fn a_function_edited_since_its_entries_were_stored_is_still_found_by_its_name() {
    let root = Root::new();
    let _prices = root.prices();
    let edited = root.edited_prices();
    let functions = stdout(&root.cli(&["functions", "shop"]));
    let lines: Vec<&str> = functions.lines().collect();
    assert_eq!(lines.len(), 2, "{functions}");
    assert_ne!(lines[0], lines[1], "told apart: {functions}");
    let mut keys: Vec<String> = shown(&root, &["show", "shop", "price"])
        .iter()
        .map(|entry| entry["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["apple", "pear", "plum"]);
    let cleared = stdout(&root.cli(&["clear", "shop", "price"]));
    assert_eq!(cleared.lines().count(), 2, "{cleared}");
    assert_eq!(edited.get("plum"), None);
    assert!(shown(&root, &["show", "shop", "price"]).is_empty());
}

/// `prune` after an edit: of `app::price`'s two namespaces, the one written last stays and the
/// earlier one's entries go (its program's copies in memory too), and it is no longer listed;
/// `app::stock`, of one namespace, is left alone. `--dry-run` names the same and removes nothing.
#[test]
fn prune_keeps_the_namespace_of_each_function_written_last() {
    let root = Root::new();
    let prices = root.prices();
    let stock = root.stock();
    let edited = root.edited_prices();
    let dry = stdout(&root.cli(&["prune", "shop", "--dry-run"]));
    assert_eq!(dry.lines().count(), 1, "{dry}");
    assert!(dry.starts_with("would prune app::price "), "{dry}");
    assert!(dry.ends_with("(2 entries)\n"), "{dry}");
    assert_eq!(stdout(&root.cli(&["functions", "shop"])).lines().count(), 3);
    let pruned = stdout(&root.cli(&["prune", "shop"]));
    assert_eq!(pruned, dry.replace("would prune", "pruned"));
    let functions = stdout(&root.cli(&["functions", "shop"]));
    assert_eq!(functions.lines().count(), 2, "{functions}");
    assert_eq!(
        prices.get("apple"),
        None,
        "the earlier version's entries are gone"
    );
    assert_eq!(edited.get("plum"), Some(8));
    assert_eq!(stock.get(&7).as_deref(), Some("seven crates"));
    assert_eq!(
        stdout(&root.cli(&["prune", "shop"])),
        "",
        "nothing left to prune"
    );
}
