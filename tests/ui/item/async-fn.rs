use memo::cached;

#[cached]
async fn f(x: u32) -> u32 {
    x
}

fn main() {}
