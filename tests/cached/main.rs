//! Behaviour of `#[memo::cached]` functions: one module per part of the contract.

mod alloc_count;
mod asynchronous;
mod concurrency;
mod forced;
mod keys;
mod methods;
mod options;
mod outcomes;
mod renewal;
mod signature;
mod ttl;
