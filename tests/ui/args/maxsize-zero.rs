use memo::cached;

#[cached(maxsize = 0)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
