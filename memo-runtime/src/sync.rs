//! The primitives of the single-flight table: std's, or the `loom` model checker's when the crate
//! is built with `RUSTFLAGS="--cfg loom"` (see the `loom` tests in `flight.rs` and `.ci/run`), so
//! the checker explores every interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread;
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;
