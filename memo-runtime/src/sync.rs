//! The primitives of the single-flight table and of the stores' reader gate: std's (and
//! `parking_lot`'s), or the `loom` model checker's when the crate is built with
//! `RUSTFLAGS="--cfg loom"` (see the `loom` tests in `flight.rs` and `store/gate.rs`, and
//! `.ci/run`), so the checker explores every interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread;
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(loom)]
pub(crate) use loom::sync::atomic;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic;

/// The writers' lock of a gate's shard.
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex as WriterLock, MutexGuard as WriterGuard};
/// The writers' lock of a gate's shard.
#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex as WriterLock, MutexGuard as WriterGuard};

/// Takes a writers' lock (poisoning, which only loom's lock has, is ignored: nothing is left
/// half-written under it).
pub(crate) fn lock_writers(lock: &WriterLock<()>) -> WriterGuard<'_, ()> {
    #[cfg(loom)]
    return lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    #[cfg(not(loom))]
    lock.lock()
}
