//! A key's bytes and its text in one pass over its `Serialize`, for the Redis store: the bytes
//! are postcard's (what [`key::encode`](crate::key::encode) writes, and tiered stores announce),
//! the text what people read in the key's name.
//!
//! A key that is one string or number is itself (`apple`, `42`); one made of strings, integers,
//! booleans, options and unit variants is compact JSON (`["apple",42]`, `{"id":7,"tag":"x"}`);
//! anything else (floats, bytes, maps, an option in an option), a string with control characters,
//! an empty string or a text longer than [`MAX_TEXT`] has no text, and the store names it by a hash
//! of its bytes instead.
//!
//! For one key type the text is injective: strings inside a composite are JSON-quoted, so
//! commas and brackets cannot shift between parts; `None` is `null` and `Some(x)` never is
//! (a string in an option is quoted); a text that starts with `#` is written `##…`, so no key
//! reads as a hashed name (`#` and hex digits).

use std::fmt::{self, Display, Write as _};

use serde::de::DeserializeOwned;
use serde::ser::{self, Serialize};

/// The longest key text kept in clear, in bytes.
pub(crate) const MAX_TEXT: usize = 100;

/// `key`'s postcard bytes and its text (`None` where it has none, see the module's docs);
/// `None` where postcard could not encode it either (its `Serialize` failed, or a sequence did
/// not tell its length), or where the bytes do not decode to `key` (see `faithful.rs`): the text
/// is injective only where the bytes are.
pub(crate) fn encode<K: Serialize + DeserializeOwned + PartialEq>(
    key: &K,
) -> Option<(Vec<u8>, Option<String>)> {
    let (bytes, text) = written(key)?;
    crate::faithful::decodes_to(&bytes, key).then_some((bytes, text))
}

/// `key`'s bytes and text as its `Serialize` writes them, unchecked.
fn written<K: Serialize + ?Sized>(key: &K) -> Option<(Vec<u8>, Option<String>)> {
    let mut text = Text {
        bytes: Vec::new(),
        out: String::new(),
        readable: true,
        nested: false,
        in_option: false,
    };
    key.serialize(&mut text).ok()?;
    let Text {
        bytes,
        out,
        readable,
        ..
    } = text;
    if !readable || out.is_empty() || out.len() > MAX_TEXT {
        return Some((bytes, None));
    }
    let out = if out.starts_with('#') {
        format!("#{out}")
    } else {
        out
    };
    Some((bytes, Some(out)))
}

/// What is being written: the bytes, and the text while `readable`; `nested` once inside a
/// composite (strings are quoted there), `in_option` inside a `Some` (where a `None` would read
/// like the outer one).
struct Text {
    bytes: Vec<u8>,
    out: String,
    readable: bool,
    nested: bool,
    in_option: bool,
}

/// Why a key could not be encoded; never shown.
#[derive(Debug)]
struct NoText;

impl Display for NoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the key cannot be encoded")
    }
}

impl std::error::Error for NoText {}

impl ser::Error for NoText {
    fn custom<T: Display>(_: T) -> Self {
        Self
    }
}

impl Text {
    /// The key has no text; its bytes go on.
    fn no_text(&mut self) {
        self.readable = false;
    }

    /// Postcard's variable-length integer: seven bits a byte, low first.
    fn varint(&mut self, mut n: u128) {
        loop {
            #[allow(clippy::cast_possible_truncation, reason = "the low seven bits")]
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.bytes.push(byte);
                return;
            }
            self.bytes.push(byte | 0x80);
        }
    }

    fn text(&mut self, n: impl Display) {
        let _ = write!(self.out, "{n}");
    }

    fn unsigned(&mut self, n: impl Into<u128> + Display) {
        self.text(&n);
        self.varint(n.into());
    }

    /// A signed integer of `bits` bits, zigzag-encoded (as postcard writes `i16` to `i128`).
    fn signed(&mut self, n: i128, bits: u32) {
        self.text(n);
        #[allow(
            clippy::cast_sign_loss,
            reason = "zigzag: the sign moves to the low bit"
        )]
        let zigzag = ((n << 1) ^ (n >> (bits - 1))) as u128 & (u128::MAX >> (128 - bits));
        self.varint(zigzag);
    }

    /// `null`: a unit, or a `None` (which, inside a `Some`, would read like the outer one).
    fn null(&mut self) {
        if self.in_option {
            self.readable = false;
        }
        self.out.push_str("null");
    }

    /// `s` in JSON quotes.
    fn quoted(&mut self, s: &str) {
        let _ = serde_json::to_writer(QuotedInto(&mut self.out), s);
    }

    fn string(&mut self, s: &str) {
        self.varint(s.len() as u128);
        self.bytes.extend_from_slice(s.as_bytes());
        if self.nested {
            self.quoted(s);
        } else if s.chars().any(char::is_control) {
            self.no_text();
        } else {
            self.out.push_str(s);
        }
    }

    /// Writes `value` as a part of a composite (where a `None` is told from the outer one by
    /// the brackets around it).
    fn part<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoText> {
        let in_option = std::mem::replace(&mut self.in_option, false);
        let result = self.inner(value);
        self.in_option = in_option;
        result
    }

    /// Writes `value` inside something, where strings are quoted.
    fn inner<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoText> {
        let nested = std::mem::replace(&mut self.nested, true);
        let result = value.serialize(&mut *self);
        self.nested = nested;
        result
    }

    /// A variant's index, and `{"variant":` before its data; the caller closes it.
    fn open_variant(&mut self, index: u32, variant: &str) {
        self.varint(index.into());
        self.out.push('{');
        self.quoted(variant);
        self.out.push(':');
    }
}

