use memo::cached;

#[cached(cache_err)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
