use memo::cached;

#[cached]
fn f(n: u32, x: f64, s: &str) -> f64 {
    x * f64::from(n) + s.len() as f64
}

fn main() {}
