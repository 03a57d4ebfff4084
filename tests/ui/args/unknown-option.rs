use memo::cached;

#[cached(bogus = 1)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
