use memo::cached;

#[cached(ttl = "1m", beta = 2.0)]
fn f(x: u32, y: u32) -> u32 {
    x + y
}

fn main() {}
