use memo::cached;

// One cache per instance holds one key type and one value type: neither may name `T`.
#[cached]
fn f<T: Clone + std::hash::Hash + Eq + Send + Sync + 'static>(x: T) -> T {
    x
}

#[cached]
fn g<T: Default>(n: u64) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

// Accepted: neither the key (`n`) nor the value names `T`.
#[cached]
fn h<T: Default + std::fmt::Debug>(n: u64) -> String {
    format!("{n} {:?}", T::default())
}

fn main() {
    let _ = h::<u8>(1);
    let _ = h_cache::<u8>();
}
