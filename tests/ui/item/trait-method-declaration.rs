use memo::cached;

trait T {
    #[cached]
    fn f(&self, x: u32) -> u32;
}

fn main() {}
