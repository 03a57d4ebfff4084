//! Helpers for the tests of code that uses memo: a private `redis-server` per test (feature
//! `redis`; no cost outside the tests that start one).

#[cfg(feature = "redis")]
mod redis_server;

#[cfg(feature = "redis")]
pub use redis_server::{RedisCluster, RedisServer, command as redis_command};
