use memo::cached;

#[cached(key_type = u32)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
