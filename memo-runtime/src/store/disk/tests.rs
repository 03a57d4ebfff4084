//! The disk store against a real SQLite file in a temporary directory, including damaged files,
//! unusable directories, a full disk, and other processes (this test binary, run again).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::Cache;
use crate::block::wait;

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

/// Overwrites every page of the database file but the first.
fn damage_after_first_page(dir: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(db_file(dir))
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.seek(SeekFrom::Start(4096)).unwrap();
    file.write_all(&vec![0x77; usize::try_from(len - 4096).unwrap()])
        .unwrap();
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

/// Two stores of one namespace in one process, as a program that opens its cache directory
/// wherever it needs it: each sees the other's writes, removals and clears at once.
#[test]
fn two_stores_of_one_namespace_in_a_process_see_each_others_changes() {
    let tmp = TempDir::new("siblings");
    let a = open(&tmp.0, &Config::new());
    let b = open(&tmp.0, &Config::new());
    a.insert("k".into(), 1);
    assert_eq!(b.get(&"k"), Some(1), "held in b's front from here");
    assert_eq!(a.get(&"k"), Some(1));
    a.insert("k".into(), 2);
    assert_eq!(b.get(&"k"), Some(2));
    assert_eq!(b.peek(&"k"), Some(2));
    assert!(a.remove(&"k"));
    assert_eq!(b.get(&"k"), None);
    b.insert("j".into(), 10);
    assert_eq!(a.get(&"j"), Some(10));
    assert!(b.remove(&"j"));
    assert_eq!(a.get(&"j"), None);
    b.insert("m".into(), 5);
    assert_eq!(a.get(&"m"), Some(5));
    b.clear();
    assert_eq!(a.get(&"m"), None);
    // A store alone moves no count: its own writes never clear its front.
    drop(b);
    let changes = a.space.changes.load(Ordering::Acquire);
    for n in 0..100 {
        a.insert(format!("n{n}"), n);
    }
    assert_eq!(a.space.changes.load(Ordering::Acquire), changes);
    assert_eq!(a.front.len(), 100, "nothing cleared");
}

/// While one store of a namespace writes a key over and over, another in the same process
/// never reads a value older than one whose write had returned before its read began.
#[test]
fn a_second_store_never_reads_older_than_a_write_that_returned() {
    use std::sync::atomic::AtomicU64;
    let tmp = TempDir::new("siblings-race");
    let a = open(&tmp.0, &Config::new());
    let b = open(&tmp.0, &Config::new());
    a.insert("k".into(), 0);
    let written = AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 1..=2_000 {
                a.insert("k".into(), n);
                written.store(n, Ordering::Release);
            }
        });
        let mut reads = 0;
        while written.load(Ordering::Acquire) < 2_000 || reads == 0 {
            let before = written.load(Ordering::Acquire);
            let read = b.get(&"k").unwrap();
            assert!(
                read >= before,
                "read {read} after the write of {before} returned"
            );
            reads += 1;
        }
    });
    assert_eq!(b.get(&"k"), Some(2_000));
}

#[cfg(unix)]
// Attack 3: a reader of store `a` read "k" = 1 from disk; store `b` (same namespace) wrote
// "k" = 2 (queued, its commit held) and moved the shared count; another call on `a` saw the
// count, cleared `a`'s front and took the count as seen; the first reader then kept 1 in the
// front (its own fills and the commit counter had not moved): `a` served 1 for good.
#[test]
fn a_read_of_one_store_during_anothers_write_does_not_keep_the_old_value() {
    let tmp = TempDir::new("siblings-read-across");
    let a = open(&tmp.0, &Config::new());
    let b = open(&tmp.0, &Config::new());
    let shared = &a.db.shared;
    std::thread::scope(|scope| {
        let (reader, go) = read_paused_after_the_row(scope, &a);
        let commits = shared.writer.lock().unwrap();
        b.insert("k".into(), 2);
        // Another call on `a` meanwhile: it sees `b`'s change and clears `a`'s front.
        assert_eq!(a.get(&"other"), None);
        go.send(()).unwrap();
        assert_eq!(
            reader.join().unwrap(),
            Some(1),
            "the reader read the old row"
        );
        drop(commits);
    });
    assert_eq!(
        a.get(&"k"),
        Some(2),
        "a kept the value read before b's write"
    );
    a.flush();
    assert_eq!(a.get(&"k"), Some(2));
    assert_eq!(b.get(&"k"), Some(2));
}

#[test]
fn directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("modes");
    let root = tmp.0.join("root");
    let store: DiskStore<u32, Vec<u8>> = options(&root).open(&Config::new());
    store.insert(1, vec![1; 40_000]);
    store.flush();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = root.join("test");
    for made in [&root, &dir, &dir.join("values")] {
        assert_eq!(mode(made), 0o700, "{}", made.display());
    }
    let names = [
        "cache.db",
        "cache.db-wal",
        "cache.db-shm",
        "version",
        "open.lock",
    ];
    for file in names.iter().map(|name| dir.join(name)).chain(
        std::fs::read_dir(dir.join("values"))
            .unwrap()
            .map(|entry| entry.unwrap().path()),
    ) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
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

/// A value stored over its key's expired row counts that row as expired, as the memory store
/// counts one stored over an expired entry; over a live one, it does not.
#[test]
fn a_value_stored_over_an_expired_row_counts_it_expired() {
    let tmp = TempDir::new("ttl-over");
    let store = open(&tmp.0, &Config::new().ttl(Duration::from_secs(60)));
    let (clock, mock) = Clock::mock();
    store.set_clock(clock);
    store.insert("a".into(), 1);
    store.insert("b".into(), 1);
    store.flush();
    mock.increment(Duration::from_secs(61));
    store.insert("a".into(), 2);
    store.flush();
    assert_eq!(store.counts().expired, 1, "a's row had expired");
    store.insert("a".into(), 3);
    store.flush();
    assert_eq!(store.counts().expired, 1, "a's second row had not");
    assert_eq!(store.purge_expired(), 1, "b's row");
    assert_eq!(store.counts().expired, 2);
}

/// Time to idle on disk: hits served from memory renew the row too, so another process (a
/// second store on the directory) finds the entry past its first expiry; unread, it expires.
#[test]
fn idle_entries_live_on_disk_while_they_are_used() {
    let tmp = TempDir::new("idle");
    let config = Config::new().idle(Duration::from_secs(60));
    let store = open(&tmp.0, &config);
    let (clock, mock) = Clock::mock();
    store.set_clock(clock.clone());
    store.insert("a".into(), 1);
    store.flush();
    for _ in 0..4 {
        mock.increment(Duration::from_secs(30));
        assert_eq!(store.get(&"a"), Some(1));
    }
    store.flush();
    let other = open(&tmp.0, &config);
    other.set_clock(clock);
    assert_eq!(
        other.get(&"a"),
        Some(1),
        "the row was renewed by the first store's hits"
    );
    mock.increment(Duration::from_secs(59));
    assert_eq!(other.get(&"a"), Some(1));
    other.flush();
    mock.increment(Duration::from_secs(61));
    assert_eq!(other.get(&"a"), None);
    assert_eq!(store.get(&"a"), None);
}

/// Time to idle writes a row at most once per sixteenth of the period, however often it is
/// read: hits within the first sixteenth move nothing; the first hit after it moves the row's
/// expiry once, to a period from then, and the hits right after it nothing more.
#[test]
fn idle_hits_renew_a_row_at_most_once_per_sixteenth_of_the_period() {
    let tmp = TempDir::new("idle-rate");
    let store = open(&tmp.0, &Config::new().idle(Duration::from_secs(160)));
    let (clock, mock) = Clock::mock();
    store.set_clock(clock);
    store.insert("a".into(), 1);
    store.flush();
    let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    let expires = || -> i64 {
        conn.query_row("SELECT expires FROM entries", [], |row| row.get(0))
            .unwrap()
    };
    let first = expires();
    for _ in 0..90 {
        mock.increment(Duration::from_millis(100));
        assert_eq!(store.get(&"a"), Some(1));
    }
    store.flush();
    assert_eq!(expires(), first, "9 s of hits, within a sixteenth (10 s)");
    mock.increment(Duration::from_secs(2));
    for _ in 0..100 {
        assert_eq!(store.get(&"a"), Some(1));
        mock.increment(Duration::from_millis(10));
    }
    store.flush();
    assert_eq!(expires(), first + 11_000, "one renewal, by the hit at 11 s");
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
fn a_value_that_does_not_decode_is_deleted_and_counted_once() {
    let tmp = TempDir::new("undecodable");
    open(&tmp.0, &Config::new()).insert("a".into(), 1);
    let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    conn.execute("UPDATE entries SET value = x'ffffffffffffffffffff01'", [])
        .unwrap();
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    assert_eq!(cache.get("a"), None);
    assert_eq!(cache.get("a"), None);
    cache.store().flush();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM entries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0, "the damaged value is deleted");
    assert_eq!(cache.stats().backend_errors, 1, "counted once");
}

/// A value that another decodes: what a flipped bit or a torn write can leave.
#[test]
fn a_value_changed_on_disk_is_a_miss_not_another_value() {
    let tmp = TempDir::new("changed");
    let store = open(&tmp.0, &Config::new());
    store.insert("a".into(), 1);
    store.flush();
    let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    let two = Codec::Binary.encode(&2_u64).unwrap();
    conn.execute("UPDATE entries SET value = ?1", [&two])
        .unwrap();
    drop(store);
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    assert_eq!(
        cache.get_or_compute("a", |_| 3),
        3,
        "computed, not the changed 2"
    );
    assert_eq!(cache.stats().backend_errors, 1);
    cache.store().flush();
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    assert_eq!(
        cache.get_or_compute("a", |_| unreachable!("stored again")),
        3
    );
}

/// The check covers a large value in its file as one in its row.
#[test]
fn a_value_file_changed_after_its_header_is_a_miss() {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = TempDir::new("changed-file");
    let store: DiskStore<String, Vec<u8>> = options(&tmp.0).open(&Config::new());
    store.insert("big".into(), vec![7; files::LARGE * 2]);
    store.flush();
    drop(store);
    let folder = tmp.0.join("test").join("values");
    let file = std::fs::read_dir(&folder).unwrap().next().unwrap().unwrap();
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .open(file.path())
        .unwrap();
    // Within the value, past the header: the length and the key still match.
    let len = handle.metadata().unwrap().len();
    handle.seek(SeekFrom::Start(len - 100)).unwrap();
    handle.write_all(&[8]).unwrap();
    drop(handle);
    let cache = Cache::with_store(options(&tmp.0).open::<String, Vec<u8>>(&Config::new()));
    let value = cache.get_or_compute("big", |_| vec![9; 3]);
    assert!(
        value == vec![9; 3],
        "computed, not the changed file: {} bytes read",
        value.len()
    );
    assert_eq!(cache.stats().backend_errors, 1);
}

