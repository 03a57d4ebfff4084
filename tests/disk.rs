//! `#[cached(store = disk)]` end to end: persistence through the attribute, namespaces,
//! invalidation through the handle (a computation begun before it is not stored), serde types,
//! JSON values, the program's own store.
//!
//! Processes: the test binary runs itself (or a copy of itself, another program) with
//! `MEMO_TEST_ROLE` set (see [`child`]).
#![cfg(feature = "disk")]

#[path = "support/calls.rs"]
mod calls;
#[path = "support/child.rs"]
mod child;
#[path = "support/timed_out.rs"]
mod timed_out;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;

/// The cache directory of this test binary and its children.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("memo-disk-tests")
}

/// A handle of the store `store` under the test directory, for the function `function` at
/// `version`: `u32` keys, `u64` values, no options. Two such handles of one namespace are two
/// processes' as far as the store's flights and copies go.
fn handle(store: &str, function: &str, version: u64) -> memo::DiskCache<u32, u64> {
    memo::Cache::with_store(
        memo::DiskOptions::new(store)
            .root(cache_dir())
            .function(function, version)
            .open::<u32, u64>(&memo::Config::new()),
    )
}

/// One cache directory for this test binary (the caches are process-wide statics).
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Under `target/`, emptied at the start of each run (by the parent, not its children).
        let dir = cache_dir();
        if std::env::var_os("MEMO_TEST_ROLE").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        // SAFETY: every test calls `init` before anything else, so the variable is set before
        // any cache is opened; std's own readers of the environment take the lock `set_var`
        // takes, and these tests run no foreign code that reads it meanwhile.
        unsafe { std::env::set_var("MEMO_CACHE_DIR", &dir) };
    });
}

static SQUARES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = disk)]
fn square(n: u64) -> u64 {
    SQUARES.fetch_add(1, Ordering::Relaxed);
    n * n
}

#[test]
fn a_disk_function_computes_once_and_counts_hits() {
    init();
    assert_eq!(square(12), 144);
    assert_eq!(square(12), 144);
    assert_eq!(SQUARES.load(Ordering::Relaxed), 1);
    let stats = square_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.backend_errors), (1, 1, 0));
    assert!(square_cache().store().is_persistent());
    let dir = square_cache().store().dir().file_name().unwrap();
    assert!(
        dir.to_string_lossy().starts_with("default-disk-"),
        "{dir:?}"
    );
    assert!(square_cache().invalidate(&12));
    assert_eq!(square(12), 144);
    assert_eq!(SQUARES.load(Ordering::Relaxed), 2);
    assert_eq!(square_cache().len(), 1);
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Page {
    title: String,
    links: Vec<String>,
}

static FETCHES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = disk("pages"), codec = "json", ttl = "15m", maxsize = 100)]
fn page(url: &str) -> Result<Page, String> {
    FETCHES.fetch_add(1, Ordering::Relaxed);
    if url.is_empty() {
        return Err("no url".into());
    }
    Ok(Page {
        title: format!("title of {url}"),
        links: vec![url.to_string()],
    })
}

#[test]
fn named_json_stores_keep_serde_types_and_only_ok() {
    init();
    assert!(page("").is_err());
    assert!(page("").is_err());
    assert_eq!(FETCHES.load(Ordering::Relaxed), 2, "errors are not cached");
    let first = page("/a").unwrap();
    assert_eq!(page("/a").unwrap(), first);
    assert_eq!(FETCHES.load(Ordering::Relaxed), 3);
    assert!(page_cache().store().dir().ends_with("pages"));
    assert_eq!(page_cache().keys(), vec!["/a".to_string()]);
    // "Readable by any language": Python reads the stored value with `json.loads`, as it is,
    // the `Ok` value alone (not `{"Ok": …}`).
    page_cache().store().flush();
    let db = page_cache().store().dir().join("cache.db");
    let read = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sqlite3, sys\n\
             rows = sqlite3.connect(sys.argv[1]).execute('SELECT value FROM entries').fetchall()\n\
             for (value,) in rows: print(json.loads(value)['title'])",
        )
        .arg(&db)
        .output()
        .expect("python3 runs");
    assert!(read.status.success(), "{read:?}");
    assert_eq!(String::from_utf8_lossy(&read.stdout), "title of /a\n");
    page_cache().clear();
    assert!(page_cache().is_empty());
}

/// Two functions with the same key type in one store never see each other's entries.
#[cached(store = disk)]
fn double(n: u64) -> u64 {
    n * 2
}

#[cached(store = disk)]
fn triple(n: u64) -> u64 {
    n * 3
}

#[test]
fn functions_sharing_a_store_are_namespaced() {
    init();
    assert_eq!(triple(3), 9);
    assert_eq!(double(3), 6);
    assert_eq!(triple(3), 9);
    assert_eq!(double_cache().get(&3), Some(6));
    assert_eq!(triple_cache().get(&3), Some(9));
}

#[cached(store = disk, ttl = "1m")]
async fn lookup(name: &str) -> Option<u32> {
    tokio::task::yield_now().await;
    u32::try_from(name.len()).ok()
}

#[tokio::test]
async fn async_functions_use_the_disk_store_too() {
    init();
    assert_eq!(lookup("four").await, Some(4));
    assert_eq!(lookup("four").await, Some(4));
    let stats = lookup_cache().stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
}

static CANCELLED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = disk("cancelled"))]
async fn cancelled(n: u64) -> u64 {
    CANCELLED_RUNS.fetch_add(1, Ordering::SeqCst);
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    n * 2
}

/// A caller dropped at any of its await points leaves no flight and no lock row behind: the
/// caller that joined it computes the key (once), and the next one hits.
#[tokio::test]
async fn a_caller_cancelled_at_any_await_point_leaves_nothing_behind() {
    init();
    let cancelled = calls::cancel_at_every_await(
        cancelled,
        |n| n * 2,
        || CANCELLED_RUNS.load(Ordering::SeqCst),
        std::time::Duration::ZERO,
    )
    .await;
    assert_eq!(
        cancelled, 3,
        "dropped at each of the body's three await points"
    );
}

static STALLS: AtomicUsize = AtomicUsize::new(0);

/// In a store of its own, so that its database is new.
#[cached(store = disk("stall"))]
fn stall(n: u64) -> u64 {
    STALLS.fetch_add(1, Ordering::Relaxed);
    n + 1
}

// Issue 17, item 8: on a new store, a call, an `invalidate` at once, and the call again waited
// 60 s for a lock nobody held, with "failed (Query returned no rows)".
#[test]
fn a_call_invalidated_at_once_on_a_new_store_is_computed_again_without_waiting() {
    init();
    assert_eq!(stall(1), 2);
    assert!(stall_cache().invalidate(&1));
    assert_eq!(stall(1), 2);
    assert_eq!(stall(1), 2);
    stall_cache().clear();
    assert_eq!(stall(1), 2);
    let stats = stall_cache().stats();
    assert_eq!(STALLS.load(Ordering::Relaxed), 3);
    assert_eq!((stats.hits, stats.backend_errors), (1, 0));
    assert!(stall_cache().store().is_persistent());
}

static OUTDATED: calls::Held = calls::Held::new();

#[cached(store = disk)]
fn outdated(sensor: u64) -> String {
    format!("{sensor}: run {}", OUTDATED.run())
}

static CLEARED: calls::Held = calls::Held::new();

#[cached(store = disk)]
fn cleared(sensor: u64) -> String {
    format!("{sensor}: run {}", CLEARED.run())
}

static OUTDATED_ELSEWHERE: calls::Held = calls::Held::new();

#[cached(store = disk)]
fn outdated_elsewhere(sensor: u64) -> String {
    format!("{sensor}: run {}", OUTDATED_ELSEWHERE.run())
}

static CLEARED_ELSEWHERE: calls::Held = calls::Held::new();

#[cached(store = disk)]
fn cleared_elsewhere(sensor: u64) -> String {
    format!("{sensor}: run {}", CLEARED_ELSEWHERE.run())
}

static INSERTED_ELSEWHERE: calls::Held = calls::Held::new();

#[cached(store = disk)]
fn inserted_elsewhere(sensor: u64) -> String {
    format!("{sensor}: run {}", INSERTED_ELSEWHERE.run())
}

/// The handle of the function of this name, of those above.
fn held_cache(function: &str) -> &'static memo::DiskCache<u64, String> {
    match function {
        "outdated" => outdated_cache(),
        "cleared" => cleared_cache(),
        "outdated_elsewhere" => outdated_elsewhere_cache(),
        "cleared_elsewhere" => cleared_elsewhere_cache(),
        "inserted_elsewhere" => inserted_elsewhere_cache(),
        other => panic!("unknown function {other}"),
    }
}

/// This binary run again as the child `role` (see [`child`]), in this test's cache directory.
fn child_command(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("MEMO_TEST_ROLE", role)
        .env("MEMO_CACHE_DIR", cache_dir());
    command
}

/// Runs this binary as the child `role` (`peek`, `invalidate`, `clear`) of `function`'s `key`:
/// what it printed.
fn run_on(role: &str, function: &str, key: u64) -> String {
    let out = child_command(role)
        .env("MEMO_TEST_FUNCTION", function)
        .env("MEMO_TEST_KEY", key.to_string())
        .output()
        .unwrap();
    child::result(&out)
}

/// What the child `role` of [`run_on`] does, and prints.
fn held_child(role: &str) {
    let cache = held_cache(&std::env::var("MEMO_TEST_FUNCTION").unwrap());
    let key: u64 = std::env::var("MEMO_TEST_KEY").unwrap().parse().unwrap();
    match role {
        "peek" => println!("RESULT {:?}", cache.get(&key)),
        "invalidate" => println!("RESULT {}", cache.invalidate(&key)),
        "clear" => {
            cache.clear();
            println!("RESULT cleared");
        }
        "insert" => {
            cache.insert(key, "inserted".to_string());
            cache.store().flush();
            println!("RESULT inserted");
        }
        other => panic!("unknown role {other}"),
    }
}

