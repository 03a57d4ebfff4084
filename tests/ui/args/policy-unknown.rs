use memo::cached;

#[cached(maxsize = 100, policy = "lifo")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
