//! Placeholder, replaced by the peers benchmark.
fn main() {}
