/// Calls a slow API.
#[cached(ttl = "10s", maxsize = 100)]
fn api_call(endpoint: &str, page: u32) -> Result<String, std::io::Error> {
    Ok(format!("{endpoint}?page={page}"))
}
