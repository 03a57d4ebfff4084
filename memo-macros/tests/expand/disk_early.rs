#[cached(store = disk("rates"), ttl = "10m", refresh = "early")]
fn rate(currency: &str) -> f64 {
    lookup(currency)
}
