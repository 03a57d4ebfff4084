use memo::cached;

#[cached(store = redis, lock = "zookeeper")]
fn load(id: u64) -> u64 {
    id
}

fn main() {}
