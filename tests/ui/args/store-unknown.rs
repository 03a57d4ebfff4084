use memo::cached;

#[cached(store = postgres)]
fn f(x: u32) -> u32 {
    x
}

#[cached(store = disk(pages))]
fn g(x: u32) -> u32 {
    x
}

fn main() {}