/// Rows written by a build that stored no check are read as misses (not faults), and the value
/// computed again replaces them.
#[test]
fn a_row_without_a_check_is_a_miss_and_is_replaced() {
    let tmp = TempDir::new("unchecked");
    let store = open(&tmp.0, &Config::new());
    store.insert("a".into(), 1);
    store.flush();
    let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    conn.execute("UPDATE entries SET sum = NULL", []).unwrap();
    drop(store);
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    assert_eq!(cache.get_or_compute("a", |_| 2), 2);
    assert_eq!(cache.stats().backend_errors, 0, "not a fault");
    cache.store().flush();
    let sums: i64 = conn
        .query_row("SELECT count(sum) FROM entries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(sums, 1, "replaced by a row with its check");
}

/// A database made before rows had a check gains the column when opened; a build before it goes
/// on writing (its rows are misses here), and this one's rows are read.
#[test]
fn a_database_made_before_the_check_is_opened_and_gains_it() {
    let tmp = TempDir::new("before-check");
    std::fs::create_dir_all(tmp.0.join("test")).unwrap();
    let file = db_file(&tmp.0);
    let old = rusqlite::Connection::open(&file).unwrap();
    old.execute_batch(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, ns BLOB NOT NULL, key BLOB NOT NULL,
             value BLOB NOT NULL, file TEXT, size INTEGER NOT NULL, expires INTEGER NOT NULL);
         CREATE UNIQUE INDEX entries_key ON entries (ns, key);",
    )
    .unwrap();
    let store = open(&tmp.0, &Config::new());
    assert!(store.is_persistent());
    let columns: Vec<String> = old
        .prepare("SELECT name FROM pragma_table_info('entries')")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(columns.iter().any(|name| name == "sum"), "{columns:?}");
    // What the build before writes, naming its columns.
    let ns = store.ns.to_vec();
    let key = key::encode(&"old".to_string()).unwrap();
    let value = Codec::Binary.encode(&5_u64).unwrap();
    old.execute(
        "INSERT INTO entries (ns, key, value, size, expires, file) VALUES (?1, ?2, ?3, 1, 0, NULL)",
        rusqlite::params![ns, key, value],
    )
    .unwrap();
    store.insert("new".into(), 6);
    store.flush();
    drop(store);
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    assert_eq!(cache.get_or_compute("new", |_| unreachable!("read")), 6);
    assert_eq!(cache.get_or_compute("old", |_| 7), 7, "unchecked: computed");
    assert_eq!(cache.stats().backend_errors, 0);
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
    damage_after_first_page(&tmp.0);
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
    assert_eq!(cache.backend(), "disk", "the store it was built with");
}

#[test]
fn a_full_disk_counts_errors_and_calls_go_on() {
    // SQLite's own page limit: the same SQLITE_FULL error a full disk gives.
    calls_go_on_when_writes_fail("full", |conn| {
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .unwrap();
    });
}

#[test]
fn a_read_only_database_counts_errors_and_calls_go_on() {
    // The SQLITE_READONLY error a read-only disk gives (file modes do not stop root).
    calls_go_on_when_writes_fail("read-only", |conn| {
        conn.execute_batch("PRAGMA query_only = 1").unwrap();
    });
}

/// After `refuse` makes the writer's connection fail every write: calls compute once and
/// return, the errors are counted, the value committed before is still read, and the values
/// the database refused are kept in memory.
fn calls_go_on_when_writes_fail(name: &str, refuse: impl FnOnce(&rusqlite::Connection)) {
    let tmp = TempDir::new(name);
    let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
    store.insert(0, vec![0; 10]);
    store.flush();
    refuse(store.db.shared.writer.lock().unwrap().as_ref().unwrap());
    let cache = Cache::with_store(store);
    for i in 1..=3_u8 {
        let value = cache.get_or_compute(&u32::from(i), |_| vec![i; 20_000]);
        assert_eq!(value.len(), 20_000);
        cache.store().flush();
    }
    assert!(cache.stats().backend_errors >= 1, "{:?}", cache.stats());
    assert_eq!(cache.get(&0), Some(vec![0; 10]));
    for i in 1..=3_u8 {
        let value = cache.get_or_compute(&u32::from(i), |_| unreachable!("kept in memory"));
        assert_eq!(value, vec![i; 20_000]);
    }
}

/// The disk store's docs: each failure is counted and "logged at most once a minute". Five
/// refused writes in a row: five errors, one line on standard error.
#[test]
fn failures_are_each_counted_and_logged_at_most_once_a_minute() {
    let tmp = TempDir::new("logged-once");
    let out = child_command(None, &tmp.0, "refused-writes", &[])
        .output()
        .unwrap();
    assert_eq!(result_of(&out), "errors=5");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = stderr
        .lines()
        .filter(|line| line.contains("the disk cache in"))
        .count();
    assert_eq!(said, 1, "{stderr}");
}

/// Runs this test binary again as another process, for the test `child` (below), with `role`.
fn spawn_child(root: &Path, role: &str, extra: &[(&str, String)]) -> std::process::Child {
    child_command(None, root, role, extra).spawn().unwrap()
}

/// [`spawn_child`] as user `uid` (and group `uid`, no other groups), through `setpriv`; waits
/// for it and returns what it printed after `RESULT `.
fn run_child_as(uid: u32, root: &Path, role: &str, extra: &[(&str, String)]) -> String {
    result_of(
        &child_command(Some(uid), root, role, extra)
            .output()
            .unwrap(),
    )
}

/// What a child that succeeded printed after `RESULT `.
fn result_of(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|line| {
            line.split_once("RESULT ")
                .map(|(_, rest)| rest.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no RESULT line in {text}"))
}

fn child_command(uid: Option<u32>, root: &Path, role: &str, extra: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = match uid {
        None => Command::new(exe),
        Some(uid) => {
            let mut command = Command::new("setpriv");
            let id = uid.to_string();
            command
                .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
                .arg(exe);
            command
        }
    };
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
    command
}

/// The child of [`failures_are_each_counted_and_logged_at_most_once_a_minute`]: every write
/// refused (read-only), five times.
fn refused_writes(root: &Path) {
    let store: DiskStore<u32, Vec<u8>> = options(root).open(&Config::new());
    store.insert(0, vec![0; 10]);
    store.flush();
    let writer = store.db.shared.writer.lock().unwrap();
    writer
        .as_ref()
        .unwrap()
        .execute_batch("PRAGMA query_only = 1")
        .unwrap();
    drop(writer);
    let cache = Cache::with_store(store);
    for i in 1..=5 {
        cache.insert(i, vec![1; 20]);
        cache.store().flush();
    }
    println!("RESULT errors={}", cache.stats().backend_errors);
}

/// What another process does, when this binary is run by `spawn_child`; nothing otherwise.
#[test]
fn child() {
    let Some(role) = std::env::var_os("MEMO_DISK_CHILD") else {
        return;
    };
    if role == "default-root" {
        // The root this user gets with no `MEMO_CACHE_DIR` (the parent removed it).
        let store: DiskStore<String, u64> = DiskOptions::new("test").open(&Config::new());
        store.insert("a".into(), 1);
        store.flush();
        println!("RESULT {} {}", store.dir().display(), store.is_persistent());
        return;
    }
    let root = PathBuf::from(std::env::var_os("MEMO_DISK_ROOT").unwrap());
    let store = open(&root, &Config::new());
    match role.to_str().unwrap() {
        "plant" => {
            assert!(store.is_persistent());
            store.insert("a".into(), 666);
            store.flush();
            println!("RESULT planted");
        }
        "refused" => {
            // Two functions' stores in a refused directory, called three times each.
            let runs = AtomicUsize::new(0);
            let mut errors = 0;
            for function in ["tests::refused_f", "tests::refused_g"] {
                let store: DiskStore<String, u64> =
                    options(&root).function(function, 1).open(&Config::new());
                let cache = Cache::with_store(store);
                for _ in 0..3 {
                    let value = cache.get_or_compute("a", |_| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        1
                    });
                    assert_eq!(value, 1);
                }
                errors += cache.stats().backend_errors;
            }
            println!(
                "RESULT runs={} errors={errors}",
                runs.load(Ordering::Relaxed)
            );
        }
        "refused-writes" => refused_writes(&root),
        "hold-lock" => {
            // Takes the key's lock row, says so, and computes until it is killed.
            let cache = Cache::with_store(store);
            cache.get_or_compute("held", |_| {
                println!("RESULT computing");
                std::thread::sleep(Duration::from_secs(600));
                0
            });
        }
        "write-large" => {
            let store: DiskStore<u64, Vec<u8>> = options(&root).open(&Config::new());
            println!("RESULT writing");
            for i in 0.. {
                store.insert(i % 50, vec![7; 40_000 + usize::try_from(i % 50).unwrap()]);
            }
        }
        "recover" => {
            let tag = std::env::var("MEMO_DISK_TAG").unwrap();
            assert_eq!(store.keys().len(), 2000);
            std::fs::write(root.join(format!("ready-{tag}")), b"").unwrap();
            let go = root.join("go");
            for _ in 0..30_000 {
                if go.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // Reads the damaged pages: the file is found damaged, here and in the other child.
            assert!(store.keys().is_empty());
            store.insert(tag.clone(), 1);
            store.flush();
            println!("RESULT {tag} errors={}", store.counts().errors);
        }
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
        "refresh" => refresh_stale_key(&root),
        "noise" => commit_noise(&root, &store),
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

std::thread_local! {
    /// Whether this thread's next `DiskStore::put` waits for its write to be committed before
    /// it keeps the value in the front.
    static COMMIT_BEFORE_FRONT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// What this thread's next `DiskStore::put` runs once its write is queued.
    static WHEN_QUEUED: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(None) };
}

/// Called by `DiskStore::put` between queueing a write and keeping the value in the front.
pub(super) fn after_queued(db: &Db) {
    if COMMIT_BEFORE_FRONT.replace(false) {
        db.flush();
    }
    if let Some(run) = WHEN_QUEUED.take() {
        run();
    }
}

/// A removal in another process that lands while this one stores a value computed before it
/// (the value queued, not yet committed): once the removal is seen, the value is not read back
/// from the queue, as the writer refuses it (its lock row is gone). A removal that landed
/// before the store is seen by the store itself (`tests/disk.rs`, `…in_another_process…`).
#[test]
fn a_value_queued_as_another_process_removes_its_key_is_not_read_back() {
    let tmp = TempDir::new("removed-while-queued");
    let here = std::sync::Arc::new(Cache::with_store(open(&tmp.0, &Config::new())));
    // The other process: a connection and a change counter of its own.
    let dir = here.store().dir().to_path_buf();
    let conn = rusqlite::Connection::open(dir.join("cache.db")).unwrap();
    let counter = version::Version::open(&dir.join("version")).unwrap();
    let read = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (cache, read_back) = (std::sync::Arc::clone(&here), std::sync::Arc::clone(&read));
    let remove_then_read = move || {
        {
            // The writer waits: the removal lands before the value's commit.
            let _writer = cache.store().db.shared.writer.lock().unwrap();
            conn.execute_batch("DELETE FROM locks; DELETE FROM entries;")
                .unwrap();
            counter.bump();
        }
        *read_back.lock().unwrap() = Some(cache.store().get(&"k"));
    };
    let computed = here.get_or_compute("k", |_| {
        WHEN_QUEUED.set(Some(Box::new(remove_then_read)));
        1
    });
    assert_eq!(computed, 1, "its own caller gets it");
    let read = read.lock().unwrap().take();
    assert_eq!(read, Some(None), "read back after the removal");
    here.store().flush();
    assert_eq!(here.get("k"), None);
    assert_eq!(here.get_or_compute("k", |_| 2), 2);
    assert_eq!(here.store().counts().errors, 0);
}

/// Another store of the function (another process's, as far as the database goes: its own
/// front, flights and generations) removes a key, or clears, while this one computes it: the
/// value computed before is its caller's alone, neither stored nor kept in the front, also when
/// the writer refuses it before the front takes it (`raced`), and after the CLI's `clear`.
#[test]
fn a_value_computed_before_another_store_removed_its_key_is_not_stored() {
    let tmp = TempDir::new("begun-before");
    let here = std::sync::Arc::new(Cache::with_store(open(&tmp.0, &Config::new())));
    let there = Cache::with_store(open(&tmp.0, &Config::new()));
    let directory = admin::DiskDirectory::open(here.store().dir()).unwrap();
    for key in ["removed", "cleared", "raced", "cleared by the directory"] {
        let (started, on_start) = std::sync::mpsc::channel();
        let (go, on_go) = std::sync::mpsc::channel::<()>();
        let leader = {
            let here = std::sync::Arc::clone(&here);
            std::thread::spawn(move || {
                here.get_or_compute(key, |_| {
                    started.send(()).unwrap();
                    on_go.recv().unwrap();
                    COMMIT_BEFORE_FRONT.set(key == "raced");
                    1
                })
            })
        };
        on_start.recv().unwrap();
        match key {
            "cleared" => there.clear(),
            "cleared by the directory" => {
                let functions = directory.functions();
                let function = functions.iter().find(|f| f.function == "tests::f");
                directory.clear(function.unwrap());
            }
            _ => assert!(!there.invalidate(key), "nothing stored yet"),
        }
        go.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), 1, "its own caller gets it");
        here.store().flush();
        assert_eq!(here.get(key), None, "{key}: stored, or kept in the front");
        assert_eq!(there.get(key), None, "{key}");
        assert_eq!(there.get_or_compute(key, |_| 2), 2);
        there.store().flush();
        assert_eq!(here.get(key), Some(2), "{key}");
    }
}

/// A call begun on one store after another store of the namespace removed a key (or cleared)
/// returned, while this store computes the key: it joins that computation (another store's
/// removal does not reach this one's flights), and must not be handed the value computed before
/// the removal; it looks again, and computes. Before, it got the leader's 1.
#[test]
fn a_call_begun_after_another_stores_removal_is_not_handed_a_value_computed_before() {
    let tmp = TempDir::new("joined-after-removal");
    let here = std::sync::Arc::new(Cache::with_store(open(&tmp.0, &Config::new())));
    let there = Cache::with_store(open(&tmp.0, &Config::new()));
    for key in ["removed", "cleared"] {
        let (started, on_start) = std::sync::mpsc::channel();
        let (go, on_go) = std::sync::mpsc::channel::<()>();
        let leader = {
            let here = std::sync::Arc::clone(&here);
            std::thread::spawn(move || {
                here.get_or_compute(key, |_| {
                    started.send(()).unwrap();
                    on_go.recv().unwrap();
                    1
                })
            })
        };
        on_start.recv().unwrap();
        if key == "cleared" {
            there.clear();
        } else {
            assert!(!there.invalidate(key), "nothing stored yet");
        }
        // Begun after the removal returned; pending: it waits for the leader.
        let mut joined =
            std::pin::pin!(here.get_or_insert_with_async(key.to_string(), async { 2 }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            joined.as_mut().poll(&mut cx).is_pending(),
            "{key}: it joins"
        );
        go.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), 1, "its own caller gets it");
        assert_eq!(
            wait(joined),
            2,
            "{key}: handed the value computed before the removal"
        );
        assert_eq!(here.get(key), Some(2), "{key}");
        here.store().flush();
        assert_eq!(there.get(key), Some(2), "{key}");
    }
}

