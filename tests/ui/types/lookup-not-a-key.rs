fn main() {
    let cache: memo::Cache<u64, u64> = memo::Cache::builder().build();
    let _ = cache.get(1.5_f64);
}
