//! A disk store's directory seen from outside its functions: which functions have entries there,
//! how many and how large, what they hold, and clearing one. What `memo-cli` shows; not part of
//! the API a memoized function uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::db::{Db, Space};
use super::writer::Kind;
use super::{checksum, files};

/// The entries of one function in a store's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFunction {
    /// The store's name and codec as the function opened it: `scraper/json`, `default-app-…/binary`.
    pub space: String,
    /// The function's identity: `app::fetch`, `app::Celsius::boiling`.
    pub function: String,
    /// The fingerprint of its key and value types' shapes (and its `version`).
    pub fingerprint: u64,
    /// How many entries it has (expired ones not yet swept included).
    pub entries: u64,
    /// Their size in bytes (keys and values).
    pub bytes: u64,
    namespace: Vec<u8>,
}

impl StoredFunction {
    /// `"json"` or `"binary"`: how its values are encoded.
    #[must_use]
    pub fn codec(&self) -> &str {
        self.space.rsplit_once('/').map_or("", |(_, codec)| codec)
    }
}

/// One stored entry, as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// The key, encoded with postcard.
    pub key: Vec<u8>,
    /// The value, encoded with the function's codec; `None` for a value kept in a file of its
    /// own (32 KiB or more).
    pub value: Option<Vec<u8>>,
    /// The size of the value in bytes.
    pub size: u64,
    /// When it expires, in milliseconds since the Unix epoch (`None`: never).
    pub expires_ms: Option<i64>,
    /// Whether its value is the one written, as the check stored with it says (in its row or
    /// its file). A program reads only such values: one changed since (a flipped bit, a write
    /// cut short) is a miss and deleted when read, and a row of an earlier build, which kept
    /// no check, is a miss and written again.
    pub intact: bool,
}

/// An `entries` row as read.
struct Row {
    key: Vec<u8>,
    value: Vec<u8>,
    file: Option<String>,
    size: i64,
    expires: i64,
    sum: Option<i64>,
}

/// A store's directory, opened for inspection (`<root>/<name>`, see `DiskOptions::path`).
pub struct DiskDirectory {
    dir: PathBuf,
    db: Arc<Db>,
    space: Arc<Space>,
}