/// A claim's value of a key that another store of the namespace inserted since the claim was
/// taken, with the insert's write still queued or already committed: the insert is newer, and
/// this store reads it, never the claim's value (which the writer refuses). Before, the value
/// was queued after the insert's, and read back in its place until the writer refused it.
#[test]
fn a_claims_value_is_not_read_over_another_stores_insert_made_since() {
    for committed in [false, true] {
        let tmp = TempDir::new("claim-then-insert");
        let (a, b) = (open(&tmp.0, &Config::new()), open(&tmp.0, &Config::new()));
        let key = "k".to_string();
        let hash = a.hash_of(&&key);
        let Claim::Compute(lease) = wait(a.claim_async(hash, &key)) else {
            panic!("a miss computes")
        };
        // Not committed: the writer waits meanwhile.
        let writer = (!committed).then(|| a.db.shared.writer.lock().unwrap());
        b.insert(key.clone(), 2);
        if committed {
            b.flush();
        }
        wait(a.insert_claimed_async(hash, key.clone(), 1, Duration::ZERO, lease));
        assert_eq!(a.get(&"k"), Some(2), "committed: {committed}");
        drop(writer);
        a.flush();
        assert_eq!(a.get(&"k"), Some(2), "committed: {committed}");
        assert_eq!(open(&tmp.0, &Config::new()).get(&"k"), Some(2));
    }
}

/// A claim's value queued just before another store of the namespace inserts the key, and a
/// read of this store finds that insert, all before the value is kept in the front: it is not
/// kept there, where the next read would find it over the insert.
#[test]
fn a_claims_value_queued_before_another_stores_insert_is_not_kept_over_it() {
    let tmp = TempDir::new("queued-then-inserted");
    let a = std::sync::Arc::new(open(&tmp.0, &Config::new()));
    let b = std::sync::Arc::new(open(&tmp.0, &Config::new()));
    let key = "k".to_string();
    let hash = a.hash_of(&&key);
    let Claim::Compute(lease) = wait(a.claim_async(hash, &key)) else {
        panic!("a miss computes")
    };
    let read = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (here, there, read_back) = (
        std::sync::Arc::clone(&a),
        std::sync::Arc::clone(&b),
        std::sync::Arc::clone(&read),
    );
    WHEN_QUEUED.set(Some(Box::new(move || {
        there.insert("k".to_string(), 2);
        *read_back.lock().unwrap() = Some(here.get(&"k"));
    })));
    wait(a.insert_claimed_async(hash, key, 1, Duration::ZERO, lease));
    assert_eq!(
        *read.lock().unwrap(),
        Some(Some(2)),
        "read after the insert"
    );
    assert_eq!(
        a.get(&"k"),
        Some(2),
        "the claim's value kept over the insert"
    );
    a.flush();
    assert_eq!(a.get(&"k"), Some(2));
    assert_eq!(b.get(&"k"), Some(2));
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

// Issue 17, item 8: a new store, a key stored and at once removed (one batch: the store's
// totals row did not exist yet, the batch failed and took the lock's release with it), then the
// key again: that call waited the lease, and the error was counted.
#[test]
fn a_key_stored_and_removed_at_once_leaves_no_lock_behind() {
    for how in ["invalidate", "clear"] {
        let tmp = TempDir::new("stall");
        let store: DiskStore<u64, String> = options(&tmp.0)
            .lease(Duration::from_secs(5))
            .open(&Config::new());
        let cache = Cache::with_store(store);
        let runs = AtomicUsize::new(0);
        let compute = |k: &u64| {
            runs.fetch_add(1, Ordering::Relaxed);
            format!("v{k}")
        };
        assert_eq!(cache.get_or_compute(&1, compute), "v1");
        if how == "invalidate" {
            assert!(cache.invalidate(&1));
        } else {
            cache.clear();
        }
        assert_eq!(cache.get_or_compute(&1, compute), "v1");
        assert_eq!(cache.get_or_compute(&1, compute), "v1");
        cache.store().flush();
        assert_eq!(runs.load(Ordering::Relaxed), 2, "{how}");
        assert_eq!(cache.store().waits.load(Ordering::Relaxed), 0, "{how}");
        assert_eq!(cache.stats().backend_errors, 0, "{how}");
        // Still on disk: another process (a new database of the directory) reads it.
        drop(cache);
        let store: DiskStore<u64, String> = options(&tmp.0).open(&Config::new());
        assert_eq!(store.get(&&1).as_deref(), Some("v1"), "{how}");
    }
}

/// A lock row of this process whose caller is gone (its release was lost) is taken over at
/// once: a process never waits for itself.
#[test]
fn a_lock_of_this_process_that_no_caller_holds_is_taken_over() {
    let tmp = TempDir::new("own-lock");
    let store: DiskStore<u64, u64> = options(&tmp.0)
        .lease(Duration::from_secs(5))
        .open(&Config::new());
    let encoded = key::encode(&7_u64).unwrap();
    store
        .db
        .shared
        .read(&store.space, |conn| {
            conn.execute(
                "INSERT INTO locks (ns, key, pid, token, expires) VALUES (?1, ?2, ?3, 12345, ?4)",
                rusqlite::params![
                    &store.ns[..],
                    encoded,
                    i64::from(std::process::id()),
                    i64::MAX
                ],
            )
        })
        .unwrap();
    let cache = Cache::with_store(store);
    assert_eq!(cache.get_or_compute(&7, |k| k * 2), 14);
    assert_eq!(cache.store().waits.load(Ordering::Relaxed), 0);
    assert_eq!(cache.stats().backend_errors, 0);
    // Taken over and released, not left for its lease.
    cache.store().flush();
    assert_eq!(lock_rows(&tmp.0), 0);
}

/// A process killed (`kill -9`) while it holds a key's lock row, between its claim and its
/// write, leaves the row; another process's caller of the key takes it over at once (its
/// holder is gone), computes once, and leaves no row, instead of waiting out the lease.
#[test]
fn a_lock_of_a_killed_process_is_taken_over_at_once() {
    use std::io::BufRead;
    let tmp = TempDir::new("killed-holder");
    let mut child = spawn_child(&tmp.0, "hold-lock", &[]);
    let stdout = child.stdout.take().unwrap();
    let holding = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("RESULT computing"));
    assert!(holding, "the child took the lock and computes");
    assert_eq!(lock_rows(&tmp.0), 1, "the child's lock row");
    child.kill().unwrap();
    child.wait().unwrap();
    let store: DiskStore<String, u64> = options(&tmp.0)
        .lease(Duration::from_secs(600))
        .open(&Config::new());
    let cache = Cache::with_store(store);
    let runs = AtomicUsize::new(0);
    let value = cache.get_or_compute("held", |_| {
        runs.fetch_add(1, Ordering::Relaxed);
        7
    });
    assert_eq!(value, 7);
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert_eq!(
        cache.store().waits.load(Ordering::Relaxed),
        0,
        "no wait for the dead"
    );
    cache.store().flush();
    assert_eq!(lock_rows(&tmp.0), 0, "taken over and released");
}

fn lock_rows(root: &Path) -> i64 {
    rusqlite::Connection::open(db_file(root))
        .unwrap()
        .query_row("SELECT count(*) FROM locks", [], |row| row.get(0))
        .unwrap()
}

