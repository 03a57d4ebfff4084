use memo::cached;

#[cached(jitter = 0.1)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
