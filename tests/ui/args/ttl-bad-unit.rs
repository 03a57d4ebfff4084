use memo::cached;

#[cached(ttl = "10x")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
