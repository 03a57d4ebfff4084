use memo::cached;

// cached's `refresh = true`: each hit renews the time to live.
#[cached(ttl = "10m", refresh = true)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