/// After `outdate(key)` (an `invalidate` or `clear` of `function`'s cache, here or in another
/// process) returns, a computation of `key` begun before it in this process is not stored: its
/// caller gets its value, neither this process nor another finds it, and the next call
/// computes again (and is stored). Three rounds, keys 1 to 3: a value served in the moments
/// before the disk's writer refuses it is seen in one of them.
fn begun_before_is_not_stored(
    function: &str,
    held: &'static calls::Held,
    call: fn(u64) -> String,
    outdate: impl Fn(u64),
) {
    init();
    let cache = held_cache(function);
    for key in 1..=3 {
        let runs = held.runs();
        let first = calls::begun_before(held, call, key, || outdate(key));
        let run = |n: usize| format!("{key}: run {}", runs + n);
        assert_eq!(first, run(1), "{function}: its own caller's value");
        // Before the writes are flushed: a value waiting for the disk would be served now.
        assert_eq!(cache.get(&key), None, "{function}({key}): not stored");
        cache.store().flush();
        let peek = run_on("peek", function, key);
        assert_eq!(peek, "None", "{function}({key}): elsewhere");
        assert_eq!(call(key), run(2), "{function}({key}): computed again");
        assert_eq!(call(key), run(2));
        assert_eq!(held.runs(), runs + 2);
        cache.store().flush();
        assert_eq!(run_on("peek", function, key), format!("Some({:?})", run(2)));
    }
    assert_eq!(cache.stats().backend_errors, 0);
}

#[test]
fn a_disk_value_computed_before_an_invalidate_is_not_stored() {
    let invalidate = |key| assert!(!outdated_cache().invalidate(&key), "nothing stored yet");
    begun_before_is_not_stored("outdated", &OUTDATED, outdated, invalidate);
}

#[test]
fn a_disk_value_computed_before_a_clear_is_not_stored() {
    begun_before_is_not_stored("cleared", &CLEARED, cleared, |_| cleared_cache().clear());
}

/// The invalidation in another process: the lock it deleted is what refuses the value.
#[test]
fn a_disk_value_computed_before_an_invalidate_in_another_process_is_not_stored() {
    let function = "outdated_elsewhere";
    let invalidate = |key| assert_eq!(run_on("invalidate", function, key), "false");
    begun_before_is_not_stored(
        function,
        &OUTDATED_ELSEWHERE,
        outdated_elsewhere,
        invalidate,
    );
}

#[test]
fn a_disk_value_computed_before_a_clear_in_another_process_is_not_stored() {
    let function = "cleared_elsewhere";
    let clear = |key| assert_eq!(run_on("clear", function, key), "cleared");
    begun_before_is_not_stored(function, &CLEARED_ELSEWHERE, cleared_elsewhere, clear);
}

/// A value inserted in another process while a computation of its key runs here stays: the
/// computation's older value is not stored over it (as `Cache::insert` in this process).
#[test]
fn a_disk_value_computed_before_an_insert_in_another_process_is_not_stored_over_it() {
    init();
    let function = "inserted_elsewhere";
    let insert = || assert_eq!(run_on("insert", function, 1), "inserted");
    let first = calls::begun_before(&INSERTED_ELSEWHERE, inserted_elsewhere, 1, insert);
    assert_eq!(first, "1: run 1", "its own caller's value");
    let cache = inserted_elsewhere_cache();
    cache.store().flush();
    assert_eq!(run_on("peek", function, 1), "Some(\"inserted\")");
    assert_eq!(inserted_elsewhere(1), "inserted");
}

/// What a program computes: its name, from the parent.
fn program() -> String {
    std::env::var("MEMO_TEST_PROGRAM").unwrap_or_default()
}

#[cached(store = disk)]
fn lookup_id(id: u64) -> String {
    format!("{}:{id}", program())
}

#[cached(store = disk("shared-lookups"))]
fn shared_lookup_id(id: u64) -> String {
    format!("{}:{id}", program())
}

/// What this binary does when run as a child process.
#[test]
fn child() {
    let Ok(role) = std::env::var("MEMO_TEST_ROLE") else {
        return;
    };
    init();
    match role.as_str() {
        "lookup" => {
            let (own, shared) = (lookup_id(7), shared_lookup_id(7));
            assert_eq!(lookup_id_cache().stats().backend_errors, 0);
            lookup_id_cache().store().flush();
            shared_lookup_id_cache().store().flush();
            println!("RESULT {own} {shared}");
        }
        "peek" | "invalidate" | "clear" | "insert" => held_child(&role),
        "remove" => remove_until_killed(),
        "write" => write_until_killed(),
        "refresh" => refresh_held(),
        "changer" => change_on_request(),
        "hold" => hold_until_killed(),
        "open" => {
            let store = holders(Path::new(&std::env::var("MEMO_TEST_ROOT").unwrap()));
            assert_eq!(store.get("other"), None);
            store.store().flush();
            println!("RESULT opened");
        }
        other => panic!("unknown role {other}"),
    }
}

/// The store of [`a_value_removed_before_a_kill_is_never_read_again`], under `root`.
fn removals(root: &Path) -> memo::Cache<String, String, memo::DiskStore<String, String>> {
    use memo::{Cache, Config, DiskOptions};
    Cache::with_store(DiskOptions::new("removals").root(root).open(&Config::new()))
}

/// The child of [`a_value_removed_before_a_kill_is_never_read_again`]: stores `r0`..`r9` (under
/// `MEMO_TEST_ROOT`), says `READY`, then removes them one by one, saying `REMOVED <key>` once
/// each `invalidate` returned and waiting for a line between them (the parent kills it there).
fn remove_until_killed() {
    let store = removals(Path::new(&std::env::var("MEMO_TEST_ROOT").unwrap()));
    for n in 0..10 {
        store.insert(format!("r{n}"), format!("value of r{n}"));
    }
    store.store().flush();
    println!("READY");
    for n in 0..10 {
        assert!(store.invalidate(&format!("r{n}")));
        println!("REMOVED r{n}");
        std::io::stdin().read_line(&mut String::new()).unwrap();
    }
}

