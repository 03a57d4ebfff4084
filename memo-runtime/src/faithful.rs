//! Whether an encoding gives back what was encoded, checked before a key or value is stored
//! outside the process: a format that cannot carry what a type's `Serialize` says returns
//! another value without an error. Postcard does not describe itself, so a field left out by
//! `#[serde(skip_serializing_if = …)]` has the next field read in its place; JSON writes
//! `Some(None)`, `Some(())` and NaN as `null`, read back as `None`; two keys of an untagged enum
//! or a `#[serde(skip)]` field may encode alike and share an entry.
//!
//! A key is decoded and compared with `==`: a key that passes is the only one of its type with
//! those bytes. A value need not be `PartialEq`, so what its `Serialize` says (every call, field
//! names included) is hashed before and after the round trip; where `#[cached]` finds the value
//! type `PartialEq` ([`Equal`]), the value decoded must also be `==` to it, which tells a
//! `#[serde(skip)]` field or a lossy `#[serde(with = …)]`, that `Serialize` does not show. Either
//! failing, the store counts an error and the function's value is returned, not stored.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};

use foldhash::quality::{FixedState, FoldHasher};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::ser;

use crate::codec::Codec;
pub(crate) use crate::private::Equal;

/// Why a key or value is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its `Serialize` fails in the format.
    Unwritable,
    /// Its bytes do not decode as its type.
    Unreadable,
    /// It decodes to another key or value.
    Changed,
    /// It decodes to a value that serializes alike but is not `==` to it.
    Unequal,
}

/// `key`'s postcard bytes, if they decode to `key` (the Redis store checks the bytes it writes
/// with the key's text, `key_text.rs`).
#[cfg(feature = "disk")]
pub(crate) fn key_bytes<K: Serialize + DeserializeOwned + PartialEq>(key: &K) -> Option<Vec<u8>> {
    key_check(key).ok()
}

/// [`key_bytes`], or why there are none.
pub(crate) fn key_check<K: Serialize + DeserializeOwned + PartialEq>(
    key: &K,
) -> Result<Vec<u8>, Refused> {
    let bytes = crate::key::encode(key).ok_or(Refused::Unwritable)?;
    match Codec::Binary.decode::<K>(&bytes) {
        None => Err(Refused::Unreadable),
        Some(decoded) if decoded == *key => Ok(bytes),
        Some(_) => Err(Refused::Changed),
    }
}

/// Whether postcard `bytes` are `key`'s and nothing else (keys are postcard whatever the
/// codec of the values): the Redis store's check of the bytes it writes with a key's text.
#[cfg(feature = "redis")]
pub(crate) fn decodes_to<K: DeserializeOwned + PartialEq>(bytes: &[u8], key: &K) -> bool {
    Codec::Binary
        .decode::<K>(bytes)
        .is_some_and(|decoded| decoded == *key)
}

/// `value` in `codec`, if what it decodes to serializes as `value` does (and, with `equal`, is
/// `==` to it); else why not.
pub(crate) fn value_bytes<V: Serialize + DeserializeOwned + 'static>(
    codec: Codec,
    value: &V,
    equal: Option<Equal>,
) -> Result<Vec<u8>, Refused> {
    let bytes = codec.encode(value).ok_or(Refused::Unwritable)?;
    let decoded: V = codec.decode(&bytes).ok_or(Refused::Unreadable)?;
    let human = codec == Codec::Json;
    let alike = |order| Some(digest(value, human, order)? == digest(&decoded, human, order)?);
    // In order first, one stream: what almost every value passes; a `HashSet` or `HashMap`
    // decoded anew iterates in another order, and is compared again element by element.
    if alike(Order::Kept) != Some(true) && alike(Order::Any) != Some(true) {
        return Err(Refused::Changed);
    }
    // A value not `==` to itself (a NaN in it) cannot be compared: its serialization was.
    match equal {
        Some(equal) if equal(value, value) && !equal(value, &decoded) => Err(Refused::Unequal),
        _ => Ok(bytes),
    }
}

/// Says once per store, through [`trace::warn`](crate::trace::warn) (a `tracing` warning, else
/// a line on standard error), what it refused and why, as the stores say that a backend cannot
/// be used: a type that is always refused turns its function's store off, which a count in
/// `backend_errors` alone left unseen. Each refusal is still counted.
#[derive(Debug, Default)]
pub(crate) struct Refusals(AtomicBool);

