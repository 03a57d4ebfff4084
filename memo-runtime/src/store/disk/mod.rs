//! A persistent store shared by processes (feature `disk`): SQLite in WAL mode under the cache
//! directory, values encoded with serde, an in-memory front for hits.
//!
//! - `db.rs`: the database of one cache directory (shared by the process's stores), opening,
//!   moving a damaged file aside, reads, error reports.
//! - `writer.rs`: group commit of writes by one thread per database.
//! - `version.rs`: the change counter every process of the directory maps, which tells a process
//!   whether the values in its front are still those on disk.
//! - `files.rs`: large values, in files beside the database.
//! - `checksum.rs`: the check each row keeps of its value.
//! - `lock.rs`: the per-key claim that makes processes missing one key compute it once.
//! - `perms.rs`: the checks that make a store's directory and files the user's own.

pub mod admin;
mod checksum;
mod db;
mod encoded;
mod files;
mod lock;
mod perms;
mod timer;
mod version;
mod writer;

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::OptionalExtension;
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::db::{Db, Space};
use self::writer::{Kind, Pending};
use super::fills::Fills;
use super::{Claim, Counts, Lease, MemoryStore, Store, TtlFrom};
#[cfg(any(test, feature = "test-util"))]
use crate::clock::Clock;
use crate::clock::{ClockCell, unix_millis};
use crate::codec::Codec;
use crate::config::Config;
use crate::lookup::Lookup;
use crate::{faithful, key};

/// Values whose encoding is at least this long are kept in files and read from disk each time
/// rather than kept in the in-memory front.
const FRONT_MAX_BYTES: usize = files::LARGE;

/// Entries the in-memory front holds when the store has no `maxsize`.
const FRONT_ENTRIES: usize = 1 << 17;

/// What a read from disk notes as it begins, to tell whether its value may enter the front.
struct Before {
    /// The change counter.
    version: u64,
    /// The key's hash (the front's).
    hash: u64,
    /// [`Fills::seen`] of the key.
    seen: u64,
}

/// Where and how a [`DiskStore`] keeps its entries.
///
/// A store is a directory under a root ([`default_root`], or [`root`](Self::root)): a store
/// made with [`new`](Self::new) is shared by every program of the user that names it (an entry
/// by the functions of one path and types: a library's function that two programs call); the
/// store of [`program`](Self::program) (`#[cached(store = disk)]` with no name) is the running
/// program's alone. The root must be the user's own, writable by no one else (see
/// [`DiskStore`]'s `# Trust`).
///
/// # Examples
///
/// ```
/// use memo::{Codec, Config, DiskOptions, DiskStore, Store};
///
/// let dir = std::env::temp_dir().join(format!("memo-doc-{}", std::process::id()));
/// let store: DiskStore<String, u64> = DiskOptions::new("doc")
///     .root(&dir)
///     .codec(Codec::Json)
///     .open(&Config::new().maxsize(1000));
/// store.insert("answer".to_string(), 42);
/// assert_eq!(store.get(&"answer"), Some(42));
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
#[derive(Clone, Debug)]
pub struct DiskOptions {
    name: String,
    root: Option<PathBuf>,
    function: String,
    version: u64,
    codec: Codec,
    /// The value type's `==`, where `#[cached]` finds it (`faithful.rs`).
    equal: Option<faithful::Equal>,
    max_bytes: u64,
    memory: Option<usize>,
    lease: Duration,
}

