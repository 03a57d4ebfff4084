use memo::{Cache, cached};

struct Catalog {
    names: Cache<u64, String>,
}

impl Catalog {
    #[cached(cache = self.names, maxsize = 100, ttl = "1m")]
    fn name(&self, id: u64) -> String {
        format!("item {id}")
    }
}

fn main() {
    let catalog = Catalog { names: Cache::builder().build() };
    let _ = catalog.name(1);
}
