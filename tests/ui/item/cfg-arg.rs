use memo::cached;

// Keyed by default, `a` would be named by the key where its `cfg` is off (`cannot find value`).
#[cached]
fn platform(#[cfg(any())] a: u32, b: u32) -> u32 {
    b
}

// Intended: the key leaves it out.
#[cached(key = b)]
fn platform_keyed(#[cfg(any())] a: u32, b: u32) -> u32 {
    b
}

fn main() {
    let _ = platform_keyed(1);
}
