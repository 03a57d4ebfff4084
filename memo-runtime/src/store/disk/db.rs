//! One cache directory's SQLite database, shared by every disk store of the process that uses
//! the directory: opening it (permissions, pragmas, schema), moving a damaged file aside, reads,
//! and error reports.
//!
//! Files: `cache.db` (+ SQLite's `-wal` and `-shm`), `version` (see `version.rs`), `values/`
//! (see `files.rs`) and `open.lock`, in a directory created `0700`; files are created `0600`,
//! and the directory and files are checked before use (see `perms.rs`).

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::perms;
use super::version::Version;
use super::writer::{Queue, Writer};

/// How long a statement waits for another process's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors are logged at most once per this interval per directory (all are counted).
const LOG_INTERVAL: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
-- Rows in the order they were stored (the rowid `id` grows), which is the order eviction takes
-- them in; a rowid table with a small key index writes about twice as fast as a table keyed by
-- (ns, key) with an index on the storing order.
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    ns BLOB NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    -- The file under `values/` holding a large value (then `value` is empty).
    file TEXT,
    size INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    -- The row's check (`checksum.rs`); NULL in rows written by builds before it, read as misses.
    sum INTEGER,
    -- 1: the value has a time to live of its own (`insert_with_ttl`, `ttl_from`), which a hit
    -- of a store with time to idle does not renew; NULL: timed by the store.
    own INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS entries_key ON entries (ns, key);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires) WHERE expires > 0;
