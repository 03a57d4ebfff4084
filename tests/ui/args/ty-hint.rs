use memo::cached;

// In the `cached` crate, `ty` is the cache's type, not the key's.
#[cached(ty = "SizedCache<u32, u32>")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
