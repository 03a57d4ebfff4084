//! This process's writes of one store's keys, which a value read from disk before them must not
//! undo in the front.
//!
//! A reader that missed the front keeps what it read there only if the change counter did not
//! move meanwhile; but this process's own write moves the counter only when it commits, and
//! then `known` moves with it. A reader that read a row before `insert`, `remove` or `clear`
//! changed the front, and keeps it after, would serve the old value for good. So each write
//! counts itself here, under a lock, and a reader keeps its value only under that lock, if no
//! write of its key was counted since it began.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

/// Keys are counted in this many stripes (by hash), so that a write of one key rarely stops a
/// read of another from filling the front.
const STRIPES: usize = 64;

pub(super) struct OwnWrites {
    /// Writes counted, by stripe.
    counts: [AtomicU64; STRIPES],
    /// Held (shared) while a value read from disk enters the front, (exclusive) while a count
    /// moves.
    gate: RwLock<()>,
}

impl Default for OwnWrites {
    fn default() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; STRIPES],
            gate: RwLock::new(()),
        }
    }
}

impl OwnWrites {
    /// The count of the stripe of a key of hash `hash`: taken before a read, and compared under
    /// [`hold`](Self::hold) before its value enters the front.
    pub(super) fn stamp(&self, hash: u64) -> u64 {
        self.counts[stripe(hash)].load(Ordering::Acquire)
    }

    /// Counts a write of a key of hash `hash` (`None`: of every key), made before the front
    /// changes: a read that began before the write is visible keeps nothing from then on.
    pub(super) fn wrote(&self, hash: Option<u64>) {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        match hash {
            Some(hash) => {
                self.counts[stripe(hash)].fetch_add(1, Ordering::Release);
            }
            None => {
                for count in &self.counts {
                    count.fetch_add(1, Ordering::Release);
                }
            }
        }
    }

    /// Keeps writes from being counted while the guard lives.
    pub(super) fn hold(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The stripe of a key of hash `hash` (the front's): its top bits.
fn stripe(hash: u64) -> usize {
    usize::try_from(hash >> (64 - STRIPES.trailing_zeros())).unwrap_or(0)
}
