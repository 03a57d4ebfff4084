//! How a call's arguments find their cache entry without allocating.
//!
//! A memoized `fn f(name: &str, n: u32)` stores entries under the owned key `(String, u32)`, but a
//! call looks them up with the borrowed tuple `(&str, &u32)`. [`Lookup`] ties the two together: the
//! borrowed form hashes exactly like the owned key (the [`Borrow`] contract), compares against it,
//! and builds the owned key only on a miss.

use std::borrow::Borrow;
use std::hash::Hash;

/// One part of a cache key, seen through a reference: `str` for a `String` part, `T` for a `T` part.
///
/// Implemented for every `Hash + Eq` type whose owned form ([`ToOwned`]) is
/// `Hash + Eq + Clone + Send + Sync + 'static`.
///
/// # Examples
///
/// ```
/// use memo::KeyPart;
///
/// assert_eq!("alice".to_owned_part(), "alice".to_string());
/// assert_eq!([1_u8, 2][..].to_owned_part(), vec![1, 2]);
/// assert_eq!(7_u32.to_owned_part(), 7);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it must be `Hash + Eq`, and its owned form `Clone + Send + Sync + 'static`",
    label = "part of the cache key",
    note = "choose the key yourself with `key = ...`, e.g. `#[cached(key = id)]` to key by another argument, \
            or `#[cached(key = x.to_bits(), key_type = u64)]` to key by a value derived from this one; \
            for a method, `#[cached(cache = self.field)]` keeps a cache per instance in a `memo::Cache` field \
            and leaves `self` out of the key (a `key = ...` without `self` is shared by every instance)"
)]
pub trait KeyPart: Hash + Eq {
    /// The owned form stored in the cache (`String` for `str`).
    type Owned: Borrow<Self> + Hash + Eq + Clone + Send + Sync + 'static;

    /// Builds the owned form.
    fn to_owned_part(&self) -> Self::Owned;
}

#[diagnostic::do_not_recommend]
impl<Q> KeyPart for Q
where
    Q: ?Sized + Hash + Eq + ToOwned,
    Q::Owned: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Owned = Q::Owned;

    fn to_owned_part(&self) -> Q::Owned {
        self.to_owned()
    }
}

/// A borrowed view of a cache key of type [`Lookup::Key`].
///
/// Implemented for `&Q` (key `Q::Owned`) and for tuples of up to 12 such references (key: the tuple
/// of the owned forms). A view hashes like its key, so a hit never builds the key.
///
/// # Examples
///
/// ```
/// use memo::Lookup;
///
/// let view = ("alice", &7_u32);
/// assert!(view.matches(&("alice".to_string(), 7)));
/// assert_eq!(view.to_key(), ("alice".to_string(), 7));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a borrowed form of a cache key",
    label = "look the key up by reference",
    note = "pass `&key` (`\"text\"` for a `String` key), or for a key of several parts the tuple of \
            borrowed parts: `(\"ab\", &3)` for a `(String, u32)` key"
)]
pub trait Lookup: Hash + Copy {
    /// The owned key this view stands for.
    type Key: Hash + Eq + Clone + Send + Sync + 'static;

    /// Whether `key` is the key this view stands for.
    fn matches(&self, key: &Self::Key) -> bool;

    /// Builds the owned key (done once per miss).
    fn to_key(&self) -> Self::Key;
}

impl<Q: ?Sized + KeyPart> Lookup for &Q {
    type Key = Q::Owned;

    #[inline]
    fn matches(&self, key: &Q::Owned) -> bool {
        key.borrow() == *self
    }

    fn to_key(&self) -> Q::Owned {
        self.to_owned_part()
    }
}

macro_rules! tuple_lookup {
    ($($part:ident $idx:tt),+) => {
        impl<$($part: ?Sized + KeyPart),+> Lookup for ($(&$part,)+) {
            type Key = ($($part::Owned,)+);

            #[inline]
            fn matches(&self, key: &Self::Key) -> bool {
                $(key.$idx.borrow() == self.$idx)&&+
            }

            fn to_key(&self) -> Self::Key {
                ($(self.$idx.to_owned_part(),)+)
            }
        }
    };
}

tuple_lookup!(A 0, B 1);
tuple_lookup!(A 0, B 1, C 2);
tuple_lookup!(A 0, B 1, C 2, D 3);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_lookup!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash<T: Hash + ?Sized>(t: &T) -> u64 {
        foldhash::fast::FixedState::with_seed(1).hash_one(t)
    }

    #[test]
    fn borrowed_views_hash_like_their_keys() {
        let single: &str = "abc";
        assert_eq!(hash(&single), hash(&single.to_key()));
        let slice: &[u8] = &[1, 2, 3];
        assert_eq!(hash(&slice), hash(&slice.to_key()));
        let tuple = ("abc", &5_u64, &[1_u8][..]);
        let key = tuple.to_key();
        assert_eq!(key, ("abc".to_string(), 5, vec![1]));
        assert_eq!(hash(&tuple), hash(&key));
        assert!(tuple.matches(&key));
        assert!(!tuple.matches(&("abd".to_string(), 5, vec![1])));
    }
}
