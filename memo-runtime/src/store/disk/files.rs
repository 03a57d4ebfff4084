//! Large values (32 KiB and more) live in files beside the database, as diskcache keeps them:
//! the row holds the file's name, and the database stays small and quick to page through.
//!
//! A file is written (to a temporary name, then renamed) before the transaction that refers to
//! it commits, and removed after the transaction that drops its row commits; a process reading a
//! file removed meanwhile sees a miss. Files are created `0600` (`O_EXCL`, `O_NOFOLLOW`) in
//! `values/`, a `0700` directory.
//!
//! A file starts with the namespaced key it holds and the value's length, checked on each read:
//! a file that was swapped, copied over another, or cut short is a miss, never another key's
//! value. Files no row refers to (a process killed between writing a file and committing its
//! row, or a write that failed) are removed once they are [`ORPHAN_AGE`] old, when a process
//! opens the database.

use std::fs::OpenOptions;
use std::hash::BuildHasher;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension};

/// Values this long or longer are kept in files.
pub(super) const LARGE: usize = 32 << 10;

/// A file no row refers to and this old is an orphan: no transaction stays open this long
/// between writing a file and committing the row that names it.
pub(super) const ORPHAN_AGE: Duration = Duration::from_secs(60 * 60);

/// The first bytes of a value file (the format's version is its last digit).
const MAGIC: &[u8; 8] = b"memoval1";

fn values(dir: &Path) -> PathBuf {
    dir.join("values")
}

/// `MAGIC`, then `ns` and `key` each after its `u32` length, then the value's `u64` length
/// (all little-endian).
fn header(ns: &[u8], key: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 16 + ns.len() + key.len());
    out.extend_from_slice(MAGIC);
    for part in [ns, key] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out
}

/// Writes the value `bytes` of `key` in namespace `ns` to a new file under `dir`; returns its
/// name.
pub(super) fn write(dir: &Path, ns: &[u8], key: &[u8], bytes: &[u8]) -> std::io::Result<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let folder = values(dir);
    super::perms::private_dir(&folder)?;
    let seed = foldhash::fast::RandomState::default();
    let unique = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let name = format!(
        "{:016x}{:016x}.val",
        seed.hash_one(unique),
        seed.hash_one((unique, 1_u8))
    );
    let temporary = folder.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temporary)?;
    let written = file
        .write_all(&header(ns, key, bytes.len()))
        .and_then(|()| file.write_all(bytes));
    drop(file);
    if let Err(err) = written.and_then(|()| std::fs::rename(&temporary, folder.join(&name))) {
        let _ = std::fs::remove_file(&temporary);
        return Err(err);
    }
    Ok(name)
}

/// What reading a value file found.
pub(super) enum Found {
    Value(Vec<u8>),
    /// Removed meanwhile (by the writer of another process): a plain miss.
    Gone,
    /// Not the value of this key (another key's, or cut short): a miss, and a fault.
    Wrong,
}

/// The value of `key` in namespace `ns` from the file `name` under `dir`, `size` bytes long.
///
/// `size` comes from the row, which may be damaged: a size no value has, or that is not the
/// file's, is `Wrong` before anything that long is allocated.
pub(super) fn read(dir: &Path, name: &str, ns: &[u8], key: &[u8], size: usize) -> Found {
    if name.contains(['/', '\\']) || name.starts_with('.') || size > crate::codec::MAX_DECODE {
        return Found::Wrong;
    }
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(values(dir).join(name));
    let Ok(file) = opened else {
        return Found::Gone;
    };
    let expected = header(ns, key, size);
    if file
        .metadata()
        .is_ok_and(|meta| meta.len() != (expected.len() + size) as u64)
    {
        return Found::Wrong;
    }
    let mut bytes = Vec::with_capacity(expected.len() + size);
    // One byte more than the file should hold, to see a file that is too long.
    let limit = (expected.len() + size + 1) as u64;
    if file.take(limit).read_to_end(&mut bytes).is_err() {
        return Found::Gone;
    }
    if bytes.len() != expected.len() + size || !bytes.starts_with(&expected) {
        return Found::Wrong;
    }
    bytes.drain(..expected.len());
    Found::Value(bytes)
}

/// Removes the files `names` under `dir` (those already gone are no error).
pub(super) fn remove(dir: &Path, names: &[String]) {
    for name in names {
        if !name.contains(['/', '\\']) && !name.starts_with('.') {
            let _ = std::fs::remove_file(values(dir).join(name));
        }
    }
}

/// Removes the files under `dir`'s `values/` that are at least `age` old and that no row of
/// `conn`'s database names (temporary files of writes that never finished, values whose row was
/// never committed); returns how many went.
pub(super) fn sweep(dir: &Path, conn: &Connection, age: Duration) -> rusqlite::Result<usize> {
    let Ok(listing) = std::fs::read_dir(values(dir)) else {
        return Ok(0);
    };
    let Some(before) = SystemTime::now().checked_sub(age) else {
        return Ok(0);
    };
    let mut named = conn.prepare_cached("SELECT 1 FROM entries WHERE file = ?1 LIMIT 1")?;
    let mut removed = 0;
    for entry in listing.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|at| at <= before);
        if !old {
            continue;
        }
        // Only the names `write` gives: `<32 hex digits>.val`, and `.tmp` after it.
        let orphan = match name.split_once('.') {
            Some((_, "val.tmp")) => true,
            Some((_, "val")) => named.query_row([name], |_| Ok(())).optional()?.is_none(),
            _ => false,
        };
        if orphan && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}
