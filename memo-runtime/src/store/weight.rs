//! The weight bound: a user weigher, and each shard's share of the total.
//!
//! A slot stores no weight of its own (an entry costs no more memory with a weigher than
//! without): the shard adds the weigher's answer when an entry comes in and subtracts it again,
//! computed afresh, when the entry leaves. That is why the weigher must be deterministic: the same
//! key and value must always weigh the same.

/// How much an entry weighs, in the user's unit (bytes, usually): what
/// [`MemoryStore::weigher`](super::MemoryStore::weigher) takes.
///
/// It runs while the entry's shard is locked for writing: it must be quick, must not call the
/// cache, and must give the same answer for the same key and value every time.
///
/// # Examples
///
/// ```
/// use memo::Weigher;
///
/// // Bytes of the key and the value, roughly.
/// let weigher: Weigher<String, Vec<u8>> = |key, value| (key.len() + value.len()) as u64;
/// assert_eq!(weigher(&"page".to_string(), &vec![0; 100]), 104);
/// ```
pub type Weigher<K, V> = fn(&K, &V) -> u64;

/// An integer a weigher may return (`#[cached(weight = |_, v| v.len())]` returns a `usize`);
/// negative weights count as 0, weights past `u64::MAX` as `u64::MAX`.
///
/// # Examples
///
/// ```
/// use memo::Weight;
///
/// assert_eq!(7_usize.into_weight(), 7);
/// assert_eq!((-3_i32).into_weight(), 0);
/// assert_eq!(u128::MAX.into_weight(), u64::MAX);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a weight: `weight = ...` must return an integer",
    label = "the weigher returns this",
    note = "return the entry's size, e.g. `weight = |key, value| value.len()`"
)]
pub trait Weight {
    /// This weight as a `u64`.
    fn into_weight(self) -> u64;
}

macro_rules! weights {
    (lossless $($int:ty)*) => {$(
        impl Weight for $int {
            #[inline]
            fn into_weight(self) -> u64 {
                u64::from(self)
            }
        }
    )*};
    (unsigned $($int:ty)*) => {$(
        impl Weight for $int {
            #[inline]
            fn into_weight(self) -> u64 {
                u64::try_from(self).unwrap_or(u64::MAX)
            }
        }
    )*};
    (signed $($int:ty)*) => {$(
        impl Weight for $int {
            #[inline]
            fn into_weight(self) -> u64 {
                if self < 0 { 0 } else { u64::try_from(self).unwrap_or(u64::MAX) }
            }
        }
    )*};
}

weights!(lossless u8 u16 u32 u64);
weights!(unsigned u128 usize);
weights!(signed i8 i16 i32 i64 i128 isize);

/// A shard's weight: the total of its entries, and its share of `max_weight`. Not generic: the
/// shard weighs its entries with the typed weigher and keeps the sums here, in code compiled once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tally {
    total: u64,
    budget: u64,
}

impl Tally {
    /// Nothing weighed: an unbounded share.
    pub(crate) const fn none() -> Self {
        Self::new(u64::MAX)
    }

    /// Nothing held yet, within `budget` (`u64::MAX`: only weighs).
    pub(crate) const fn new(budget: u64) -> Self {
        Self { total: 0, budget }
    }

    /// The weight of the entries held.
    pub(crate) const fn total(&self) -> u64 {
        self.total
    }

    /// This shard's share of `max_weight`.
    pub(crate) const fn budget(&self) -> u64 {
        self.budget
    }

    /// Whether `more` fits beside the weight held.
    pub(crate) const fn fits(&self, more: u64) -> bool {
        self.total.saturating_add(more) <= self.budget
    }

    /// Whether `new` fits in place of `old`.
    pub(crate) const fn fits_instead(&self, old: u64, new: u64) -> bool {
        self.total.saturating_sub(old).saturating_add(new) <= self.budget
    }

    /// `new` in place of `old`.
    pub(crate) const fn swap(&mut self, old: u64, new: u64) {
        self.total = self.total.saturating_sub(old).saturating_add(new);
    }

    /// An entry of weight `weight` comes in.
    pub(crate) const fn add(&mut self, weight: u64) {
        self.total = self.total.saturating_add(weight);
    }

    /// An entry of weight `weight` leaves.
    pub(crate) const fn sub(&mut self, weight: u64) {
        self.total = self.total.saturating_sub(weight);
    }

    /// Nothing is held.
    pub(crate) const fn clear(&mut self) {
        self.total = 0;
    }
}

/// Splits `total` over `count` shards exactly: the first `total % count` get one more.
pub(crate) fn share(total: u64, count: usize, shard: usize) -> u64 {
    let count = count as u64;
    total / count + u64::from((shard as u64) < total % count)
}
