use memo::cached;

#[cached(sync_writes = true)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