/// A process killed (`kill -9`) just after its `invalidate` returned: the removal is on disk,
/// so a process that opens the store afterwards never reads the value. Killed after the first,
/// the second and the third removal of a child each.
#[test]
fn a_value_removed_before_a_kill_is_never_read_again() {
    use std::io::{BufRead as _, Write as _};
    init();
    let mut removed = Vec::new();
    for kill_after in 1..=3 {
        let root = cache_dir().join(format!("killed-after-removal-{kill_after}"));
        let _ = std::fs::remove_dir_all(&root);
        let mut child = child_command("remove")
            .env("MEMO_TEST_ROOT", &root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some((_, key)) = line.split_once("REMOVED ") {
                removed.push((root.clone(), key.to_string()));
                seen += 1;
                if seen == kill_after {
                    break;
                }
                writeln!(stdin).unwrap();
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen, kill_after, "the child ended early");
    }
    // This process opens the stores only now: what it reads is what the disk holds.
    let mut served = Vec::new();
    for (root, key) in &removed {
        if let Some(value) = removals(root).get(key) {
            served.push(format!("{key} = {value}"));
        }
    }
    assert!(
        served.is_empty(),
        "of {} values removed before a kill, served: {served:?}",
        removed.len()
    );
}

/// The store of [`of_two_forced_refreshes_across_processes_on_disk_the_later_begun_stays`],
/// under `root`.
fn refreshed(root: &Path) -> memo::Cache<String, String, memo::DiskStore<String, String>> {
    use memo::{Cache, Config, DiskOptions};
    Cache::with_store(
        DiskOptions::new("refreshed")
            .root(root)
            .open(&Config::new()),
    )
}

/// The child of [`of_two_forced_refreshes_across_processes_on_disk_the_later_begun_stays`]:
/// a forced refresh of "k" (under `MEMO_TEST_ROOT`; a plain miss if `MEMO_TEST_MISS` is set)
/// that says `ENTERED` once its body runs and computes "older" once a line comes; then
/// `RESULT <its value>` once stored.
fn refresh_held() {
    let cache = refreshed(Path::new(&std::env::var("MEMO_TEST_ROOT").unwrap()));
    let call = || {
        cache.get_or_compute("k", |_| {
            println!("ENTERED");
            std::io::stdin().read_line(&mut String::new()).unwrap();
            "older".to_string()
        })
    };
    let older = if std::env::var_os("MEMO_TEST_MISS").is_some() {
        call()
    } else {
        cache.refresh(call)
    };
    cache.store().flush();
    println!("RESULT {older}");
}

/// The disk twin of `tests/redis.rs`'s `of_two_forced_refreshes_across_processes_the_later_begun_stays`:
/// of two forced refreshes of one key in two processes, the one begun first (the child's) ends
/// last; the value of the one begun later must stay, as in memory. Before, a forced refresh on
/// disk wrote unconditionally, and the child's "older" replaced "newer".
#[test]
fn of_two_forced_refreshes_across_processes_on_disk_the_later_begun_stays() {
    init();
    let root = cache_dir().join("two-refreshes");
    let _ = std::fs::remove_dir_all(&root);
    let cache = refreshed(&root);
    assert_eq!(cache.get_or_compute("k", |_| "start".to_string()), "start");
    cache.store().flush();
    refreshed_over_a_child(&root, &cache, false);
}

/// A miss begun in another process before a forced refresh (of a key not stored yet), ended
/// after it: its value is not stored over the refresh's. It holds the key's lock row, which
/// the refresh takes over when it begins. Before, the refresh took nothing and the miss's
/// value replaced its own.
#[test]
fn a_disk_miss_begun_in_another_process_before_a_forced_refresh_stores_nothing() {
    init();
    let root = cache_dir().join("miss-then-refresh");
    let _ = std::fs::remove_dir_all(&root);
    let cache = refreshed(&root);
    refreshed_over_a_child(&root, &cache, true);
}

/// Runs the child's refresh of "k" (its miss, if `miss`) from before to after `cache`'s own
/// forced refresh, which computes "newer": that value must stay.
fn refreshed_over_a_child(
    root: &Path,
    cache: &memo::Cache<String, String, memo::DiskStore<String, String>>,
    miss: bool,
) {
    use std::io::{BufRead as _, Write as _};
    let mut child = child_command("refresh");
    if miss {
        child.env("MEMO_TEST_MISS", "1");
    }
    let mut child = child
        .env("MEMO_TEST_ROOT", root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.by_ref().any(|line| line.unwrap().contains("ENTERED")),
        "the child's refresh did not begin"
    );
    let newer = cache.refresh(|| cache.get_or_compute("k", |_| "newer".to_string()));
    assert_eq!(newer, "newer");
    cache.store().flush();
    writeln!(stdin).unwrap();
    // Read to the end: the child's last lines must not find the pipe closed.
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let result = rest.iter().find_map(|line| {
        line.split_once("RESULT ")
            .map(|(_, value)| value.to_string())
    });
    assert!(child.wait().unwrap().success());
    assert_eq!(
        result.as_deref(),
        Some("older"),
        "its caller gets its value"
    );
    assert_eq!(cache.get("k").as_deref(), Some("newer"));
    assert_eq!(
        refreshed(root).get("k").as_deref(),
        Some("newer"),
        "read from the disk by a new handle"
    );
}

/// A value of `key` written `seq`-th that shows whether it is whole: its key, its number, then
/// bytes made from both (40 kB for odd numbers, stored in a file of its own; 100 bytes else).
fn numbered_value(key: &str, seq: u64) -> String {
    let len = if seq % 2 == 1 { 40_000 } else { 100 };
    let body: String = format!("{key}:{seq};").chars().cycle().take(len).collect();
    format!("{key}|{seq}|{body}")
}

/// Whether `value` is a whole [`numbered_value`] of `key`.
fn is_numbered_value_of(key: &str, value: &str) -> bool {
    value
        .split('|')
        .nth(1)
        .and_then(|seq| seq.parse().ok())
        .is_some_and(|seq| value == numbered_value(key, seq))
}

/// The child of [`a_clear_beside_a_writer_killed_mid_batch_leaves_no_old_or_torn_value`]:
/// writes `once0`..`once9` once, then `w0`..`w19` under `MEMO_TEST_ROOT` again and again with
/// new numbers, saying
/// `WRITING` after the first round, until it is killed.
fn write_until_killed() {
    let store = removals(Path::new(&std::env::var("MEMO_TEST_ROOT").unwrap()));
    // Written once: the clear must remove them whatever the writer does after.
    for n in 0..10 {
        let key = format!("once{n}");
        store.insert(key.clone(), numbered_value(&key, n));
    }
    for seq in 0.. {
        let key = format!("w{}", seq % 20);
        store.insert(key.clone(), numbered_value(&key, seq));
        if seq == 19 {
            store.store().flush();
            println!("WRITING");
        }
    }
}

/// One process `clear`s while another writes, then the writer is killed (`kill -9`) in the
/// middle of its batches: a process that opens the store afterwards reads no value the clear
/// removed (each value is written once, with its own number) and no torn one.
#[test]
fn a_clear_beside_a_writer_killed_mid_batch_leaves_no_old_or_torn_value() {
    use std::io::BufRead as _;
    init();
    let root = cache_dir().join("clear-beside-writer");
    let _ = std::fs::remove_dir_all(&root);
    let mut child = child_command("write")
        .env("MEMO_TEST_ROOT", &root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.unwrap().contains("WRITING")),
        "the child ended before WRITING"
    );
    let keys: Vec<String> = (0..20)
        .map(|n| format!("w{n}"))
        .chain((0..10).map(|n| format!("once{n}")))
        .collect();
    let clearer = removals(&root);
    // What the disk holds just before the clear: each of these values must be gone after it.
    let before: Vec<String> = keys.iter().filter_map(|key| clearer.peek(key)).collect();
    assert!(before.len() >= 10, "the writer's values are on disk");
    clearer.clear();
    std::thread::sleep(std::time::Duration::from_millis(50));
    child.kill().unwrap();
    child.wait().unwrap();
    // A store opened now reads the disk.
    let fresh = removals(&root);
    let mut found = 0;
    for key in &keys {
        if let Some(value) = fresh.get(key) {
            found += 1;
            assert!(
                is_numbered_value_of(key, &value),
                "{key}: a torn or foreign value"
            );
            assert!(!before.contains(&value), "{key}: a value the clear removed");
        }
    }
    assert!(found > 0, "the writer wrote after the clear");
    assert_eq!(fresh.stats().backend_errors, 0);
}

/// Runs `exe` (this binary or a copy) as the child `role`, as program `name`.
fn run(exe: &Path, role: &str, name: &str) -> String {
    let out = Command::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("MEMO_TEST_ROLE", role)
        .env("MEMO_TEST_PROGRAM", name)
        .env("MEMO_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    child::result(&out)
}

// Issue 17, item 2: two programs with the same crate and function names, each with the default
// store, shared entries: the second got the first one's values.
#[test]
fn the_default_store_is_the_programs_own_and_a_named_store_is_shared() {
    init();
    let this = std::env::current_exe().unwrap();
    // Another program: the same code at another path (another build, another crate named alike).
    let other_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("memo-other-program");
    let _ = std::fs::remove_dir_all(&other_dir);
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = other_dir.join("app");
    std::fs::copy(&this, &other).unwrap();
    assert_eq!(run(&this, "lookup", "first"), "first:7 first:7");
    assert_eq!(run(&other, "lookup", "second"), "second:7 first:7");
    // Each program finds its own entries again, in its next runs.
    assert_eq!(run(&this, "lookup", "third"), "first:7 first:7");
    assert_eq!(run(&other, "lookup", "fourth"), "second:7 first:7");
    let _ = std::fs::remove_dir_all(&other_dir);
}

/// Two hand-made stores of one name whose value types differ are namespaced by their types, as
/// the attribute's are: neither sees, overwrites or clears the other's entries.
#[test]
fn hand_made_stores_of_one_name_with_other_value_types_keep_apart() {
    use memo::{Cache, Config, DiskOptions, DiskStore};
    let root = cache_dir().join("hand-made");
    let counts: Cache<String, u64, DiskStore<String, u64>> = Cache::with_store(
        DiskOptions::new("inventory")
            .root(&root)
            .open(&Config::new()),
    );
    let labels: Cache<String, String, DiskStore<String, String>> = Cache::with_store(
        DiskOptions::new("inventory")
            .root(&root)
            .open(&Config::new()),
    );
    counts.insert("apple".to_string(), 3);
    labels.insert("apple".to_string(), "red".to_string());
    counts.store().flush();
    labels.store().flush();
    assert_eq!(counts.get("apple"), Some(3));
    assert_eq!(labels.get("apple"), Some("red".to_string()));
    labels.clear();
    assert_eq!(
        counts.get("apple"),
        Some(3),
        "the other type's clear left it"
    );
    assert_eq!(counts.len(), 1);
}

std::thread_local! {
    /// Whether this thread encodes a [`Slow`] key slowly.
    static SLOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A key whose encoding takes a millisecond on a thread that asks for it: `invalidate`'s, so that
/// the moment between its front's change and its write's queueing is long enough for a reader.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
struct Slow(u64);

impl serde::Serialize for Slow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if SLOW.get() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        serializer.serialize_newtype_struct("Slow", &self.0)
    }
}

/// Of `rounds` rounds of `insert`, a flush, then `change` (`clear` or `invalidate`, encoding
/// slowly) while two threads read the key: those in which `get` after `change` returned found a
/// value.
fn rounds_served_after(change: fn(&memo::DiskCache<Slow, u64>), rounds: u64) -> u64 {
    use memo::{Cache, DiskOptions};
    use std::sync::atomic::AtomicBool;
    let cache: memo::DiskCache<Slow, u64> = Cache::builder()
        .maxsize(100)
        .ttl(std::time::Duration::from_secs(600))
        .disk_options(DiskOptions::new("read-during-change").root(cache_dir().join("review-1")))
        .build();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let _ = cache.get(&Slow(1));
                }
            });
        }
        let mut served = 0;
        for round in 0..rounds {
            cache.insert(Slow(1), round);
            cache.store().flush();
            SLOW.set(true);
            change(&cache);
            SLOW.set(false);
            served += u64::from(cache.get(&Slow(1)).is_some());
        }
        done.store(true, Ordering::Relaxed);
        served
    })
}

// Review 1: a reader of this process whose front missed read the row before `clear` (or
// `invalidate`) queued its write and kept it in the front after; the commit was this process's
// own, so the front stayed current and served the value after `clear` returned, for good.
#[test]
fn a_cleared_or_invalidated_value_is_not_served_after_it_returned() {
    init();
    let clear = rounds_served_after(memo::Cache::clear, 1000);
    let invalidate = rounds_served_after(|cache| assert!(cache.invalidate(&Slow(1))), 1000);
    assert_eq!(
        (clear, invalidate),
        (0, 0),
        "rounds of 1000 that served the old value"
    );
}

/// A generic function on disk: each instance has a namespace of its own (its identity names the
/// type arguments), so instances never read each other's values.
#[cached(store = disk)]
fn zero_of<T: Default + std::fmt::Display>(n: u64) -> String {
    format!("{n}:{}", T::default())
}

#[test]
fn a_generic_functions_instances_keep_apart_on_disk() {
    init();
    assert_eq!(zero_of::<u8>(2), "2:0");
    assert_eq!(zero_of::<bool>(2), "2:false");
    zero_of_cache::<u8>().store().flush();
    zero_of_cache::<bool>().store().flush();
    assert_eq!(zero_of::<u8>(2), "2:0");
    assert_eq!(zero_of::<bool>(2), "2:false");
    assert_eq!(zero_of_cache::<u8>().stats().misses, 1);
    assert_eq!(zero_of_cache::<bool>().stats().misses, 1);
    let dir = zero_of_cache::<u8>().store().dir();
    let store = memo_runtime::store::disk_admin::DiskDirectory::open(dir).expect("the store");
    let names: Vec<String> = store.functions().into_iter().map(|f| f.function).collect();
    assert!(
        names.contains(&"disk::zero_of<u8>".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"disk::zero_of<bool>".to_string()),
        "{names:?}"
    );
}

