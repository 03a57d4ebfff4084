//! Behaviour of `#[memo::cached]` functions: one module per part of the contract.

mod alloc_count;
mod asynchronous;
#[path = "../support/calls.rs"]
mod calls;
#[cfg(all(feature = "tokio", feature = "test-util"))]
mod cancellation;
mod concurrency;
mod errors;
mod forced;
mod generics;
mod hashes;
mod identity;
#[cfg(feature = "test-util")]
mod idle;
mod instance;
#[cfg(feature = "test-util")]
mod isolation;
mod keys;
mod macro_attacks;
mod methods;
#[cfg(feature = "test-util")]
mod no_waiting;
mod options;
#[cfg(feature = "test-util")]
mod ordering;
mod outcomes;
mod panics;
mod promises;
#[cfg(feature = "test-util")]
mod renewal;
mod signature;
#[cfg(feature = "test-util")]
mod ttl;