impl DiskOptions {
    /// The store called `name`: a subdirectory of the cache directory (characters other than
    /// ASCII letters, digits, `-`, `_` and `.` become `_`), shared by the programs of this
    /// user that name it (`#[cached(store = disk("name"))]`).
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            root: None,
            function: String::new(),
            version: 0,
            codec: Codec::Binary,
            equal: None,
            max_bytes: 1 << 30,
            memory: None,
            lease: Duration::from_secs(60),
        }
    }

    /// The store of the running program alone: what `#[cached(store = disk)]` uses when no
    /// store is named. Its directory is `default-<program>-<hash>`, where `<program>` is the
    /// executable's file name and `<hash>` a hash of its canonical path, so every run of one
    /// executable (and every process it runs of itself, such as a test binary's children) finds
    /// its entries again, and two programs never share them, even with the same crate and
    /// function names. Programs that are meant to share entries name a store:
    /// [`new`](Self::new) (`#[cached(store = disk("name"))]`).
    ///
    /// Moving or renaming the executable starts an empty store. Without a known executable path
    /// (no `/proc`), `argv[0]` stands for it.
    #[must_use]
    pub fn program() -> Self {
        let exe = std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map(std::path::PathBuf::into_os_string)
            .ok()
            .or_else(|| std::env::args_os().next())
            .unwrap_or_default();
        let stem = std::path::Path::new(&exe)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        // FNV-1a: stable across builds and versions of memo (the name must not change).
        let hash = key::fnv64(std::os::unix::ffi::OsStrExt::as_bytes(exe.as_os_str()));
        Self::new(&format!("default-{stem}-{hash:016x}"))
    }

    /// Keeps the store under `root` instead of the cache directory.
    #[must_use]
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Namespaces the entries by a function's identity (`#[cached]` passes the resolved path,
    /// e.g. `app::Celsius::boiling`) and a `version` to set old entries aside by hand, so that
    /// functions sharing a store never see each other's entries. The key and value types' serde
    /// shapes are always part of the namespace (a fingerprint of their field names, order and
    /// types): a build whose types changed never decodes an entry of the old layout.
    ///
    /// Two stores of one namespace opened in one process share its entries as two processes
    /// do: each keeps its own in-memory copies, and drops them when the other changes an entry,
    /// before it next reads.
    #[must_use]
    pub fn function(mut self, path: &str, version: u64) -> Self {
        self.function = path.to_string();
        self.version = version;
        self
    }

    /// Encodes values with `codec` (default: [`Codec::Binary`]).
    #[must_use]
    pub const fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Stores a value only if it decodes to one `equal` calls `==` to it (`faithful.rs`).
    pub(crate) const fn equal(mut self, equal: Option<faithful::Equal>) -> Self {
        self.equal = equal;
        self
    }

    /// Bounds the encoded values of this function to `bytes` in total (default 1 GiB); the
    /// entries stored longest ago go first.
    #[must_use]
    pub const fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Keeps up to `entries` decoded values in memory for fast hits (default: the `maxsize`, at
    /// most 131,072).
    #[must_use]
    pub const fn memory(mut self, entries: usize) -> Self {
        self.memory = Some(entries);
        self
    }

    /// How long another process's claim on a key is honoured before a waiter takes over
    /// (default 60 s): the longest computation that runs once across processes.
    #[must_use]
    pub const fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The directory of this store: `<root>/<name>`, where the root is the one given to
    /// [`root`](Self::root), else [`default_root`] (as given: [`open`](Self::open) checks it and
    /// resolves symlinks).
    #[must_use]
    pub fn path(&self) -> PathBuf {
        let root = self.root.clone().unwrap_or_else(default_root);
        let name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = match name.as_str() {
            "" | "." | ".." => "_".to_string(),
            _ => name,
        };
        root.join(name)
    }

    /// Opens the store, bounded and expired as `config` says (`maxsize`, `ttl`, `jitter`; with
    /// `stale`, rows are kept that much past their time to live, served while refreshed).
    ///
    /// This never fails: a directory or database that cannot be used, or that is refused
    /// because another user could have written to it, leaves the store in memory only, with the
    /// error counted in [`Counts::errors`] and logged once (with the reason).
    #[must_use]
    pub fn open<K: DeserializeOwned, V: DeserializeOwned>(
        &self,
        config: &Config,
    ) -> DiskStore<K, V> {
        self.open_shaped(config, key::fingerprint::<K, V>(self.version))
    }

    /// [`open`](Self::open) with the fingerprint of the types and version already taken: what
    /// `#[cached]` calls, from code that does not require serde of them (it reports a missing
    /// serde once, elsewhere).
    pub(crate) fn open_shaped<K, V>(&self, config: &Config, fingerprint: u64) -> DiskStore<K, V> {
        let db = Db::shared(&self.path());
        let space_name = format!("{}/{}", self.name, self.codec.name());
        let ns: Arc<[u8]> = key::namespace(&space_name, &self.function, fingerprint).into();
        let maxsize = config.maxsize.map(|max| max as u64);
        let space = db.space(&ns, maxsize, self.max_bytes);
        if !db.is_usable() {
            space.count_error(&"the cache directory or database cannot be opened");
        }
        let front_entries = self
            .memory
            .unwrap_or_else(|| config.maxsize.unwrap_or(FRONT_ENTRIES).min(FRONT_ENTRIES));
        let mut front = Config::new().maxsize(front_entries);
        front.ttl = config.ttl;
        front.idle = config.idle;
        // The front serves stale values and draws early refreshes as a memory store does; the
        // rows outlive the time to live by `stale`.
        front.stale = config.stale;
        front.refresh_early = config.refresh_early;
        let stale_ms = config.stale.filter(|_| config.renews()).map_or(0, |stale| {
            i64::try_from(stale.as_millis()).unwrap_or(i64::MAX)
        });
        let epoch = db.shared.epoch.load(Ordering::Acquire);
        space.handles.fetch_add(1, Ordering::AcqRel);
        DiskStore {
            front: MemoryStore::new(&front),
            epoch: AtomicU64::new(epoch),
            fills: Fills::new(),
            changes: AtomicU64::new(space.changes.load(Ordering::Acquire)),
            foreign: AtomicU64::new(0),
            db,
            ns,
            space,
            codec: self.codec,
            equal: self.equal,
            refusals: faithful::Refusals::default(),
            ttl_ms: config
                .lifetime()
                .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
            idle: config.idle.is_some(),
            jitter: config.jitter.filter(|j| *j > 0.0),
            ttl_from: None,
            renews: config.renews(),
            stale_ms,
            cost_ns: AtomicU64::new(0),
            lease: self.lease,
            clock: ClockCell::default(),
            disk_hits: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            config: *config,
            types: PhantomData,
        }
    }
}

