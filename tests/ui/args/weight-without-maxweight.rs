use memo::cached;

#[cached(weight = |_key, value| value.len())]
fn page(n: u32) -> String {
    n.to_string()
}

fn main() {}
