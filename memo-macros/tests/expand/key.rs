#[cached(key = user.id, key_type = u64, cache_none = true)]
fn profile(user: &User, verbose: bool) -> Option<String> {
    verbose.then(|| user.name.clone())
}