/// A batch that fails (here: its value file cannot be written) still releases its locks, or
/// other processes' callers of the key would wait for the lease.
#[test]
fn a_failed_write_still_releases_its_lock() {
    let tmp = TempDir::new("failed-release");
    let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
    store.insert(0, vec![0; 10]);
    store.flush();
    // `values` a file: no value file can be written.
    let values = tmp.0.join("test").join("values");
    let _ = std::fs::remove_dir_all(&values);
    std::fs::write(&values, b"").unwrap();
    let cache = Cache::with_store(store);
    assert_eq!(cache.get_or_compute(&1, |_| vec![1; 40_000]).len(), 40_000);
    cache.store().flush();
    assert!(cache.stats().backend_errors >= 1);
    assert_eq!(lock_rows(&tmp.0), 0);
}

/// The names of the value files, by the key (a `u32`) whose row names them.
fn value_file_names(root: &Path) -> Vec<(u32, String)> {
    let conn = rusqlite::Connection::open(db_file(root)).unwrap();
    let mut statement = conn
        .prepare("SELECT key, file FROM entries WHERE file IS NOT NULL ORDER BY key")
        .unwrap();
    statement
        .query_map([], |row| {
            let key: Vec<u8> = row.get(0)?;
            Ok((postcard::from_bytes(&key).unwrap(), row.get(1)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

// Issue 17, item 7: two swapped value files returned each other's values.
#[test]
fn a_value_file_of_another_key_or_cut_short_is_a_miss() {
    let tmp = TempDir::new("swapped");
    {
        let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        for k in 1..=3 {
            store.insert(k, vec![u8::try_from(k).unwrap(); 40_000]);
        }
    }
    let values = tmp.0.join("test").join("values");
    let names = value_file_names(&tmp.0);
    assert_eq!(names.len(), 3);
    let (one, two, three) = (&names[0].1, &names[1].1, &names[2].1);
    std::fs::rename(values.join(one), values.join("swap")).unwrap();
    std::fs::rename(values.join(two), values.join(one)).unwrap();
    std::fs::rename(values.join("swap"), values.join(two)).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(values.join(three))
        .unwrap();
    file.set_len(30_000).unwrap();
    drop(file);
    let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
    // Compared by length and first byte: a failure prints three numbers, not 40,000.
    let first = |key: u32| store.get(&&key).map(|value| (value.len(), value[0]));
    assert_eq!((first(1), first(2), first(3)), (None, None, None));
    assert_eq!(store.counts().errors, 3);
    // The rows went: the next values are stored afresh.
    store.insert(1, vec![9; 40_000]);
    store.flush();
    assert_eq!(first(1), Some((40_000, 9)));
    assert_eq!(store.len(), 1);
}

/// Sets the modification time of every file in `dir` to two hours ago.
fn age_files(dir: &Path) {
    let then = std::time::SystemTime::now() - Duration::from_secs(2 * 60 * 60);
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(then).unwrap();
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// Issue 17, item 7: value files no row names (a process killed between writing a file and
// committing its row, a write that failed) were never removed.
#[test]
fn old_value_files_no_row_names_are_swept_at_open() {
    let tmp = TempDir::new("orphans");
    let values = tmp.0.join("test").join("values");
    {
        let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        store.insert(1, vec![1; 40_000]);
    }
    let kept = value_file_names(&tmp.0)[0].1.clone();
    for name in ["0a.val", "0b.val.tmp"] {
        std::fs::write(values.join(name), b"orphan").unwrap();
    }
    age_files(&values);
    // Young: perhaps another process's file whose row is not committed yet.
    std::fs::write(values.join("0c.val"), b"young").unwrap();
    let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
    // The writer sweeps when it starts, before its first batch.
    store.insert(2, vec![2; 10]);
    store.flush();
    let mut expected = vec!["0c.val".to_string(), kept];
    expected.sort();
    assert_eq!(file_names(&values), expected);
    assert_eq!(store.get(&&1), Some(vec![1; 40_000]));
}

/// Processes killed while writing large values (`kill -9`) leave files that, once old, are
/// swept: every file left is one a row names.
#[test]
fn value_files_of_killed_writers_are_swept() {
    let tmp = TempDir::new("killed");
    let values = tmp.0.join("test").join("values");
    for round in 0..6_u64 {
        let mut child = spawn_child(&tmp.0, "write-large", &[]);
        // Until it writes files, then a little more, different each round.
        for _ in 0..10_000 {
            if std::fs::read_dir(&values).is_ok_and(|mut dir| dir.next().is_some()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20 + 15 * round));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let before = file_names(&values).len();
    age_files(&values);
    let store: DiskStore<u64, Vec<u8>> = options(&tmp.0).open(&Config::new());
    store.insert(1000, vec![1; 10]);
    store.flush();
    let mut named: Vec<String> = value_file_names_u64(&tmp.0);
    named.sort();
    assert_eq!(
        file_names(&values),
        named,
        "{before} files before the sweep"
    );
}

fn value_file_names_u64(root: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db_file(root)).unwrap();
    let mut statement = conn
        .prepare("SELECT file FROM entries WHERE file IS NOT NULL")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

// Issue 17, item 7: two processes finding the database damaged at once each moved "the" file
// aside (the second moved the first one's new database), and went on with different files.
#[test]
fn processes_recovering_a_damaged_database_at_once_converge_on_one() {
    let tmp = TempDir::new("recover-together");
    {
        let store = open(&tmp.0, &Config::new());
        for i in 0..2000_u64 {
            store.insert(format!("key number {i}"), i);
        }
    }
    let children: Vec<_> = ["first", "second"]
        .iter()
        .map(|tag| spawn_child(&tmp.0, "recover", &[("MEMO_DISK_TAG", (*tag).to_string())]))
        .collect();
    for tag in ["first", "second"] {
        let ready = tmp.0.join(format!("ready-{tag}"));
        for _ in 0..30_000 {
            if ready.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Every page but the first overwritten, under both children.
    {
        let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    damage_after_first_page(&tmp.0);
    std::fs::write(tmp.0.join("go"), b"").unwrap();
    let mut seen = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.push(text);
    }
    assert_eq!(corrupt_files(&tmp.0), 1, "{seen:?}");
    let mut keys = open(&tmp.0, &Config::new()).keys();
    keys.sort();
    assert_eq!(
        keys,
        vec!["first".to_string(), "second".to_string()],
        "{seen:?}"
    );
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `args` as user `uid` through `setpriv`.
fn as_user(uid: u32, args: &[&str]) {
    let id = uid.to_string();
    let status = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{args:?} as {uid}");
}

/// A directory under `/tmp` that user 65534 creates (`mode`), where that user stored a value
/// of key `a` through this store's options; removed on drop.
fn planted_by_another_user(tag: &str, mode: &str) -> TempDir {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "memo-foreign-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.to_str().unwrap();
    as_user(65534, &["mkdir", "-m", "0700", path]);
    assert_eq!(run_child_as(65534, &dir, "plant", &[]), "planted");
    as_user(65534, &["chmod", mode, path]);
    TempDir(dir)
}

/// The store refuses its directory: nothing is read from it or written to it, calls compute.
fn assert_refused(root: &Path) {
    let store = open(root, &Config::new());
    assert!(!store.is_persistent(), "{}", root.display());
    let cache = Cache::with_store(store);
    assert_eq!(cache.get_or_compute("a", |_| 1), 1, "{}", root.display());
    assert_eq!(cache.stats().backend_errors, 1);
}

// Issue 17, item 4: a cache directory another user created `0777` was used as is, and the
// values they planted were returned.
#[test]
fn a_root_another_user_owns_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root, to act as two users");
        return;
    }
    for mode in ["0777", "0755", "0700"] {
        let theirs = planted_by_another_user("owner", mode);
        assert_refused(&theirs.0);
    }
}

/// A row keeps the expiry the build that wrote it gave it: a later build's `ttl` applies to the
/// rows it writes (as the README says); a new `version` sets the old rows aside.
#[test]
fn a_row_keeps_the_expiry_its_writer_gave_it_until_the_version_changes() {
    let tmp = TempDir::new("writers-ttl");
    {
        let store = open(&tmp.0, &Config::new());
        store.insert("a".into(), 1);
        store.flush();
    }
    let (clock, mock) = Clock::mock();
    let store = open(&tmp.0, &Config::new().ttl(Duration::from_secs(60)));
    store.set_clock(clock.clone());
    mock.increment(Duration::from_secs(24 * 3600));
    assert_eq!(store.get(&"a"), Some(1), "kept as its writer stored it");
    store.insert("b".into(), 2);
    mock.increment(Duration::from_secs(61));
    assert_eq!(store.get(&"b"), None, "this build's rows expire");
    let next: DiskStore<String, u64> = options(&tmp.0)
        .function("tests::f", 2)
        .open(&Config::new().ttl(Duration::from_secs(60)));
    assert_eq!(next.get(&"a"), None, "another version");
}

/// A directory above the root that another user owns, or that another group may write to
/// without the sticky bit: they could rename the root away and put their own there. The
/// user's own group may write to it (a `umask` of `002`).
#[test]
fn a_root_under_a_directory_others_can_rename_in_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!("skipped: needs root, to act as two users");
        return;
    }
    let under = |tag: &str, mode: u32, owner: Option<u32>, group: Option<u32>| {
        let tmp = TempDir::new(tag);
        let above = tmp.0.join("above");
        std::fs::create_dir(&above).unwrap();
        std::fs::set_permissions(&above, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&above, owner, group).unwrap();
        let root = above.join("mine");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        (tmp, root)
    };
    let (_tmp, theirs) = under("above-owner", 0o755, Some(65534), None);
    assert_refused(&theirs);
    let (_tmp, group_writable) = under("above-group", 0o775, None, Some(65534));
    assert_refused(&group_writable);
    let (_tmp, sticky) = under("above-sticky", 0o1775, None, Some(65534));
    assert!(open(&sticky, &Config::new()).is_persistent(), "sticky");
    let (_tmp, own_group) = under("above-own-group", 0o775, None, None);
    assert!(
        open(&own_group, &Config::new()).is_persistent(),
        "own group"
    );
}

#[test]
fn a_root_others_can_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o777, 0o770, 0o757] {
        let tmp = TempDir::new("writable");
        open(&tmp.0, &Config::new()).insert("a".into(), 666);
        std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_refused(&tmp.0);
        // In a process of its own: one warning, whatever the functions and calls.
        let out = spawn_child(&tmp.0, "refused", &[])
            .wait_with_output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(stdout.contains("RESULT runs=2 errors=2"), "{stdout}");
        // With `tracing`, the warning is an event for the subscriber, not a line on stderr.
        if cfg!(not(feature = "tracing")) {
            assert_eq!(stderr.matches("refusing to use it").count(), 1, "{stderr}");
        }
        // The store's own directory, too.
        std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(tmp.0.join("test"), std::fs::Permissions::from_mode(mode))
            .unwrap();
        assert_refused(&tmp.0);
    }
}

#[test]
fn a_symlink_of_another_user_or_to_their_directory_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root, to act as two users");
        return;
    }
    // Their symlink, even to a directory of ours: they can point it elsewhere at any time.
    let links = TempDir::new("links");
    std::fs::set_permissions(
        &links.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let ours = TempDir::new("ours");
    open(&ours.0, &Config::new()).insert("a".into(), 666);
    let their_link = links.0.join("their-link");
    as_user(
        65534,
        &[
            "ln",
            "-s",
            ours.0.to_str().unwrap(),
            their_link.to_str().unwrap(),
        ],
    );
    assert_refused(&their_link);
    // Our symlink to their directory.
    let theirs = planted_by_another_user("link-target", "0700");
    let our_link = links.0.join("our-link");
    std::os::unix::fs::symlink(&theirs.0, &our_link).unwrap();
    assert_refused(&our_link);
    // Our symlink to our directory is ours to make.
    let fine = links.0.join("fine");
    std::os::unix::fs::symlink(&ours.0, &fine).unwrap();
    assert_eq!(open(&fine, &Config::new()).get(&"a"), Some(666));
}

#[test]
fn a_database_file_another_user_owns_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root, to act as two users");
        return;
    }
    let tmp = TempDir::new("their-db");
    open(&tmp.0, &Config::new()).insert("a".into(), 666);
    std::os::unix::fs::chown(db_file(&tmp.0), Some(65534), Some(65534)).unwrap();
    assert_refused(&tmp.0);
}

// Issue 17, item 4: a database file `0666` made SQLite create its `-wal` and `-shm` `0666`.
#[test]
fn a_loose_database_file_and_its_side_files_are_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("loose");
    {
        let store = open(&tmp.0, &Config::new());
        store.insert("a".into(), 1);
    }
    let loose = std::fs::Permissions::from_mode(0o666);
    std::fs::set_permissions(db_file(&tmp.0), loose.clone()).unwrap();
    std::fs::set_permissions(tmp.0.join("test").join("version"), loose).unwrap();
    let store = open(&tmp.0, &Config::new());
    store.insert("b".into(), 2);
    store.flush();
    let dir = tmp.0.join("test");
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    for name in [
        "cache.db",
        "cache.db-wal",
        "cache.db-shm",
        "version",
        "open.lock",
    ] {
        assert_eq!(mode(name), 0o600, "{name}");
    }
    assert_eq!(store.get(&"a"), Some(1));
}

