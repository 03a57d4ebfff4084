use memo::cached;

#[cached(maxsize = 100, version = 2)]
fn load(id: u64) -> u64 {
    id
}

fn main() {}
