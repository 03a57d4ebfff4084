use memo::cached;

#[cached]
struct S {
    x: u32,
}

fn main() {}
