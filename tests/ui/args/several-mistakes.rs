use memo::cached;

#[cached(max_size = 10, ttl = 5)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
