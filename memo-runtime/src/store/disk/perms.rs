//! Who may have put what is in a store: the checks that make a store directory the user's own.
//!
//! A value read from the cache is returned as if the function had computed it, so the files it
//! comes from must be writable by nobody but the user. A store is used only when:
//!
//! - its root (`$MEMO_CACHE_DIR`, `~/.cache/memo`, …) is a directory owned by the user (the
//!   effective uid) and not writable by group or others;
//! - no component of the root's path is a symlink owned by another user (root's own symlinks,
//!   such as `/var/run`, are trusted), and no directory above the root is owned by another user
//!   (not root), or writable by everyone or by a group other than the user's own without the
//!   sticky bit (they could swap the root there);
//! - the store's directory under the root (and its `values/`) is a real directory (not a
//!   symlink), owned by the user and not writable by others; it is created `0700`, and one
//!   that others may only read or enter is tightened to `0700`;
//! - every file is opened with `O_NOFOLLOW`, owned by the user, and `0600` (created so, or
//!   tightened: SQLite gives its `-wal` and `-shm` files the mode of the database file).
//!
//! Anything else is refused with an error that says why; the store then stays in memory.

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io::{Error, ErrorKind, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Write permission for the group or others.
const SHARED_WRITE: u32 = 0o022;

/// The effective uid of this process: the owner its files get.
pub(super) fn uid() -> u32 {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn refused(path: &Path, why: &str) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        format!("{} {why}; refusing to use it", path.display()),
    )
}

/// Checks the root above `dir` and creates `dir` in it; returns `dir` with symlinks resolved,
/// the path every file of the store is then opened under (checked, so no one else can change
/// what it names).
pub(super) fn store_dir(dir: &Path) -> Result<PathBuf> {
    let dir = std::path::absolute(dir)?;
    let (Some(root), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(refused(&dir, "has no parent directory"));
    };
    check_symlinks(root)?;
    DirBuilder::new().recursive(true).mode(0o700).create(root)?;
    let root = root.canonicalize()?;
    for above in root.ancestors().skip(1) {
        check_above(above, &std::fs::metadata(above)?)?;
    }
    let meta = std::fs::metadata(&root)?;
    if meta.uid() != uid() {
        return Err(refused(&root, &format!("is owned by uid {}", meta.uid())));
    }
    if meta.mode() & SHARED_WRITE != 0 {
        return Err(refused(
            &root,
            &format!(
                "is writable by other users (mode {:o})",
                meta.mode() & 0o777
            ),
        ));
    }
    let dir = root.join(name);
    private_dir(&dir)?;
    Ok(dir)
}

/// Refuses a directory above the root whose owner or writers could rename the root away and put
/// their own in its place: one owned by another user (not root), one writable by everyone, or
/// by a group other than the user's own, without the sticky bit (which keeps others from
/// renaming what is not theirs). The user's own group (a group of one, as most systems give each
/// user) may write to it, as a `umask` of `002` has it.
fn check_above(above: &Path, meta: &Metadata) -> Result<()> {
    if ![0, uid()].contains(&meta.uid()) {
        return Err(refused(above, &format!("is owned by uid {}", meta.uid())));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if !sticky && meta.mode() & 0o002 != 0 {
        return Err(refused(
            above,
            "is writable by everyone without the sticky bit",
        ));
    }
    if !sticky && meta.mode() & 0o020 != 0 && meta.gid() != gid() {
        return Err(refused(
            above,
            &format!("is writable by group {} without the sticky bit", meta.gid()),
        ));
    }
    Ok(())
}

/// The effective gid of this process.
fn gid() -> u32 {
    // SAFETY: `getegid` has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Refuses a symlink owned by another user (not root) among `path` and the directories above
/// it: its owner could point it anywhere at any time. Components that do not exist yet are
/// skipped (they are created by this process).
fn check_symlinks(path: &Path) -> Result<()> {
    for component in path.ancestors() {
        match std::fs::symlink_metadata(component) {
            Ok(meta) if meta.file_type().is_symlink() && ![0, uid()].contains(&meta.uid()) => {
                return Err(refused(
                    component,
                    &format!("is a symlink owned by uid {}", meta.uid()),
                ));
            }
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Creates the directory `path` `0700`, or checks the one there: a real directory of this
/// user's that no one else can write to (one that others may read is tightened to `0700`).
pub(super) fn private_dir(path: &Path) -> Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Err(err) if err.kind() != ErrorKind::AlreadyExists => return Err(err),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Err(refused(path, "is not a directory (a symlink?)"));
    }
    mine(path, &meta)?;
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Refuses what another user owns, and what others may write to (they may have written).
fn mine(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.uid() != uid() {
        return Err(refused(path, &format!("is owned by uid {}", meta.uid())));
    }
    if meta.mode() & SHARED_WRITE != 0 && !meta.is_file() {
        return Err(refused(
            path,
            &format!(
                "is writable by other users (mode {:o})",
                meta.mode() & 0o777
            ),
        ));
    }
    Ok(())
}

/// Opens the file `path` for reading and writing, created `0600` if `create`, never through a
/// symlink; refuses a file another user owns and tightens a looser mode to `0600` (a file of
/// ours in our own directory; only its mode was loose, e.g. copied in).
pub(super) fn open_file(path: &Path, create: bool) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused(path, "is not a regular file"));
    }
    mine(path, &meta)?;
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// [`open_file`] for the database `file` and, where they exist, its `-wal` and `-shm` files
/// (SQLite opens them by name; this makes sure that what it opens is ours and `0600`).
pub(super) fn database(file: &Path) -> Result<File> {
    let opened = open_file(file, true)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = file.as_os_str().to_owned();
        side.push(suffix);
        match open_file(Path::new(&side), false) {
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            other => drop(other?),
        }
    }
    Ok(opened)
}