impl DiskDirectory {
    /// Opens the store in `dir`; `None` if it holds no usable database.
    #[must_use]
    pub fn open(dir: &Path) -> Option<Self> {
        if !dir.join("cache.db").is_file() {
            return None;
        }
        let db = Db::shared(dir);
        if !db.is_usable() {
            return None;
        }
        // Reads report their failures on a space; this one is the inspector's own.
        let space = db.space(&Arc::from(&b"memo-cli"[..]), None, u64::MAX);
        Some(Self {
            dir: dir.to_path_buf(),
            db,
            space,
        })
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The functions that have entries here (or had: a cleared one shows 0), by identity.
    #[must_use]
    pub fn functions(&self) -> Vec<StoredFunction> {
        self.db.flush();
        let rows = self
            .db
            .shared
            .read(&self.space, |conn| {
                let mut statement = conn.prepare("SELECT ns, count, bytes FROM spaces")?;
                let rows = statement.query_map([], |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default();
        let mut functions: Vec<StoredFunction> = rows
            .into_iter()
            .filter_map(|(namespace, entries, bytes)| {
                let (space, function, fingerprint) = crate::key::parse_namespace(&namespace)?;
                Some(StoredFunction {
                    space,
                    function,
                    fingerprint,
                    entries: u64::try_from(entries).unwrap_or(0),
                    bytes: u64::try_from(bytes).unwrap_or(0),
                    namespace,
                })
            })
            .collect();
        functions.sort_by(|a, b| (&a.function, &a.space).cmp(&(&b.function, &b.space)));
        functions
    }

    /// Up to `limit` entries of `function`, oldest first.
    #[must_use]
    pub fn entries(&self, function: &StoredFunction, limit: usize) -> Vec<StoredEntry> {
        self.db.flush();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .shared
            .read(&self.space, |conn| {
                let mut statement = conn.prepare(
                    "SELECT key, value, file, size, expires, CAST(sum AS INTEGER) FROM entries \
                     WHERE ns = ?1 ORDER BY id LIMIT ?2",
                )?;
                let rows =
                    statement.query_map(rusqlite::params![function.namespace, limit], |row| {
                        Ok(Row {
                            key: row.get(0)?,
                            value: row.get(1)?,
                            file: row.get(2)?,
                            size: row.get(3)?,
                            expires: row.get(4)?,
                            sum: row.get(5)?,
                        })
                    })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default();
        rows.into_iter()
            .map(|row| self.entry(&function.namespace, row))
            .collect()
    }

    /// `row` as shown, its value checked (read from its file if it has one).
    fn entry(&self, ns: &[u8], row: Row) -> StoredEntry {
        let size = usize::try_from(row.size).unwrap_or(usize::MAX);
        let intact = row.sum.is_some_and(|sum| match &row.file {
            None => checksum::of(ns, &row.key, &row.value) == sum,
            Some(name) => matches!(
                files::read(&self.db.shared.dir, name, ns, &row.key, size),
                files::Found::Value(bytes) if checksum::of(ns, &row.key, &bytes) == sum
            ),
        });
        StoredEntry {
            value: row.file.is_none().then_some(row.value),
            key: row.key,
            size: u64::try_from(row.size).unwrap_or(0),
            expires_ms: (row.expires > 0).then_some(row.expires),
            intact,
        }
    }

    /// The namespaces that a later version of their function set aside. Each edit of a
    /// function's code or of its types' shapes starts a namespace, and the earlier ones' entries
    /// stay until cleared or expired; of the namespaces of one function and store, all but the
    /// one written last (holding the newest row; an empty one counts as never written).
    #[must_use]
    pub fn superseded(&self) -> Vec<StoredFunction> {
        let functions = self.functions();
        let newest: std::collections::HashMap<Vec<u8>, i64> = self
            .db
            .shared
            .read(&self.space, |conn| {
                let mut statement = conn.prepare("SELECT ns, MAX(id) FROM entries GROUP BY ns")?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()
            })
            .unwrap_or_default();
        let written = |function: &StoredFunction| newest.get(&function.namespace).copied();
        let mut superseded = Vec::new();
        for function in &functions {
            let later = functions.iter().any(|other| {
                other.function == function.function
                    && other.space == function.space
                    && (written(other), &other.namespace) > (written(function), &function.namespace)
            });
            if later {
                superseded.push(function.clone());
            }
        }
        superseded
    }

    /// Removes `function` from the directory: its entries, as [`clear`](Self::clear), and then
    /// its totals, so that it is no longer listed (unless a program stores in it again).
    pub fn forget(&self, function: &StoredFunction) {
        self.clear(function);
        if self.db.is_usable() {
            self.db.shared.read(&self.space, |conn| {
                conn.prepare_cached("DELETE FROM spaces WHERE ns = ?1 AND count = 0")?
                    .execute(rusqlite::params![function.namespace])
            });
        }
    }

    /// Removes every entry of `function`, as its cache's `clear()` does (processes holding
    /// copies in memory drop them).
    pub fn clear(&self, function: &StoredFunction) {
        // Its lock rows first: a computation under way in a program stores nothing after this.
        if self.db.is_usable() {
            self.db.shared.read(&self.space, |conn| {
                conn.prepare_cached("DELETE FROM locks WHERE ns = ?1")?
                    .execute(rusqlite::params![function.namespace])
            });
        }
        self.db
            .shared
            .queue
            .push(&Arc::from(&function.namespace[..]), Vec::new(), Kind::Clear);
        self.db.flush();
        // The fronts of this process too: the commit was its own, so `known` moved with it
        // and the counter alone would leave them current. Readers that began before the
        // commit keep nothing (the counter moved); those between it and this, nothing stale.
        let shared = &self.db.shared;
        let _exclusive = shared
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shared.epoch.fetch_add(1, Ordering::AcqRel);
    }
}
