use memo::cached;

#[cached(codec = "json")]
fn f(x: u32) -> u32 {
    x
}

#[cached(store = disk, codec = "yaml")]
fn g(x: u32) -> u32 {
    x
}

fn main() {}