impl Refusals {
    /// Warns with `line` (which store refused what, and why: [`key_refusal`],
    /// [`value_refusal`]) if this is the store's first refusal; whether it warned.
    pub(crate) fn warn(&self, line: impl FnOnce() -> String) -> bool {
        if self.0.swap(true, Ordering::Relaxed) {
            return false;
        }
        crate::trace::warn(&format_args!(
            "{}; such calls compute each time, counted in backend_errors (said once per function)",
            line()
        ));
        true
    }
}

/// Why `key` was not stored, as [`Refusals`] says it.
pub(crate) fn key_refusal<K: Serialize + DeserializeOwned + PartialEq>(key: &K) -> String {
    // Postcard's bytes are the Redis store's too, whose key text alone may fail to be written.
    let refused = key_check(key).err().unwrap_or(Refused::Unwritable);
    let why = match refused {
        Refused::Unwritable => {
            "its Serialize fails in postcard (the keys' encoding, whatever the codec), which \
             must know the length of each sequence and map first"
        }
        Refused::Unreadable => {
            "postcard (the keys' encoding, whatever the codec) writes it but cannot read it \
             back, as with untagged and internally tagged enums; key by another type (key = ...)"
        }
        Refused::Changed | Refused::Unequal => {
            "it reads back as another key, so that two keys would share an entry (a \
             #[serde(skip)] field, an untagged enum); key by another type (key = ...)"
        }
    };
    format!(
        "a key of type `{}` was not stored: {why}",
        std::any::type_name::<K>()
    )
}

/// Why a value of `V` was not stored in `codec`, as [`Refusals`] says it.
pub(crate) fn value_refusal<V: ?Sized>(codec: Codec, refused: Refused) -> String {
    let why = match (refused, codec) {
        (Refused::Unwritable, Codec::Binary) => {
            "its Serialize fails in postcard, which must know the length of each sequence and \
             map first (#[serde(flatten)] does not tell it); codec = \"json\" can write it"
        }
        (Refused::Unwritable, Codec::Json) => {
            "its Serialize fails in JSON (a map whose keys are not strings or numbers, for one)"
        }
        (Refused::Unreadable, Codec::Binary) => {
            "postcard writes it but cannot read it back: it does not describe itself, so it \
             cannot read a type that asks what comes next (serde_json::Value, tagged and \
             untagged enums, #[serde(flatten)], rust_decimal::Decimal); codec = \"json\" can"
        }
        (Refused::Unreadable, Codec::Json) => "JSON writes it but cannot read it back",
        (Refused::Changed, Codec::Binary) => {
            "it reads back as another value: postcard reads the next field in place of one \
             that #[serde(skip_serializing_if = ...)] left out; codec = \"json\" keeps it"
        }
        (Refused::Changed, Codec::Json) => {
            "it reads back as another value: JSON writes Some(None), Some(()), NaN and the \
             infinities as null"
        }
        (Refused::Unequal, _) => {
            "it reads back as a value not == to it: a #[serde(skip)] field comes back as its \
             default, a lossy #[serde(with = ...)] as what it wrote; keep this function in \
             memory, or serialize all that == compares"
        }
    };
    format!(
        "a value of type `{}` was not stored with codec = \"{}\": {why}",
        std::any::type_name::<V>(),
        codec.name()
    )
}

/// Whether a sequence's elements and a map's entries count in their order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Kept,
    Any,
}

/// A hash of every call `value`'s `Serialize` makes; `None` if it fails.
pub(crate) fn digest<T: Serialize + ?Sized>(
    value: &T,
    human_readable: bool,
    order: Order,
) -> Option<u64> {
    let mut digest = Digest {
        hasher: FixedState::default().build_hasher(),
        human_readable,
        order,
    };
    value.serialize(&mut digest).ok()?;
    Some(digest.hasher.finish())
}

/// Hashes a tag per call, then its data; compounds end with [`Call::End`], so that where a
/// sequence ends is part of the hash whether or not it told its length.
struct Digest {
    hasher: FoldHasher<'static>,
    human_readable: bool,
    order: Order,
}

#[derive(Clone, Copy, Hash)]
enum Call {
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    None,
    Some,
    Unit,
    UnitStruct,
    UnitVariant,
    NewtypeStruct,
    NewtypeVariant,
    Seq,
    Tuple,
    TupleStruct,
    TupleVariant,
    Map,
    Struct,
    StructVariant,
    Field,
    Skipped,
    End,
}

