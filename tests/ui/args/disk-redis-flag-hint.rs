use memo::cached;

// cached's `#[io_cached(disk = true)]` and `redis = true`.
#[cached(disk = true)]
fn on_disk(x: u32) -> u32 {
    x
}

#[cached(redis = true)]
fn in_redis(x: u32) -> u32 {
    x
}

fn main() {}
