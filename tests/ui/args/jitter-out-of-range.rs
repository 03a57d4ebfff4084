use memo::cached;

#[cached(ttl = "1m", jitter = 1.5)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
