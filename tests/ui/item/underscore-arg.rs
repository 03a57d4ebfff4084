use memo::cached;

#[cached]
fn f(_: u32) -> u32 {
    0
}

fn main() {}
