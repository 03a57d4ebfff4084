use memo::cached;

#[derive(Debug)]
struct Failure;

/// An alias not spelled `…Result<…>` is cached as a whole value, so its error must be `Clone`.
type Reply<T> = std::result::Result<T, Failure>;

#[cached]
fn f(x: u32) -> Reply<u32> {
    Ok(x)
}

fn main() {}