-- The rows of large values by file name, for the sweep of files no row names (`files.rs`).
CREATE INDEX IF NOT EXISTS entries_file ON entries (file) WHERE file IS NOT NULL;
-- How many entries and bytes each namespace holds, kept by the writers in the same transactions
-- (triggers doubled the cost of a write).
CREATE TABLE IF NOT EXISTS spaces (
    ns BLOB PRIMARY KEY,
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (
    ns BLOB NOT NULL,
    key BLOB NOT NULL,
    pid INTEGER NOT NULL,
    token INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
";

/// What one function's store shares with the writer: its bounds and what happened to it.
#[derive(Debug)]
pub(super) struct Space {
    pub(super) maxsize: Option<u64>,
    pub(super) max_bytes: u64,
    pub(super) evicted: AtomicU64,
    pub(super) expired: AtomicU64,
    pub(super) errors: AtomicU64,
    /// The stores of this namespace open in this process: a program may open one twice, as
    /// diskcache's users open `Cache(directory)` wherever they need it.
    pub(super) handles: AtomicUsize,
    /// Changes of entries by one of them while another was open: each clears its front when it
    /// finds one it has not seen, as it does for another process's.
    pub(super) changes: AtomicU64,
}

impl Space {
    /// Counts one failure of this namespace's storage (each is also a `tracing` event).
    pub(super) fn count_error(&self, what: &dyn Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        crate::trace::backend_error("disk", what);
    }
}

/// The parts of a [`Db`] its writer thread shares.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) reader: Mutex<Option<Connection>>,
    pub(super) writer: Mutex<Option<Connection>>,
    pub(super) version: Option<Version>,
    /// The last count of [`Version`] whose changes this process's in-memory fronts reflect.
    pub(super) known: AtomicU64,
    /// Bumped each time a change by another process is seen (or a clear through
    /// [`DiskDirectory`](super::admin::DiskDirectory) by this one); a front older than it is
    /// cleared.
    pub(super) epoch: AtomicU64,
    /// Held (shared) while a value read from disk enters a front, (exclusive) while `epoch` moves.
    pub(super) gate: RwLock<()>,
    pub(super) queue: Queue,
    pub(super) spaces: Mutex<HashMap<Arc<[u8]>, Arc<Space>>>,
    last_log: Mutex<Option<Instant>>,
    recovered: AtomicBool,
    /// The database was damaged and could not be reopened: the stores keep entries in memory
    /// only from then on, and each write the writer drops is counted.
    lost: AtomicBool,
    /// A forked child found its parent's database (counted once on each store).
    fork_seen: AtomicBool,
    /// The identity of the `cache.db` the connections opened: a process that finds its file
    /// damaged moves it aside only if it is still the one named `cache.db`.
    file_id: Mutex<Option<FileId>>,
    /// The tokens of the key locks this process holds (see `lock.rs`).
    pub(super) held: Mutex<HashSet<i64>>,
}

impl Shared {
    /// Another process wrote: every front of this process must be read again.
    #[cold]
    pub(super) fn observe(&self) {
        let Some(version) = &self.version else {
            return;
        };
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let now = version.get();
        if self.known.swap(now, Ordering::AcqRel) != now {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The epoch once the changes by other processes counted so far are seen: while it stays,
    /// no other process has written (a key's removal, a clear) since. `None` without a change
    /// counter: other processes' writes are not seen.
    pub(super) fn epoch_now(&self) -> Option<u64> {
        let version = self.version.as_ref()?;
        if version.get() != self.known.load(Ordering::Acquire) {
            self.observe();
        }
        Some(self.epoch.load(Ordering::Acquire))
    }
}

/// A cache directory's database, opened once per process.
pub(super) struct Db {
    pub(super) shared: Arc<Shared>,
    writer: Option<Writer>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static OPEN: Mutex<Vec<(PathBuf, Weak<Db>)>> = Mutex::new(Vec::new());

impl Db {
    /// The database of `dir`, opened (or created) if this process has not yet; never fails: a
    /// database that cannot be opened leaves the stores in memory only, with the error logged
    /// (see [`is_usable`](Self::is_usable)).
    pub(super) fn shared(dir: &Path) -> Arc<Self> {
        // Checked each time, and keyed by the resolved path: two paths of one directory share
        // one database (a second set of connections closing its own descriptors would drop the
        // first's POSIX locks).
        let (dir, checked) = match perms::store_dir(dir) {
            Ok(resolved) => (resolved, Ok(())),
            Err(err) => (dir.to_path_buf(), Err(err)),
        };
        let mut open = lock(&OPEN);
        open.retain(|(_, db)| db.strong_count() > 0);
        if let Some(db) = open
            .iter()
            .find(|(path, _)| *path == dir)
            .and_then(|(_, db)| db.upgrade())
        {
            return db;
        }
        let db = Arc::new(Self::open(&dir, checked));
        open.push((dir, Arc::downgrade(&db)));
        register_exit_flush();
        db
    }

    fn open(dir: &Path, checked: std::io::Result<()>) -> Self {
        let (reader, writer, version) = match checked {
            Ok(()) => {
                let _opening = OpenLock::take(dir);
                let file = dir.join("cache.db");
                let reader = open_recovering(&file);
                let writer = reader.as_ref().ok().map(|_| open_connection(&file));
                (reader, writer, Version::open(&dir.join("version")))
            }
            Err(err) => (Err(err.to_string()), None, None),
        };
        let (reader, file_id) = match reader {
            Ok((reader, id)) => (Some(reader), Some(id)),
            Err(err) => {
                crate::trace::warn(&format!(
                    "the disk cache in {} cannot be used ({err}); caching in memory only",
                    dir.display()
                ));
                (None, None)
            }
        };
        let writer = writer.and_then(Result::ok);
        let usable = reader.is_some() && writer.is_some();
        let known = version.as_ref().map_or(0, Version::get);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            reader: Mutex::new(reader),
            writer: Mutex::new(writer),
            version,
            known: AtomicU64::new(known),
            epoch: AtomicU64::new(0),
            gate: RwLock::new(()),
            queue: Queue::default(),
            spaces: Mutex::new(HashMap::new()),
            last_log: Mutex::new(None),
            recovered: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            fork_seen: AtomicBool::new(false),
            file_id: Mutex::new(file_id),
            held: Mutex::new(HashSet::new()),
        });
        let writer = usable.then(|| Writer::start(&shared)).flatten();
        Self { shared, writer }
    }

    /// Whether writes reach the disk: the database opened and its writer runs, it was not lost
    /// to damage, and this is the process that opened it (not a child forked since).
    pub(super) fn is_usable(&self) -> bool {
        if self.writer.is_none() || self.shared.lost.load(Ordering::Acquire) {
            return false;
        }
        if self.shared.queue.forked() {
            self.shared.forked();
            return false;
        }
        true
    }

    /// Waits until every write queued so far is committed (or failed), if a writer runs.
    pub(super) fn flush(&self) {
        if self.writer.is_some() {
            self.shared.queue.flush();
        }
    }

    /// Waits until a removal queued is committed (see the queue's `flush_removal`).
    pub(super) fn flush_removal(&self) {
        if self.writer.is_some() {
            self.shared.queue.flush_removal();
        }
    }

    /// Registers (or finds) the space of namespace `ns`.
    pub(super) fn space(&self, ns: &Arc<[u8]>, maxsize: Option<u64>, max_bytes: u64) -> Arc<Space> {
        let mut spaces = lock(&self.shared.spaces);
        Arc::clone(spaces.entry(Arc::clone(ns)).or_insert_with(|| {
            Arc::new(Space {
                maxsize,
                max_bytes,
                evicted: AtomicU64::new(0),
                expired: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                handles: AtomicUsize::new(0),
                changes: AtomicU64::new(0),
            })
        }))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            if self.shared.queue.forked() {
                // The thread is the parent's, and the queue's lock may have been copied held.
                std::mem::forget(writer);
            } else {
                writer.stop(&self.shared.queue);
            }
        }
    }
}

impl Shared {
    /// Runs `op` on the reader connection; `None` when there is none (the database was lost)
    /// or `op` failed (either counted on `space` and reported; a damaged file is moved aside and
    /// rebuilt).
    pub(super) fn read<T>(
        &self,
        space: &Space,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let result = {
            let reader = lock(&self.reader);
            let Some(conn) = reader.as_ref() else {
                drop(reader);
                space.count_error(&"the database could not be reopened");
                return None;
            };
            op(conn)
        };
        result.map_err(|err| self.failed(space, &err)).ok()
    }

    /// A forked child uses its parent's database: counted once on each of its stores (the
    /// lock is tried, not waited for: the fork may have copied it held).
    #[cold]
    fn forked(&self) {
        if !self.fork_seen.swap(true, Ordering::AcqRel)
            && let Ok(spaces) = self.spaces.try_lock()
        {
            for space in spaces.values() {
                space.count_error(&"a forked child cannot use its parent's disk cache");
            }
        }
    }

    /// Counts and reports a failure; moves a damaged database aside.
    pub(super) fn failed(&self, space: &Space, err: &rusqlite::Error) {
        space.count_error(err);
        self.trouble(err);
    }

    /// Reports a failure (already counted); moves a damaged database aside.
    pub(super) fn trouble(&self, err: &rusqlite::Error) {
        if is_damage(err) {
            self.recover(err);
        } else {
            self.report(err);
        }
    }

    /// Logs `err`, at most once per [`LOG_INTERVAL`].
    pub(super) fn report(&self, err: &dyn Display) {
        let mut last = lock(&self.last_log);
        if last.is_none_or(|at| at.elapsed() >= LOG_INTERVAL) {
            *last = Some(Instant::now());
            crate::trace::warn(&format!(
                "the disk cache in {} failed ({err}); calls go on, keeping values in memory only",
                self.dir.display()
            ));
        }
    }

    /// The database turned out damaged while in use: move it aside and start an empty one,
    /// unless another process did so first (`cache.db` is no longer the file this process
    /// opened): then open that one, so that every process converges on one database.
    fn recover(&self, err: &rusqlite::Error) {
        if self.recovered.swap(true, Ordering::AcqRel) {
            // Once per process: a file that keeps failing is reported, not moved again and again.
            self.report(err);
            return;
        }
        let mut writer = lock(&self.writer);
        let mut reader = lock(&self.reader);
        writer.take();
        reader.take();
        // Until both connections are back.
        self.lost.store(true, Ordering::Release);
        let _opening = OpenLock::take(&self.dir);
        let file = self.dir.join("cache.db");
        let mut file_id = lock(&self.file_id);
        if file_id.is_some() && *file_id == FileId::of(&file) {
            move_aside(&file, &err.to_string());
        }
        *file_id = None;
        let Ok(id) = check_files(&file) else {
            self.lost_for_good();
            return;
        };
        *reader = open_connection(&file).ok();
        *writer = open_connection(&file).ok();
        *file_id = Some(id);
        if reader.is_some() && writer.is_some() {
            self.lost.store(false, Ordering::Release);
        } else {
            self.lost_for_good();
        }
    }

    /// Warns that the database could not be reopened: the stores are in memory only now.
    fn lost_for_good(&self) {
        crate::trace::warn(&format!(
            "the disk cache in {} could not be reopened; caching in memory only",
            self.dir.display()
        ));
    }
}

/// Which file a path names (device and inode), to tell a file from its replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId(u64, u64);

impl FileId {
    fn of(path: &Path) -> Option<Self> {
        std::fs::symlink_metadata(path)
            .ok()
            .map(|meta| Self(meta.dev(), meta.ino()))
    }
}

/// An exclusive `flock` on `<dir>/open.lock`, held while a process opens (or rebuilds) the
/// database: a file another process is creating is never taken for a damaged one, and two
/// processes never switch a new file to WAL at once. Released on drop (the file is closed).
struct OpenLock {
    _file: Option<File>,
}

impl OpenLock {
    fn take(dir: &Path) -> Self {
        use std::os::fd::AsRawFd;
        let file = perms::open_file(&dir.join("open.lock"), true).ok();
        if let Some(file) = &file {
            // SAFETY: `flock` on a descriptor this function owns; it only blocks until granted.
            // Without the lock (an error), opening goes on as it would have.
            let _ = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        }
        Self { _file: file }
    }
}

/// Opens `file`, first moving it aside if it is visibly damaged or SQLite rejects it; returns
/// the connection and the identity of the file it opened.
fn open_recovering(file: &Path) -> Result<(Connection, FileId), String> {
    if let Some(damage) = header_damage(file) {
        move_aside(file, &damage);
    }
    let open = || {
        let id = check_files(file)?;
        open_connection(file).map(|conn| (conn, id))
    };
    match open() {
        Err(err) if is_damage(&err) => {
            move_aside(file, &err.to_string());
            open().map_err(|err| err.to_string())
        }
        opened => opened.map_err(|err| err.to_string()),
    }
}

/// Creates `file` `0600` if missing and checks it and its side files (see
/// [`perms::database`]), before SQLite opens them; returns its identity.
///
/// Only while this process has no connection to `file`: closing a descriptor of a file drops
/// every POSIX lock the process holds on it, SQLite's included.
fn check_files(file: &Path) -> rusqlite::Result<FileId> {
    let checked = perms::database(file).and_then(|handle| handle.metadata());
    match checked {
        Ok(meta) => Ok(FileId(meta.dev(), meta.ino())),
        Err(err) => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("{}: {err}", file.display())),
        )),
    }
}

