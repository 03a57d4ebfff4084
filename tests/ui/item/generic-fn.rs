use memo::cached;

#[cached]
fn f<T: Clone>(x: T) -> T {
    x
}

fn main() {}