/// `jitter` on `store = disk` spreads each entry's time to live.
#[cached(store = disk("jitter"), ttl = "100s", jitter = 0.5)]
fn spread(n: u64) -> u64 {
    n + 1
}

#[cfg(feature = "test-util")]
#[test]
fn jitter_spreads_each_disk_entrys_time_to_live() {
    init();
    let cache = spread_cache();
    let (clock, mock) = memo::Clock::mock();
    cache.store().set_clock(clock);
    let keys = 0..64_u64;
    for n in keys.clone() {
        assert_eq!(spread(n), n + 1);
    }
    let live = || keys.clone().filter(|n| cache.get(n).is_some()).count();
    assert_eq!(live(), 64);
    // Each time to live is in [50 s, 150 s): at 100 s about half are gone.
    mock.increment(std::time::Duration::from_secs(100));
    let at_100 = live();
    assert!(0 < at_100 && at_100 < 64, "{at_100} of 64 live at 100 s");
    mock.increment(std::time::Duration::from_secs(51));
    assert_eq!(live(), 0, "all gone past 150 s");
}

/// `idle` on `store = disk`: an entry lives while it is used (cached's
/// `test_cached_timed_refresh`: (hits, misses) = (4, 1)).
#[cached(store = disk("idle"), idle = "1m")]
fn visit(user: u64) -> String {
    format!("profile of {user}")
}

#[cfg(feature = "test-util")]
#[test]
fn idle_disk_entries_live_while_they_are_used() {
    init();
    let cache = visit_cache();
    let (clock, mock) = memo::Clock::mock();
    cache.store().set_clock(clock);
    visit(1);
    for _ in 0..4 {
        mock.increment(std::time::Duration::from_secs(30));
        visit(1);
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (4, 1));
    mock.increment(std::time::Duration::from_secs(61));
    visit(1);
    assert_eq!(cache.stats().misses, 2, "idle for a whole period: expired");
}

/// `cache = self.field` over a disk cache: each object's own store, named by the object.
struct Repo {
    pages: memo::DiskCache<u64, String>,
    runs: AtomicUsize,
}

impl Repo {
    fn open(name: &str) -> Self {
        Self {
            pages: memo::Cache::builder().disk(name).build(),
            runs: AtomicUsize::new(0),
        }
    }

    #[cached(cache = self.pages)]
    fn page(&self, n: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("page {n}")
    }
}

#[test]
fn an_instance_cache_on_disk_is_the_objects_own() {
    init();
    let first = Repo::open("repo-first");
    first.pages.clear();
    assert_eq!(first.page(1), "page 1");
    assert_eq!(first.page(1), "page 1");
    assert_eq!(first.runs.load(Ordering::SeqCst), 1);
    let stats = first.pages.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
    let second = Repo::open("repo-second");
    second.pages.clear();
    assert_eq!(second.pages.len(), 0, "another object's store starts empty");
    assert_eq!(second.page(1), "page 1");
    assert_eq!(second.runs.load(Ordering::SeqCst), 1);
    // The same store name again (another run of the program): its entries are found on disk.
    drop(first);
    let again = Repo::open("repo-first");
    assert_eq!(again.page(1), "page 1");
    assert_eq!(again.runs.load(Ordering::SeqCst), 0);
}

static STAMPS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = disk("forced"))]
fn stamp(n: u64) -> usize {
    assert!(n > 0);
    STAMPS.fetch_add(1, Ordering::SeqCst) + 1
}

/// a forced refresh recomputes past the stored value, stores the
/// new one and counts a refresh, on `store = disk`.
#[test]
fn forced_refresh_recomputes_on_disk() {
    init();
    assert_eq!(stamp(1), 1);
    assert_eq!(stamp(1), 1, "a hit");
    assert_eq!(stamp_cache().refresh(|| stamp(1)), 2, "computed again");
    assert_eq!(stamp(1), 2, "and stored");
    assert_eq!(stamp_cache().stats().refreshes, 1);
}

#[cached(store = disk, maxsize = 10, ttl = "1h")]
fn settled(n: u64) -> u64 {
    n
}

/// The handle tells its settings, as `functools`' `cache_parameters()` does.
#[test]
fn the_handle_tells_its_settings() {
    init();
    let config = settled_cache().config();
    assert_eq!(config.maxsize, Some(10));
    assert_eq!(config.ttl, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(settled_cache().backend(), "disk");
}

/// An error that is neither `Clone` nor serde.
#[derive(Debug)]
struct Opaque(u64);

static DISK_READS: AtomicUsize = AtomicUsize::new(0);

/// A `Result` spelled `…Result<…>` stores its `Ok` values alone: `io::Error` has no serde.
#[cached(store = disk)]
fn disk_read(name: &str) -> Result<String, std::io::Error> {
    DISK_READS.fetch_add(1, Ordering::SeqCst);
    if name.is_empty() {
        return Err(std::io::Error::other("no name"));
    }
    Ok(name.to_uppercase())
}

#[test]
fn an_error_without_serde_is_returned_and_never_stored_on_disk() {
    init();
    assert_eq!(disk_read("a").unwrap(), "A");
    assert_eq!(disk_read("a").unwrap(), "A");
    assert_eq!(disk_read("").unwrap_err().to_string(), "no name");
    assert_eq!(disk_read("").unwrap_err().to_string(), "no name");
    assert_eq!(DISK_READS.load(Ordering::SeqCst), 3);
    let cache: &memo::Cache<String, String, memo::DiskStore<String, String>> = disk_read_cache();
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.load_errors), (1, 3, 2));
    assert_eq!(cache.keys(), vec!["a".to_string()]);
}

static DISK_FAILURES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = disk, ttl = "10m")]
fn disk_failure(n: u64) -> Result<u64, String> {
    std::thread::sleep(std::time::Duration::from_millis(200));
    DISK_FAILURES.fetch_add(1, Ordering::SeqCst);
    Err(format!("{n} failed"))
}

/// Callers waiting on a `store = disk` leader that fails get a clone of its error (a `Clone`
/// error); nothing is stored.
#[test]
fn waiters_of_a_failed_disk_leader_get_its_error() {
    init();
    for result in calls::at_once(8, || disk_failure(9)) {
        assert_eq!(result.unwrap_err(), "9 failed");
    }
    assert_eq!(DISK_FAILURES.load(Ordering::SeqCst), 1);
    let stats = disk_failure_cache().stats();
    assert_eq!((stats.misses, stats.coalesced), (1, 7));
    assert!(disk_failure_cache().is_empty(), "no row on disk");
}

static DISK_CHECKS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = disk, ttl = "1m")]
async fn disk_check(n: u64) -> std::io::Result<u64> {
    DISK_CHECKS.fetch_add(1, Ordering::SeqCst);
    checked_half(n).map_err(|Opaque(n)| std::io::Error::other(format!("{n} is odd")))
}

#[cached(store = disk)]
async fn disk_half(n: u64) -> Result<u64, Opaque> {
    DISK_CHECKS.fetch_add(1, Ordering::SeqCst);
    checked_half(n)
}

fn checked_half(n: u64) -> Result<u64, Opaque> {
    if n.is_multiple_of(2) {
        Ok(n / 2)
    } else {
        Err(Opaque(n))
    }
}

#[tokio::test]
async fn async_functions_on_disk_return_errors_that_are_neither_clone_nor_serde() {
    init();
    assert_eq!(disk_check(4).await.unwrap(), 2);
    assert_eq!(disk_check(4).await.unwrap(), 2);
    assert!(disk_check(3).await.is_err());
    assert_eq!(disk_half(8).await.unwrap(), 4);
    assert_eq!(disk_half(8).await.unwrap(), 4);
    assert_eq!(disk_half(5).await.unwrap_err().0, 5);
    assert_eq!(disk_half(5).await.unwrap_err().0, 5);
    assert_eq!(DISK_CHECKS.load(Ordering::SeqCst), 5);
    assert_eq!((disk_check_cache().len(), disk_half_cache().len()), (1, 1));
    assert_eq!(disk_half_cache().stats().misses, 3);
}
/// Issue 21: `ttl_from` on `store = disk` writes each value's own time to live as its row's
/// expiry; `ttl` where it answers `None`.
mod issue21 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use memo::{Store, cached};

    static FETCHES: AtomicUsize = AtomicUsize::new(0);

    /// `(body, max-age in seconds)`.
    #[cached(store = disk("issue21"), ttl = "60s", ttl_from = |page: &(String, Option<u64>)| page.1.map(Duration::from_secs))]
    fn fetch(url: &str) -> (String, Option<u64>) {
        FETCHES.fetch_add(1, Ordering::SeqCst);
        (format!("<{url}>"), (url == "/news").then_some(5))
    }

    #[cfg(feature = "test-util")]
    #[test]
    fn each_row_expires_as_its_value_says_and_the_others_at_the_ttl() {
        super::init();
        let cache = fetch_cache();
        // Rows expired so far, once this thread has purged: the background sweep may purge a
        // row first (it reads the same mock clock), so the count is asserted, not what this
        // thread's purge returned.
        let purged = || {
            cache.store().purge_expired();
            cache.stats().expired
        };
        let (clock, mock) = memo::Clock::mock();
        cache.store().set_clock(clock);
        fetch("/news");
        fetch("/about");
        cache.store().flush();
        mock.increment(Duration::from_millis(4_999));
        assert_eq!(purged(), 0, "no row expired yet");
        fetch("/news");
        assert_eq!(FETCHES.load(Ordering::SeqCst), 2);
        mock.increment(Duration::from_millis(1));
        assert_eq!(purged(), 1, "the /news row expired at its max-age");
        fetch("/news");
        fetch("/about");
        assert_eq!(
            FETCHES.load(Ordering::SeqCst),
            3,
            "/news again; /about lives the ttl"
        );
        cache.store().flush();
        mock.increment(Duration::from_millis(54_999));
        assert_eq!(purged(), 2, "the new /news row, at its max-age");
        mock.increment(Duration::from_millis(1));
        assert_eq!(purged(), 3, "the /about row expired at the ttl");
        fetch("/about");
        assert_eq!(FETCHES.load(Ordering::SeqCst), 4);
    }
}

