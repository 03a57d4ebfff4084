use memo::cached;

// cached's `key = "String", convert = r#"{ a.clone() }"#`: memo's `key` is an expression.
#[cached(key = "a")]
fn f(a: String, b: u32) -> usize {
    a.len() + b as usize
}

#[cached(key = "String")]
fn g(a: String) -> usize {
    a.len()
}

fn main() {}
