use memo::cached;

#[cached(cache_err = "yes")]
fn f(x: u32) -> Result<u32, String> {
    Ok(x)
}

fn main() {}
