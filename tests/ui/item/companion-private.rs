// The README: each cached `f` gets `f_cache()` "with `f`'s visibility": a private function's
// companion is private too.
mod prices {
    #[memo::cached]
    fn price(item: u32) -> u32 {
        item * 2
    }

    pub fn quote(item: u32) -> u32 {
        price(item)
    }
}

fn main() {
    let _ = prices::quote(1);
    let _ = prices::price_cache();
}