/// Writes `serde_json`'s bytes (valid UTF-8, since it writes a `&str`) into a `String`.
struct QuotedInto<'a>(&'a mut String);

impl std::io::Write for QuotedInto<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.0.push_str(text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sequence, tuple or struct being written: its separator and closing bracket.
struct Composite<'a> {
    text: &'a mut Text,
    first: bool,
    close: &'static str,
}

impl<'a> Composite<'a> {
    /// Writes `open` and starts a composite that `close` ends.
    fn open(text: &'a mut Text, open: char, close: &'static str) -> Self {
        text.out.push(open);
        Self {
            text,
            first: true,
            close,
        }
    }

    fn separate(&mut self) {
        if !std::mem::replace(&mut self.first, false) {
            self.text.out.push(',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoText> {
        self.separate();
        self.text.part(value)
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), NoText> {
        self.separate();
        self.text.quoted(name);
        self.text.out.push(':');
        self.text.part(value)
    }

    fn close(self) {
        self.text.out.push_str(self.close);
    }
}

macro_rules! unsigned {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), NoText> {
            self.unsigned(v);
            Ok(())
        })*
    };
}

macro_rules! signed {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), NoText> {
            self.signed(v.into(), <$ty>::BITS);
            Ok(())
        })*
    };
}

impl<'a> ser::Serializer for &'a mut Text {
    type Ok = ();
    type Error = NoText;
    type SerializeSeq = Composite<'a>;
    type SerializeTuple = Composite<'a>;
    type SerializeTupleStruct = Composite<'a>;
    type SerializeTupleVariant = Composite<'a>;
    type SerializeMap = Composite<'a>;
    type SerializeStruct = Composite<'a>;
    type SerializeStructVariant = Composite<'a>;

    /// As postcard: types such as `IpAddr` then serialize as their compact form.
    fn is_human_readable(&self) -> bool {
        false
    }

    unsigned!(serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128);
    signed!(serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128);

    /// Postcard writes `u8` and `i8` as one byte, not a varint.
    fn serialize_u8(self, v: u8) -> Result<(), NoText> {
        self.text(v);
        self.bytes.push(v);
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), NoText> {
        self.text(v);
        self.bytes.push(v.to_le_bytes()[0]);
        Ok(())
    }

