#[cached(ttl = "10s", stale = "5s", refresh = "early")]
fn describe(&self, name: &str, mut n: u32) -> String {
    n += 1;
    format!("{}: {name} #{n}", self.id)
}
