use memo::cached;

#[cached(ttl_from = |secs: &u64| Some(std::time::Duration::from_secs(*secs)))]
fn f(x: u64) -> u64 {
    x
}

fn main() {}
