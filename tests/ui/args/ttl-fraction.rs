use memo::cached;

#[cached(ttl = "1.5s")]
fn a(x: u32) -> u32 {
    x
}

#[cached(ttl = "1h30")]
fn b(x: u32) -> u32 {
    x
}

// The same parser reads `idle` and `stale`.
#[cached(idle = "0.5m")]
fn c(x: u32) -> u32 {
    x
}

#[cached(ttl = "1m", stale = "2m30")]
fn d(x: u32) -> u32 {
    x
}

fn main() {}
