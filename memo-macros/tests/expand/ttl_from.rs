/// A value read from the network: how long it may be kept comes with it.
#[cached(ttl = "10m", ttl_from = |page: &Page| page.max_age)]
fn fetch(url: &str) -> Page {
    get(url)
}

/// On disk, over the `Ok` value of a `Result`, with a `fn` path.
#[cached(store = disk, ttl = "1h", ttl_from = token_ttl)]
fn login(user: u32) -> Result<Token, Error> {
    sign_in(user)
}
