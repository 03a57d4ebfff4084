use memo::cached;

#[cached(store = redis)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
