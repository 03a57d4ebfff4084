use memo::cached;

#[cached(in_impl = true)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
