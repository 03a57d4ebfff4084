//! The disk store against a real SQLite file in a temporary directory, including damaged files,
//! unusable directories, a full disk, and other processes (this test binary, run again).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::Cache;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "memo-disk-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(root: &Path) -> DiskOptions {
    DiskOptions::new("test").root(root).function("tests::f", 1)
}

fn open(root: &Path, config: &Config) -> DiskStore<String, u64> {
    options(root).open(config)
}

fn db_file(root: &Path) -> PathBuf {
    root.join("test").join("cache.db")
}

#[test]
fn entries_survive_reopening() {
    let tmp = TempDir::new("reopen");
    {
        let store = open(&tmp.0, &Config::new());
        store.insert("a".into(), 1);
        store.insert("b".into(), 2);
        // Read back at once, before the commit.
        assert_eq!(store.get(&"a"), Some(1));
        assert!(store.remove(&"b"));
        assert!(!store.remove(&"b"));
        assert_eq!(store.len(), 1);
    }
    // The last store of the directory is gone: its database is closed; open it again.
    let store = open(&tmp.0, &Config::new());
    assert_eq!(store.peek(&"a"), Some(1));
    assert_eq!(store.peek(&"b"), None);
    assert_eq!(store.keys(), vec!["a".to_string()]);
    assert_eq!(store.counts().errors, 0);
    store.clear();
    assert_eq!(store.len(), 0);
    assert_eq!(store.get(&"a"), None);
}

#[cfg(unix)]
#[test]
fn directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("modes");
    let store = open(&tmp.0, &Config::new());
    store.insert("a".into(), 1);
    store.flush();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tmp.0.join("test")), 0o700);
    assert_eq!(mode(&db_file(&tmp.0)), 0o600);
    assert_eq!(mode(&tmp.0.join("test").join("version")), 0o600);
}

#[test]
fn functions_and_signatures_do_not_share_entries() {
    let tmp = TempDir::new("ns");
    let f: DiskStore<String, u64> = options(&tmp.0).open(&Config::new());
    let g: DiskStore<String, u64> = options(&tmp.0).function("tests::g", 1).open(&Config::new());
    // The same function after its return type changed: another fingerprint.
    let f2: DiskStore<String, String> =
        options(&tmp.0).function("tests::f", 2).open(&Config::new());
    f.insert("k".into(), 7);
    assert_eq!(g.get(&"k"), None);
    assert_eq!(f2.get(&"k"), None);
    assert_eq!(f2.counts().errors, 0, "never decoded");
    g.clear();
    assert_eq!(f.get(&"k"), Some(7));
}

#[test]
fn ttl_expires_on_disk_and_in_memory() {
    let tmp = TempDir::new("ttl");
    let store = open(&tmp.0, &Config::new().ttl(Duration::from_secs(60)));
    let (clock, mock) = Clock::mock();
    store.set_clock(clock);
    store.insert("a".into(), 1);
    store.flush();
    mock.increment(Duration::from_secs(30));
    assert_eq!(store.get(&"a"), Some(1));
    mock.increment(Duration::from_secs(31));
    assert_eq!(store.get(&"a"), None);
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.counts().expired, 1);
    assert_eq!(store.len(), 0);
}

#[test]
fn bounds_evict_the_oldest_entries() {
    let tmp = TempDir::new("bounds");
    let store = open(&tmp.0, &Config::new().maxsize(10));
    for i in 0..25_u64 {
        store.insert(format!("k{i}"), i);
    }
    assert_eq!(store.len(), 10);
    assert_eq!(store.counts().evicted, 15);
    assert_eq!(store.peek(&"k24"), Some(24));

    let bytes: DiskStore<u32, Vec<u8>> = options(&tmp.0)
        .function("tests::bytes", 0)
        .max_bytes(10_000)
        .open(&Config::new());
    for i in 0..20 {
        bytes.insert(i, vec![7; 1000]);
    }
    assert!(bytes.len() <= 10, "{} entries of about 1 KB", bytes.len());
    assert!(bytes.counts().evicted >= 10);
}

fn value_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("test").join("values")).map_or(0, Iterator::count)
}

