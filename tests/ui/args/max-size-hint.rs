use memo::cached;

#[cached(max_size = 100)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
