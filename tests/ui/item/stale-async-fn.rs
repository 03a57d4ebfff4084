use memo::cached;

#[cached(ttl = "1m", stale = "10s")]
async fn f(x: u32) -> u32 {
    x
}

fn main() {}
