use memo::cached;

// README's Limits: `stale` and `refresh` "recompute from the key, so they cannot be combined
// with `key = ...`".
#[cached(ttl = "1m", refresh = "early", key = x)]
fn f(x: u32, y: u32) -> u32 {
    x + y
}

fn main() {}
