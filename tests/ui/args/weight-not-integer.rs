use memo::cached;

#[cached(maxweight = 1_000, weight = |_key, value| value.clone())]
fn page(n: u32) -> String {
    n.to_string()
}

fn main() {}
