use memo::cached;

#[cached]
fn f(name: &str) -> &str {
    name
}

fn main() {}
