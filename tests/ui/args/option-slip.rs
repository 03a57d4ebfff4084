use memo::cached;

#[cached(tll = "5m")]
fn f(n: u32) -> u32 {
    n
}

fn main() {}