// Issue 17, item 4: with no home directory, the root was the shared `<tmp>/memo-cache`.
#[test]
fn without_a_home_the_root_is_the_users_own_temporary_directory() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        eprintln!("skipped: needs root, to act as a user without a home");
        return;
    }
    // User 12345 has no entry in /etc/passwd, so no home directory.
    let tmp = TempDir::new("no-home");
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let run = || {
        let mut command = child_command(Some(12345), &tmp.0, "default-root", &[]);
        command
            .env_remove("HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("MEMO_CACHE_DIR")
            .env("TMPDIR", &tmp.0);
        result_of(&command.output().unwrap())
    };
    // With `$XDG_CACHE_HOME` (and no `MEMO_CACHE_DIR`): its `memo`.
    let xdg = tmp.0.join("xdg");
    let mut command = child_command(None, &tmp.0, "default-root", &[]);
    command
        .env_remove("MEMO_CACHE_DIR")
        .env("XDG_CACHE_HOME", &xdg);
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("RESULT {} true", xdg.join("memo/test").display())),
        "{text}"
    );
    let own = tmp.0.join("memo-12345");
    assert_eq!(run(), format!("{} true", own.join("test").display()));
    let meta = std::fs::metadata(&own).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (12345, 0o700));
    // Made first by another user (here root): refused.
    std::fs::remove_dir_all(&own).unwrap();
    std::fs::create_dir(&own).unwrap();
    assert_eq!(run(), format!("{} false", own.join("test").display()));
}

/// an async caller waiting for another process's computation of its key (a lock row
/// of a live process: init, pid 1) leaves its executor's thread free. On a current-thread
/// runtime, another task keeps running while it waits; its value then arrives.
#[test]
fn an_async_caller_waiting_for_another_process_leaves_its_thread_free() {
    static KEY: u64 = 7;
    static TICKS: AtomicUsize = AtomicUsize::new(0);
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let tmp = TempDir::new("async-wait");
    let store: DiskStore<u64, u64> = options(&tmp.0)
        .lease(Duration::from_secs(5))
        .open(&Config::new());
    let encoded = key::encode(&KEY).unwrap();
    store
        .db
        .shared
        .read(&store.space, |conn| {
            conn.execute(
                "INSERT INTO locks (ns, key, pid, token, expires) VALUES (?1, ?2, 1, 999, ?3)",
                rusqlite::params![&store.ns[..], encoded, i64::MAX],
            )
        })
        .unwrap();
    let store: &'static DiskStore<u64, u64> = Box::leak(Box::new(store));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The other process: computes for a while, then stores the value.
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        store.insert(KEY, 14);
        store.flush();
    });
    let waiter = runtime.spawn(async move {
        let claim = crate::Store::claim_async(store, store.hash_of(&&KEY), &KEY).await;
        DONE.store(true, Ordering::SeqCst);
        (claim, TICKS.load(Ordering::SeqCst))
    });
    runtime.spawn(async {
        while !DONE.load(Ordering::SeqCst) {
            TICKS.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    });
    let (claim, ticks) = runtime.block_on(waiter).unwrap();
    holder.join().unwrap();
    assert!(
        matches!(claim, Claim::Found(14)),
        "the other process's value"
    );
    assert!(
        ticks > 10,
        "the thread was free while the caller waited: {ticks} ticks"
    );
    assert!(store.waits.load(Ordering::Relaxed) >= 1);
}

/// Issue 19: a background refresh takes the key's lock row only when no one holds it (another
/// refresh, or a miss computing the key), so one process refreshes a key; the value's write
/// releases it.
#[test]
fn a_background_refresh_claims_the_key_only_when_no_one_holds_it() {
    let tmp = TempDir::new("refresh-claim");
    let config = Config::new()
        .ttl(Duration::from_secs(60))
        .stale(Duration::from_secs(60));
    let (a, b) = (open(&tmp.0, &config), open(&tmp.0, &config));
    let claim_refresh = |store: &DiskStore<String, u64>, key| wait(store.claim_refresh_async(key));
    let key = "hot".to_string();
    let lease = claim_refresh(&a, &key).expect("the lock is free");
    assert!(claim_refresh(&b, &key).is_none(), "held by a's refresh");
    let cost = Duration::from_millis(5);
    wait(a.insert_claimed_async(a.hash_of(&&key), key.clone(), 1, cost, lease));
    a.flush();
    drop(claim_refresh(&b, &key).expect("released with the value"));
    let cold = "cold".to_string();
    let Claim::Compute(miss) = wait(a.claim_async(a.hash_of(&&cold), &cold)) else {
        panic!("a miss computes")
    };
    assert!(claim_refresh(&b, &cold).is_none(), "held by the miss");
    drop(miss);
    a.flush();
    assert!(claim_refresh(&b, &cold).is_some());
}

/// A claim's value and release still queued when this process claims the key again (a due
/// read's refresh right after the miss): the row is its own, its token no longer held, so it is
/// taken over; the queued value must be stored first, under the row it was computed under (a
/// row taken over before would refuse it). The writer is held back meanwhile.
#[test]
fn a_value_queued_under_a_released_row_is_stored_when_the_row_is_taken_over() {
    let tmp = TempDir::new("queued-release");
    let config = Config::new()
        .ttl(Duration::from_secs(60))
        .stale(Duration::from_secs(60));
    let store = open(&tmp.0, &config);
    let key = "hot".to_string();
    let (held, on_held) = std::sync::mpsc::channel();
    let writer = {
        let shared = Arc::clone(&store.db);
        std::thread::spawn(move || {
            let _writer = shared.shared.writer.lock().unwrap();
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        })
    };
    on_held.recv().unwrap();
    let Claim::Compute(lease) = wait(store.claim_async(store.hash_of(&&key), &key)) else {
        panic!("a miss computes")
    };
    let cost = Duration::from_millis(5);
    wait(store.insert_claimed_async(store.hash_of(&&key), key.clone(), 1, cost, lease));
    drop(wait(store.claim_refresh_async(&key)).expect("its own released row"));
    writer.join().unwrap();
    store.flush();
    assert_eq!(open(&tmp.0, &config).get(&"hot"), Some(1), "stored on disk");
}

/// Issue 19: with `stale`, the row outlives the time to live by `stale`, and the value is
/// served (due for a refresh) until then; without a read from disk it is gone past both.
#[test]
fn a_stale_row_is_served_due_until_ttl_and_stale_have_passed() {
    let tmp = TempDir::new("stale-row");
    let config = Config::new()
        .ttl(Duration::from_secs(10))
        .stale(Duration::from_secs(5));
    let store = open(&tmp.0, &config);
    let (clock, mock) = Clock::mock();
    store.set_clock(clock.clone());
    store.insert("k".to_string(), 7);
    store.flush();
    let renewing =
        |store: &DiskStore<String, u64>| store.get_renewing_hashed(store.hash_of(&"k"), &"k");
    assert_eq!(renewing(&store), Some((7, false)), "fresh");
    mock.increment(Duration::from_secs(12));
    assert_eq!(
        renewing(&store),
        Some((7, true)),
        "stale: this caller refreshes"
    );
    assert_eq!(renewing(&store), Some((7, false)), "one refresh at a time");
    // Another process's store (no copy in memory) reads the row.
    let other = open(&tmp.0, &config);
    other.set_clock(clock);
    assert_eq!(renewing(&other), Some((7, true)), "stale on disk too");
    mock.increment(Duration::from_secs(2));
    assert_eq!(
        renewing(&store).map(|(v, _)| v),
        Some(7),
        "14 s: still stale"
    );
    mock.increment(Duration::from_secs(2));
    assert_eq!(renewing(&store), None, "past ttl + stale");
    assert_eq!(other.get(&"k"), None);
}

/// A second of time to live, then a minute of `stale` (wall time: processes share it).
fn stale_config() -> Config {
    Config::new()
        .ttl(Duration::from_secs(1))
        .stale(Duration::from_secs(60))
}

/// A refresh that records each run in `MEMO_DISK_COUNT` and takes long enough that the other
/// process finds the value due meanwhile.
fn count_and_compute(_: String) -> u64 {
    use std::io::Write;
    let count_file = PathBuf::from(std::env::var_os("MEMO_DISK_COUNT").unwrap());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&count_file)
        .unwrap();
    writeln!(file, "{}", std::process::id()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    2
}

