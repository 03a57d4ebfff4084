use memo::cached;

// In the `cached` crate, `ty` is the cache's type, not the key's.
#[cached(ty = "SizedCache<u32, u32>")]
fn f(x: u32) -> u32 {
    x
}

// Nor is `create` memo's `crate`: it builds cached's cache.
#[cached(create = "{ SizedCache::with_size(1) }")]
fn g(x: u32) -> u32 {
    x
}

fn main() {}
