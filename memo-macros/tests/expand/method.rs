#[cached(maxsize = 1_000)]
pub fn area(&self, scale: Scale) -> u64 {
    self.w * self.h * scale.0
}