/// Issue 19: `stale` and `refresh = "early"` on `store = disk`, sync and async: a key read
/// continuously makes no caller wait for a computation after the first, a value past
/// `ttl + stale` is computed again, and `invalidate` drops a stale value.
///
/// The store's clock is a mock advanced 2 ms per read (ten time-to-live periods of 200 ms in
/// 1,000 reads), while the bodies take 20 ms of real time, as in `tests/cached/no_waiting.rs`.
#[cfg(feature = "test-util")]
mod issue19 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use memo::{Cache, Clock, DiskStore, Stats, cached};

    use super::init;
    use crate::calls::{self, Reads, assert_nobody_waited, eventually};

    const READS: usize = 1_000;
    const STEP: Duration = Duration::from_millis(2);
    const PAUSE: Duration = Duration::from_millis(1);

    type Disk<V> = Cache<u32, V, DiskStore<u32, V>>;

    fn read_continuously(cache: &Disk<usize>, reads: &Reads, read: impl Fn()) -> Stats {
        let (clock, mock) = Clock::mock();
        cache.store().set_clock(clock);
        let tick = || mock.increment(STEP);
        calls::read_continuously(reads, READS, PAUSE, tick, || cache.stats(), read)
    }

    static GAUGE_READS: Reads = Reads::new();

    #[cached(store = disk("issue19"), ttl = "200ms", refresh = "early")]
    fn gauge(sensor: u32) -> usize {
        GAUGE_READS.body_runs();
        std::thread::sleep(Duration::from_millis(20));
        sensor as usize
    }

    #[test]
    fn early_refresh_keeps_every_caller_of_a_hot_disk_key_from_waiting() {
        init();
        let warm = read_continuously(gauge_cache(), &GAUGE_READS, || assert_eq!(gauge(1), 1));
        assert_nobody_waited(&warm, &gauge_cache().stats(), &GAUGE_READS);
    }

    static METER_READS: Reads = Reads::new();

    #[cached(store = disk("issue19"), ttl = "200ms", stale = "100ms")]
    fn meter(sensor: u32) -> usize {
        METER_READS.body_runs();
        std::thread::sleep(Duration::from_millis(20));
        sensor as usize
    }

    #[test]
    fn stale_keeps_every_caller_of_a_hot_disk_key_from_waiting() {
        init();
        let warm = read_continuously(meter_cache(), &METER_READS, || assert_eq!(meter(1), 1));
        assert_nobody_waited(&warm, &meter_cache().stats(), &METER_READS);
    }

    static DIALS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = disk("issue19"), ttl = "10s", stale = "5s")]
    fn dial(n: u32) -> usize {
        assert!(n > 0);
        DIALS.fetch_add(1, Ordering::SeqCst) + 1
    }

    #[test]
    fn a_stale_disk_value_is_served_once_refreshed_and_past_ttl_and_stale_computed() {
        init();
        let cache = dial_cache();
        let (clock, mock) = Clock::mock();
        cache.store().set_clock(clock);
        assert_eq!(dial(1), 1);
        mock.increment(Duration::from_secs(12));
        assert_eq!(dial(1), 1, "stale: served, refreshed in the background");
        assert!(eventually(|| DIALS.load(Ordering::SeqCst) == 2));
        assert!(eventually(|| cache.get(&1) == Some(2)));
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.refreshes), (1, 1), "{stats:?}");
        mock.increment(Duration::from_secs(16));
        assert_eq!(dial(1), 3, "past ttl + stale: a miss");
        assert_eq!(cache.stats().misses, 2);
    }

    static KNOBS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = disk("issue19"), ttl = "10s", stale = "1m")]
    fn knob(n: u32) -> usize {
        assert!(n > 0);
        KNOBS.fetch_add(1, Ordering::SeqCst) + 1
    }

    #[test]
    fn invalidate_drops_a_stale_disk_value() {
        init();
        let cache = knob_cache();
        let (clock, mock) = Clock::mock();
        cache.store().set_clock(clock);
        assert_eq!(knob(1), 1);
        mock.increment(Duration::from_secs(30));
        assert!(cache.invalidate(&1), "a stale value is still held");
        assert_eq!(knob(1), 2, "computed, not served stale");
        assert_eq!(cache.stats().misses, 2);
    }

    static LEVERS: AtomicUsize = AtomicUsize::new(0);

    /// Run 2 (the first background refresh) fails.
    #[cached(store = disk("issue19"), ttl = "10s", stale = "1m")]
    fn lever(n: u32) -> Result<usize, String> {
        assert!(n > 0);
        match LEVERS.fetch_add(1, Ordering::SeqCst) + 1 {
            2 => Err("down".to_string()),
            run => Ok(run),
        }
    }

    #[test]
    fn a_failed_background_refresh_on_disk_keeps_the_old_value_and_is_tried_again() {
        init();
        let cache = lever_cache();
        let (clock, mock) = Clock::mock();
        cache.store().set_clock(clock);
        assert_eq!(lever(1), Ok(1));
        mock.increment(Duration::from_secs(11));
        assert_eq!(lever(1), Ok(1), "stale: refresh 2 starts, and fails");
        assert!(eventually(|| cache.stats().refresh_failures == 1));
        assert_eq!(lever(1), Ok(1), "the old value kept; refresh 3 starts");
        assert!(eventually(|| lever(1) == Ok(3)));
        assert_eq!(cache.refresh(|| lever(1)), Ok(4), "a forced refresh");
        assert_eq!(lever(1), Ok(4));
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.refresh_failures), (1, 1), "{stats:?}");
    }

    #[cfg(feature = "tokio")]
    mod asynchronous {
        use super::*;

        /// The futures of these functions are `Send`: they can be spawned.
        fn assert_send<T: Send>(value: T) -> T {
            value
        }

        async fn read_continuously_async<F: Future<Output = usize>>(
            cache: &Disk<usize>,
            reads: &Reads,
            read: impl Fn() -> F,
        ) -> Stats {
            let (clock, mock) = Clock::mock();
            cache.store().set_clock(clock);
            let tick = || mock.increment(STEP);
            calls::read_continuously_async(reads, READS, PAUSE, tick, || cache.stats(), read).await
        }

        static TIDE_READS: Reads = Reads::new();

        #[cached(store = disk("issue19"), ttl = "200ms", refresh = "early")]
        async fn tide(port: u32) -> usize {
            TIDE_READS.body_runs_async().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            port as usize
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn early_refresh_keeps_every_async_caller_of_a_hot_disk_key_from_waiting() {
            init();
            let read = || assert_send(tide(1));
            let warm = read_continuously_async(tide_cache(), &TIDE_READS, read).await;
            assert_nobody_waited(&warm, &tide_cache().stats(), &TIDE_READS);
        }

        static SWELL_READS: Reads = Reads::new();

        #[cached(store = disk("issue19"), ttl = "200ms", stale = "100ms")]
        async fn swell(port: u32) -> usize {
            SWELL_READS.body_runs_async().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            port as usize
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn stale_keeps_every_async_caller_of_a_hot_disk_key_from_waiting() {
            init();
            let read = || assert_send(swell(1));
            let warm = read_continuously_async(swell_cache(), &SWELL_READS, read).await;
            assert_nobody_waited(&warm, &swell_cache().stats(), &SWELL_READS);
        }
    }
}

/// The version of each key's source that [`disk_versioned`]'s body reads.
static DISK_SOURCES: [std::sync::atomic::AtomicU64; 4] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 4];
/// What the readers may no longer see of each key: the version of the last insert or
/// invalidation that returned.
static DISK_FLOORS: [std::sync::atomic::AtomicU64; 4] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 4];
/// Writers of one key take turns.
static DISK_TURNS: [std::sync::Mutex<()>; 4] = [const { std::sync::Mutex::new(()) }; 4];

#[cached(store = disk)]
fn disk_versioned(key: usize) -> (usize, u64) {
    let version = DISK_SOURCES[key].load(Ordering::SeqCst);
    std::thread::yield_now();
    (key, version)
}

/// `tests/cached/concurrency.rs`'s versioned attack on disk: threads call a disk function
/// over 4 keys while others update a key's source and insert its new value (or invalidate
/// it); a call begun after the insert (the invalidation) returned never reads a version older
/// than it.
#[test]
fn a_disk_call_after_an_insert_or_invalidate_never_reads_an_older_version() {
    init();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..3_000 {
                    let key = (i * 7 + t * 3) % 4;
                    if (i + t) % 10 == 0 {
                        let _turn = DISK_TURNS[key].lock().unwrap();
                        let version = DISK_SOURCES[key].fetch_add(1, Ordering::SeqCst) + 1;
                        if i % 20 == 0 {
                            disk_versioned_cache().insert(key, (key, version));
                        } else {
                            disk_versioned_cache().invalidate(&key);
                        }
                        DISK_FLOORS[key].fetch_max(version, Ordering::SeqCst);
                        continue;
                    }
                    let floor = DISK_FLOORS[key].load(Ordering::SeqCst);
                    let (read_key, version) = disk_versioned(key);
                    assert_eq!(read_key, key);
                    assert!(
                        version >= floor,
                        "key {key}: version {version} read after an insert or invalidate of \
                         version {floor} returned"
                    );
                }
            });
        }
    });
}