/// The child of [`two_processes_reading_a_stale_key_refresh_it_once`]: reads the stale value,
/// refreshes it in the background if it takes the lock, and waits for the new value.
fn refresh_stale_key(root: &Path) {
    let config = stale_config();
    let store = options(root).open(&config);
    let cache: &'static Cache<String, u64, DiskStore<String, u64>> =
        Box::leak(Box::new(Cache::from_parts(store, Some(&config), "")));
    let hash = cache.store().hash_of(&"shared");
    let served = cache.hit_renewing(hash, &"shared", |owned, since| {
        cache.spawn_refresh(owned, since, |key| Some(count_and_compute(key)), |_| true);
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.store().peek(&"shared") != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "never refreshed: served {served:?}, {:?}",
            cache.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("RESULT served={served:?}");
}

/// Issue 19: two processes reading one stale key refresh it once: the refresh takes the key's
/// lock row only if it is free, and the other process serves the stale value until the new one
/// is on disk.
#[test]
fn two_processes_reading_a_stale_key_refresh_it_once() {
    let tmp = TempDir::new("cross-refresh");
    let count = tmp.0.join("executions");
    let store: DiskStore<String, u64> = options(&tmp.0).open(&stale_config());
    store.insert("shared".into(), 1);
    store.flush();
    // Past the time to live (wall time), within `stale`.
    std::thread::sleep(Duration::from_millis(1_100));
    let env = [("MEMO_DISK_COUNT", count.display().to_string())];
    let children = [
        spawn_child(&tmp.0, "refresh", &env),
        spawn_child(&tmp.0, "refresh", &env),
    ];
    for child in children {
        let served = result_of(&child.wait_with_output().unwrap());
        assert!(served.starts_with("served=Some("), "{served}");
    }
    let executions = std::fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(executions, 1, "one refresh across the two processes");
    assert_eq!(store.get(&"shared"), Some(2));
}

/// A broken disk (damaged rows, refused writes, a writer that panics, a database that cannot be
/// reopened, a fork) never fails or hangs a call, and never serves a removed value here.
mod disk_faults {
    use super::*;

    /// Plants `size` in every row of the store's database.
    fn plant_size(root: &Path, size: i64) {
        let conn = rusqlite::Connection::open(db_file(root)).unwrap();
        conn.execute("UPDATE entries SET size = ?1", [size])
            .unwrap();
    }

    /// Rows of the store's database, in any namespace.
    fn rows(root: &Path) -> i64 {
        let conn = rusqlite::Connection::open(db_file(root)).unwrap();
        conn.query_row("SELECT count(*) FROM entries", [], |row| row.get(0))
            .unwrap()
    }

    /// Makes the writer's connection refuse every write (as a disk that refuses them does).
    fn refuse_writes(store: &DiskStore<u32, Vec<u8>>, refuse: bool) {
        let writer = store.db.shared.writer.lock().unwrap();
        writer
            .as_ref()
            .unwrap()
            .pragma_update(None, "query_only", refuse)
            .unwrap();
    }

    /// A large value's row whose `size` was damaged to `size`: a miss, counted, and the row goes.
    fn a_damaged_size_is_a_miss(tag: &str, size: i64) {
        let tmp = TempDir::new(tag);
        {
            let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
            store.insert(1, vec![1; 40_000]);
            store.flush();
        }
        plant_size(&tmp.0, size);
        let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        assert_eq!(store.get(&&1), None);
        store.flush();
        assert_eq!(store.counts().errors, 1);
        assert_eq!(rows(&tmp.0), 0);
    }

    /// Allocated up front, this size aborted the process.
    #[test]
    fn a_huge_size_column_is_a_miss() {
        a_damaged_size_is_a_miss("size-huge", 1 << 46);
    }

    #[test]
    fn a_negative_size_column_is_a_miss() {
        a_damaged_size_is_a_miss("size-negative", -1);
    }

    #[test]
    fn a_size_column_other_than_the_files_is_a_miss() {
        a_damaged_size_is_a_miss("size-other", 100 << 20);
    }

    /// Summing two planted sizes overflowed in the writer, whose thread died; `clear` then waited
    /// for ever.
    #[test]
    fn huge_size_columns_do_not_stop_the_writer() {
        let tmp = TempDir::new("size-sum");
        {
            let store = open(&tmp.0, &Config::new());
            store.insert("a".into(), 1);
            store.insert("b".into(), 2);
            store.flush();
        }
        plant_size(&tmp.0, i64::MAX / 2 + 1);
        let (done, finished) = std::sync::mpsc::channel();
        let root = tmp.0.clone();
        std::thread::spawn(move || {
            let store = open(&root, &Config::new());
            store.clear();
            store.insert("c".into(), 3);
            let _ = done.send((store.len(), store.keys()));
        });
        let (len, keys) = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("clear still waits");
        assert_eq!((len, keys), (1, vec!["c".to_string()]));
    }

    /// A panic in the writer fails its batch (counted), and the thread goes on: `clear`, `len`,
    /// `keys` and `flush` return, and later writes land.
    #[test]
    fn a_panic_in_the_writer_fails_its_batch_only() {
        let tmp = TempDir::new("writer-panic");
        let (done, finished) = std::sync::mpsc::channel();
        let root = tmp.0.clone();
        std::thread::spawn(move || {
            let store = open(&root, &Config::new());
            store.insert("a".into(), 1);
            store.insert(writer::PANIC_KEY.into(), 2);
            store.flush();
            let errors = store.counts().errors;
            store.insert("b".into(), 3);
            let keys = store.keys();
            store.clear();
            let _ = done.send((errors, keys, store.len()));
        });
        let (errors, mut keys, len) = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("the store still waits for its writer");
        keys.sort();
        assert_eq!(errors, 1);
        // The failed batch's values are removed from disk too; only the later write landed.
        assert_eq!((keys, len), (vec!["b".to_string()], 0));
    }

    /// A batch failed for another function's large value (its file cannot be written; a full
    /// disk does the same) and took the removal of key 1 with it: the removal is written alone.
    #[test]
    fn a_removal_in_a_failed_batch_is_written_alone() {
        let tmp = TempDir::new("lost-delete");
        let small: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        let large: DiskStore<u32, Vec<u8>> = options(&tmp.0)
            .function("tests::large", 1)
            .open(&Config::new());
        small.insert(1, vec![1; 10]);
        small.flush();
        let values = tmp.0.join("test").join("values");
        std::fs::write(&values, b"").unwrap();
        large.insert(2, vec![2; 40_000]);
        assert!(small.remove(&&1));
        small.flush();
        assert_eq!(small.get(&&1), None, "the removed value is served again");
        assert_eq!(large.get(&&2), None);
        assert!(small.counts().errors + large.counts().errors >= 1);
        // Other processes see it gone too.
        assert_eq!(rows(&tmp.0), 0);
    }

    /// A large value whose write failed does not bring back the value it replaced.
    #[test]
    fn a_failed_overwrite_does_not_serve_the_old_value() {
        let tmp = TempDir::new("lost-put");
        let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        store.insert(1, vec![1; 40_000]);
        store.flush();
        // Writable by the group: refused for new files; the old one still reads.
        let values = tmp.0.join("test").join("values");
        std::fs::set_permissions(&values, std::os::unix::fs::PermissionsExt::from_mode(0o770))
            .unwrap();
        store.insert(1, vec![2; 40_000]);
        store.flush();
        assert_eq!(store.get(&&1), None);
        assert_eq!(store.counts().errors, 1);
        assert_eq!(rows(&tmp.0), 0);
    }

    /// The disk refuses a removal and its retry: this process reads the key as gone until a
    /// later write lands, which writes the removal too. (Other processes read the row until
    /// then.)
    #[test]
    fn a_removal_the_disk_refuses_is_never_read_back_here() {
        let tmp = TempDir::new("refused-delete");
        let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        store.insert(1, vec![1; 40_000]);
        store.insert(2, vec![2; 10]);
        store.flush();
        refuse_writes(&store, true);
        assert!(store.remove(&&1));
        assert!(store.remove(&&2));
        store.flush();
        assert!(store.counts().errors >= 1);
        assert_eq!(rows(&tmp.0), 2, "refused");
        assert_eq!(store.get(&&1), None);
        assert_eq!(store.get(&&2), None);
        refuse_writes(&store, false);
        store.insert(3, vec![3; 10]);
        store.flush();
        assert_eq!(rows(&tmp.0), 1);
        assert_eq!(store.keys(), vec![3]);
        assert_eq!(store.get(&&1), None);
    }

    /// The same for a `clear`: the namespace reads as empty here until the clear lands; keys
    /// stored after it are read.
    #[test]
    fn a_clear_the_disk_refuses_is_never_read_back_here() {
        let tmp = TempDir::new("refused-clear");
        let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        store.insert(1, vec![1; 40_000]);
        store.insert(2, vec![2; 10]);
        store.flush();
        refuse_writes(&store, true);
        store.clear();
        assert!(store.counts().errors >= 1);
        assert_eq!(rows(&tmp.0), 2, "refused");
        assert_eq!(store.get(&&1), None);
        assert_eq!(store.get(&&2), None);
        refuse_writes(&store, false);
        store.insert(3, vec![3; 10]);
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(&&1), None);
        assert_eq!(store.get(&&3), Some(vec![3; 10]));
    }

    /// More refused removals than are kept one by one: their namespace reads as empty here, and
    /// is cleared once the disk takes writes again.
    #[test]
    fn many_refused_removals_clear_their_namespace() {
        let tmp = TempDir::new("refused-many");
        let store: DiskStore<u32, Vec<u8>> = options(&tmp.0).open(&Config::new());
        let other: DiskStore<u32, Vec<u8>> = options(&tmp.0)
            .function("tests::other", 1)
            .open(&Config::new());
        store.insert(u32::MAX, vec![1; 40_000]);
        other.insert(1, vec![1; 10]);
        store.flush();
        refuse_writes(&store, true);
        for key in 0..=16_384 {
            store.remove(&&key);
        }
        store.flush();
        assert_eq!(
            store.get(&&u32::MAX),
            None,
            "never removed, but in the cleared namespace"
        );
        assert_eq!(other.get(&&1), Some(vec![1; 10]));
        refuse_writes(&store, false);
        store.insert(0, vec![0; 10]);
        assert_eq!(store.keys(), vec![0]);
        assert_eq!(other.keys(), vec![1]);
    }

    /// The database turned out damaged, and what is now `cache.db` cannot be opened: the store
    /// says it is in memory only, counts each write it drops, and calls go on.
    #[test]
    fn a_database_that_cannot_be_reopened_is_not_persistent() {
        let tmp = TempDir::new("lost-db");
        let store = open(&tmp.0, &Config::new());
        store.insert("a".into(), 1);
        store.flush();
        // Another process moved the damaged file aside, and something else is there now.
        let dir = tmp.0.join("test");
        for side in ["", "-wal", "-shm"] {
            let _ = std::fs::rename(
                dir.join(format!("cache.db{side}")),
                dir.join(format!("elsewhere.db{side}")),
            );
        }
        std::fs::write(db_file(&tmp.0), vec![0x55_u8; 8192]).unwrap();
        let damaged = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        store.db.shared.trouble(&damaged);
        assert!(!store.is_persistent());
        let before = store.counts().errors;
        store.insert("b".into(), 2);
        store.flush();
        assert_eq!(store.counts().errors, before + 1, "the dropped write");
        let cache = Cache::with_store(store);
        assert_eq!(cache.get_or_compute(&"c".to_string(), |_| 3), 3);
        assert_eq!(cache.get("b"), Some(2), "kept in memory");
    }

    /// A child forked without exec has no writer thread: its calls compute and are counted, and
    /// nothing waits for the writer (it waited for ever).
    #[test]
    fn a_forked_child_computes_and_does_not_hang() {
        let tmp = TempDir::new("fork");
        let store = open(&tmp.0, &Config::new());
        store.insert("a".into(), 1);
        store.flush();
        // SAFETY: the child only calls the store and `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            store.insert("b".into(), 2);
            let fine = !store.is_persistent()
                && store.len() == 2
                && store.get(&"b") == Some(2)
                && store.counts().errors == 1;
            store.flush();
            store.clear();
            drop(store);
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(if fine { 0 } else { 3 }) };
        }
        let mut status = 0;
        let mut ended = false;
        for _ in 0..300 {
            // SAFETY: waits for the child forked above.
            if unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) } == pid {
                ended = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ended {
            // SAFETY: the child forked above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &raw mut status, 0);
            }
        }
        assert!(ended, "the forked child still waits after 30 s");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status}"
        );
        // The parent's store is untouched.
        store.insert("c".into(), 3);
        store.flush();
        assert_eq!(store.len(), 2);
        assert_eq!(store.counts().errors, 0);
    }
}

