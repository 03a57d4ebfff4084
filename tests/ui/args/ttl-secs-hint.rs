use memo::cached;

#[cached(ttl_secs = 60)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
