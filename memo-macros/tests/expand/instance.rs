#[cached(cache = self.lookups)]
fn lookup(&self, name: &str, n: u32) -> Result<String, std::io::Error> {
    Ok(format!("{}: {name} #{n}", self.id))
}
