use memo::cached;

#[cached(maxsize = 10, maxsize = 20)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
