use memo::cached;

#[derive(Clone)]
struct Report {
    text: String,
}

#[cached(store = disk)]
fn f(x: u32) -> Report {
    Report {
        text: x.to_string(),
    }
}

fn main() {}
