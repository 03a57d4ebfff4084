use memo::cached;

#[cached(idle = 60)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
