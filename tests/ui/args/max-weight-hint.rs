use memo::cached;

#[cached(max_weight = 1_000, weigher = |_key, value| value.len())]
fn page(n: u32) -> String {
    n.to_string()
}

fn main() {}
