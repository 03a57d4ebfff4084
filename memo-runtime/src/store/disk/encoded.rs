//! A key's encoding, worked out once per call: a read that missed parks it on its thread for
//! the claim that follows, whose lease carries it to the value's write (see `lock.rs`).

use std::any::Any;
use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::faithful;

thread_local! {
    /// This thread's last read that missed: a [`Parked`] of its store's key type (a claim of
    /// another key, or of another type, encodes its own).
    static PARKED: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// A key and its encoding, from a read that missed to the claim that follows.
struct Parked<K> {
    key: K,
    encoded: Vec<u8>,
}

/// Keeps `encoded`, the encoding of `key`, for this thread's next [`encoding_of`] of it.
pub(super) fn park<K: 'static>(key: K, encoded: Vec<u8>) {
    let parked: Box<dyn Any> = Box::new(Parked { key, encoded });
    PARKED.with(|slot| *slot.borrow_mut() = Some(parked));
}

/// The encoding of `key`: the one this thread parked for it, else a new one; `None` if it cannot
/// be encoded.
pub(super) fn encoding_of<K: Eq + Serialize + DeserializeOwned + 'static>(
    key: &K,
) -> Option<Vec<u8>> {
    let parked = PARKED.with(|slot| slot.borrow_mut().take());
    if let Some(parked) = parked.and_then(|parked| parked.downcast::<Parked<K>>().ok())
        && parked.key == *key
    {
        return Some(parked.encoded);
    }
    faithful::key_bytes(key)
}
