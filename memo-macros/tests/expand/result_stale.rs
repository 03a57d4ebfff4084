/// An `io::Result` with background refresh: the cache and the refresh hold the `Ok` type alone.
#[cached(ttl = "1m", stale = "10s")]
async fn read(path: &str) -> io::Result<String> {
    Ok(path.to_uppercase())
}
