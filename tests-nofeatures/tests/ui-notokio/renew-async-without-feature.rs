use memo::cached;

#[cached(ttl = "1m", stale = "30s")]
async fn stale(n: u32) -> u32 {
    n
}

#[cached(ttl = "1m", refresh = "early")]
async fn early(n: u32) -> u32 {
    n
}

fn main() {}
