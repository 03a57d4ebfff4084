//! Helpers for the tests of code that uses memo: a scope of caches private to one test
//! ([`isolate`], feature `test-util`) and a private `redis-server` per test ([`RedisServer`],
//! feature `redis`).

#[cfg(feature = "test-util")]
mod isolate;
#[cfg(feature = "redis")]
mod redis_server;

#[cfg(all(feature = "test-util", feature = "disk"))]
pub(crate) use isolate::disk_root as isolated_disk_root;
#[cfg(feature = "test-util")]
pub use isolate::{Isolated, isolate};
#[cfg(feature = "test-util")]
pub(crate) use isolate::{active as isolated, cache as isolated_cache};
#[cfg(all(feature = "test-util", feature = "redis"))]
pub(crate) use isolate::{redis_prefix as isolated_redis_prefix, redis_url as isolated_redis_url};
#[cfg(feature = "redis")]
pub use redis_server::{RedisCluster, RedisServer, command as redis_command};
