//! A change counter shared by every process that opens one cache directory: a `u64` in a small
//! memory-mapped file beside the database, bumped after each commit.
//!
//! A process keeps decoded values in memory in front of SQLite; reading this counter (one load
//! from shared memory, a few nanoseconds) tells it whether another process has written since, so
//! its hits need not ask SQLite. A counter that cannot be mapped makes every read go to SQLite.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

/// The shared counter of one cache directory.
pub(super) struct Version {
    map: MmapMut,
}

impl Version {
    /// Maps `path` (created `0600`, 8 bytes; see `perms::open_file`), or `None` if it cannot be.
    pub(super) fn open(path: &Path) -> Option<Self> {
        let file = super::perms::open_file(path, true).ok()?;
        if file.metadata().ok()?.len() < 8 {
            file.set_len(8).ok()?;
        }
        // SAFETY: the mapping is only read and written through `AtomicU64` (see `counter`);
        // another process truncating the file is the one hazard, and nothing of ours does.
        let map = unsafe { MmapMut::map_mut(&file) }.ok()?;
        (map.len() >= 8).then_some(Self { map })
    }

    #[allow(
        clippy::cast_ptr_alignment,
        reason = "a mapping starts on a page boundary"
    )]
    fn counter(&self) -> &AtomicU64 {
        let ptr = self.map.as_ptr().cast::<AtomicU64>();
        debug_assert!(ptr.is_aligned(), "mappings are page-aligned");
        // SAFETY: the mapping is at least 8 bytes, page-aligned, lives as long as `self`, and is
        // only accessed atomically, by this process and by others mapping the same file.
        unsafe { &*ptr }
    }

    /// The current count.
    #[inline]
    pub(super) fn get(&self) -> u64 {
        self.counter().load(Ordering::Acquire)
    }

    /// Counts one commit; returns the count before it.
    pub(super) fn bump(&self) -> u64 {
        self.counter().fetch_add(1, Ordering::AcqRel)
    }
}
