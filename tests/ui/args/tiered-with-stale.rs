use memo::cached;

#[cached(store = tiered, ttl = "1m", stale = "10s")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