#[test]
fn large_values_live_in_files_removed_with_their_entries() {
    let tmp = TempDir::new("large");
    let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new().maxsize(3));
    let big = vec![1_u8; 100_000];
    store.insert(1, big.clone());
    assert_eq!(store.get(&&1), Some(big.clone()));
    store.flush();
    assert_eq!(value_files(&tmp.0), 1);
    // Read back from its file.
    assert_eq!(store.get(&&1), Some(big.clone()));
    assert_eq!(store.counts().hits, 2);
    // Replaced, then removed: the old files go.
    store.insert(1, vec![2; 50_000]);
    store.insert(2, vec![3; 50_000]);
    store.flush();
    assert_eq!(value_files(&tmp.0), 2);
    assert!(store.remove(&&2));
    store.flush();
    assert_eq!(value_files(&tmp.0), 1);
    // Evicted past `maxsize`, then cleared.
    for k in 10..15 {
        store.insert(k, vec![4; 40_000]);
    }
    store.flush();
    assert_eq!(store.len(), 3);
    assert_eq!(value_files(&tmp.0), 3);
    assert_eq!(store.get(&&14).map(|v| v.len()), Some(40_000));
    store.clear();
    assert_eq!(value_files(&tmp.0), 0);
    // A small value stays in the row.
    store.insert(1, vec![5; 10]);
    store.flush();
    assert_eq!(value_files(&tmp.0), 0);
}

