#[cached(key = n)]
fn shown<T: Default + std::fmt::Debug, const N: usize>(&self, n: u32, tag: impl std::fmt::Display) -> String {
    format!("{:?} {n} {tag} {N}", T::default())
}
