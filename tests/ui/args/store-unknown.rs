use memo::cached;

#[cached(store = redis)]
fn f(x: u32) -> u32 {
    x
}

#[cached(store = disk(pages))]
fn g(x: u32) -> u32 {
    x
}

fn main() {}
