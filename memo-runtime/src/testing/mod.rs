//! Helpers for the tests of code that uses memo (feature `test-util`).

#[cfg(feature = "redis")]
mod redis_server;

#[cfg(feature = "redis")]
pub use redis_server::{RedisCluster, RedisServer, command as redis_command};
