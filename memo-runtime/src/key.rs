//! Keys of stores outside the process (features `disk`, `redis`): `namespace : function identity :
//! fingerprint : encoded key`, encoded injectively.
//!
//! Each part is length-prefixed (a LEB128 length, then the bytes), never joined with a separator,
//! so no two different part lists give the same bytes (`("a:b", "c")` and `("a", "b:c")` differ).
//! The key itself is encoded with postcard, injective for a given type where the type's
//! `Serialize` is (the stores keep only keys whose bytes decode back to them, `faithful.rs`); the
//! [`fingerprint`] of the key and value types' serde shapes (and the user's `version`) keeps
//! entries written under another layout out of reach: a build whose types changed never decodes
//! an old entry.

use serde::Serialize;

pub use crate::schema::fingerprint;

/// Appends `part`, length-prefixed.
fn put(out: &mut Vec<u8>, part: &[u8]) {
    let mut len = part.len();
    loop {
        #[allow(clippy::cast_possible_truncation, reason = "the low seven bits")]
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(part);
}

/// The prefix shared by every key of one function: its namespace (the store's name and codec),
/// its identity (`app::Celsius::boiling`) and its [`fingerprint`].
///
/// # Examples
///
/// ```
/// use memo_runtime::key::namespace;
///
/// assert_ne!(namespace("a:b", "c", 1), namespace("a", "b:c", 1));
/// assert_ne!(namespace("a", "f", 1), namespace("a", "f", 2));
/// ```
#[must_use]
pub fn namespace(namespace: &str, function: &str, fingerprint: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(namespace.len() + function.len() + 12);
    put(&mut out, namespace.as_bytes());
    put(&mut out, function.as_bytes());
    put(&mut out, &fingerprint.to_le_bytes());
    out
}

/// The parts of a [`namespace`]: its store name, function identity and fingerprint; `None` for
/// bytes that are not one.
///
/// # Examples
///
/// ```
/// use memo_runtime::key::{namespace, parse_namespace};
///
/// let ns = namespace("scraper/json", "app::fetch", 7);
/// assert_eq!(parse_namespace(&ns), Some(("scraper/json".into(), "app::fetch".into(), 7)));
/// assert_eq!(parse_namespace(b"\x05ab"), None);
/// ```
#[must_use]
pub fn parse_namespace(bytes: &[u8]) -> Option<(String, String, u64)> {
    let (space, rest) = take(bytes)?;
    let (function, rest) = take(rest)?;
    let (fingerprint, rest) = take(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some((
        String::from_utf8(space.to_vec()).ok()?,
        String::from_utf8(function.to_vec()).ok()?,
        u64::from_le_bytes(fingerprint.try_into().ok()?),
    ))
}

/// The text of an [`encode`]d key that is one string (postcard writes a string as its length, as a
/// namespace part is written, then its UTF-8), for tools that show keys; `None` for any other key.
///
/// # Examples
///
/// ```
/// use memo_runtime::key::{encode, text_of};
///
/// assert_eq!(text_of(&encode("apple").unwrap()).as_deref(), Some("apple"));
/// assert_eq!(text_of(&encode(&7_u64).unwrap()), None);
/// ```
#[must_use]
pub fn text_of(encoded: &[u8]) -> Option<String> {
    let (text, rest) = take(encoded)?;
    if !rest.is_empty() {
        return None;
    }
    String::from_utf8(text.to_vec()).ok()
}

/// The first length-prefixed part of `bytes` (as [`put`] writes it) and what follows it.
fn take(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len = 0_usize;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let rest = &bytes[i + 1..];
            return (rest.len() >= len).then(|| rest.split_at(len));
        }
    }
    None
}

/// The bytes of `key` (postcard); `None` if its `Serialize` fails.
pub fn encode<K: Serialize + ?Sized>(key: &K) -> Option<Vec<u8>> {
    postcard::to_allocvec(key).ok()
}

/// A 64-bit FNV-1a hash: what a [`fingerprint`] hashes the shapes' text with (stable across builds and
/// platforms, unlike `std`'s hashers).
#[must_use]
pub const fn signature_hash(text: &str) -> u64 {
    fnv64(text.as_bytes())
}

/// [`signature_hash`] of any bytes (a path, for one): 64-bit FNV-1a.
#[must_use]
pub const fn fnv64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        let long = "x".repeat(300);
        let a = namespace(&long, "f", 0);
        // 300 = 0b10_0101100: two length bytes.
        assert_eq!(&a[..2], &[0xac, 0x02]);
        assert_ne!(encode(&("a:b", "c")), encode(&("a", "b:c")));
    }

    #[test]
    fn signature_hash_is_fixed() {
        assert_eq!(signature_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(
            signature_hash("(u32) -> u64"),
            signature_hash("(u64) -> u64")
        );
    }
}