thread_local! {
    /// What a test has this thread do once, between its next read from disk and the front's
    /// update (see [`after_read`]).
    static AFTER_READ: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs, once, what the test set on this thread for the moment between a read from disk and
/// the front's update.
pub(super) fn after_read() {
    let hook = AFTER_READ.with(|hook| hook.borrow_mut().take());
    if let Some(hook) = hook {
        hook();
    }
}

/// Stores "k" = 1 in `store`'s row only, and starts a `get("k")` of it on a thread of `scope`
/// that reads the row, then waits until `go` is sent before it keeps the value in the front:
/// returns once the row is read, with the thread and `go`.
fn read_paused_after_the_row<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    store: &'scope DiskStore<String, u64>,
) -> (
    std::thread::ScopedJoinHandle<'scope, Option<u64>>,
    std::sync::mpsc::Sender<()>,
) {
    store.insert("k".into(), 1);
    store.flush();
    store.front.remove(&"k");
    let (read, was_read) = std::sync::mpsc::channel();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let reader = scope.spawn(move || {
        AFTER_READ.with(|hook| {
            *hook.borrow_mut() = Some(Box::new(move || {
                read.send(()).unwrap();
                wait.recv().unwrap();
            }));
        });
        store.get(&"k")
    });
    was_read.recv().unwrap();
    (reader, go)
}

/// `get("k")` right after `change` returned, and again once all is committed, when a reader
/// of this process missed the front (the key was evicted), read the row ("k" = 1) and came
/// to keep it in the front after `change` queued its write; the writer thread is held
/// meanwhile, so nothing commits before the reader is done.
fn get_after_a_change_during_a_read(
    change: impl FnOnce(&DiskStore<String, u64>) + Send,
) -> (Option<u64>, Option<u64>) {
    let tmp = TempDir::new("read-across");
    let store = open(&tmp.0, &Config::new());
    let shared = &store.db.shared;
    std::thread::scope(|scope| {
        let (reader, go) = read_paused_after_the_row(scope, &store);
        let commits = shared.writer.lock().unwrap();
        let queued = shared.queue.seq();
        let changing = scope.spawn(|| change(&store));
        while shared.queue.seq() == queued {
            std::thread::yield_now();
        }
        go.send(()).unwrap();
        assert_eq!(
            reader.join().unwrap(),
            Some(1),
            "the reader read the old row"
        );
        drop(commits);
        changing.join().unwrap();
    });
    let after = store.get(&"k");
    store.flush();
    (after, store.get(&"k"))
}

// Review 1: a reader that read the row before `clear` queued its write kept the row's value in
// the front after it (the change counter had not moved), and the commit, this process's own,
// left the front current: `get` served the cleared value for good.
#[test]
fn a_read_from_disk_during_clear_does_not_bring_the_value_back() {
    let got = get_after_a_change_during_a_read(Store::clear);
    assert_eq!(got, (None, None));
}

// Review 1: the same as `clear`, for `remove` (`invalidate`).
#[test]
fn a_read_from_disk_during_remove_does_not_bring_the_value_back() {
    let got = get_after_a_change_during_a_read(|store| assert!(store.remove(&"k")));
    assert_eq!(got, (None, None));
}

// Review 1: the same for `insert`: the old value read before it replaced the new one in the
// front.
#[test]
fn a_read_from_disk_during_insert_does_not_bring_the_old_value_back() {
    let got = get_after_a_change_during_a_read(|store| store.insert("k".into(), 2));
    assert_eq!(got, (Some(2), Some(2)));
}

/// The child "noise": commits a key every 200 us until `root/stop` exists (30 s at most).
fn commit_noise(root: &Path, store: &DiskStore<String, u64>) {
    let stop = root.join("stop");
    for i in 0..150_000 {
        if stop.exists() {
            break;
        }
        store.insert("noise".into(), i);
        store.flush();
        std::thread::sleep(Duration::from_micros(200));
    }
    println!("RESULT stopped");
}

/// Of `rounds` inserts of one key while two threads read it and another process commits writes
/// of another key (so this process's fronts are cleared often, and its readers miss): those
/// after which `get`, at once or once committed, returned an older value.
fn rounds_going_back(rounds: u64) -> u64 {
    use std::sync::atomic::AtomicBool;
    let tmp = TempDir::new("insert-noise");
    let store = open(&tmp.0, &Config::new());
    let child = spawn_child(&tmp.0, "noise", &[]);
    let done = AtomicBool::new(false);
    let back = std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let _ = store.get(&"k");
                }
            });
        }
        let mut back = 0;
        for round in 0..rounds {
            store.insert("k".into(), round);
            let at_once = store.get(&"k");
            store.flush();
            back += u64::from(at_once != Some(round) || store.get(&"k") != Some(round));
        }
        done.store(true, Ordering::Relaxed);
        back
    });
    std::fs::write(tmp.0.join("stop"), b"").unwrap();
    assert_eq!(result_of(&child.wait_with_output().unwrap()), "stopped");
    back
}

// Review 1, the same for `insert` with the front missing because another process wrote.
#[test]
fn an_insert_is_not_undone_by_a_read_begun_before_it_while_another_process_writes() {
    assert_eq!(
        rounds_going_back(10_000),
        0,
        "rounds of 10,000 that read an older value"
    );
}

// A clear through the directory (the CLI's `clear`, "as its cache's `clear()` does") run in a
// process whose store of the function held the value in its front: the commit was the
// process's own, so the front stayed current and served the value.
#[test]
fn a_clear_through_the_directory_empties_the_fronts_of_its_process() {
    let tmp = TempDir::new("admin-clear");
    let store = open(&tmp.0, &Config::new());
    store.insert("a".into(), 1);
    store.flush();
    assert_eq!(store.get(&"a"), Some(1));
    let dir = admin::DiskDirectory::open(store.dir()).unwrap();
    let function = dir
        .functions()
        .into_iter()
        .find(|function| function.function == "tests::f")
        .unwrap();
    dir.clear(&function);
    assert_eq!(store.get(&"a"), None);
    assert_eq!(store.len(), 0);
}

// Attack: a value computed here is queued; another process then commits (its change counter
// moves) and begins a long write transaction (an eviction, a large clear). A read of the value
// here, a hit in this process, waited for this process's writer (`load_encoded`'s flush), itself
// waiting on the other process's transaction, up to the busy timeout (10 s).
#[test]
fn a_value_queued_here_is_read_without_waiting_for_another_processes_transaction() {
    let tmp = TempDir::new("hit-waits");
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    let dir = cache.store().dir().to_path_buf();
    let other = rusqlite::Connection::open(dir.join("cache.db")).unwrap();
    let counter = version::Version::open(&dir.join("version")).unwrap();
    let shared = &cache.store().db.shared;
    let commits = shared.writer.lock().unwrap();
    assert_eq!(cache.get_or_compute("k", |_| 1), 1);
    // The other process commits, then holds the write lock.
    counter.bump();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    drop(commits);
    let took = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let start = std::time::Instant::now();
            let got = cache.store().get(&"k");
            (got, start.elapsed())
        });
        std::thread::sleep(Duration::from_secs(2));
        other.execute_batch("ROLLBACK").unwrap();
        reader.join().unwrap()
    });
    assert_eq!(took.0, Some(1));
    assert!(
        took.1 < Duration::from_millis(500),
        "a hit waited {:?} for another process's transaction",
        took.1
    );
}

// Attack: in one process, with no other process on the directory, the epoch (which makes a
// claim's value cost a read of its lock row, and a read of a queued claim value wait for the
// writer) must never move; this process's own commits are not another process's writes.
#[test]
fn a_process_alone_never_sees_its_own_commits_as_another_processes() {
    use std::sync::atomic::AtomicBool;
    let tmp = TempDir::new("alone");
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0_u64;
            while !done.load(Ordering::Relaxed) {
                cache.store().insert(format!("noise{}", i % 64), i);
                std::thread::sleep(Duration::from_micros(100));
                i += 1;
            }
        });
        for i in 0..2_000_u64 {
            let key = format!("k{i}");
            assert_eq!(cache.get_or_compute(key.as_str(), |_| i), i);
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        cache.store().db.shared.epoch.load(Ordering::Acquire),
        0,
        "the epoch moved with no other process: fronts cleared, rows read, reads waiting"
    );
}

/// What a test runs on the writer's thread between its bump of the change counter and `known`
/// following it, for the directory named (tests of other directories run alongside).
type BetweenBump = Box<dyn FnOnce() + Send>;
static BETWEEN_BUMP: std::sync::Mutex<Option<(PathBuf, BetweenBump)>> = std::sync::Mutex::new(None);

/// Called by `writer::committed` between the bump and `known`'s update.
pub(super) fn between_bump_and_known(shared: &db::Shared) {
    let mut hook = BETWEEN_BUMP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if hook.as_ref().is_some_and(|(dir, _)| *dir == shared.dir)
        && let Some((_, run)) = hook.take()
    {
        drop(hook);
        run();
    }
}

/// A reader of this process that looks between the writer's bump of the change counter and
/// `known`'s update does not take the process's own commit for another process's: the epoch
/// stays (fronts kept, no lock-row reads). The reader is started in that moment and given time
/// to look; with the writer holding the gate across it, it waits for `known` instead.
#[test]
fn a_reader_between_a_commit_and_its_count_does_not_move_the_epoch() {
    let tmp = TempDir::new("between-bump");
    let store = open(&tmp.0, &Config::new());
    let (looked, reader) = std::sync::mpsc::channel();
    let shared = Arc::clone(&store.db.shared);
    *BETWEEN_BUMP.lock().unwrap() = Some((
        shared.dir.clone(),
        Box::new(move || {
            let handle = std::thread::spawn(move || shared.epoch_now());
            std::thread::sleep(Duration::from_millis(50));
            looked.send(handle).unwrap();
        }),
    ));
    store.insert("a".into(), 1);
    store.flush();
    let epoch = reader.recv().unwrap().join().unwrap();
    assert_eq!(epoch, Some(0), "the process's own commit moved the epoch");
    assert_eq!(store.db.shared.epoch.load(Ordering::Acquire), 0);
}

// Attack: an expired row swept (`purge_expired`, on the reader's connection) while a value
// stored over it waits in the queue is counted once, by the sweep; the value's commit then
// finds no row to count.
#[test]
fn an_expired_row_swept_while_a_value_over_it_is_queued_is_counted_once() {
    let tmp = TempDir::new("ttl-sweep-over");
    let store = open(&tmp.0, &Config::new().ttl(Duration::from_secs(60)));
    let (clock, mock) = Clock::mock();
    store.set_clock(clock);
    store.insert("a".into(), 1);
    store.flush();
    mock.increment(Duration::from_secs(61));
    {
        let _commits = store.db.shared.writer.lock().unwrap();
        store.insert("a".into(), 2);
        assert_eq!(store.purge_expired(), 1);
    }
    store.flush();
    assert_eq!(
        store.counts().expired,
        1,
        "swept, then replaced: one expiry"
    );
    assert_eq!(store.get(&"a"), Some(2));
}