/// The versioned attack over two stores of one namespace in one process (two
/// `DiskOptions::open` of one function, which see each other's changes): computations on
/// either, and inserts (or invalidations, if `invalidate`) on either; a call begun after one
/// returned must not read a version older than it.
fn two_disk_handles_after(name: &str, invalidate: bool) {
    let sources: [std::sync::atomic::AtomicU64; 4] =
        [const { std::sync::atomic::AtomicU64::new(0) }; 4];
    let floors: [std::sync::atomic::AtomicU64; 4] =
        [const { std::sync::atomic::AtomicU64::new(0) }; 4];
    let turns: [std::sync::Mutex<()>; 4] = [const { std::sync::Mutex::new(()) }; 4];
    let open = || {
        memo::Cache::with_store(
            memo::DiskOptions::new(name)
                .root(cache_dir())
                .function("tests::two_handles", 0)
                .open::<usize, (usize, u64)>(&memo::Config::new()),
        )
    };
    let handles = [open(), open()];
    std::thread::scope(|s| {
        for t in 0..4 {
            let (handles, sources, floors, turns) = (&handles, &sources, &floors, &turns);
            s.spawn(move || {
                for i in 0..3_000 {
                    let key = (i * 7 + t * 3) % 4;
                    let cache = &handles[(i / 3 + t) % 2];
                    if (i + t) % 10 == 0 {
                        let _turn = turns[key].lock().unwrap();
                        let version = sources[key].fetch_add(1, Ordering::SeqCst) + 1;
                        if invalidate {
                            cache.invalidate(&key);
                        } else {
                            cache.insert(key, (key, version));
                        }
                        floors[key].fetch_max(version, Ordering::SeqCst);
                        continue;
                    }
                    let floor = floors[key].load(Ordering::SeqCst);
                    let mut ran = false;
                    let (read_key, version) = cache.get_or_insert_with(key, || {
                        ran = true;
                        let version = sources[key].load(Ordering::SeqCst);
                        std::thread::yield_now();
                        (key, version)
                    });
                    assert_eq!(read_key, key);
                    assert!(
                        version >= floor,
                        "key {key}: version {version} read after an insert or invalidate of \
                         version {floor} returned (computed by this caller: {ran}; stored now: \
                         {:?} and {:?})",
                        handles[0].peek(&key),
                        handles[1].peek(&key),
                    );
                }
            });
        }
    });
}

/// An insert on one of two handles of a namespace: a later call on either reads it (or newer).
#[test]
fn two_disk_handles_after_an_insert_never_read_an_older_version() {
    init();
    two_disk_handles_after("two-handles-insert", false);
}

/// An invalidate on one of two handles of a namespace, while the other computes the key: a
/// call begun on the other handle after the invalidate returned joins that handle's
/// computation begun before it (the invalidate detaches the flights of its own handle only).
/// Before, it returned the older version (`version 160 read after an insert or invalidate of
/// version 161 returned (computed by this caller: false; stored now: None and None)`: the older
/// value was rightly not stored, but its joiners got it); now a leader hands its value over
/// only if its store saw no change by another handle or process since the lead began.
#[test]
fn two_disk_handles_after_an_invalidate_never_read_an_older_version() {
    init();
    two_disk_handles_after("two-handles-invalidate", true);
}

/// The cache of [`a_call_after_a_change_in_another_process_never_reads_an_older_version`] (and
/// of its child).
fn changed_elsewhere() -> memo::Cache<u32, u64, memo::DiskStore<u32, u64>> {
    memo::Cache::with_store(
        memo::DiskOptions::new("changed-elsewhere")
            .root(cache_dir())
            .function("tests::changed_elsewhere", 0)
            .open(&memo::Config::new()),
    )
}

/// The child of [`a_call_after_a_change_in_another_process_never_reads_an_older_version`]: for
/// each line read, inserts the number it holds under key 0 (committed), or invalidates key 0
/// for an empty line, and says `DONE` once that returned.
fn change_on_request() {
    use std::io::Write as _;
    let cache = changed_elsewhere();
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines() {
        match line.unwrap().trim() {
            "" => {
                cache.invalidate(&0);
            }
            version => {
                cache.insert(0, version.parse().unwrap());
                cache.store().flush();
            }
        }
        writeln!(out, "DONE").unwrap();
        out.flush().unwrap();
    }
}

/// [`two_disk_handles_after_an_invalidate_never_read_an_older_version`] across processes: the
/// invalidations and inserts (committed) are another process's, each asked for (and its return
/// awaited) by one of this process's calling threads. Another process's change reaches this one
/// only through the database and its change counter, which move the process's epoch (not a
/// count of the namespace's stores, as in one process): a call begun after one returned must
/// not be handed the value of a computation here begun before it (before, `read 2 after an
/// invalidate or insert in another process of 3 returned (computed by this caller: false)`).
#[test]
fn a_call_after_a_change_in_another_process_never_reads_an_older_version() {
    use std::io::{BufRead as _, Write as _};
    init();
    let cache = changed_elsewhere();
    let mut child = child_command("changer")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // One invalidation at a time: the child's pipes go with the turn.
    let turn = std::sync::Mutex::new((stdin, lines));
    let source = std::sync::atomic::AtomicU64::new(0);
    let floor = std::sync::atomic::AtomicU64::new(0);
    let changes = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..3 {
            let (cache, turn, source, floor) = (&cache, &turn, &source, &floor);
            let changes = &changes;
            s.spawn(move || {
                for i in 0..3_000 {
                    if (i + t) % 4 == 0 {
                        let mut turn = turn.lock().unwrap();
                        let (stdin, lines) = &mut *turn;
                        let version = source.fetch_add(1, Ordering::SeqCst) + 1;
                        if version % 2 == 0 {
                            writeln!(stdin, "{version}").unwrap();
                        } else {
                            writeln!(stdin).unwrap();
                        }
                        let done =
                            lines.find_map(|line| line.unwrap().contains("DONE").then_some(()));
                        assert!(done.is_some(), "the child ended");
                        floor.fetch_max(version, Ordering::SeqCst);
                        changes.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let least = floor.load(Ordering::SeqCst);
                    let mut ran = false;
                    let read = cache.get_or_insert_with(0, || {
                        ran = true;
                        let version = source.load(Ordering::SeqCst);
                        std::thread::yield_now();
                        version
                    });
                    assert!(
                        read >= least,
                        "read {read} after an invalidate or insert in another process of \
                         {least} returned (computed by this caller: {ran})"
                    );
                }
            });
        }
    });
    let (stdin, lines) = turn.into_inner().unwrap();
    drop(stdin);
    // Read to the end: the child's last lines must not find the pipe closed.
    lines.for_each(drop);
    assert!(child.wait().unwrap().success());
    assert_eq!(changes.load(Ordering::Relaxed), 2_250);
    assert_eq!(cache.stats().backend_errors, 0);
}

/// One key, computed, inserted and invalidated on one disk handle by turns of threads: a read
/// begun after an insert returned must not return a version older than it. Before, an insert
/// did not wait for a store under way (as one over the network is not waited for): a miss begun
/// after an invalidate, before the insert, queued its value after the insert's and put it in the
/// handle's memory, where the next read found it (`read 44 after the insert of 45 returned`),
/// until the writer refused it.
#[test]
fn a_disk_read_after_an_insert_never_returns_a_computation_begun_before() {
    init();
    let cache = handle("one-key-inserts", "tests::one_key_inserts", 0);
    let source = std::sync::atomic::AtomicU64::new(0);
    let floor = std::sync::atomic::AtomicU64::new(0);
    let turn = std::sync::Mutex::new(());
    std::thread::scope(|s| {
        for t in 0..3 {
            let (cache, source, floor, turn) = (&cache, &source, &floor, &turn);
            s.spawn(move || {
                for i in 0..20_000 {
                    if (i + t) % 3 == 0 {
                        let _turn = turn.lock().unwrap();
                        let version = source.fetch_add(1, Ordering::SeqCst) + 1;
                        if i % 2 == 0 {
                            cache.insert(0, version);
                        } else {
                            cache.invalidate(&0);
                        }
                        floor.fetch_max(version, Ordering::SeqCst);
                        continue;
                    }
                    let least = floor.load(Ordering::SeqCst);
                    let read = cache.get_or_insert_with(0, || source.load(Ordering::SeqCst));
                    assert!(
                        read >= least,
                        "read {read} after the insert of {least} returned"
                    );
                }
            });
        }
    });
}

/// An insert made while a forced refresh of its key computes, in one process: the insert
/// began later, so it stays; the refresh's caller gets its own value.
#[test]
fn an_insert_during_a_forced_refresh_on_disk_stays() {
    init();
    for round in 0..20_u64 {
        let cache = handle(
            "insert-during-refresh",
            "tests::insert_during_refresh",
            round,
        );
        cache.insert(0, 1);
        let (entered, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            let refreshing = s.spawn(|| {
                cache.refresh(|| {
                    cache.get_or_insert_with(0, || {
                        entered.wait();
                        go.wait();
                        2
                    })
                })
            });
            entered.wait();
            cache.insert(0, 3);
            go.wait();
            assert_eq!(refreshing.join().unwrap(), 2, "the refresh's caller");
        });
        assert_eq!(
            cache.get(&0),
            Some(3),
            "round {round}: the insert began later"
        );
        cache.store().flush();
        let other = handle(
            "insert-during-refresh",
            "tests::insert_during_refresh",
            round,
        );
        assert_eq!(other.get(&0), Some(3), "round {round}: on disk");
    }
}

/// `entries` and `retain` on one of two handles of a namespace see the other's changes at once.
#[test]
fn entries_and_retain_of_a_disk_handle_see_another_handles_changes() {
    init();
    let open = || handle("entries-two-handles", "tests::entries_two_handles", 0);
    let (a, b) = (open(), open());
    a.insert(1, 10);
    assert_eq!(b.entries(), [(1, 10)]);
    b.insert(2, 20);
    b.insert(1, 11);
    let mut entries = a.entries();
    entries.sort_unstable();
    assert_eq!(entries, [(1, 11), (2, 20)]);
    assert_eq!(a.retain(|key, _| *key != 1), 1);
    assert_eq!(b.entries(), [(2, 20)]);
    assert_eq!(b.get(&1), None);
    b.invalidate(&2);
    assert!(a.entries().is_empty());
    assert_eq!(a.retain(|_, _| false), 0);
}

