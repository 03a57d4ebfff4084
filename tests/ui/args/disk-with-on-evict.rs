use memo::cached;

#[cached(store = disk, on_evict = |_key, _value, _cause| ())]
fn page(n: u32) -> String {
    n.to_string()
}

fn main() {}