impl Digest {
    fn put(&mut self, call: Call, data: impl Hash) {
        call.hash(&mut self.hasher);
        data.hash(&mut self.hasher);
    }

    /// A compound begun with `call`: its elements follow in the stream.
    fn opened(&mut self, call: Call, data: impl Hash) -> &mut Self {
        self.put(call, data);
        self
    }
}

/// The digest's error: only what a `Serialize` raises itself.
#[derive(Debug)]
pub(crate) struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the value's Serialize failed")
    }
}

impl std::error::Error for Failed {}

impl ser::Error for Failed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self
    }
}

macro_rules! plain {
    ($($method:ident($type:ty) => $call:ident),* $(,)?) => {
        $(fn $method(self, v: $type) -> Result<(), Failed> {
            self.put(Call::$call, v);
            Ok(())
        })*
    };
}

impl<'a> ser::Serializer for &'a mut Digest {
    type Ok = ();
    type Error = Failed;
    type SerializeSeq = Unordered<'a>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Unordered<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    plain! {
        serialize_bool(bool) => Bool,
        serialize_i8(i8) => I8,
        serialize_i16(i16) => I16,
        serialize_i32(i32) => I32,
        serialize_i64(i64) => I64,
        serialize_i128(i128) => I128,
        serialize_u8(u8) => U8,
        serialize_u16(u16) => U16,
        serialize_u32(u32) => U32,
        serialize_u64(u64) => U64,
        serialize_u128(u128) => U128,
        serialize_char(char) => Char,
        serialize_str(&str) => Str,
        serialize_bytes(&[u8]) => Bytes,
        serialize_unit_struct(&'static str) => UnitStruct,
    }

