use memo::cached;

#[cached(cache_none)]
fn f(x: u32) -> Result<u32, String> {
    Ok(x)
}

fn main() {}