// Attack: a row whose `sum` is not an integer (planted as text) is a miss, and the value
// computed again replaces it; no loop, no crash.
#[test]
fn a_row_whose_check_is_text_is_a_miss_and_is_replaced() {
    let tmp = TempDir::new("text-sum");
    let store = open(&tmp.0, &Config::new());
    store.insert("a".into(), 1);
    store.flush();
    drop(store);
    let conn = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    conn.execute("UPDATE entries SET sum = 'not a number'", [])
        .unwrap();
    let runs = AtomicUsize::new(0);
    let cache = Cache::with_store(open(&tmp.0, &Config::new()));
    for _ in 0..3 {
        let value = cache.get_or_compute("a", |_| {
            runs.fetch_add(1, Ordering::Relaxed);
            2
        });
        assert_eq!(value, 2);
        cache.store().flush();
        cache.store().front.clear();
    }
    assert_eq!(runs.load(Ordering::Relaxed), 1, "computed once, then read");
}

// Attack: a damaged row (its value no longer matches its check) is removed by a write queued
// when it was read; if another process stores a sound value of the key before that removal
// commits, the removal deletes the sound value (another process's work, unseen here).
#[test]
fn a_damaged_row_replaced_before_its_removal_commits_keeps_the_new_value() {
    let tmp = TempDir::new("damaged-replaced");
    let store = open(&tmp.0, &Config::new());
    store.insert("a".into(), 1);
    store.flush();
    let dir = store.dir().to_path_buf();
    let conn = rusqlite::Connection::open(dir.join("cache.db")).unwrap();
    let counter = version::Version::open(&dir.join("version")).unwrap();
    let two = Codec::Binary.encode(&2_u64).unwrap();
    conn.execute("UPDATE entries SET value = ?1", [&two])
        .unwrap();
    store.front.remove(&"a");
    let (ns, key) = (store.ns.to_vec(), key::encode(&"a".to_string()).unwrap());
    let three = Codec::Binary.encode(&3_u64).unwrap();
    {
        let _commits = store.db.shared.writer.lock().unwrap();
        assert_eq!(store.get(&"a"), None, "damaged: a miss");
        // The other process replaces the row with a sound one, and commits.
        conn.execute("DELETE FROM entries", []).unwrap();
        conn.execute(
            "INSERT INTO entries (ns, key, value, size, expires, file, sum)
             VALUES (?1, ?2, ?3, ?4, 0, NULL, ?5)",
            rusqlite::params![ns, key, three, three.len(), checksum::of(&ns, &key, &three)],
        )
        .unwrap();
        counter.bump();
    }
    store.flush();
    assert_eq!(
        store.get(&"a"),
        Some(3),
        "the other process's sound value was deleted as damaged"
    );
}

// Attack: processes opening a database made before the check at once (the `ALTER TABLE` in
// each): every one opens it, adds the column or finds it added, and stores.
#[test]
fn processes_opening_a_database_made_before_the_check_at_once_all_use_it() {
    let tmp = TempDir::new("before-check-race");
    std::fs::create_dir_all(tmp.0.join("test")).unwrap();
    let old = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    old.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    old.execute_batch(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, ns BLOB NOT NULL, key BLOB NOT NULL,
             value BLOB NOT NULL, file TEXT, size INTEGER NOT NULL, expires INTEGER NOT NULL);
         CREATE UNIQUE INDEX entries_key ON entries (ns, key);",
    )
    .unwrap();
    drop(old);
    let children: Vec<_> = (0..4).map(|_| spawn_child(&tmp.0, "plant", &[])).collect();
    for child in children {
        assert_eq!(result_of(&child.wait_with_output().unwrap()), "planted");
    }
    let store = open(&tmp.0, &Config::new());
    assert_eq!(store.get(&"a"), Some(666));
    assert_eq!(store.counts().errors, 0);
}

// Attack: a database whose `sum` column was made with another type (TEXT affinity: a build
// that declared it so): the checks written read back as text.
#[test]
fn a_check_column_of_another_type_does_not_make_every_call_compute() {
    let tmp = TempDir::new("text-sum-column");
    std::fs::create_dir_all(tmp.0.join("test")).unwrap();
    let old = rusqlite::Connection::open(db_file(&tmp.0)).unwrap();
    old.execute_batch(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, ns BLOB NOT NULL, key BLOB NOT NULL,
             value BLOB NOT NULL, file TEXT, size INTEGER NOT NULL, expires INTEGER NOT NULL,
             sum TEXT);
         CREATE UNIQUE INDEX entries_key ON entries (ns, key);",
    )
    .unwrap();
    drop(old);
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let cache = Cache::with_store(open(&tmp.0, &Config::new()));
        let value = cache.get_or_compute("a", |_| {
            runs.fetch_add(1, Ordering::Relaxed);
            2
        });
        assert_eq!(value, 2);
        cache.store().flush();
    }
    assert_eq!(runs.load(Ordering::Relaxed), 1, "computed once, then read");
}

// Attack: clears here while another process writes large values (files under `values/`) and
// is killed mid-write: every row left reads back as its own value, sound, or is a miss; no
// fault is counted here.
#[test]
fn clears_while_another_process_writes_large_values_and_is_killed_leave_sound_rows() {
    use std::io::BufRead;
    let tmp = TempDir::new("clear-large");
    let store: DiskStore<u64, Vec<u8>> = options(&tmp.0).open(&Config::new());
    let mut child = spawn_child(&tmp.0, "write-large", &[]);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|line| line.unwrap().contains("RESULT writing")));
    for _ in 0..20 {
        store.clear();
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut found = 0;
    for i in 0..50_u64 {
        if let Some(value) = store.get(&&i) {
            found += 1;
            assert_eq!(
                value,
                vec![7; 40_000 + usize::try_from(i).unwrap()],
                "key {i}"
            );
        }
    }
    assert!(found > 0, "the child wrote after the clears");
    assert_eq!(store.counts().errors, 0);
}

// Attack: as `a_value_computed_before_another_store_removed_its_key_is_not_stored`, read at
// once rather than after the writer committed: the other store's removal (this process's own
// commit, which does not move the epoch) is not seen by `row_of`, and the value is served from
// the front after the removal returned.
#[test]
fn a_value_computed_before_another_store_removed_its_key_is_not_read_back_at_once() {
    let tmp = TempDir::new("begun-before-at-once");
    let here = std::sync::Arc::new(Cache::with_store(open(&tmp.0, &Config::new())));
    let there = Cache::with_store(open(&tmp.0, &Config::new()));
    let (started, on_start) = std::sync::mpsc::channel();
    let (go, on_go) = std::sync::mpsc::channel::<()>();
    let leader = {
        let here = std::sync::Arc::clone(&here);
        std::thread::spawn(move || {
            here.get_or_compute("k", |_| {
                started.send(()).unwrap();
                on_go.recv().unwrap();
                1
            })
        })
    };
    on_start.recv().unwrap();
    assert!(!there.invalidate("k"));
    go.send(()).unwrap();
    assert_eq!(leader.join().unwrap(), 1, "its own caller gets it");
    assert_eq!(here.get("k"), None, "read back after the removal returned");
}

// Attack: a value over an expired row whose write fails (its batch refused) does not count the
// row expired: the count follows the commit.
#[test]
fn a_failed_write_over_an_expired_row_does_not_count_it() {
    let tmp = TempDir::new("ttl-over-failed");
    let store: DiskStore<u32, Vec<u8>> =
        options(&tmp.0).open(&Config::new().ttl(Duration::from_secs(60)));
    let (clock, mock) = Clock::mock();
    store.set_clock(clock);
    store.insert(1, vec![1; 40_000]);
    store.flush();
    mock.increment(Duration::from_secs(61));
    // Writable by the group: a new value file is refused, and with it the batch.
    let values = tmp.0.join("test").join("values");
    std::fs::set_permissions(&values, std::os::unix::fs::PermissionsExt::from_mode(0o770)).unwrap();
    store.insert(1, vec![2; 40_000]);
    store.flush();
    assert_eq!(store.counts().errors, 1);
    assert_eq!(store.counts().expired, 0, "counted for a write that failed");
    assert_eq!(store.get(&&1), None);
}

/// A miss that begins while `invalidate` runs (its flights detached, its removal not yet made)
/// and reads the old value, then settles only after the invalidate returned: a call begun after
/// that return does not join it and take the old value (`tests/disk.rs`,
/// `a_read_on_one_disk_handle_after_an_insert_on_another_never_returns_older`, about once in
/// 150 runs: `read 228 after the insert or invalidate of 229 returned`). The invalidating
/// thread's read of the value (its `peek`) lets the miss lead and read; the miss's own read
/// holds it until the call after the invalidate has looked for a flight to join.
#[test]
fn a_miss_begun_during_an_invalidate_is_not_joined_after_it_returned() {
    use std::sync::{Arc, mpsc};
    use std::task::{Context, Poll, Waker};

    use crate::call::{self, Item, Slot};

    let tmp = TempDir::new("miss-during-invalidate");
    let cache = Arc::new(Cache::with_store(open(&tmp.0, &Config::new())));
    cache.insert("k".into(), 1);
    cache.store().flush();
    cache.store().front.remove(&"k");
    let (read, was_read) = mpsc::channel();
    let (go, on_go) = mpsc::channel::<()>();
    let (ended, lead_ended) = mpsc::channel();
    let during = Arc::clone(&cache);
    // Run by the invalidating thread as its `peek` read the row: after the flights' detach,
    // before the removal.
    AFTER_READ.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move || {
            std::thread::spawn(move || {
                AFTER_READ.with(|hook| {
                    *hook.borrow_mut() = Some(Box::new(move || {
                        read.send(()).unwrap();
                        on_go.recv().unwrap();
                    }));
                });
                // The miss loop itself: a call's first read, a plain one, would find the row
                // and return it as a hit, with no flight.
                let key = "k".to_string();
                let hash = during.store().hash_of(&&key);
                let mut found = None::<u64>;
                let lead = call::lead(
                    during.undropped(),
                    hash,
                    Item::of(&key),
                    Slot::of(&mut found),
                    true,
                );
                assert!(wait(lead).is_none(), "the miss's look found the row");
                ended.send(found).unwrap();
            });
            was_read.recv().unwrap();
        }));
    });
    assert!(cache.invalidate("k"));
    // Begun after the invalidate returned: it computes, or waits on a flight to join.
    let mut after = Box::pin(cache.get_or_insert_with_async("k".into(), async { 2 }));
    let first = after.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    go.send(()).unwrap();
    assert_eq!(
        lead_ended.recv().unwrap(),
        Some(1),
        "the miss begun before the invalidate returned read the old value"
    );
    let after = match first {
        Poll::Ready(value) => value,
        Poll::Pending => wait(after),
    };
    assert_eq!(after, 2, "a call begun after the invalidate returned");
    assert_eq!(cache.get("k"), Some(2));
}
