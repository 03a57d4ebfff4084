use memo::cached;

#[cached(ttl = "10s", ttl = "20s")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