    fn serialize_bool(self, v: bool) -> Result<(), NoText> {
        self.text(v);
        self.bytes.push(u8::from(v));
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), NoText> {
        self.bytes.extend_from_slice(&v.to_bits().to_le_bytes());
        self.no_text();
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), NoText> {
        self.bytes.extend_from_slice(&v.to_bits().to_le_bytes());
        self.no_text();
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), NoText> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), NoText> {
        self.string(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), NoText> {
        self.varint(v.len() as u128);
        self.bytes.extend_from_slice(v);
        self.no_text();
        Ok(())
    }

    fn serialize_none(self) -> Result<(), NoText> {
        self.bytes.push(0);
        self.null();
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NoText> {
        self.bytes.push(1);
        if std::mem::replace(&mut self.in_option, true) {
            self.readable = false;
        }
        let result = self.inner(value);
        self.in_option = false;
        result
    }

    fn serialize_unit(self) -> Result<(), NoText> {
        self.null();
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NoText> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), NoText> {
        self.varint(index.into());
        if self.nested {
            self.quoted(variant);
        } else {
            self.out.push_str(variant);
        }
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NoText> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), NoText> {
        self.open_variant(index, variant);
        self.part(value)?;
        self.out.push('}');
        Ok(())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Composite<'a>, NoText> {
        self.varint(len.ok_or(NoText)? as u128);
        ser::Serializer::serialize_tuple(self, 0)
    }

    fn serialize_tuple(self, _: usize) -> Result<Composite<'a>, NoText> {
        Ok(Composite::open(self, '[', "]"))
    }

    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Composite<'a>, NoText> {
        self.serialize_tuple(len)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Composite<'a>, NoText> {
        self.open_variant(index, variant);
        Ok(Composite::open(self, '[', "]}"))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Composite<'a>, NoText> {
        self.varint(len.ok_or(NoText)? as u128);
        self.readable = false;
        ser::Serializer::serialize_tuple(self, 0)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Composite<'a>, NoText> {
        Ok(Composite::open(self, '{', "}"))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Composite<'a>, NoText> {
        self.open_variant(index, variant);
        Ok(Composite::open(self, '{', "}}"))
    }
}

