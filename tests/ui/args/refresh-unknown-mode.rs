use memo::cached;

#[cached(ttl = "1m", refresh = "late")]
fn f(x: u32, y: u32) -> u32 {
    x + y
}

fn main() {}