#[test]
fn json_values_are_readable_by_other_programs() {
    let tmp = TempDir::new("json");
    let store: DiskStore<String, Vec<u32>> =
        options(&tmp.0).codec(Codec::Json).open(&Config::new());
    store.insert("a".into(), vec![1, 2]);
    store.flush();
    let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    let value: Vec<u8> = conn
        .query_row("SELECT value FROM entries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(value, b"[1,2]");
}

#[test]
fn a_value_that_does_not_decode_is_a_miss_and_is_overwritten() {
    let tmp = TempDir::new("garbage");
    open(&tmp.0, &Config::new()).insert("a".into(), 1);
    let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    conn.execute("UPDATE entries SET value = x'ffffffffffffffffffff01'", [])
        .unwrap();
    drop(conn);
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    assert_eq!(cache.get_or_compute("a", |_| 2), 2);
    assert_eq!(cache.stats().backend_errors, 1);
    cache.store().flush();
    assert_eq!(
        cache.get_or_compute("a", |_| unreachable!("overwritten")),
        2
    );
}

#[test]
fn a_garbage_file_is_moved_aside_and_rebuilt() {
    let tmp = TempDir::new("garbage-file");
    std::fs::create_dir_all(tmp.0.join("test")).unwrap();
    std::fs::write(db_file(&tmp.0), vec![0x5a; 8192]).unwrap();
    let store = open(&tmp.0, &Config::new());
    assert!(store.is_persistent());
    store.insert("a".into(), 1);
    store.flush();
    assert_eq!(open(&tmp.0, &Config::new()).get(&"a"), Some(1));
    assert_eq!(corrupt_files(&tmp.0), 1);
}

#[test]
fn a_truncated_file_is_moved_aside_and_rebuilt() {
    let tmp = TempDir::new("truncated");
    {
        let store = open(&tmp.0, &Config::new());
        for i in 0..2000_u64 {
            store.insert(format!("key number {i}"), i);
        }
    }
    // Closed: the WAL is checkpointed into the file. Cut it in half.
    let file = db_file(&tmp.0);
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(len > 16_384, "{len}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let store = open(&tmp.0, &Config::new());
    assert_eq!(corrupt_files(&tmp.0), 1);
    assert_eq!(store.get(&"key number 1"), None);
    let cache = Cache::with_store(store);
    assert_eq!(cache.get_or_compute("x", |_| 5), 5);
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_file_damaged_while_in_use_is_moved_aside_once_and_rebuilt() {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = TempDir::new("damaged-in-use");
    let store = open(&tmp.0, &Config::new());
    for i in 0..2000_u64 {
        store.insert(format!("key number {i}"), i);
    }
    store.flush();
    // Checkpointed into the file, then every page but the first overwritten.
    store
        .db
        .shared
        .read(&store.space, |conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        })
        .unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(db_file(&tmp.0))
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.seek(SeekFrom::Start(4096)).unwrap();
    file.write_all(&vec![0x77; usize::try_from(len - 4096).unwrap()])
        .unwrap();
    drop(file);
    // A read of the damaged pages fails, is counted, and moves the file aside.
    assert!(store.keys().is_empty());
    assert!(store.counts().errors >= 1);
    assert_eq!(corrupt_files(&tmp.0), 1);
    // The rebuilt database works.
    store.insert("after".into(), 1);
    store.flush();
    assert_eq!(store.keys(), vec!["after".to_string()]);
    assert_eq!(corrupt_files(&tmp.0), 1);
}

fn corrupt_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("test"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.contains(".corrupt-") && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .count()
}

#[test]
fn an_unusable_directory_caches_in_memory_and_counts_the_error() {
    // A path under a regular file: no one, not even root, can create a directory there.
    let tmp = TempDir::new("unusable");
    let file = tmp.0.join("file");
    std::fs::write(&file, b"").unwrap();
    let store = open(&file, &Config::new());
    assert!(!store.is_persistent());
    let cache = Cache::with_store(store);
    let runs = AtomicUsize::new(0);
    let compute = |_: &str| {
        runs.fetch_add(1, Ordering::Relaxed);
        3
    };
    assert_eq!(cache.get_or_compute("a", compute), 3);
    assert_eq!(cache.get_or_compute("a", compute), 3);
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert_eq!(cache.stats().backend_errors, 1);
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_full_disk_counts_errors_and_calls_go_on() {
    let tmp = TempDir::new("full");
    let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
    store.insert(0, vec![0; 10]);
    store.flush();
    {
        // SQLite's own page limit: the same SQLITE_FULL error a full disk gives.
        let writer = store.db.shared.writer.lock().unwrap();
        let conn = writer.as_ref().unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .unwrap();
    }
    let cache = Cache::with_store(store);
    for i in 1..=3_u8 {
        let value = cache.get_or_compute(&u32::from(i), |_| vec![i; 20_000]);
        assert_eq!(value.len(), 20_000);
        cache.store().flush();
    }
    assert!(cache.stats().backend_errors >= 1, "{:?}", cache.stats());
    // The value committed before the disk filled is still there.
    assert_eq!(cache.get(&0), Some(vec![0; 10]));
}

/// Runs this test binary again as another process, for the test `child` (below), with `role`.
fn spawn_child(root: &Path, role: &str, extra: &[(&str, String)]) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "store::disk::tests::child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MEMO_DISK_CHILD", role)
        .env("MEMO_DISK_ROOT", root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in extra {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

/// What another process does, when this binary is run by `spawn_child`; nothing otherwise.
#[test]
fn child() {
    let Some(role) = std::env::var_os("MEMO_DISK_CHILD") else {
        return;
    };
    let root = PathBuf::from(std::env::var_os("MEMO_DISK_ROOT").unwrap());
    let store = open(&root, &Config::new());
    match role.to_str().unwrap() {
        "invalidate" => {
            assert!(store.remove(&"a"));
            store.insert("b".into(), 5);
        }
        "compute" => {
            let count_file = PathBuf::from(std::env::var_os("MEMO_DISK_COUNT").unwrap());
            let cache = Cache::with_store(store);
            let value = cache.get_or_compute("shared", |_| {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&count_file)
                    .unwrap();
                writeln!(file, "{}", std::process::id()).unwrap();
                // Long enough that the other process misses while this one computes.
                std::thread::sleep(Duration::from_millis(500));
                42
            });
            println!("value={value}");
        }
        other => panic!("unknown role {other}"),
    }
    // Writes still queued are committed at exit (the `atexit` flush); make sure in tests.
}

#[test]
fn another_process_invalidating_is_seen_here() {
    let tmp = TempDir::new("cross-invalidate");
    let store = open(&tmp.0, &Config::new());
    store.insert("a".into(), 1);
    store.flush();
    assert_eq!(store.get(&"a"), Some(1));
    let out = spawn_child(&tmp.0, "invalidate", &[])
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(store.get(&"a"), None);
    assert_eq!(store.get(&"b"), Some(5));
}

#[test]
fn two_processes_missing_one_key_compute_it_once() {
    let tmp = TempDir::new("cross-flight");
    let count = tmp.0.join("executions");
    let env = [("MEMO_DISK_COUNT", count.display().to_string())];
    let children = [
        spawn_child(&tmp.0, "compute", &env),
        spawn_child(&tmp.0, "compute", &env),
    ];
    let mut errors = String::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("value=42"));
        errors.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    let executions = std::fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(executions, 1, "{errors}");
    assert_eq!(open(&tmp.0, &Config::new()).get(&"shared"), Some(42));
}
