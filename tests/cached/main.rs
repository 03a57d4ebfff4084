//! Behaviour of `#[memo::cached]` functions: one module per part of the contract.

mod alloc_count;
mod asynchronous;
mod concurrency;
mod forced;
#[cfg(feature = "test-util")]
mod issue19;
mod keys;
mod methods;
mod options;
mod outcomes;
#[cfg(feature = "test-util")]
mod renewal;
mod signature;
#[cfg(feature = "test-util")]
mod ttl;
