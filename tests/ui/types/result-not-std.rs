use memo::cached;

/// A user's own type named `Result`, not `std::result::Result`.
#[derive(Clone)]
enum Result<T> {
    Good(T),
    Bad,
}

#[cached]
fn f(x: u32) -> Result<u32> {
    if x > 0 { Result::Good(x) } else { Result::Bad }
}

fn main() {}
