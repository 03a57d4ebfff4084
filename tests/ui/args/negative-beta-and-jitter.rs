use memo::cached;

#[cached(ttl = "1m", refresh = "early", beta = -1.0)]
fn early(x: u32) -> u32 {
    x
}

#[cached(ttl = "1m", jitter = -0.5)]
fn spread(x: u32) -> u32 {
    x
}

fn main() {}
