use memo::cached;

struct Report {
    text: String,
}

#[cached]
fn f(x: u32) -> Report {
    Report {
        text: x.to_string(),
    }
}

fn main() {}