/// The element-wise `Serialize*` traits of a composite: each element is a part of it.
macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {
        $(impl ser::$trait for Composite<'_> {
            type Ok = ();
            type Error = NoText;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoText> {
                self.element(value)
            }

            fn end(self) -> Result<(), NoText> {
                self.close();
                Ok(())
            }
        })*
    };
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The named-field `Serialize*` traits of a composite: `"name":value` parts.
macro_rules! fields {
    ($($trait:ident),*) => {
        $(impl ser::$trait for Composite<'_> {
            type Ok = ();
            type Error = NoText;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                value: &T,
            ) -> Result<(), NoText> {
                self.field(name, value)
            }

            fn end(self) -> Result<(), NoText> {
                self.close();
                Ok(())
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Composite<'_> {
    type Ok = ();
    type Error = NoText;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), NoText> {
        self.element(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoText> {
        self.text.part(value)
    }

    fn end(self) -> Result<(), NoText> {
        self.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde::Serialize;

    use super::written as encode;

    fn readable<K: Serialize + ?Sized>(key: &K) -> Option<String> {
        encode(key).unwrap().1
    }

    /// The bytes are postcard's, whatever the text.
    fn same_bytes<K: Serialize>(keys: &[K]) {
        for key in keys {
            assert_eq!(
                encode(key).unwrap().0,
                postcard::to_allocvec(key).unwrap(),
                "{:?}",
                readable(key)
            );
        }
    }

    #[test]
    fn the_bytes_are_postcards() {
        same_bytes(&[0_u8, 1, 127, 128, 255]);
        same_bytes(&[i8::MIN, -1, 0, 1, i8::MAX]);
        same_bytes(&[i16::MIN, -300, -1, 0, 300, i16::MAX]);
        same_bytes(&[i32::MIN, -70_000, 0, i32::MAX]);
        same_bytes(&[i64::MIN, -1, i64::MAX]);
        same_bytes(&[i128::MIN, -1, 0, i128::MAX]);
        same_bytes(&[0_u16, 300, u16::MAX]);
        same_bytes(&[0_u32, 1 << 20, u32::MAX]);
        same_bytes(&[0_u64, 1 << 40, u64::MAX]);
        same_bytes(&[0_u128, u128::MAX]);
        same_bytes(&[true, false]);
        same_bytes(&[0.5_f32, -0.0, f32::NAN]);
        same_bytes(&[1.5_f64, f64::INFINITY]);
        same_bytes(&['a', 'é', '😀']);
        same_bytes(&["", "apple", &"x".repeat(300)]);
        same_bytes(&[None, Some(None), Some(Some(3_u8))]);
        same_bytes(&[(), ()]);
        same_bytes(&[vec![vec!["a".to_string()], vec![]]]);
        same_bytes(&[("a", 1_u32, Some(-2_i64))]);
        same_bytes(&[
            Shape::Dot,
            Shape::Circle(3),
            Shape::Rect { w: 300, h: 2 },
            Shape::Pair(1, 2),
        ]);
        same_bytes(&[User {
            id: 1 << 33,
            tag: "t".into(),
        }]);
        let map: std::collections::BTreeMap<String, Vec<u16>> =
            [("a".to_string(), vec![1, 500])].into();
        same_bytes(&[map]);
        same_bytes(&[std::net::IpAddr::from([127, 0, 0, 1])]);
        same_bytes(&[std::time::Duration::from_millis(1500)]);
        same_bytes(&[serde_bytes_like()]);
    }

    #[derive(Serialize)]
    struct User {
        id: u64,
        tag: String,
    }

    #[derive(Serialize, Clone, Debug)]
    enum Shape {
        Dot,
        Circle(u32),
        Rect { w: u32, h: u32 },
        Pair(u8, u8),
    }

    #[test]
    fn strings_and_numbers_are_themselves() {
        assert_eq!(readable("apple").as_deref(), Some("apple"));
        assert_eq!(readable("a:b {c}").as_deref(), Some("a:b {c}"));
        assert_eq!(readable(&42_u64).as_deref(), Some("42"));
        assert_eq!(readable(&-7_i32).as_deref(), Some("-7"));
        assert_eq!(readable(&'x').as_deref(), Some("x"));
        assert_eq!(readable(&true).as_deref(), Some("true"));
    }

    #[test]
    fn composites_are_compact_json() {
        assert_eq!(
            readable(&("apple", 42_u32)).as_deref(),
            Some(r#"["apple",42]"#)
        );
        let user = User {
            id: 7,
            tag: "a\"b".into(),
        };
        assert_eq!(readable(&user).as_deref(), Some(r#"{"id":7,"tag":"a\"b"}"#));
        assert_eq!(readable(&Shape::Dot).as_deref(), Some("Dot"));
        assert_eq!(
            readable(&Shape::Circle(3)).as_deref(),
            Some(r#"{"Circle":3}"#)
        );
        assert_eq!(
            readable(&Shape::Rect { w: 1, h: 2 }).as_deref(),
            Some(r#"{"Rect":{"w":1,"h":2}}"#)
        );
        assert_eq!(
            readable(&Shape::Pair(1, 2)).as_deref(),
            Some(r#"{"Pair":[1,2]}"#)
        );
        assert_eq!(readable(&vec![Shape::Dot]).as_deref(), Some(r#"["Dot"]"#));
        assert_eq!(readable(&()).as_deref(), Some("null"));
    }

    #[test]
    fn what_has_no_clear_text_is_refused() {
        assert_eq!(readable(&1.5_f64), None);
        assert_eq!(readable(""), None);
        assert_eq!(readable("line\nbreak"), None);
        assert_eq!(readable(&"x".repeat(101)), None);
        assert!(readable(&"x".repeat(100)).is_some());
        let map: std::collections::BTreeMap<u8, u8> = [(1, 2)].into();
        assert_eq!(readable(&map), None);
        assert_eq!(readable(&Some(None::<u8>)), None);
        assert_eq!(readable(&Some(())), None);
        assert_eq!(readable(&serde_bytes_like()), None);
    }

    /// A key that serializes as bytes.
    fn serde_bytes_like() -> impl Serialize {
        struct Bytes;
        impl Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b"\x00\x01")
            }
        }
        Bytes
    }

    #[test]
    fn a_leading_hash_is_doubled() {
        assert_eq!(readable("#tag").as_deref(), Some("##tag"));
        assert_eq!(readable("##").as_deref(), Some("###"));
    }

    /// Distinct keys of one type never share a text: the cases where a careless encoding would
    /// (an option of a string `"null"`, strings with separators, a leading `#`).
    #[test]
    fn distinct_keys_of_one_type_have_distinct_texts() {
        fn all_distinct<K: Serialize>(keys: &[K]) {
            let texts: Vec<Option<String>> = keys.iter().map(readable).collect();
            let seen: HashSet<&String> = texts.iter().flatten().collect();
            assert_eq!(seen.len(), texts.iter().flatten().count(), "{texts:?}");
        }
        all_distinct(&[None, Some("null"), Some(""), Some("\"\""), Some("#")]);
        all_distinct(&["null", "#", "##", "#a", "[1]", "a,b"]);
        all_distinct(&[("a,b", "c"), ("a", "b,c"), ("a\",\"b", "c")]);
        all_distinct(&[vec!["a", "b"], vec!["a,b"], vec![], vec![""]]);
        all_distinct(&[
            Shape::Dot,
            Shape::Circle(1),
            Shape::Pair(1, 0),
            Shape::Rect { w: 1, h: 0 },
        ]);
        all_distinct(&[Some((None, 1_u8)), None, Some((Some(1_u8), 1))]);
        assert_eq!(
            readable(&(Some(1_u8), None::<u8>)).as_deref(),
            Some("[1,null]")
        );
    }
}
