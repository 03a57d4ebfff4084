use memo::cached;

#[cached(store = disk, version = "2")]
fn load(id: u64) -> u64 {
    id
}

#[cached(store = disk, version = -1)]
fn read(id: u64) -> u64 {
    id
}

fn main() {}
