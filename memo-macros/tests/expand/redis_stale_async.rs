#[cached(store = redis, ttl = "5m", stale = "1m", codec = "json")]
async fn profile(id: u64) -> Option<String> {
    load(id).await
}
