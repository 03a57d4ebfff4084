use memo::cached;

// moka's `max_capacity`, cached's `size`, and a guess: each is memo's `maxsize`.
#[cached(capacity = 10)]
fn a(x: u32) -> u32 {
    x
}

#[cached(size = 10)]
fn b(x: u32) -> u32 {
    x
}

#[cached(max_capacity = 10)]
fn c(x: u32) -> u32 {
    x
}

fn main() {}
