use memo::cached;
use std::time::Duration;

#[cached(idle = "10m", ttl_from = |v: &u32| Some(Duration::from_secs(u64::from(*v))))]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
