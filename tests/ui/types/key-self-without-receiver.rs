use memo::cached;

#[cached(key = self)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
