use memo::cached;
use std::time::Duration;

#[cached(ttl = "1m", ttl_from = |secs: &u64| Duration::from_secs(*secs))]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
