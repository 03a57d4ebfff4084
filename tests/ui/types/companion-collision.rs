use memo::cached;

#[cached]
fn f(x: u32) -> u32 {
    x
}

fn f_cache() {}

fn main() {}
