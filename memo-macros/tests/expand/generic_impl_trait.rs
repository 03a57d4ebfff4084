#[cached(key = n)]
fn labelled<T: Default + Debug, const N: usize>(n: u32, label: impl Display) -> String {
    format!("{:?} {n} {label} {N}", T::default())
}
