//! The names of a Redis store's keys, for the store and for tools that read them (memo-cli):
//!
//! ```text
//! <prefix>:<function>:<codec>:<fingerprint>:{<key>}        a value
//! <prefix>:<function>:<codec>:<fingerprint>:{<key>}:lock   its stampede lock
//! <prefix>:<function>:<codec>:<fingerprint>:{<key>}:ttl    with `idle`: it has a ttl of its own
//! ```
//!
//! `<function>` is the function's identity (`app::fetch`; a hand-made store's name), `<codec>`
//! `json` or `binary`, `<fingerprint>` 16 hex digits naming everything else that sets entries
//! apart (the store's name, the types' shapes, the version). The key sits in a Redis hash tag, so
//! that a value and its lock live in one cluster slot: its text where it has one
//! (`key_text`), else `#` and the SHA-256 of its bytes.

/// What every lock name ends with.
pub const LOCK_SUFFIX: &str = ":lock";

/// What the name ends with that marks a value of a store with time to idle as having a time to
/// live of its own (`insert_with_ttl`, `ttl_from`), which hits do not renew.
pub const OWN_TTL_SUFFIX: &str = ":ttl";

/// The start of every name of one store: `<prefix>:<function>:<codec>:<fingerprint>:`.
#[must_use]
pub fn store_prefix(prefix: &str, function: &str, codec: &str, fingerprint: u64) -> Vec<u8> {
    format!("{prefix}:{function}:{codec}:{fingerprint:016x}:").into_bytes()
}

/// The name of a value: `store` (a [`store_prefix`]), then the key's text in a hash tag, or `#`
/// and the SHA-256 of its `encoded` bytes where it has no text (or one that starts with `}`).
#[must_use]
pub fn value_name(store: &[u8], encoded: &[u8], text: Option<&str>) -> Vec<u8> {
    let mut name = store.to_vec();
    name.push(b'{');
    // A text starting with `}` would leave the hash tag empty, and Redis Cluster would then hash
    // the whole name: the value and its lock would land in different slots.
    if let Some(text) = text.filter(|text| !text.starts_with('}')) {
        name.extend_from_slice(text.as_bytes());
    } else {
        name.push(b'#');
        let digest = ring::digest::digest(&ring::digest::SHA256, encoded);
        name.extend_from_slice(hex(digest.as_ref()).as_bytes());
    }
    name.push(b'}');
    name
}

/// A value's name, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueName {
    /// The function's identity (`app::fetch`), or a hand-made store's name.
    pub function: String,
    /// `json` or `binary`.
    pub codec: String,
    pub fingerprint: u64,
    /// The key's text (`apple`, `["apple",42]`), or `#` and its SHA-256.
    pub key: String,
}

/// The parts of the value name `name` of a store under `prefix`; `None` for a lock, or for a
/// name that is not one of memo's.
#[must_use]
pub fn parse(prefix: &str, name: &str) -> Option<ValueName> {
    let rest = name.strip_prefix(prefix)?.strip_prefix(':')?;
    // The function ends at the first lone `:` (its own colons come in pairs: `app::fetch`).
    let bytes = rest.as_bytes();
    let end = (0..bytes.len()).find(|&i| {
        bytes[i] == b':'
            && (i == 0 || bytes[i - 1] != b':')
            && bytes.get(i + 1).is_some_and(|&next| next != b':')
    })?;
    let function = &rest[..end];
    let (codec, rest) = rest[end + 1..].split_once(':')?;
    let (fingerprint, key) = rest.split_once(':')?;
    if fingerprint.len() != 16 || !matches!(codec, "json" | "binary") {
        return None;
    }
    let fingerprint = u64::from_str_radix(fingerprint, 16).ok()?;
    let key = key.strip_prefix('{')?.strip_suffix('}')?;
    Some(ValueName {
        function: function.to_string(),
        codec: codec.to_string(),
        fingerprint,
        key: key.to_string(),
    })
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_reads_back() {
        let store = store_prefix("memo", "app::Shop::price", "json", 0xabc);
        let name = String::from_utf8(value_name(&store, b"", Some("a:b}{c"))).unwrap();
        assert_eq!(name, "memo:app::Shop::price:json:0000000000000abc:{a:b}{c}");
        assert_eq!(
            parse("memo", &name),
            Some(ValueName {
                function: "app::Shop::price".into(),
                codec: "json".into(),
                fingerprint: 0xabc,
                key: "a:b}{c".into(),
            })
        );
        assert_eq!(parse("memo", &format!("{name}{LOCK_SUFFIX}")), None);
        assert_eq!(parse("other", &name), None);
        assert_eq!(parse("memo", "memo:x"), None);
    }

    #[test]
    fn a_key_without_text_is_named_by_its_sha_256() {
        let name = value_name(b"p:", b"abc", None);
        assert_eq!(
            String::from_utf8(name).unwrap(),
            "p:{#ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad}"
        );
    }
}
