use memo::cached;

fn f_cache() {}

#[cached]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
