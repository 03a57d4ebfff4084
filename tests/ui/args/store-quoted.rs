use memo::cached;

#[cached(store = "tiered", maxsize = 100)]
fn f(x: u32) -> u32 {
    x
}

#[cached(store = "disk")]
fn g(x: u32) -> u32 {
    x
}

fn main() {}