/// [`a_disk_read_after_an_insert_never_returns_a_computation_begun_before`] over two handles of
/// one namespace: computations, reads and invalidations on one, inserts on the other. Before, a
/// call on the first begun after an insert on the second returned read the value of a
/// computation begun before the insert (`read 38 after the insert of 39 returned (computed by
/// this caller: false)`, each run): that value, queued after the insert's (not yet committed),
/// was read back from the queue and the front in its place until the writer refused it. Now a
/// claim's value is not queued over an insert or removal of its key queued since the claim,
/// nor kept in the front once its store saw another's change, and an insert that takes a
/// claim's lock row away moves the epoch, as a removal does.
#[test]
fn a_read_on_one_disk_handle_after_an_insert_on_another_never_returns_older() {
    init();
    let open = || handle("one-key-two-handles", "tests::one_key_two_handles", 0);
    let (reader, writer) = (open(), open());
    let source = std::sync::atomic::AtomicU64::new(0);
    let floor = std::sync::atomic::AtomicU64::new(0);
    let inserted = std::sync::atomic::AtomicU64::new(0);
    let turn = std::sync::Mutex::new(());
    std::thread::scope(|s| {
        for t in 0..3 {
            let (reader, writer, source, floor, turn) = (&reader, &writer, &source, &floor, &turn);
            let inserted = &inserted;
            s.spawn(move || {
                for i in 0..20_000 {
                    if (i + t) % 3 == 0 {
                        let _turn = turn.lock().unwrap();
                        let version = source.fetch_add(1, Ordering::SeqCst) + 1;
                        if i % 2 == 0 {
                            writer.insert(0, version);
                            inserted.fetch_max(version, Ordering::SeqCst);
                        } else {
                            reader.invalidate(&0);
                        }
                        floor.fetch_max(version, Ordering::SeqCst);
                        continue;
                    }
                    let least = floor.load(Ordering::SeqCst);
                    let least_inserted = inserted.load(Ordering::SeqCst);
                    let mut ran = false;
                    let read = reader.get_or_insert_with(0, || {
                        ran = true;
                        source.load(Ordering::SeqCst)
                    });
                    assert!(
                        read >= least_inserted,
                        "read {read} after the insert of {least_inserted} returned \
                         (computed by this caller: {ran})"
                    );
                    assert!(
                        read >= least,
                        "read {read} after the insert or invalidate of {least} returned \
                         (computed by this caller: {ran})"
                    );
                }
            });
        }
    });
}

/// Promises of the docs that no other test held, each asserted by counts and values.
mod promises {
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use memo::{Cache, Codec, DiskCache, DiskOptions, cached};

    use super::init;

    #[cached(store = disk("promises-json"), codec = "json")]
    fn lines(n: u32) -> Vec<String> {
        (0..n).map(|i| format!("{i:0>1000}")).collect()
    }

    /// README (`codec = "json"`): any language reads a disk store's JSON values, "the `value`
    /// column of a disk store's SQLite `entries` table; from 32 KiB the file its `file` column
    /// names, past a header (`DiskStore`'s docs); the `key` column stays postcard". Python
    /// reads both through the layout the docs give, and the key column is the key's postcard.
    #[test]
    fn json_values_small_and_large_are_read_by_another_language_as_documented() {
        init();
        assert_eq!(lines(2).len(), 2); // about 2 KB: in the row
        assert_eq!(lines(40).len(), 40); // about 40 KB: in a file
        lines_cache().store().flush();
        let dir = lines_cache().store().dir().to_path_buf();
        let read = Command::new("python3")
            .arg("-c")
            .arg(
                "import json, sqlite3, struct, sys, os\n\
                 d = sys.argv[1]\n\
                 rows = sqlite3.connect(os.path.join(d, 'cache.db')).execute(\n\
                 \x20   'SELECT key, value, file FROM entries ORDER BY length(value)').fetchall()\n\
                 for key, value, file in rows:\n\
                 \x20   if file is None:\n\
                 \x20       v = json.loads(value)\n\
                 \x20   else:\n\
                 \x20       b = open(os.path.join(d, 'values', file), 'rb').read()\n\
                 \x20       assert b[:8] == b'memoval1', b[:8]\n\
                 \x20       at = 8\n\
                 \x20       for _ in range(2):\n\
                 \x20           (n,) = struct.unpack_from('<I', b, at)\n\
                 \x20           at += 4 + n\n\
                 \x20       (n,) = struct.unpack_from('<Q', b, at)\n\
                 \x20       at += 8\n\
                 \x20       assert len(b) - at == n, (len(b), at, n)\n\
                 \x20       v = json.loads(b[at:])\n\
                 \x20   print(bytes(key).hex(), 'file' if file else 'row', len(v), v[-1][-3:])",
            )
            .arg(&dir)
            .output()
            .expect("python3 runs");
        assert!(read.status.success(), "{read:?}");
        let hex = |n: u32| {
            use std::fmt::Write as _;
            (Codec::Binary.encode(&n).unwrap().iter()).fold(String::new(), |mut out, byte| {
                let _ = write!(out, "{byte:02x}");
                out
            })
        };
        let mut printed: Vec<String> = String::from_utf8_lossy(&read.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        printed.sort();
        let mut expected = vec![
            format!("{} row 2 001", hex(2)),
            format!("{} file 40 039", hex(40)),
        ];
        expected.sort();
        assert_eq!(printed, expected);
    }

    /// docs/cache-object.md: "the tuple of borrowed parts on a key of several …: `get(("tea",
    /// &2))` or `invalidate(("tea", &2))` on a `(String, u32)` key, on every store". On disk,
    /// through a second handle too (what the first wrote is found by the borrowed form).
    #[test]
    fn a_key_of_several_parts_is_looked_up_by_its_borrowed_parts_on_disk() {
        init();
        let open = || -> DiskCache<(String, u32), u32> {
            Cache::builder()
                .disk_options(DiskOptions::new("promises-pairs").root(super::cache_dir()))
                .build()
        };
        let (cache, other) = (open(), open());
        cache.insert(("tea".to_string(), 2), 6);
        cache.store().flush();
        assert_eq!(cache.get(("tea", &2)), Some(6));
        assert_eq!(
            other.get(("tea", &2)),
            Some(6),
            "another handle, from the file"
        );
        assert!(other.contains_key(("tea", &2)));
        assert_eq!(cache.get(("tea", &3)), None);
        assert!(cache.invalidate(("tea", &2)));
        assert!(!cache.invalidate(("tea", &2)));
        assert_eq!(cache.get(("tea", &2)), None);
        cache.store().flush();
        assert_eq!(other.get(("tea", &2)), None, "removed from the file");
        assert_eq!(cache.get_or_compute(("tea", &2), |(_, n)| n * 4), 8);
        assert_eq!(cache.get(&("tea".to_string(), 2)), Some(8));
        assert_eq!(cache.remove(("tea", &2)), Some(8));
    }

    /// `DiskOptions::new`'s docs: the store is "a subdirectory of the cache directory
    /// (characters other than ASCII letters, digits, `-`, `_` and `.` become `_`)": a name never
    /// reaches outside the root, nor names the root itself.
    #[test]
    fn a_store_name_is_one_directory_under_the_root() {
        init();
        let root = super::cache_dir().join("promises-names");
        let path = |name: &str| DiskOptions::new(name).root(&root).path();
        for (name, dir) in [
            ("sessions-v1.2_x", "sessions-v1.2_x"),
            ("../escape", ".._escape"),
            ("a/b c", "a_b_c"),
            ("/etc", "_etc"),
            ("été", "_t_"),
            ("", "_"),
            (".", "_"),
            ("..", "_"),
        ] {
            assert_eq!(path(name), root.join(dir), "{name:?}");
        }
        let cache: DiskCache<u32, u32> = Cache::builder()
            .disk_options(DiskOptions::new("../escape").root(&root))
            .build();
        assert!(cache.store().is_persistent());
        cache.insert(1, 1);
        cache.store().flush();
        assert!(root.join(".._escape").is_dir());
        assert!(
            !super::cache_dir().join("escape").exists(),
            "outside the root"
        );
    }

    /// `DiskOptions::max_bytes`: "Bounds the encoded values of this function to `bytes` in
    /// total …; the entries stored longest ago go first"; the builder's `maxsize` likewise ("the
    /// disk store evicts the oldest"). The entries kept are the newest ones.
    #[test]
    fn a_full_disk_store_keeps_its_newest_entries() {
        init();
        let root = super::cache_dir().join("promises-bounds");
        let bytes: DiskCache<u32, Vec<u8>> = Cache::builder()
            .disk_options(DiskOptions::new("bytes").root(&root).max_bytes(10_000))
            .build();
        for n in 0..20 {
            bytes.insert(n, vec![7; 1_000]);
        }
        bytes.store().flush();
        let mut kept = bytes.keys();
        kept.sort_unstable();
        let newest = u32::try_from(kept.len()).unwrap();
        assert!((1..=10).contains(&newest), "{kept:?}");
        assert_eq!(kept, (20 - newest..20).collect::<Vec<_>>());
        let entries: DiskCache<u32, u32> = Cache::builder()
            .maxsize(10)
            .disk_options(DiskOptions::new("entries").root(&root))
            .build();
        for n in 0..25 {
            entries.insert(n, n);
        }
        entries.store().flush();
        let mut kept = entries.keys();
        kept.sort_unstable();
        assert_eq!(kept, (15..25).collect::<Vec<_>>());
    }

    /// A value whose `Serialize` leaves a field out (read back unequal) and a key that does not
    /// decode back to itself (an untagged enum).
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Lossy {
        user: String,
        #[serde(skip)]
        token: Option<String>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Num(u32),
        Name(String),
    }

    static LOSSY_RUNS: AtomicUsize = AtomicUsize::new(0);
    static UNTAGGED_RUNS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = disk)]
    fn lossy(user: String) -> Lossy {
        LOSSY_RUNS.fetch_add(1, Ordering::SeqCst);
        Lossy {
            token: Some(format!("token of {user}")),
            user,
        }
    }

    #[cached(store = disk)]
    fn untagged(key: Untagged) -> u32 {
        UNTAGGED_RUNS.fetch_add(1, Ordering::SeqCst);
        match key {
            Untagged::Num(n) => n,
            Untagged::Name(name) => u32::try_from(name.len()).unwrap(),
        }
    }

    /// The README: a key or value that does not decode back to itself "is not stored (Redis:
    /// computed each call; disk, tiered: kept in memory only), counted in `backend_errors`"
    /// (Redis: `tests/trust.rs`; tiered: `tests/redis.rs`). On disk: computed once, served from
    /// memory after, no row written for the next program.
    #[test]
    fn a_key_or_value_that_does_not_decode_back_is_kept_in_memory_only_on_disk() {
        init();
        for _ in 0..3 {
            assert_eq!(lossy("ada".into()).token.as_deref(), Some("token of ada"));
            assert_eq!(untagged(Untagged::Num(4)), 4);
        }
        assert_eq!(LOSSY_RUNS.load(Ordering::SeqCst), 1, "kept in memory");
        assert_eq!(UNTAGGED_RUNS.load(Ordering::SeqCst), 1, "kept in memory");
        assert_eq!(lossy_cache().len(), 0, "no row");
        assert_eq!(untagged_cache().len(), 0, "no row");
        assert!(lossy_cache().stats().backend_errors >= 1);
        assert!(untagged_cache().stats().backend_errors >= 1);
    }

    /// docs/cache-object.md: "Building never fails: a disk directory that cannot be used … makes
    /// the cache keep its entries in memory only, with the failure counted". Built through the
    /// builder on a root under a regular file (no one can make a directory there): the value is
    /// computed once and then served from memory, and the failure is counted once.
    #[test]
    fn a_disk_cache_built_on_an_unusable_directory_keeps_values_in_memory() {
        init();
        let file = super::cache_dir().join("promises-a-file");
        std::fs::create_dir_all(super::cache_dir()).unwrap();
        std::fs::write(&file, b"").unwrap();
        let cache: DiskCache<u32, u32> = Cache::builder()
            .disk_options(DiskOptions::new("unusable").root(file.join("below")))
            .build();
        assert!(!cache.store().is_persistent());
        assert_eq!(cache.backend(), "disk");
        let runs = AtomicUsize::new(0);
        for _ in 0..3 {
            let value = cache.get_or_insert_with(1, || {
                runs.fetch_add(1, Ordering::SeqCst);
                10
            });
            assert_eq!(value, 10);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "kept in memory");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
        assert_eq!(stats.backend_errors, 1, "counted once");
        assert_eq!(cache.get(&1), Some(10));
    }
}

