use memo::cached;

#[cached(key = missing_arg)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