/// Opens `file` (which [`check_files`] made) with the cache's settings and schema.
pub(super) fn open_connection(file: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    // Pages read through a mapping rather than copied by `pread`: reads cost about half.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 268435456;",
    )?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.execute_batch(SCHEMA)?;
    add_checksums(&conn)?;
    // Reads a page of each table, so that a damaged file fails here rather than later.
    conn.query_row("SELECT count(*) FROM spaces", [], |_| Ok(()))?;
    conn.query_row("SELECT 1 FROM entries LIMIT 1", [], |_| Ok(()))
        .optional()?;
    Ok(conn)
}

/// Adds the `sum` column to a database made before it (callers hold the [`OpenLock`], so no
/// other process adds it meanwhile). Builds before it name their columns, and go on writing rows
/// without a check, which this one reads as misses.
fn add_checksums(conn: &Connection) -> rusqlite::Result<()> {
    let has_sum = conn
        .prepare("SELECT 1 FROM pragma_table_info('entries') WHERE name = 'sum'")?
        .exists([])?;
    if !has_sum {
        conn.execute_batch("ALTER TABLE entries ADD COLUMN sum INTEGER")?;
    }
    // And the `own` column (see the schema), to a database made before it: builds before it
    // renew every row under time to idle, as they did.
    let has_own = conn
        .prepare("SELECT 1 FROM pragma_table_info('entries') WHERE name = 'own'")?
        .exists([])?;
    if !has_own {
        conn.execute_batch("ALTER TABLE entries ADD COLUMN own INTEGER")?;
    }
    Ok(())
}