/// `memo::testing::isolate`'s docs: a scope's `store = disk` functions keep their entries in a
/// fresh directory, and "its directory removed" when the scope ends.
#[cfg(feature = "test-util")]
mod isolated {
    use memo::cached;

    #[cached(store = disk)]
    fn scoped(n: u64) -> u64 {
        n
    }

    #[test]
    fn a_scopes_disk_directory_is_removed_when_it_ends() {
        let scope = memo::testing::isolate();
        let root = scope.disk_root().to_path_buf();
        assert_eq!(scoped(1), 1);
        scoped_cache().store().flush();
        assert!(scoped_cache().store().is_persistent());
        assert!(scoped_cache().store().dir().starts_with(&root));
        assert!(scoped_cache().store().dir().exists());
        drop(scope);
        assert!(!root.exists(), "{root:?} is left");
    }
}

/// Attacks of session attack6 on the disk store.
mod attack6 {
    use super::*;
    use std::time::Duration;

    /// A handle of the namespace `name` whose claims are honoured `lease` (a process of its
    /// own, as far as flights and leases go).
    fn open(
        name: &str,
        lease: Duration,
    ) -> memo::Cache<String, String, memo::DiskStore<String, String>> {
        memo::Cache::with_store(
            memo::DiskOptions::new(name)
                .root(cache_dir())
                .function("tests::timed_out_waiter", 0)
                .lease(lease)
                .open(&memo::Config::new()),
        )
    }

    /// `timed_out::timed_out_waiter` on disk: the holder's lease is 60 s, the waiter's 1 s
    /// (it waits its lease and 1 s more).
    fn timed_out_waiter(name: &str, invalidate: bool) {
        let holder = open(name, Duration::from_secs(60));
        let waiter = open(name, Duration::from_secs(1));
        let other = open(name, Duration::from_secs(60));
        timed_out::timed_out_waiter([&holder, &waiter, &other], invalidate, "on disk");
    }

    /// Under `idle`, an entry given a time to live of its own keeps it (docs/cache-object.md),
    /// on disk too: a read of it from disk (another process's, here another handle's) must not
    /// move its row to a full `idle`, or the handle that inserted it, once its memory copy has
    /// expired, reads it back from disk past its time to live.
    #[test]
    fn a_disk_entry_with_its_own_ttl_is_not_renewed_under_idle() {
        init();
        let open = || {
            memo::Cache::with_store(
                memo::DiskOptions::new("own-ttl-idle")
                    .root(cache_dir())
                    .function("tests::own_ttl_idle", 0)
                    .open::<String, String>(&memo::Config::new().idle(Duration::from_secs(600))),
            )
        };
        let (here, elsewhere) = (open(), open());
        here.insert_with_ttl(
            "token".to_string(),
            "t".to_string(),
            Duration::from_millis(600),
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            elsewhere.get("token").as_deref(),
            Some("t"),
            "read from disk"
        );
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(here.get("token"), None, "served here past its time to live");
        assert_eq!(
            elsewhere.get("token"),
            None,
            "served elsewhere past its time to live"
        );
    }

    #[test]
    fn a_timed_out_disk_waiters_value_computed_before_an_invalidation_is_not_stored() {
        init();
        std::thread::scope(|s| {
            s.spawn(|| timed_out_waiter("timed-out-waiter-kept", false));
            timed_out_waiter("timed-out-waiter-invalidated", true);
        });
    }
}

/// Runs `sql` on the database at `db` from another process (Python's `sqlite3`).
fn sqlite(db: &Path, sql: &str) {
    let status = Command::new("python3")
        .args(["-c", "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=10)\nc.executescript(sys.argv[2])\nc.close()"])
        .arg(db)
        .arg(sql)
        .status()
        .unwrap();
    assert!(status.success(), "{sql}");
}

/// A claim the database failed (a lock row it could not write: a disk error, a busy database
/// past its timeout) leaves the computation without a lock row to fence its write, as Redis's
/// failed claim does (`Fence::Failed`): stored anyway, the value computed before another
/// handle's (another process's) `insert` landed over it, and every later call read the older
/// value. Such a value is not stored (its caller still gets it).
#[test]
fn a_disk_value_computed_past_a_failed_claim_is_not_stored_over_an_insert_elsewhere() {
    init();
    let here = handle("attack7-failed-claim", "f", 1);
    let elsewhere = handle("attack7-failed-claim", "f", 1);
    let db = here.store().dir().join("cache.db");
    // Lock rows cannot be written: the claim fails (counted).
    sqlite(
        &db,
        "CREATE TRIGGER refuse_locks BEFORE INSERT ON locks \
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    );
    let computed = here.get_or_compute(&7, |_| {
        sqlite(&db, "DROP TRIGGER refuse_locks;");
        elsewhere.insert(7, 2);
        1
    });
    assert_eq!(computed, 1);
    assert!(here.stats().backend_errors >= 1, "the claim did not fail");
    assert_eq!(
        handle("attack7-failed-claim", "f", 1).get(&7),
        Some(2),
        "a value computed before another handle's insert was stored over it"
    );
    assert_eq!(elsewhere.get(&7), Some(2));
}

/// The same for a forced refresh (`Cache::refresh`) whose lock row the database failed to
/// take: its value, computed before another handle's insert, was stored over it.
#[test]
fn a_disk_forced_refresh_whose_mark_failed_is_not_stored_over_an_insert_elsewhere() {
    init();
    let here = handle("attack7-failed-mark", "f", 1);
    let elsewhere = handle("attack7-failed-mark", "f", 1);
    let db = here.store().dir().join("cache.db");
    here.insert(8, 1);
    sqlite(
        &db,
        "CREATE TRIGGER refuse_locks BEFORE INSERT ON locks \
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    );
    let computed = here.refresh(|| {
        here.get_or_compute(&8, |_| {
            sqlite(&db, "DROP TRIGGER refuse_locks;");
            elsewhere.insert(8, 3);
            2
        })
    });
    assert_eq!(computed, 2);
    assert!(here.stats().backend_errors >= 1, "the mark did not fail");
    assert_eq!(
        handle("attack7-failed-mark", "f", 1).get(&8),
        Some(3),
        "a forced refresh's value computed before another handle's insert was stored over it"
    );
    assert_eq!(here.get(&8), Some(3));
}

/// The store of [`a_lock_row_of_a_killed_process_goes_once_another_opens_the_store`].
fn holders(root: &Path) -> memo::Cache<String, String, memo::DiskStore<String, String>> {
    use memo::{Cache, Config, DiskOptions};
    Cache::with_store(DiskOptions::new("holders").root(root).open(&Config::new()))
}

/// The child of [`a_lock_row_of_a_killed_process_goes_once_another_opens_the_store`]: computes
/// `k` under its lock row until killed.
fn hold_until_killed() {
    let store = holders(Path::new(&std::env::var("MEMO_TEST_ROOT").unwrap()));
    store.get_or_compute("k", |_| {
        println!("COMPUTING");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    });
}

/// How many lock rows the database under `root` holds.
fn lock_rows(root: &Path) -> String {
    let dir = std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.join("cache.db").exists())
        .unwrap_or_else(|| root.to_path_buf());
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nprint(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM locks').fetchone()[0])",
        ])
        .arg(dir.join("cache.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A process killed (`kill -9`) while it computed a key leaves the key's lock row, which only a
/// later claim of that key removed (its holder being dead): a key no process asks for again
/// (an earlier build's, an argument seen once) kept its row in the database forever. A process
/// that opens the store removes the rows of holders that are gone.
#[test]
fn a_lock_row_of_a_killed_process_goes_once_another_opens_the_store() {
    use std::io::BufRead as _;
    init();
    let root = cache_dir().join("killed-holder");
    let _ = std::fs::remove_dir_all(&root);
    let mut child = child_command("hold")
        .env("MEMO_TEST_ROOT", &root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let computing = lines
        .map_while(Result::ok)
        .any(|line| line.contains("COMPUTING"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(computing, "the child ended early");
    assert_eq!(lock_rows(&root), "1", "the killed holder's row");
    let out = child_command("open")
        .env("MEMO_TEST_ROOT", &root)
        .output()
        .unwrap();
    assert_eq!(child::result(&out), "opened");
    assert_eq!(
        lock_rows(&root),
        "0",
        "a lock row of a process that is gone, left for good"
    );
}
