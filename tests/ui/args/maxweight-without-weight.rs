use memo::cached;

#[cached(maxweight = 1_000_000)]
fn page(n: u32) -> String {
    n.to_string()
}

fn main() {}
