use memo::cached;

#[cached(store = redis, maxsize = 100, policy = "lru")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
