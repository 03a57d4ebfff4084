//! The runtime of [`memo-kit`](https://docs.rs/memo-kit): concurrent stores, per-key single-flight, clock
//! and statistics. Use it through the `memo-kit` crate (`memo` in code) and its `#[cached]` attribute; the types here are
//! re-exported there.
//!
//! - [`Cache`]: a memoized function's handle, or a cache object built with [`Cache::builder`]:
//!   store + single-flight + [`Stats`].
//! - [`store`]: the [`Store`] trait and the sharded in-memory [`MemoryStore`].
//! - [`Lookup`]: how borrowed arguments find owned keys without allocating.
//! - `DiskStore`, `Codec` (feature `disk`): the persistent store shared by processes and its
//!   serde formats.
//! - [`Clock`]: real or mock time for expiry (the mock with feature `test-util`).
//! - [`warm`]: fill a cache concurrently before traffic arrives.
//! - `redis` (feature `redis`): the Redis layer in bytes: client, circuit breaker, distributed lock
//!   (on one server, or Redlock over several); `RedisStore` (`store = redis`) builds the cache's
//!   store on it.
//!
//! Features: `disk` (the persistent store), `tokio` (background refresh of `async fn`s),
//! `metrics`, `tracing`, `switch` (a global bypass for debugging), `test-util` (a mock clock);
//! see the `memo` crate's docs.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod block;
mod builder;
mod cache;
mod call;
mod cell;
mod clock;
#[cfg(any(feature = "disk", feature = "redis"))]
mod codec;
mod config;
mod erased;
#[cfg(any(feature = "disk", feature = "redis"))]
mod faithful;
mod flight;
mod janitor;
// Not public API: the stores' key encoding, for the expansion and memo-cli.
#[cfg(any(feature = "disk", feature = "redis"))]
#[doc(hidden)]
pub mod key;
#[cfg(feature = "redis")]
mod key_text;
mod lookup;
#[cfg(feature = "metrics")]
mod metrics;
mod random;
#[cfg(feature = "redis")]
pub mod redis;
mod refresh;
#[cfg(any(feature = "disk", feature = "redis"))]
mod schema;
mod spread;
mod stats;
pub mod store;
mod stripe;
#[cfg(feature = "switch")]
mod switch;
mod sync;
#[cfg(any(feature = "redis", feature = "test-util"))]
pub mod testing;
mod trace;
mod warm;
mod writes;

#[doc(hidden)]
pub mod private;

pub use builder::CacheBuilder;
#[cfg(feature = "disk")]
pub use builder::DiskCache;
#[cfg(feature = "redis")]
pub use builder::{RedisCache, Tiered, TieredCache};
pub use cache::Cache;
pub use clock::Clock;
#[cfg(any(test, feature = "test-util"))]
pub use clock::MockClock;
#[cfg(any(feature = "disk", feature = "redis"))]
pub use codec::Codec;
pub use config::{Config, Policy, UnknownPolicy};
pub use lookup::{KeyPart, Lookup};
#[cfg(feature = "metrics")]
pub use metrics::{PERIOD as METRICS_PERIOD, publish as publish_metrics};
pub use stats::Stats;
#[cfg(feature = "disk")]
pub use store::{DiskOptions, DiskStore};
pub use store::{MemoryStore, RemovalCause, Store};
#[cfg(feature = "redis")]
pub use store::{RedisOptions, RedisStore, TieredStore};
#[cfg(feature = "switch")]
pub use switch::{disable, enable, is_disabled};
pub use warm::warm;
