use memo::cached;

#[cached(crate = "memo")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
