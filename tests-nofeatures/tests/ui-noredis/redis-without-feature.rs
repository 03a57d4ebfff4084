use memo::cached;

#[cached(store = redis)]
fn f(x: u32) -> u32 {
    x
}

#[cached(store = tiered, maxsize = 100)]
fn g(x: u32) -> u32 {
    x
}

fn main() {}
