use memo::cached;

#[cached(ttl = "1m", expires = true)]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
