use memo::cached;

#[cached(stale = "5s")]
fn f(x: u32, y: u32) -> u32 {
    x + y
}

fn main() {}