/// The root of the stores: `$MEMO_CACHE_DIR`, else the user's cache directory's `memo`
/// (`$XDG_CACHE_HOME/memo` or `~/.cache/memo` on Linux), else, for a user with neither (no home
/// directory), `memo-<uid>` in the temporary directory, the user's own.
///
/// Whichever it is, a store uses it only if it is a directory of the user's that no one else can
/// write to, reached through no other user's symlink (it is created `0700` if missing); otherwise
/// the store keeps its entries in memory and says why (see [`DiskStore`]). A `memo-<uid>` that
/// another user made first is refused so, never used.
#[must_use]
pub fn default_root() -> PathBuf {
    #[cfg(feature = "test-util")]
    if let Some(root) = crate::testing::isolated_disk_root() {
        return root;
    }
    std::env::var_os("MEMO_CACHE_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|dir| dir.join("memo")))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("memo-{}", perms::uid())))
}

/// A persistent store shared by processes: what `#[cached(store = disk)]` uses.
///
/// Entries live in SQLite (WAL, `synchronous = NORMAL`) in the store's directory, keyed by the
/// function (identity and fingerprint of the types' shapes) and the encoded key, with an indexed expiry column; values
/// are encoded by a [`Codec`], and those of 32 KiB or more are kept in files beside the database
/// (`values/`, the file the row's `file` column names): a header, then the value's bytes as a
/// row would hold them. The header is `memoval1`, the namespace and the key each after its
/// `u32` length, and the value's `u64` length (all little-endian). Recently used values are
/// also kept decoded in memory, and a hit there costs about as much as an in-memory cache's: a
/// counter that every process bumps after writing, mapped from a file beside the database,
/// tells when they must be read again.
///
/// Writes are committed in groups by one thread per database (within about a millisecond), and
/// read back from the queue until then; `clear`, `len` and `keys` wait for the queue first.
/// Writes still queued when the process exits normally are committed before it ends.
///
/// # Concurrent calls on the same key
///
/// Processes that miss one key at the same time compute it once: the first takes a lock row
/// (holder, expiry) and the others poll, with backoff, until the value appears or the lock is
/// gone (then one of them computes) or its lease passes (a holder that died). The wait blocks
/// the calling thread, also under an `async fn` (a cross-process wait is rare: it needs another
/// process computing the same key at the same moment). A waiter that gives up (held past its
/// own lease and a second: a process with a longer lease) computes, and its value is stored
/// only while the row still holds the token of the holder it waited for: not over a removal,
/// a forced refresh or that holder's value, which came after its computation began.
///
/// # Trust
///
/// A value read back is returned as the function's, so the store's files must be the user's
/// alone. The root must be a directory owned by the user (the effective uid) and not writable by
/// group or others, reached through no symlink owned by another user (root's are trusted) and
/// no directory above it that everyone may write to without the sticky bit; the store's
/// directory must be a real directory of the user's. Otherwise the store is refused: it keeps
/// entries in memory only, warns once with the reason, and counts the error. Directories are
/// created `0700` and files `0600` (with `O_NOFOLLOW`, and `O_EXCL` for value files); a file of
/// another user is refused, and a looser mode of one of the user's own (a database copied in,
/// which SQLite would pass on to its `-wal` and `-shm`) is tightened.
///
/// # Faults
///
/// A damaged database is moved aside (`cache.db.corrupt-<time>`, then `.1`, `.2`, …) and
/// rebuilt, with a warning; processes that find it damaged at once converge on one new
/// database (one moves it aside; the others see that `cache.db` is no longer the file they
/// opened, and open the new one). Each row keeps a checksum (XXH3) of its namespace, key and
/// value: a value changed since it was written (in its row or its file) is a miss, as is one
/// that does not decode, a row written by a build that kept no checksum, and a value file that
/// does not hold this key's value of the recorded length (each starts with its namespaced key
/// and length). Value files that no row names (a process killed between writing one and
/// committing its row, a failed write) are removed an hour after they were written, when a
/// process next opens the directory. A full or read-only disk fails no call: the value is
/// returned and kept in memory only. A removal or `clear` the disk refuses is retried alone, and until it commits the
/// keys read as gone in this process (other processes still read the old rows). A row whose
/// size does not match its file is a miss; a panic in the writer fails its batch only; a
/// database that cannot be reopened makes the store not persistent; in a child forked without
/// exec the store computes and keeps values in memory. Each failure is counted in
/// [`Counts::errors`] (`Stats::backend_errors`) and logged at most once a minute; nothing
/// panics.
pub struct DiskStore<K, V> {
    front: MemoryStore<K, V>,
    /// The epoch of the database this front reflects.
    epoch: AtomicU64,
    /// This process's writes of the store's keys, so that a read that began before one does
    /// not put an older value into the front after it: its own write moves the change counter
    /// only when it commits, and a reader keeps its value if the counter has not moved.
    fills: Fills,
    /// The count of [`Space::changes`] this front reflects.
    changes: AtomicU64,
    /// How many times this store found a change by another store of its namespace in this
    /// process (and cleared its front): with the process's epoch, what tells a computation
    /// whether the namespace changed under it ([`Store::changes_seen`]), as another store's
    /// `invalidate` and `insert` do not reach this store's computations.
    foreign: AtomicU64,
    db: Arc<Db>,
    ns: Arc<[u8]>,
    space: Arc<Space>,
    codec: Codec,
    equal: Option<faithful::Equal>,
    /// Says the first key or value refused (see `faithful.rs`).
    refusals: faithful::Refusals,
    ttl_ms: Option<u64>,
    /// Whether a hit renews the time to live (time to idle): the front renews its copy, and the
    /// row's expiry follows (at most once per sixteenth of the time to live).
    idle: bool,
    /// The fraction each entry's time to live is spread by (`jitter`).
    jitter: Option<f64>,
    /// Each value's own time to live ([`ttl_from`](Self::ttl_from)).
    ttl_from: Option<TtlFrom<V>>,
    /// Entries are refreshed in the background (`stale`, early refresh): the front says when.
    renews: bool,
    /// How long a row outlives its time to live, served stale meanwhile (`stale`), in ms.
    stale_ms: i64,
    /// How long the last computation measured here took, in ns: the early-refresh lead of a
    /// value read from disk (computed by another process, or before a restart).
    cost_ns: AtomicU64,
    lease: Duration,
    clock: ClockCell,
    disk_hits: AtomicU64,
    /// Claims that waited for another caller's lock (tests check that none wait for nothing).
    waits: AtomicU64,
    config: Config,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Drop for DiskStore<K, V> {
    fn drop(&mut self) {
        self.space.handles.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<K, V> DiskStore<K, V> {
    /// Reads time from `clock` from now on (tests use [`Clock::mock`]); expiry on disk is in
    /// wall time, moved along with the clock (feature `test-util`).
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_clock(&self, clock: Clock) {
        self.front.set_clock(clock.clone());
        self.clock.set(clock);
    }

    /// Gives each value the time to live `ttl_from` reads from it, written as its row's expiry
    /// (and its copy in memory's); `None` leaves the store's `ttl`. See
    /// [`MemoryStore::ttl_from`](crate::MemoryStore::ttl_from).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::{Config, DiskOptions, DiskStore, Store};
    /// use std::time::Duration;
    ///
    /// let dir = std::env::temp_dir().join(format!("memo-doc-ttl-from-{}", std::process::id()));
    /// let store: DiskStore<u32, Option<u64>> = DiskOptions::new("doc")
    ///     .root(&dir)
    ///     .open(&Config::new().ttl(Duration::from_secs(60)))
    ///     .ttl_from(|max_age| max_age.map(Duration::from_secs));
    /// store.insert(1, Some(5)); // its row expires in 5 s
    /// assert_eq!(store.get(&&1), Some(Some(5)));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// ```
    #[must_use]
    pub fn ttl_from(mut self, ttl_from: TtlFrom<V>) -> Self {
        self.ttl_from = Some(ttl_from);
        self
    }

    /// Waits until every write made so far is committed, so other processes see it.
    pub fn flush(&self) {
        self.db.flush();
    }

    /// The directory the store keeps its files in.
    pub fn dir(&self) -> &std::path::Path {
        &self.db.shared.dir
    }

    /// Whether entries reach the disk (`false`: the directory or database could not be used,
    /// and the store keeps entries in memory only).
    pub fn is_persistent(&self) -> bool {
        self.db.is_usable()
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(unix_millis(self.clock.now())).unwrap_or(i64::MAX)
    }

    /// [`Store::get`] of a store whose hits renew entries (time to idle): a renewal of the front's
    /// copy moves the row's expiry too.
    #[cold]
    #[inline(never)]
    fn get_renewed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<V>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
        V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        if self.front_is_current()
            && let Some((value, renewed)) = self.front.get_renewed(hash, key)
        {
            if renewed && let Some(encoded) = faithful::key_bytes(&key.to_key()) {
                self.touch(encoded);
            }
            return Some(value);
        }
        self.load(hash, key, true)
    }

    /// Whether an entry of this time-to-idle store that expires at `expires_ms` is due for a
    /// renewal: a sixteenth of its time to live has passed since the last one.
    fn renewal_due(&self, expires_ms: i64) -> bool {
        let Some(ttl) = self.ttl_ms.filter(|_| self.idle) else {
            return false;
        };
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        expires_ms > 0 && self.now_ms() >= expires_ms.saturating_sub(ttl) + ttl / 16
    }

    /// Moves the row of the key encoded as `encoded` to expire a time to live from now, which it
    /// returns.
    fn touch(&self, encoded: Vec<u8>) -> i64 {
        let ttl = i64::try_from(self.ttl_ms.unwrap_or(0)).unwrap_or(i64::MAX);
        let expires = self.now_ms().saturating_add(ttl);
        self.db
            .shared
            .queue
            .push(&self.ns, encoded, Kind::Touch { expires });
        expires
    }

    /// The front's expiry stamp for a row that expires at `expires_ms` (0: never): the end of
    /// its time to live, `stale` before the row's end (the front serves it stale until then).
    fn front_expiry(&self, expires_ms: i64) -> u64 {
        if expires_ms <= 0 {
            return 0;
        }
        let expires_ms = expires_ms.saturating_sub(self.stale_ms).max(1);
        let now = self.clock.now();
        let left = expires_ms.saturating_sub(self.now_ms());
        // Past already for a value served stale: it goes `stale` after its time to live.
        let nanos = left.unsigned_abs().saturating_mul(1_000_000);
        if left >= 0 {
            now.saturating_add(nanos).max(1)
        } else {
            now.saturating_sub(nanos).max(1)
        }
    }
}

/// Where a value written to disk comes from, which decides what it does to its key's lock row.
#[derive(Clone, Copy)]
enum Claimed<'a> {
    /// A claim's: stored only while the key's lock row is still its own.
    Lock(&'a lock::LockClaim),
    /// A computation that ran without the lock (its claim failed): stored as is.
    Unclaimed,
    /// A computation whose wait for another caller's lock row timed out: stored only while
    /// that row still holds the token seen then (`lock::Waited`).
    Seen(i64),
    /// A plain insert: the key's lock row goes with the write, so that a computation of the key
    /// begun before, in any process, stores nothing over it.
    Inserted,
    /// A computation whose claim the database failed (`lock::Failed`): not written (see
    /// there), kept in memory only.
    Failed(&'a lock::Failed),
}

impl<K, V> DiskStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Whether the front may answer: no other process has written since it was filled (a
    /// write seen now clears it first). Without a shared counter, only a store that keeps
    /// nothing on disk trusts its front.
    #[inline]
    fn front_is_current(&self) -> bool {
        let changes = self.space.changes.load(Ordering::Acquire);
        if self.changes.load(Ordering::Acquire) != changes {
            // With every stripe's count moved: a read of this store from disk that began before
            // (it may have read a value the other store's write replaced, not yet committed)
            // keeps nothing in the front after the clear.
            self.fills.change_all(|| {
                self.front.clear();
                self.changes.store(changes, Ordering::Release);
                self.foreign.fetch_add(1, Ordering::AcqRel);
            });
        }
        let shared = &self.db.shared;
        let Some(version) = &shared.version else {
            return !self.db.is_usable();
        };
        if version.get() != shared.known.load(Ordering::Acquire) {
            shared.observe();
        }
        let epoch = shared.epoch.load(Ordering::Acquire);
        if self.epoch.load(Ordering::Acquire) != epoch {
            self.front.clear();
            self.epoch.store(epoch, Ordering::Release);
        }
        true
    }

    /// After this store changed or removed entries (queued, so that a read finds it): the
    /// other stores of its namespace open in this process clear their fronts before they next
    /// read. Nothing while it is the only one.
    fn changed(&self) {
        let space = &self.space;
        if space.handles.load(Ordering::Acquire) > 1 {
            let before = space.changes.fetch_add(1, Ordering::AcqRel);
            // Its own front has the change: current still, unless it missed another's.
            let _ = self.changes.compare_exchange(
                before,
                before + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// Counts a failure that has no SQLite error behind it (encoding, decoding).
    fn count_error(&self, what: &'static str) {
        self.space.count_error(&what);
    }

    /// Counts a key or value that is not stored because its encoding does not give it back
    /// (`faithful.rs`), and says the store's first: `why`, a [`faithful::key_refusal`] or
    /// [`faithful::value_refusal`].
    #[cold]
    fn count_refused(&self, what: &'static str, why: impl FnOnce() -> String) {
        self.count_error(what);
        self.refusals.warn(|| {
            let (space, function, _) = key::parse_namespace(&self.ns).unwrap_or_default();
            let store = if function.is_empty() { space } else { function };
            format!("disk store of `{store}`: {}", why())
        });
    }

    /// The early-refresh lead's cost: `measured` when there is one (remembered), else the last
    /// measured here.
    fn cost(&self, measured: Duration) -> Duration {
        if !self.renews {
            return Duration::ZERO;
        }
        if measured.is_zero() {
            return Duration::from_nanos(self.cost_ns.load(Ordering::Relaxed));
        }
        let nanos = u64::try_from(measured.as_nanos()).unwrap_or(u64::MAX);
        self.cost_ns.store(nanos, Ordering::Relaxed);
        measured
    }

    /// Keeps `value` in the front until the row's expiry `expires_ms` (less `stale`); a value
    /// with a time to live of its own (`own`) as such, which no hit renews under time to idle.
    fn keep_front(
        &self,
        hash: u64,
        key: K,
        value: V,
        (expires_ms, own): (i64, bool),
        cost: Duration,
    ) where
        K: std::hash::Hash + Eq + Clone,
    {
        if own && expires_ms > 0 {
            let left = expires_ms
                .saturating_sub(self.stale_ms)
                .saturating_sub(self.now_ms())
                .max(1);
            let ttl = Duration::from_millis(left.unsigned_abs());
            self.front.insert_with_ttl_hashed(hash, key, value, ttl);
        } else {
            self.front.insert_expiring_hashed(
                hash,
                key,
                value,
                self.front_expiry(expires_ms),
                cost,
            );
        }
    }

    /// The row expiry of a value whose time to live ends at `fresh_ms` (0: never): `stale`
    /// later.
    const fn row_expiry(&self, fresh_ms: i64) -> i64 {
        if fresh_ms <= 0 {
            0
        } else {
            fresh_ms.saturating_add(self.stale_ms)
        }
    }

    /// [`Store::get_renewing_hashed`]: the front decides whether the value is due, and makes one
    /// caller of this process the one to refresh it; a value read from disk goes to the front
    /// first. A value too large for the front is served, never refreshed in the background.
    fn get_due<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        if self.front_is_current()
            && let Some(found) = self.front.get_renewing_hashed(hash, key)
        {
            return Some(found);
        }
        let value = self.load(hash, key, false)?;
        if let Some(found) = self.front.get_renewing_hashed(hash, key) {
            return Some(found);
        }
        self.disk_hits.fetch_add(1, Ordering::Relaxed);
        Some((value, false))
    }

    /// Stores `value` under `key` (of hash `hash`, the front's; `encoded`, if its claim carried
    /// it), computed in `cost`, to expire a time to live from now.
    fn insert_costed(&self, hash: u64, key: K, claimed: Claimed<'_>, value: V, cost: Duration) {
        if let Some(ttl) = super::chosen(self.ttl_from, &value) {
            let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
            let fresh = self.now_ms().saturating_add(ttl);
            return self.put(hash, key, claimed, value, (fresh, true), cost);
        }
        let fresh = self.ttl_ms.map_or(0, |ttl| {
            let ttl = self
                .jitter
                .map_or(ttl, |fraction| crate::random::spread(ttl, fraction));
            self.now_ms()
                .saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))
        });
        self.put(hash, key, claimed, value, (fresh, false), cost);
    }

    /// The value of `key` from the write queue or the database (the front missed); kept in
    /// the front if no other process wrote meanwhile. `count`: a hit is counted.
    #[cold]
    #[inline(never)]
    fn load<L: Lookup<Key = K>>(&self, hash: u64, key: &L, count: bool) -> Option<V> {
        if !self.db.is_usable() {
            return None;
        }
        let owned = key.to_key();
        let Some(encoded) = encoded::encoding_of(&owned) else {
            self.count_refused("a key could not be encoded", || {
                faithful::key_refusal(&owned)
            });
            return None;
        };
        let found = self.load_encoded(hash, &owned, &encoded, count);
        if found.is_none() {
            // For the claim that follows on this thread: the key is encoded once per call.
            encoded::park(owned, encoded);
        }
        found
    }

    /// [`load`](Self::load) of `key` (of hash `hash`, the front's) encoded as `encoded`.
    fn load_encoded(&self, hash: u64, key: &K, encoded: &[u8], count: bool) -> Option<V> {
        let shared = &self.db.shared;
        // Before the queue is looked at: a write of this process counted before now is found
        // there or on disk; one counted after keeps this read's value out of the front.
        let before = shared.version.as_ref().map(|version| Before {
            version: version.get(),
            hash,
            seen: self.fills.seen(hash),
        });
        let mut pending = shared.queue.pending(&self.ns, encoded);
        if let Some(Pending::Put {
            token: Some(token),
            seen: Some(seen),
            ..
        }) = pending
            && shared.epoch_now() != Some(seen)
            && !self.holds(encoded, token)
        {
            // A claim's value, queued before a write of another process was seen, whose lock
            // row is gone: removed with its key (the writer refuses the value), or released by
            // the value's commit. The disk says which, without waiting for this process's
            // writer (which may wait on another process's transaction).
            pending = None;
        }
        // The row read from disk (its file and check), for a removal of it as a fault.
        let (bytes, expires, own, read): (Arc<[u8]>, i64, bool, _) = match pending {
            Some(Pending::Gone) => return None,
            Some(Pending::Put {
                value,
                expires,
                own,
                ..
            }) => (value, expires, own, None),
            None => {
                let Stored {
                    bytes,
                    expires,
                    own,
                    file,
                    sum,
                } = self.stored(encoded)?;
                (bytes.into(), expires, own, Some((file, sum)))
            }
        };
        if expires > 0 && expires <= self.now_ms() {
            return None;
        }
        // A value with a time to live of its own keeps it: no hit renews it.
        let expires = if count && !own && self.renewal_due(expires) {
            self.touch(encoded.to_vec())
        } else {
            expires
        };
        let Some(value) = self.codec.decode::<V>(&bytes) else {
            // Damaged: a miss, and removed, so that it is counted once and the next insert
            // overwrites it.
            self.count_error("a stored value did not decode");
            match read {
                Some((file, sum)) => self.discard(encoded, &bytes, file, sum),
                None => shared.queue.push(&self.ns, encoded.to_vec(), Kind::Delete),
            }
            return None;
        };
        if count {
            self.disk_hits.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(test)]
        tests::after_read();
        if let Some(before) = before
            && bytes.len() < FRONT_MAX_BYTES
        {
            self.remember(key.clone(), value.clone(), (expires, own), &before);
        }
        Some(value)
    }

    /// The value of the row of `encoded` on disk (from its file if large), its expiry, and its
    /// file and check (for [`discard`](Self::discard)), if it is there and sound: a value
    /// changed since it was written (or a file that is not this key's) is a miss, counted and
    /// discarded; a row written by a build that stored no check is a miss.
    fn stored(&self, encoded: &[u8]) -> Option<Stored> {
        let shared = &self.db.shared;
        // The check read as an integer whatever its column's type: one declared otherwise
        // (TEXT) keeps it as text, which would fail every read.
        let row = shared.read(&self.space, |conn| {
            conn.prepare_cached(
                "SELECT value, expires, file, size, CAST(sum AS INTEGER), own IS NOT NULL \
                 FROM entries WHERE ns = ?1 AND key = ?2",
            )?
            .query_row(rusqlite::params![&self.ns[..], encoded], |row| {
                Ok((
                    (row.get(0)?, row.get(1)?),
                    (row.get(2)?, row.get(3)?, row.get(4)?),
                    row.get(5)?,
                ))
            })
            .optional()
        });
        let ((bytes, expires), (file, size, sum), own): StoredRow = row.flatten()?;
        // Written by a build that stored no check: a miss, overwritten by this one.
        let sum = sum?;
        let bytes = match &file {
            None => bytes,
            Some(name) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                match files::read(&shared.dir, name, &self.ns, encoded, size) {
                    files::Found::Value(bytes) => bytes,
                    // Removed meanwhile by another process: a miss.
                    files::Found::Gone => return None,
                    files::Found::Wrong => {
                        // Swapped or cut short: a miss, and the row goes.
                        self.count_error("a value file is not this key's value");
                        self.discard(encoded, &[], file, sum);
                        return None;
                    }
                }
            }
        };
        if checksum::of(&self.ns, encoded, &bytes) != sum {
            // Changed since it was written: a miss, and the row goes.
            self.count_error("a stored value does not match its check");
            self.discard(encoded, &bytes, file, sum);
            return None;
        }
        Some(Stored {
            bytes,
            expires,
            own,
            file,
            sum,
        })
    }

    /// Removes the row of `encoded` found faulty as it was read (its value `bytes`, kept in the
    /// row unless in `file`; its check `sum`), unless another process replaced it since: its
    /// sound value stays.
    fn discard(&self, encoded: &[u8], bytes: &[u8], file: Option<String>, sum: i64) {
        let kind = Kind::Discard {
            value: if file.is_none() { bytes } else { &[] }.into(),
            file,
            sum,
        };
        self.db.shared.queue.push(&self.ns, encoded.to_vec(), kind);
    }

    /// Stores `value` under `key` (of hash `hash`), computed in `cost`, its time to live ending
    /// at `fresh` (Unix milliseconds; 0 for never; the row is kept `stale` longer): in the front
    /// (unless large) and, through the write queue, on disk. A claim's value (whose key it
    /// encoded already) is stored only while the claim's lock row is still its own; a plain
    /// insert's takes the key's lock row away (see [`Claimed`]).
    /// `own`: `fresh` is the value's own time to live (`insert_with_ttl`, `ttl_from`), which no
    /// hit renews under time to idle.
    fn put(
        &self,
        hash: u64,
        key: K,
        claimed: Claimed<'_>,
        value: V,
        (fresh, own): (i64, bool),
        cost: Duration,
    ) {
        let claim = match claimed {
            Claimed::Lock(claim) => Some(claim),
            Claimed::Failed(failed) => {
                return self.keep_unclaimed(hash, key, value, failed, (fresh, own), cost);
            }
            Claimed::Unclaimed | Claimed::Seen(_) | Claimed::Inserted => None,
        };
        let encoded = claim.map_or_else(
            || faithful::key_bytes(&key),
            |claim| Some(claim.encoded().to_vec()),
        );
        // Another store of this process changing the namespace from now on keeps the value out
        // of the front (a claim noted it when its row was taken).
        let foreign = claim.map_or_else(|| self.foreign.load(Ordering::Acquire), |c| c.foreign);
        // A claim's value whose lock row another process deleted (removing its key) is older
        // than that removal: not queued, where this process would read it back until the
        // writer refused it. So is a value whose wait timed out, once the row it waited on has
        // gone. `epoch`: the process's, before the row was found held.
        let row = match (claimed, &encoded) {
            (Claimed::Lock(claim), _) => Some(self.row_of(claim)),
            (Claimed::Seen(holder), Some(encoded)) => Some(self.row_holding(encoded, holder)),
            _ => None,
        };
        let (seen, epoch) = match row {
            Some(lock::Row::Gone) => return self.refuse(hash, &key),
            Some(lock::Row::Held { seen, epoch }) => (seen, Some(epoch)),
            None => (None, None),
        };
        let expires = self.row_expiry(fresh);
        let cost = self.cost(cost);
        let (encoded, bytes) = match (
            encoded,
            faithful::value_bytes(self.codec, &value, self.equal),
        ) {
            (Some(encoded), Ok(bytes)) => (encoded, bytes),
            (encoded, bytes) => {
                // Cannot be written: kept in memory only.
                self.count_refused("a key or value could not be encoded", || match bytes {
                    Err(refused) if encoded.is_some() => {
                        faithful::value_refusal::<V>(self.codec, refused)
                    }
                    _ => faithful::key_refusal(&key),
                });
                self.fills.change(hash, || ());
                self.keep_front(hash, key, value, (expires, own), cost);
                return;
            }
        };
        let small = bytes.len() < FRONT_MAX_BYTES;
        let token = match claimed {
            Claimed::Lock(claim) => Some(claim.token()),
            Claimed::Seen(holder) => Some(holder),
            Claimed::Unclaimed | Claimed::Inserted | Claimed::Failed(_) => None,
        };
        let kind = Kind::Put {
            value: bytes.into(),
            expires,
            token,
            now: self.now_ms(),
            seen,
            outdates: matches!(claimed, Claimed::Inserted),
            own,
        };
        let queue = &self.db.shared.queue;
        if let Some(claim) = claim {
            // An insert or removal of the key queued by another store of this process since
            // the claim (this store's own are refused before: `crate::writes`) is newer.
            if !queue.push_claimed(&self.ns, encoded, kind, claim.queued) {
                return self.refuse(hash, &key);
            }
        } else {
            queue.push(&self.ns, encoded, kind);
        }
        // Queued first: a read that begins after the count finds the write.
        self.fills.change(hash, || ());
        self.changed();
        #[cfg(test)]
        tests::after_queued(&self.db);
        if !small {
            self.front.remove(&&key);
            return;
        }
        // Checked first, so a change seen now does not clear this value right after.
        self.front_is_current();
        match epoch {
            Some(epoch) => {
                self.keep_fenced(hash, key, value, (expires, own), cost, (epoch, foreign));
            }
            None => self.keep_front(hash, key, value, (expires, own), cost),
        }
    }

    /// The value of a computation whose claim the database failed (see `lock::Failed`): not
    /// written, and kept in the front (the disk failing, calls still find their values in
    /// memory) only while no change by another store or process was seen since the claim.
    fn keep_unclaimed(
        &self,
        hash: u64,
        key: K,
        value: V,
        failed: &lock::Failed,
        (fresh, own): (i64, bool),
        cost: Duration,
    ) where
        K: std::hash::Hash + Eq + Clone,
    {
        let expires = self.row_expiry(fresh);
        let cost = self.cost(cost);
        self.fills.change(hash, || ());
        self.front_is_current();
        let fence = (failed.epoch, failed.foreign);
        self.keep_fenced(hash, key, value, (expires, own), cost, fence);
    }

    /// A claim's value not stored (it is older than a change of its key): nor kept in the
    /// front, where a copy read before would be older still.
    fn refuse(&self, hash: u64, key: &K) {
        self.fills.change(hash, || ());
        self.front.remove(&key);
    }

    /// Keeps a fenced value (a claim's, or a timed-out waiter's), queued, in the front (as
    /// [`keep_front`](Self::keep_front)), unless a change its write may not outlast was seen
    /// since: a move of the epoch since `epoch` (read before its lock row was found held: a
    /// removal of the key by another store or process, the writer refusing the value, an insert
    /// taking the row away) or a change of the namespace by another store of this process
    /// since `foreign` ([`foreign`](Self::foreign): its insert, which the writer has not
    /// committed yet). Checked under the gate and the key's stripe, which those moves take
    /// exclusively: either the check sees a move, or the move comes after the copy, and the
    /// next read clears the front first.
    fn keep_fenced(
        &self,
        hash: u64,
        key: K,
        value: V,
        expiry: (i64, bool),
        cost: Duration,
        (epoch, foreign): (u64, u64),
    ) {
        let shared = &self.db.shared;
        let _shared = shared
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.fills.during(hash, || {
            if shared.epoch.load(Ordering::Acquire) == epoch
                && self.foreign.load(Ordering::Acquire) == foreign
            {
                self.keep_front(hash, key, value, expiry, cost);
            } else {
                self.front.remove(&&key);
            }
        });
    }

    /// Keeps a value read from disk in the front, unless a write by another process, or one of
    /// this key by this process, may have come after the read began.
    fn remember(&self, key: K, value: V, (expires_ms, own): (i64, bool), before: &Before) {
        let shared = &self.db.shared;
        let Some(version) = &shared.version else {
            return;
        };
        let _shared = shared
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.fills.fill(before.hash, before.seen, || {
            if version.get() == before.version
                && shared.known.load(Ordering::Acquire) == before.version
                && self.epoch.load(Ordering::Acquire) == shared.epoch.load(Ordering::Acquire)
            {
                let cost = self.cost(Duration::ZERO);
                self.keep_front(before.hash, key, value, (expires_ms, own), cost);
            }
        });
    }
}

impl<K, V> Store<K, V> for DiskStore<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Its writes are queued when called ([`insert_claimed_async`](Store::insert_claimed_async)).
    const STORES_AT_ONCE: bool = true;

    #[inline]
    fn get<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        self.get_hashed(self.front.hash_of(key), key)
    }

    /// The front's: the hash a call carries finds the key there.
    #[inline]
    fn hash_of<L: Lookup<Key = K>>(&self, key: &L) -> u64 {
        self.front.hash_of(key)
    }

    #[inline]
    fn get_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<V> {
        if self.idle {
            return self.get_renewed(hash, key);
        }
        if self.front_is_current()
            && let Some(value) = self.front.get_hashed(hash, key)
        {
            return Some(value);
        }
        self.load(hash, key, true)
    }

    fn peek<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        if self.front_is_current()
            && let Some(value) = self.front.peek(key)
        {
            return Some(value);
        }
        self.load(self.front.hash_of(key), key, false)
    }

    fn insert(&self, key: K, value: V) {
        let hash = self.front.hash_of(&&key);
        self.insert_costed(hash, key, Claimed::Inserted, value, Duration::ZERO);
    }

    fn insert_timed(&self, key: K, value: V, cost: Duration) {
        let hash = self.front.hash_of(&&key);
        self.insert_costed(hash, key, Claimed::Inserted, value, cost);
    }

    /// The key's encoding comes with its claim's lease (the lock row is the key's); the lock is
    /// released after the value's write is queued, so both land in one transaction. Queued at
    /// once: the writer thread writes.
    fn insert_claimed_async<'a>(
        &'a self,
        hash: u64,
        key: K,
        value: V,
        cost: Duration,
        lease: Lease,
    ) -> impl Future<Output = ()> + Send + 'a
    where
        K: 'a,
        V: 'a,
    {
        match lease.take::<lock::LockClaim>() {
            Ok(claim) => {
                self.insert_costed(hash, key, Claimed::Lock(&claim), value, cost);
                drop(claim);
            }
            Err(lease) => match lease.take::<lock::Waited>() {
                Ok(lock::Waited {
                    holder: Some(holder),
                }) => self.insert_costed(hash, key, Claimed::Seen(holder), value, cost),
                // A wait that timed out with no holder seen: nothing fences the value.
                Ok(lock::Waited { holder: None }) => {}
                Err(lease) => match lease.take::<lock::Failed>() {
                    Ok(failed) => {
                        self.insert_costed(hash, key, Claimed::Failed(&failed), value, cost);
                    }
                    Err(lease) => {
                        self.insert_costed(hash, key, Claimed::Unclaimed, value, cost);
                        drop(lease);
                    }
                },
            },
        }
        std::future::ready(())
    }

    fn get_renewing_hashed<L: Lookup<Key = K>>(&self, hash: u64, key: &L) -> Option<(V, bool)> {
        if !self.renews {
            return self.get_hashed(hash, key).map(|value| (value, false));
        }
        self.get_due(hash, key)
    }

    fn release_refresh<L: Lookup<Key = K>>(&self, key: &L) {
        self.front.release_refresh(key);
    }

    /// The key's lock row, as a miss takes it, so that one process refreshes the key; taken
    /// at once, or not at all.
    fn claim_refresh_async<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Option<Lease>> + Send + 'a
    where
        V: 'a,
    {
        std::future::ready(match faithful::key_bytes(key) {
            Some(encoded) => self.claim_refresh_key(encoded),
            None => Some(Lease::none()),
        })
    }

    /// The key's lock row, taken over whoever holds it (see `lock.rs`): a forced refresh's
    /// value is then stored only while the row is still its own, as a miss's.
    fn mark_refresh_async<'a>(
        &'a self,
        _: u64,
        key: &'a K,
    ) -> impl Future<Output = Lease> + Send + 'a
    where
        V: 'a,
    {
        std::future::ready(match faithful::key_bytes(key) {
            Some(encoded) => self.mark_refresh_key(encoded),
            None => Lease::none(),
        })
    }

    fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let hash = self.front.hash_of(&&key);
        self.put(
            hash,
            key,
            Claimed::Inserted,
            value,
            (self.now_ms().saturating_add(ttl), true),
            Duration::ZERO,
        );
    }

    fn remove<L: Lookup<Key = K>>(&self, key: &L) -> bool {
        self.take(key).is_some()
    }

    /// The delete is committed, then counted, then the front's copy goes: a read that began
    /// before it keeps nothing after, and a process killed once it returned leaves the value
    /// gone from disk.
    fn take<L: Lookup<Key = K>>(&self, key: &L) -> Option<V> {
        let value = self.peek(key);
        if let Some(encoded) = faithful::key_bytes(&key.to_key()) {
            self.unlock(Some(&encoded));
            self.db.shared.queue.push(&self.ns, encoded, Kind::Delete);
            self.db.flush_removal();
        }
        self.changed();
        self.fills.change(self.front.hash_of(key), || ());
        self.front.remove(key);
        value
    }

    /// Committed, then counted, then the front is emptied: until the commit, a row read is
    /// not answered by the queue (the clear is not per key).
    fn clear(&self) {
        self.unlock(None);
        self.db.shared.queue.push(&self.ns, Vec::new(), Kind::Clear);
        self.db.flush();
        self.changed();
        self.fills.change_all(|| ());
        self.front.clear();
    }

    fn len(&self) -> usize {
        if !self.db.is_usable() {
            return self.front.len();
        }
        self.db.flush();
        self.db
            .shared
            .read(&self.space, |conn| {
                conn.prepare_cached("SELECT count FROM spaces WHERE ns = ?1")?
                    .query_row([&self.ns[..]], |row| row.get::<_, i64>(0))
                    .optional()
            })
            .flatten()
            .map_or(0, |count| usize::try_from(count).unwrap_or(0))
    }

    fn keys(&self) -> Vec<K> {
        if !self.db.is_usable() {
            return self.front.keys();
        }
        self.db.flush();
        let now = self.now_ms();
        let encoded = self.db.shared.read(&self.space, |conn| {
            conn.prepare_cached(
                "SELECT key FROM entries WHERE ns = ?1 AND (expires = 0 OR expires > ?2)",
            )?
            .query_map(rusqlite::params![&self.ns[..], now], |row| {
                row.get::<_, Vec<u8>>(0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        });
        encoded
            .unwrap_or_default()
            .iter()
            .filter_map(|bytes| postcard::from_bytes(bytes).ok())
            .collect()
    }

    fn has_ttl(&self) -> bool {
        self.ttl_ms.is_some() || self.ttl_from.is_some()
    }

    fn purge_expired(&self) -> usize {
        let purged = self.front.purge_expired();
        if !self.db.is_usable() {
            return purged;
        }
        let now = self.now_ms();
        self.db
            .shared
            .read(&self.space, |conn| {
                writer::purge(
                    conn,
                    &self.db.shared.dir,
                    &self.ns,
                    now,
                    &self.space.expired,
                )
            })
            .unwrap_or(0)
    }

    fn counts(&self) -> Counts {
        Counts {
            hits: self.front.counts().hits + self.disk_hits.load(Ordering::Relaxed),
            evicted: self.space.evicted.load(Ordering::Relaxed),
            expired: self.space.expired.load(Ordering::Relaxed),
            errors: self.space.errors.load(Ordering::Relaxed),
        }
    }

    /// The process's epoch (another process's commit seen, a removal that took a lock row,
    /// a value refused) and this store's count of changes by the namespace's other stores in
    /// this process, once those made so far are seen: each of them moves one.
    fn changes_seen(&self) -> u64 {
        self.front_is_current();
        let epoch = self.db.shared.epoch.load(Ordering::Acquire);
        epoch.wrapping_add(self.foreign.load(Ordering::Acquire))
    }

    /// Waits for another process's lock without blocking the executor's thread.
    async fn claim_async<'a>(&'a self, hash: u64, key: &'a K) -> Claim<V>
    where
        V: Send + 'a,
    {
        self.claim_key_async(hash, key).await
    }

    fn config(&self) -> Config {
        self.config
    }

    fn backend(&self) -> &'static str {
        "disk"
    }
}

impl<K, V> std::fmt::Debug for DiskStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.db.shared.dir)
            .finish_non_exhaustive()
    }
}

/// A row as read: value and expiry, then file, size and check, then whether `own`.
type StoredRow = ((Vec<u8>, i64), (Option<String>, i64, Option<i64>), bool);

/// A sound row as [`DiskStore::stored`] read it.
struct Stored {
    /// The value's bytes, from the row or its file.
    bytes: Vec<u8>,
    expires: i64,
    /// Whether `expires` is the value's own time to live (the row's `own`).
    own: bool,
    /// The file of a large value, and the row's check: what a discard of the row matches.
    file: Option<String>,
    sum: i64,
}

#[cfg(test)]
mod tests;
