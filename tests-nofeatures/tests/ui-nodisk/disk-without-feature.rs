use memo::cached;

#[cached(store = disk)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
