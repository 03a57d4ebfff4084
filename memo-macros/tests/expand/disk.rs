#[cached(store = disk("pages"), codec = "json", ttl = "15m")]
pub fn fetch(url: &str) -> Result<String, String> {
    Ok(url.to_string())
}
