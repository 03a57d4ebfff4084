use memo::cached;

#[cached(maxsize = 100, lock = "redlock")]
fn load(id: u64) -> u64 {
    id
}

#[cached(store = disk, lock = "redlock")]
fn read(id: u64) -> u64 {
    id
}

fn main() {}
