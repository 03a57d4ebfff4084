use memo::cached;

#[cached(result = true)]
fn f(x: u32) -> Result<u32, String> {
    Ok(x)
}

fn main() {}
