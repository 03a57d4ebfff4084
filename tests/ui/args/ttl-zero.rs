use memo::cached;

#[cached(ttl = "0s")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