/// Whether `err` says the file is not a sound database.
pub(super) fn is_damage(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// What is wrong with `file`'s header, if anything visibly is: not an SQLite file, or shorter
/// than the pages its header counts (truncated).
fn header_damage(file: &Path) -> Option<String> {
    let mut handle = File::open(file).ok()?;
    let len = handle.metadata().ok()?.len();
    if len == 0 {
        return None;
    }
    let mut header = [0_u8; 100];
    if handle.read_exact(&mut header).is_err() {
        return Some(format!("{len} bytes, shorter than a database header"));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Some("not an SQLite database".into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        size => u64::from(size),
    };
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    // The page count is valid when the change counter matches "version-valid-for".
    let valid = header[24..28] == header[92..96];
    (valid && len < pages * page_size)
        .then(|| format!("truncated: {len} bytes for {pages} pages of {page_size}"))
}

/// Moves a damaged `file` (and its WAL) to `<file>.corrupt-<unix time>` (with `.1`, `.2`, …
/// when taken: callers hold the [`OpenLock`], so the first free name is this caller's), and the
/// large values it referred to with it, and warns once.
fn move_aside(file: &Path, why: &str) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = file.parent().unwrap_or(Path::new("."));
    let taken = |suffix: &str| {
        PathBuf::from(format!("{}.{suffix}", file.display())).exists()
            || dir.join(format!("values.{suffix}")).exists()
    };
    let mut suffix = format!("corrupt-{stamp}");
    for n in 1..u32::MAX {
        if !taken(&suffix) {
            break;
        }
        suffix = format!("corrupt-{stamp}.{n}");
    }
    let aside = PathBuf::from(format!("{}.{suffix}", file.display()));
    let moved = std::fs::rename(file, &aside);
    for side in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{side}", file.display()));
        if from.exists() {
            let _ = std::fs::rename(&from, format!("{}{side}", aside.display()));
        }
    }
    if dir.join("values").exists() {
        let _ = std::fs::rename(dir.join("values"), dir.join(format!("values.{suffix}")));
    }
    match moved {
        Ok(()) => crate::trace::warn(&format!(
            "the disk cache {} was damaged ({why}); moved it to {} and started an empty one",
            file.display(),
            aside.display()
        )),
        Err(err) => crate::trace::warn(&format!(
            "the disk cache {} is damaged ({why}) and could not be moved aside ({err})",
            file.display()
        )),
    }
}

/// Flushes every open database when the process exits normally (`main` returns, or
/// `std::process::exit`), so that writes queued in the last moments are not lost.
fn register_exit_flush() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    extern "C" fn flush_all() {
        let open: Vec<_> = lock(&OPEN)
            .iter()
            .filter_map(|(_, db)| db.upgrade())
            .collect();
        for db in open {
            db.flush();
        }
    }
    REGISTER.call_once(|| {
        // SAFETY: `flush_all` is a plain `extern "C" fn` that does not unwind (it only locks
        // mutexes and waits for the writer threads, which run until the process ends).
        unsafe {
            libc::atexit(flush_all);
        }
    });
}
