//! How values become bytes for a store outside the process (features `disk`, `redis`): serde, in a compact
//! binary format by default or in JSON.
//!
//! The binary format is [postcard](https://docs.rs/postcard): serde-native, with a documented,
//! stable wire format (1.0), variable-length integers (a `u64` below 128 is one byte), and a
//! decoder that never allocates more than its input justifies. JSON is the language-neutral
//! choice, for caches that other programs read.
//!
//! Decoding reads untrusted bytes (a file any process could have written): it is bounded by
//! [`MAX_DECODE`], and a failure is `None` — a miss, never a panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest encoded value decoded; anything longer is treated as damaged.
pub(crate) const MAX_DECODE: usize = 256 << 20;

/// A serde format for stored values.
///
/// # Examples
///
/// ```
/// use memo::Codec;
///
/// for codec in [Codec::Binary, Codec::Json] {
///     let bytes = codec.encode(&(7_u32, "seven")).unwrap();
///     assert_eq!(codec.decode::<(u32, String)>(&bytes), Some((7, "seven".to_string())));
///     assert_eq!(codec.decode::<(u32, String)>(b"\xff garbage"), None);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Compact binary (postcard): the default.
    #[default]
    Binary,
    /// JSON (`serde_json`): readable by any language.
    Json,
}

impl Codec {
    /// The codec's name, as `codec = "…"` spells it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Json => "json",
        }
    }

    /// `value` as bytes; `None` if its `Serialize` fails (a map with non-string keys in JSON, a
    /// custom impl that errs).
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Option<Vec<u8>> {
        match self {
            Self::Binary => postcard::to_allocvec(value).ok(),
            Self::Json => serde_json::to_vec(value).ok(),
        }
    }

    /// The value in `bytes`; `None` if they are too long, damaged, or of another type.
    #[must_use]
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Option<T> {
        if bytes.len() > MAX_DECODE {
            return None;
        }
        match self {
            Self::Binary => match postcard::take_from_bytes(bytes) {
                // Trailing bytes mean the layout is not the one this build writes.
                Ok((value, [])) => Some(value),
                _ => None,
            },
            Self::Json => serde_json::from_slice(bytes).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let value: Vec<(String, Option<u64>)> =
            vec![("a".into(), Some(u64::MAX)), (String::new(), None)];
        for codec in [Codec::Binary, Codec::Json] {
            let bytes = codec.encode(&value).unwrap();
            assert_eq!(
                codec.decode::<Vec<(String, Option<u64>)>>(&bytes),
                Some(value.clone())
            );
            // Truncated, extended, or read as another type: a miss.
            assert_eq!(
                codec.decode::<Vec<(String, Option<u64>)>>(&bytes[..bytes.len() - 1]),
                None
            );
            let mut longer = bytes.clone();
            longer.push(0);
            if codec == Codec::Binary {
                assert_eq!(codec.decode::<Vec<(String, Option<u64>)>>(&longer), None);
            }
            assert_eq!(codec.decode::<u8>(&bytes), None);
        }
    }

    #[test]
    fn a_huge_length_prefix_does_not_allocate_it() {
        // A sequence claiming 2^63 elements in 10 bytes.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1];
        assert_eq!(Codec::Binary.decode::<Vec<u64>>(&bytes), None);
        assert_eq!(Codec::Binary.decode::<String>(&bytes), None);
    }
}
