use memo::cached;

#[cached(ttl = "5 minutes")]
fn f(n: u32) -> u32 {
    n
}

fn main() {}
