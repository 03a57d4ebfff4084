//! Large values (32 KiB and more) live in files beside the database, as diskcache keeps them:
//! the row holds the file's name, and the database stays small and quick to page through.
//!
//! A file is written (to a temporary name, then renamed) before the transaction that refers to
//! it commits, and removed after the transaction that drops its row commits; a process reading a
//! file removed meanwhile sees a miss. Files are created `0600` in `values/`, a `0700` directory.

use std::fs::OpenOptions;
use std::hash::BuildHasher;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Values this long or longer are kept in files.
pub(super) const LARGE: usize = 32 << 10;

fn values(dir: &Path) -> PathBuf {
    dir.join("values")
}

/// Writes `bytes` to a new file under `dir`; returns its name.
pub(super) fn write(dir: &Path, bytes: &[u8]) -> std::io::Result<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let folder = values(dir);
    super::db::create_dir(&folder)?;
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
        .open(&temporary)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&temporary, folder.join(&name))?;
    Ok(name)
}

/// The bytes of the file `name` under `dir`; `None` if it is gone.
pub(super) fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return None;
    }
    std::fs::read(values(dir).join(name)).ok()
}

/// Removes the files `names` under `dir` (those already gone are no error).
pub(super) fn remove(dir: &Path, names: &[String]) {
    for name in names {
        if !name.contains(['/', '\\']) && !name.starts_with('.') {
            let _ = std::fs::remove_file(values(dir).join(name));
        }
    }
}
