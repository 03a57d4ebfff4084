use memo::cached;

struct Point {
    x: f64,
}

impl Point {
    #[cached]
    fn norm(&self) -> f64 {
        self.x.abs()
    }
}

fn main() {}
