use memo::cached;

#[cached(ttl = "10m", idle = "1m")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