    fn serialize_f32(self, v: f32) -> Result<(), Failed> {
        self.put(Call::F32, v.to_bits());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Failed> {
        self.put(Call::F64, v.to_bits());
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Failed> {
        self.put(Call::None, ());
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Failed> {
        self.put(Call::Some, ());
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Failed> {
        self.put(Call::Unit, ());
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Failed> {
        self.put(Call::UnitVariant, (name, index, variant));
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        self.put(Call::NewtypeStruct, name);
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        self.put(Call::NewtypeVariant, (name, index, variant));
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Unordered<'a>, Failed> {
        self.put(Call::Seq, len);
        Ok(Unordered::new(self))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self, Failed> {
        Ok(self.opened(Call::Tuple, len))
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self, Failed> {
        Ok(self.opened(Call::TupleStruct, (name, len)))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Failed> {
        Ok(self.opened(Call::TupleVariant, (name, index, variant, len)))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Unordered<'a>, Failed> {
        self.put(Call::Map, len);
        Ok(Unordered::new(self))
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self, Failed> {
        Ok(self.opened(Call::Struct, (name, len)))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Failed> {
        Ok(self.opened(Call::StructVariant, (name, index, variant, len)))
    }

    fn is_human_readable(&self) -> bool {
        self.human_readable
    }
}

/// An element, a map's key or value, or a field: its value's calls, in order.
fn element<T: Serialize + ?Sized>(digest: &mut Digest, value: &T) -> Result<(), Failed> {
    value.serialize(digest)
}

fn end(digest: &mut Digest) {
    digest.put(Call::End, ());
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for &mut Digest {
            type Ok = ();
            type Error = Failed;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
                element(self, value)
            }

            fn end(self) -> Result<(), Failed> {
                end(self);
                Ok(())
            }
        })*
    };
}

compound! {
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
}

/// A sequence's elements or a map's entries: in the digest's stream where their order counts,
/// else hashed each alone and summed.
struct Unordered<'a> {
    digest: &'a mut Digest,
    sum: u64,
    count: u64,
    /// A map entry's key, until its value comes.
    key: Option<u64>,
}

impl<'a> Unordered<'a> {
    fn new(digest: &'a mut Digest) -> Self {
        Self {
            digest,
            sum: 0,
            count: 0,
            key: None,
        }
    }

    fn add<T: Serialize + ?Sized>(&mut self, value: &T, key: Option<u64>) -> Result<(), Failed> {
        self.count += 1;
        if self.digest.order == Order::Kept {
            return value.serialize(&mut *self.digest);
        }
        let mut hasher = FixedState::default().build_hasher();
        key.hash(&mut hasher);
        digest(value, self.digest.human_readable, Order::Any)
            .ok_or(Failed)?
            .hash(&mut hasher);
        self.sum = self.sum.wrapping_add(hasher.finish());
        Ok(())
    }

    fn finish(self) {
        self.digest.put(Call::End, (self.sum, self.count));
    }
}

impl ser::SerializeSeq for Unordered<'_> {
    type Ok = ();
    type Error = Failed;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        self.add(value, None)
    }

    fn end(self) -> Result<(), Failed> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeMap for Unordered<'_> {
    type Ok = ();
    type Error = Failed;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Failed> {
        if self.digest.order == Order::Kept {
            return key.serialize(&mut *self.digest);
        }
        self.key = Some(digest(key, self.digest.human_readable, Order::Any).ok_or(Failed)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        let key = self.key.take();
        self.add(value, key)
    }

    fn end(self) -> Result<(), Failed> {
        self.finish();
        Ok(())
    }
}

macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(impl ser::$trait for &mut Digest {
            type Ok = ();
            type Error = Failed;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Failed> {
                self.put(Call::Field, key);
                element(self, value)
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), Failed> {
                self.put(Call::Skipped, key);
                Ok(())
            }

            fn end(self) -> Result<(), Failed> {
                end(self);
                Ok(())
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::private::{Comparable as _, Compare, Incomparable as _};

    /// [`super::value_bytes`] without `==`: what a store opened by hand checks.
    fn value_bytes<V: Serialize + DeserializeOwned + 'static>(
        codec: Codec,
        value: &V,
    ) -> Result<Vec<u8>, Refused> {
        super::value_bytes(codec, value, None)
    }

    /// A field `Serialize` does not show: it comes back as its default.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Session {
        user: String,
        #[serde(skip)]
        token: Option<String>,
    }

    /// Compares only the id, as a type whose other fields are caches may.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct ById {
        id: u32,
        #[serde(skip)]
        seen: u32,
    }

    impl PartialEq for ById {
        fn eq(&self, other: &Self) -> bool {
            self.id == other.id
        }
    }

    // `(&Compare::<V>::NEW).equal()` as the expansion writes it: the borrow picks the impl.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn a_value_that_reads_back_unequal_is_refused_where_it_has_eq() {
        let equal = (&Compare::<Session>::NEW).equal();
        assert!(equal.is_some());
        let session = Session {
            user: "ada".into(),
            token: Some("secret".into()),
        };
        for codec in [Codec::Binary, Codec::Json] {
            // What `Serialize` says is the same before and after: only `==` tells them apart.
            assert!(value_bytes(codec, &session).is_ok());
            assert_eq!(
                super::value_bytes(codec, &session, equal),
                Err(Refused::Unequal)
            );
            let untouched = Session {
                token: None,
                ..session.clone()
            };
            assert!(super::value_bytes(codec, &untouched, equal).is_ok());
            // Equal as its own `==` says, which is the type's to decide.
            let by_id = ById { id: 7, seen: 3 };
            let equal = (&Compare::<ById>::NEW).equal();
            let bytes = super::value_bytes(codec, &by_id, equal).unwrap();
            assert_eq!(codec.decode::<ById>(&bytes).map(|back| back.seen), Some(0));
        }
        // A value not `==` to itself is checked by its serialization alone.
        let equal = (&Compare::<Vec<Option<f64>>>::NEW).equal();
        assert!(super::value_bytes(Codec::Binary, &vec![Some(f64::NAN)], equal).is_ok());
        assert_eq!(
            super::value_bytes(Codec::Json, &vec![Some(f64::NAN)], equal),
            Err(Refused::Changed)
        );
        // A type without `==` has none to check.
        assert!((&Compare::<std::fs::File>::NEW).equal().is_none());
    }

    /// Postcard writes nothing for `max` when it is `None`, and reads `count` in its place.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Stats {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u32>,
        count: u32,
        values: Vec<u32>,
    }

    #[test]
    fn a_value_with_a_field_left_out_is_refused_in_binary_and_kept_in_json() {
        let skipped = Stats {
            max: None,
            count: 1,
            values: vec![9, 1, 42],
        };
        // What postcard would give back: another value, without an error.
        let bytes = Codec::Binary.encode(&skipped).unwrap();
        assert_eq!(
            Codec::Binary.decode::<Stats>(&bytes),
            Some(Stats {
                max: Some(3),
                count: 9,
                values: vec![42],
            })
        );
        assert_eq!(value_bytes(Codec::Binary, &skipped), Err(Refused::Changed));
        assert!(value_bytes(Codec::Binary, &vec![skipped.clone()]).is_err());
        let json = value_bytes(Codec::Json, &skipped).unwrap();
        assert_eq!(Codec::Json.decode::<Stats>(&json), Some(skipped.clone()));
        let whole = Stats {
            max: Some(3),
            ..skipped
        };
        let bytes = value_bytes(Codec::Binary, &whole).unwrap();
        assert_eq!(Codec::Binary.decode::<Stats>(&bytes), Some(whole));
    }

    #[test]
    fn json_refuses_what_it_writes_as_null_and_keeps_floats_exact() {
        assert_eq!(
            value_bytes(Codec::Json, &vec![Some(None::<u8>)]),
            Err(Refused::Changed)
        );
        assert_eq!(value_bytes(Codec::Json, &Some(())), Err(Refused::Changed));
        assert_eq!(
            value_bytes(Codec::Json, &Some(f64::NAN)),
            Err(Refused::Changed)
        );
        assert!(value_bytes(Codec::Json, &f64::INFINITY).is_err());
        assert!(value_bytes(Codec::Json, &vec![None::<Option<u8>>, Some(Some(7))]).is_ok());
        assert!(value_bytes(Codec::Binary, &vec![Some(None::<u8>), Some(Some(7))]).is_ok());
        assert!(value_bytes(Codec::Binary, &Some(f64::NAN)).is_ok());
        // A float serde_json's fast parser reads one bit off.
        let float = f64::from_bits(0x305f_050c_368d_cc74);
        let bytes = value_bytes(Codec::Json, &float).unwrap();
        assert_eq!(
            Codec::Json.decode::<f64>(&bytes).map(f64::to_bits),
            Some(float.to_bits())
        );
    }

    #[test]
    fn maps_and_sets_decoded_in_another_order_are_the_same_value() {
        let map: HashMap<String, Vec<u32>> = (0..200).map(|n| (n.to_string(), vec![n])).collect();
        let set: HashSet<u64> = (0..200).collect();
        for codec in [Codec::Binary, Codec::Json] {
            assert!(value_bytes(codec, &map).is_ok());
            assert!(value_bytes(codec, &set).is_ok());
        }
        // The order still counts where it is the value's own.
        for order in [Order::Kept, Order::Any] {
            let pairs = |pair: (u8, u8)| digest(&vec![pair], false, order);
            assert_ne!(pairs((1, 2)), pairs((2, 1)));
            let list = |list: &[u8]| digest(list, false, order);
            assert_ne!(list(&[1, 2, 3]), list(&[1, 2]));
        }
        // In order, a sequence is its order too; in any order, not.
        assert_ne!(
            digest(&vec![1, 2], false, Order::Kept),
            digest(&vec![2, 1], false, Order::Kept)
        );
        assert_eq!(
            digest(&vec![1, 2], false, Order::Any),
            digest(&vec![2, 1], false, Order::Any)
        );
    }

    /// Each value's bytes in `codec`, decoded: the value itself (floats to the bit), `==` to it
    /// as `#[cached]` checks.
    fn kept<T>(codec: Codec, value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
    {
        let equal = Compare::<T>::NEW.equal();
        let bytes = super::value_bytes(codec, value, equal).unwrap_or_else(|why| {
            panic!("{codec:?} refused {value:?} ({why:?}), which it carries")
        });
        let decoded: T = codec.decode(&bytes).unwrap();
        assert_eq!(format!("{decoded:?}"), format!("{value:?}"), "{codec:?}");
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    struct Settings {
        user_id: u64,
        display_name: String,
        retries: Option<u32>,
    }

    impl Default for Settings {
        fn default() -> Self {
            Self {
                user_id: 7,
                display_name: "anon".into(),
                retries: Some(3),
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Marker;

    /// What users cache most, none of it refused: a false refusal would turn the store off for
    /// the type (an audit of such types in both codecs, disk and Redis, found none).
    #[test]
    fn common_types_are_kept_in_both_codecs() {
        use std::borrow::Cow;
        use std::collections::BTreeMap;
        use std::net::IpAddr;
        use std::time::{Duration, UNIX_EPOCH};

        let bytes: HashMap<String, Vec<u8>> = (0..64_u8)
            .map(|n| (format!("k{n}"), vec![n; usize::from(n % 5)]))
            .collect();
        let nested: HashMap<String, HashSet<u32>> =
            (0..20).map(|n| (n.to_string(), (0..n).collect())).collect();
        for codec in [Codec::Binary, Codec::Json] {
            kept(codec, &Duration::new(5, 123_456_789));
            kept(
                codec,
                &(UNIX_EPOCH + Duration::new(1_700_000_000, 987_654_321)),
            );
            kept(codec, &"2001:db8::ff00:42:8329".parse::<IpAddr>().unwrap());
            kept(codec, &IpAddr::from([192, 168, 1, 20]));
            kept(codec, &['\0', 'é', '🦀']);
            kept(codec, &(i128::MIN, u128::MAX, i64::MIN, u64::MAX));
            kept(
                codec,
                &BTreeMap::from([("b".to_string(), 2), ("a".to_string(), 1)]),
            );
            kept(codec, &BTreeMap::from([(-5_i32, "m".to_string())]));
            assert!(value_bytes(codec, &bytes).is_ok());
            assert!(value_bytes(codec, &nested).is_ok());
            kept(codec, &Box::<str>::from("boxed ✓"));
            kept(codec, &Cow::<'static, str>::Borrowed("borrowed"));
            kept(codec, &"nul:\0 é 🦀 \u{202e} \"q\" \\ \n".to_string());
            kept(codec, &(Marker, (), Vec::<u32>::new(), String::new()));
            kept(codec, &vec![Ok::<u32, String>(5), Err("boom".into())]);
            kept(codec, &Settings::default());
            kept(codec, &Some(Some(3_u32)));
            kept(
                codec,
                &(0..40_000_u32)
                    .map(|n| (n % 251) as u8)
                    .collect::<Vec<u8>>(),
            );
            kept(
                codec,
                &[0.1, 1e300, -0.0, 5e-324, f64::MIN_POSITIVE / 3.0, f64::MAX],
            );
            kept(
                codec,
                &[
                    0.1_f32,
                    -0.0,
                    f32::from_bits(1),
                    f32::MIN_POSITIVE / 3.0,
                    f32::MAX,
                ],
            );
        }
        kept(Codec::Binary, &Some(None::<u32>));
        kept(
            Codec::Json,
            &serde_json::json!({
                "floats": [0.1, 1e300, -0.0, 5e-324, 1.0],
                "ints": [u64::MAX, i64::MIN, 9_007_199_254_740_993_u64],
                "nested": {"z": [1, {"x": null}, [], {}], "a": true, "s": "\0é"},
            }),
        );
        kept(Codec::Json, &Tagged::Struct { x: -1 });
        kept(Codec::Json, &Adjacent::Pair(1, "p".into()));
        kept(Codec::Json, &Shape::Num(0));
        let json = value_bytes(Codec::Json, &flattened()).unwrap();
        assert_eq!(Codec::Json.decode(&json), Some(flattened()));
        // Keys: postcard, compared with `==`.
        #[cfg(feature = "disk")]
        {
            assert!(key_bytes(&"héllo\0".to_string()).is_some());
            assert!(key_bytes(&(42_u64, "x".to_string())).is_some());
            assert!(key_bytes(&vec!["a".to_string(), String::new()]).is_some());
            assert!(key_bytes(&(true, '🦀', i128::MIN, u128::MAX)).is_some());
            assert!(key_bytes(&(Some(Duration::from_millis(1500)), None::<u32>, ())).is_some());
            assert!(key_bytes(&"2001:db8::1".parse::<IpAddr>().unwrap()).is_some());
        }
    }

    /// Internally tagged.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Tagged {
        Struct { x: i32 },
    }

    /// Adjacently tagged.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        Pair(u32, String),
    }

    /// Untagged, as a value.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Num(u64),
        Name(String),
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Flattened {
        id: u32,
        #[serde(flatten)]
        extra: HashMap<String, u32>,
    }

    fn flattened() -> Flattened {
        Flattened {
            id: 1,
            extra: (0..8).map(|n| (format!("e{n}"), n)).collect(),
        }
    }

    /// Postcard does not describe itself, so it cannot read a type whose `Deserialize` asks the
    /// format what comes next (`deserialize_any`, identifiers), and cannot write a map of
    /// unknown length (`flatten`): stored, each would be a damaged entry on every read. JSON
    /// carries them all.
    #[test]
    fn types_postcard_cannot_read_back_are_refused_in_binary() {
        let value = serde_json::json!({"a": [0.1, 1], "b": null});
        let written = Codec::Binary.encode(&value).unwrap();
        assert_eq!(Codec::Binary.decode::<serde_json::Value>(&written), None);
        assert_eq!(value_bytes(Codec::Binary, &value), Err(Refused::Unreadable));
        assert_eq!(
            value_bytes(Codec::Binary, &vec![value]),
            Err(Refused::Unreadable)
        );
        // Written, but not read back.
        assert!(Codec::Binary.encode(&Tagged::Struct { x: -1 }).is_some());
        assert!(
            Codec::Binary
                .encode(&Adjacent::Pair(1, "p".into()))
                .is_some()
        );
        assert!(Codec::Binary.encode(&Shape::Name("n".into())).is_some());
        assert_eq!(
            value_bytes(Codec::Binary, &Tagged::Struct { x: -1 }),
            Err(Refused::Unreadable)
        );
        assert_eq!(
            value_bytes(Codec::Binary, &Adjacent::Pair(1, "p".into())),
            Err(Refused::Unreadable)
        );
        assert_eq!(
            value_bytes(Codec::Binary, &Shape::Name("n".into())),
            Err(Refused::Unreadable)
        );
        assert_eq!(Codec::Binary.encode(&flattened()), None);
        assert_eq!(
            value_bytes(Codec::Binary, &flattened()),
            Err(Refused::Unwritable)
        );
        // A time before 1970 has no `Serialize` in either.
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(
            value_bytes(Codec::Binary, &before),
            Err(Refused::Unwritable)
        );
        assert_eq!(value_bytes(Codec::Json, &before), Err(Refused::Unwritable));
    }

    /// A store says its first refusal, not each: a type that is always refused is one line.
    #[test]
    fn a_store_says_its_first_refusal_and_why() {
        let refusals = Refusals::default();
        let said = (0..3)
            .filter(|_| refusals.warn(|| "test store: a refusal".into()))
            .count();
        assert_eq!(said, 1);
        // Each line names the type, says why, and the way out where there is one.
        let value = serde_json::json!({"a": 1});
        let refused = value_bytes(Codec::Binary, &value).unwrap_err();
        let line = value_refusal::<serde_json::Value>(Codec::Binary, refused);
        assert!(line.contains("`serde_json::value::Value`"), "{line}");
        assert!(line.contains("cannot read it back"), "{line}");
        assert!(line.contains("codec = \"json\" can"), "{line}");
        let refused = value_bytes(Codec::Json, &Some(())).unwrap_err();
        let line = value_refusal::<Option<()>>(Codec::Json, refused);
        assert!(line.contains("reads back as another value"), "{line}");
        let line = value_refusal::<Flattened>(Codec::Binary, Refused::Unwritable);
        assert!(line.contains("#[serde(flatten)]"), "{line}");
        #[cfg(feature = "disk")]
        {
            let line = key_refusal(&Request {
                id: 1,
                lang: "fr".into(),
            });
            assert!(line.contains("reads back as another key"), "{line}");
            assert!(line.contains("key = ..."), "{line}");
            assert!(key_refusal(&Id::Num(0)).contains("cannot read it back"));
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Id {
        Num(u64),
        Name(String),
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    struct Request {
        id: u32,
        #[serde(skip)]
        lang: String,
    }

    #[cfg(feature = "disk")]
    #[test]
    fn keys_that_do_not_decode_to_themselves_are_refused() {
        // Postcard writes `Num(0)` and `Name("")` alike, and cannot read an untagged enum back.
        assert_eq!(
            postcard::to_allocvec(&Id::Num(0)).unwrap(),
            postcard::to_allocvec(&Id::Name(String::new())).unwrap()
        );
        assert_eq!(key_bytes(&Id::Num(0)), None);
        assert_eq!(key_bytes(&Id::Name(String::new())), None);
        // Two keys that differ only in a skipped field: the one decoding gives back keeps it.
        let english = Request {
            id: 1,
            lang: String::new(),
        };
        let french = Request {
            id: 1,
            lang: "fr".into(),
        };
        assert!(key_bytes(&english).is_some());
        assert_eq!(key_bytes(&french), None);
        assert_eq!(
            key_bytes(&("a".to_string(), 7_u32)),
            postcard::to_allocvec(&("a", 7_u32)).ok()
        );
    }
}
