//! Redis, in bytes: a client for sync and async callers, a circuit breaker and the distributed
//! single-flight lock. The cache's Redis store encodes keys and values and builds on this.
//!
//! - [`RedisConfig`]: the URL (`MEMO_REDIS_URL`, `REDIS_URL`, `redis+cluster://…`) and timeouts.
//! - [`RedisClient`]: `GET`, `SET … PX`, locks, pub/sub, `SCAN`-delete; bounded by the command
//!   timeout, failing fast while its [`Breaker`] is open.
//! - [`Locks`]: one computation per missing key across processes ([`Claimed`], [`LockGuard`]).
//! - [`Redlock`]: the same over N independent servers (`MEMO_REDLOCK_URLS`), held on a majority,
//!   so that it outlives a minority of them; an efficiency lock, see its module docs.
//! - [`DistributedLock`]: either of the two, as a cache uses them.

mod breaker;
pub(crate) mod budget;
mod claim;
pub(crate) mod client;
mod config;
mod error;
mod lock;
mod redlock;
mod runtime;

/// How the stores' sync calls block on the client's async ones.
pub(crate) use crate::block::wait;
pub use breaker::{Breaker, BreakerConfig};
pub use claim::DistributedLock;
pub use client::{RedisClient, Subscription};
pub(crate) use config::env_url;
pub use config::{DEFAULT_URL, RedisConfig, Timeouts};
pub use error::{Error, ServerError};
pub(crate) use lock::new_token;
pub use lock::{Claimed, LockConfig, LockGuard, Locks};
pub use redlock::{Redlock, RedlockConfig, Refused, URLS_VAR};
