#[cached(ttl = "1h")]
async fn fetch(url: &str) -> Result<String, Error> {
    let body = client().get(url).await?;
    Ok(body)
}
