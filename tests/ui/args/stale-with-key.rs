use memo::cached;

#[cached(ttl = "1m", stale = "5s", key = x)]
fn f(x: u32, y: u32) -> u32 {
    x + y
}

fn main() {}
