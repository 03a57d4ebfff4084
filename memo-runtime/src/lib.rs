//! The runtime of [`memo`](https://docs.rs/memo): concurrent stores, per-key single-flight, clock
//! and statistics. Use it through the `memo` crate and its `#[cached]` attribute; the types here are
//! re-exported there.
//!
//! - [`Cache`]: a memoized function's handle: store + single-flight + [`Stats`].
//! - [`store`]: the [`Store`] trait and the sharded in-memory [`MemoryStore`].
//! - [`Lookup`]: how borrowed arguments find owned keys without allocating.
//! - `DiskStore`, `Codec`, `key` (feature `disk`): the persistent store shared by processes,
//!   its serde formats and its key encoding.
//! - [`Clock`]: real or mock time for expiry (the mock with feature `test-util`).
//! - [`warm`]: fill a cache concurrently before traffic arrives.
//!
//! Features: `disk` (the persistent store), `tokio` (background refresh of `async fn`s),
//! `metrics`, `tracing`, `switch` (a global bypass for debugging), `test-util` (a mock clock);
//! see the `memo` crate's docs.

mod cache;
mod cell;
mod clock;
#[cfg(feature = "disk")]
mod codec;
mod config;
mod flight;
mod janitor;
#[cfg(feature = "disk")]
pub mod key;
mod lookup;
#[cfg(feature = "metrics")]
mod metrics;
mod random;
mod refresh;
mod stats;
pub mod store;
mod stripe;
#[cfg(feature = "switch")]
mod switch;
mod sync;
mod trace;
mod warm;

#[doc(hidden)]
pub mod private;

pub use cache::Cache;
pub use cell::CacheCell;
pub use clock::Clock;
#[cfg(any(test, feature = "test-util"))]
pub use clock::MockClock;
#[cfg(feature = "disk")]
pub use codec::Codec;
pub use config::{Config, Policy, UnknownPolicy};
pub use lookup::{KeyPart, Lookup};
#[cfg(feature = "metrics")]
pub use metrics::{PERIOD as METRICS_PERIOD, publish as publish_metrics};
pub use stats::Stats;
#[cfg(feature = "disk")]
pub use store::{DiskOptions, DiskStore};
pub use store::{MemoryStore, RemovalCause, Store};
#[cfg(feature = "switch")]
pub use switch::{disable, enable, is_disabled};
pub use warm::warm;
