use memo::cached;

#[cached(ttl)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
