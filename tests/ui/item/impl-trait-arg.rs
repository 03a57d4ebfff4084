use memo::cached;

#[cached]
fn f(x: impl std::fmt::Display) -> String {
    x.to_string()
}

fn main() {}
