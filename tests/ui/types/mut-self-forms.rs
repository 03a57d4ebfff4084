use memo::cached;
use std::pin::Pin;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Counter(u32);

impl Counter {
    // A typed `&mut` receiver, refused as `&mut self` is: a hit would skip `self.0 += 1`.
    #[cached]
    fn bump(self: &mut Self) -> u32 {
        self.0 += 1;
        self.0
    }

    // `key = self` of a `&mut self`: once keyed by `()`, every counter one entry.
    #[cached(key = self)]
    fn peek(&mut self) -> u32 {
        self.0
    }

    #[cached(key = (self, n))]
    fn add(&mut self, n: u32) -> u32 {
        self.0 + n
    }

    // A receiver that borrows below its top cannot be a key part.
    #[cached]
    fn pinned(self: Pin<&mut Self>) -> u32 {
        self.0
    }
}

fn main() {}
