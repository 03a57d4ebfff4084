#[cached(maxweight = 1_000_000, weight = |_url, page| page.len(), on_evict = log_eviction)]
pub fn page(url: &str) -> String {
    url.to_string()
}
