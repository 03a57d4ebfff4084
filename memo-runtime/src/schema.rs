//! The serde shape of a stored type, so that a build whose types changed never decodes an entry
//! written under the old layout (features `disk`, `redis`).
//!
//! [`shape`] runs the type's own `Deserialize` against a tracing deserializer that answers every
//! request with a plain sample (`1`, `""`, one element, the next unexplored enum variant) and
//! writes down what was asked for: struct and field names in order, field types, tuple lengths,
//! enum variants in order and each variant's content. It repeats until every variant of every
//! enum met on the way has been explored. The text it returns changes whenever the bytes of a
//! value would be read differently: reordered or renamed fields, a field that became signed,
//! reordered or new variants.
//!
//! Types whose `Deserialize` needs a self-describing format (`#[serde(untagged)]`,
//! `#[serde(flatten)]`, `serde_json::Value`), recursive types, and types that reject the samples
//! cannot be traced; they are fingerprinted by their type name instead (`std::any::type_name`),
//! and `#[cached(version = N)]` is the way to mark their layout changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::key::signature_hash;

/// Nesting deeper than this is taken for a recursive type.
const MAX_DEPTH: usize = 64;

/// Passes over the type before giving up on exploring its enums.
const MAX_PASSES: usize = 1024;

/// The fingerprint of a function's key and value types and the user's `version`: what remote
/// and disk stores put in every key's namespace.
///
/// # Examples
///
/// ```
/// use memo_runtime::key::fingerprint;
///
/// #[derive(serde::Deserialize)]
/// struct Before { balance: u64, limit: u32 }
/// #[derive(serde::Deserialize)]
/// struct After { limit: u32, balance: u64 }
///
/// assert_ne!(fingerprint::<u32, Before>(0), fingerprint::<u32, After>(0));
/// assert_ne!(fingerprint::<u32, Before>(0), fingerprint::<u32, Before>(1));
/// ```
#[must_use]
pub fn fingerprint<K: DeserializeOwned, V: DeserializeOwned>(version: u64) -> u64 {
    let text = format!(
        "key={};value={};version={version}",
        shape_or_name::<K>(),
        shape_or_name::<V>()
    );
    signature_hash(&text)
}

/// [`shape`], or the type's name where it cannot be traced.
fn shape_or_name<T: DeserializeOwned>() -> String {
    shape::<T>().unwrap_or_else(|| format!("?{}", std::any::type_name::<T>()))
}

/// The serde shape of `T` as text, or `None` where it cannot be traced (see the module's docs).
#[must_use]
pub(crate) fn shape<T: DeserializeOwned>() -> Option<String> {
    let mut tracer = Tracer::default();
    let mut root = String::new();
    for _ in 0..MAX_PASSES {
        tracer.out.clear();
        T::deserialize(Tracing {
            tracer: &mut tracer,
            depth: 0,
        })
        .ok()?;
        root.clone_from(&tracer.out);
        let explored = tracer
            .enums
            .values()
            .all(|known| known.contents.iter().all(Option::is_some));
        if explored {
            let mut text = root;
            for ((name, variants), known) in &tracer.enums {
                let _ = write!(text, ";{name}[{}]", variants.join(","));
                for (variant, content) in variants.iter().zip(&known.contents) {
                    let _ = write!(text, ";{name}::{variant}={}", content.as_deref()?);
                }
            }
            return Some(text);
        }
    }
    None
}

/// What the passes over one type have learnt.
#[derive(Default)]
struct Tracer {
    /// The shape written so far in this pass (enum variants' contents go to `enums`).
    out: String,
    /// Each enum met, by name and variant names.
    enums: BTreeMap<(&'static str, Vec<&'static str>), Known>,
}

/// What is known of one enum.
struct Known {
    /// Each variant's content, once explored.
    contents: Vec<Option<String>>,
    /// How often the enum was met: once every variant is explored, the next one is chosen in
    /// turn, so that enums met only inside some variant are reached too.
    met: usize,
}

/// The tracing deserializer.
struct Tracing<'t> {
    tracer: &'t mut Tracer,
    depth: usize,
}

/// Why a trace stopped: the type cannot be traced.
#[derive(Debug)]
struct Untraceable;

impl std::fmt::Display for Untraceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the type's shape cannot be traced")
    }
}

impl std::error::Error for Untraceable {}

impl de::Error for Untraceable {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self
    }
}

impl Tracing<'_> {
    /// Writes `text` to the shape.
    fn put(&mut self, text: &str) {
        self.tracer.out.push_str(text);
    }

    /// A deserializer one level deeper, or an error past [`MAX_DEPTH`].
    fn deeper(&mut self) -> Result<Tracing<'_>, Untraceable> {
        if self.depth >= MAX_DEPTH {
            return Err(Untraceable);
        }
        Ok(Tracing {
            tracer: self.tracer,
            depth: self.depth + 1,
        })
    }

    /// `count` elements in a row, each written after a comma, between `open` and `close`.
    fn elements<'de, V: Visitor<'de>>(
        mut self,
        open: &str,
        count: usize,
        close: &str,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.put(open);
        let value = visitor.visit_seq(Elements {
            tracing: self.deeper()?,
            left: count,
            first: true,
        })?;
        self.put(close);
        Ok(value)
    }
}

/// Integers answer `1` (accepted by `NonZero*` too), floats `1.0`.
macro_rules! primitive {
    ($($method:ident => $visit:ident($sample:expr), $name:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Untraceable> {
            self.put($name);
            visitor.$visit($sample)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracing<'_> {
    type Error = Untraceable;

    primitive! {
        deserialize_bool => visit_bool(false), "bool";
        deserialize_i8 => visit_i8(1), "i8";
        deserialize_i16 => visit_i16(1), "i16";
        deserialize_i32 => visit_i32(1), "i32";
        deserialize_i64 => visit_i64(1), "i64";
        deserialize_i128 => visit_i128(1), "i128";
        deserialize_u8 => visit_u8(1), "u8";
        deserialize_u16 => visit_u16(1), "u16";
        deserialize_u32 => visit_u32(1), "u32";
        deserialize_u64 => visit_u64(1), "u64";
        deserialize_u128 => visit_u128(1), "u128";
        deserialize_f32 => visit_f32(1.0), "f32";
        deserialize_f64 => visit_f64(1.0), "f64";
        deserialize_char => visit_char('a'), "char";
        deserialize_str => visit_str(""), "str";
        deserialize_string => visit_string(String::new()), "str";
        deserialize_bytes => visit_bytes(&[]), "bytes";
        deserialize_byte_buf => visit_byte_buf(Vec::new()), "bytes";
        deserialize_identifier => visit_str(""), "ident";
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Untraceable> {
        Err(Untraceable)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Untraceable> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Untraceable> {
        self.put("option<");
        let value = visitor.visit_some(self.deeper()?)?;
        self.put(">");
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Untraceable> {
        self.put("()");
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.put(name);
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.put(name);
        self.put("(");
        let value = visitor.visit_newtype_struct(self.deeper()?)?;
        self.put(")");
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Untraceable> {
        self.elements("[", 1, "]", visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.elements("(", len, ")", visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.elements(&format!("{name}("), len, ")", visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Untraceable> {
        self.put("map{");
        let value = visitor.visit_map(Fields {
            tracing: self.deeper()?,
            names: &[],
            entries: 1,
            next: 0,
        })?;
        self.put("}");
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.put(name);
        self.put("{");
        let value = visitor.visit_map(Fields {
            tracing: self.deeper()?,
            names: fields,
            entries: fields.len(),
            next: 0,
        })?;
        self.put("}");
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        if variants.is_empty() {
            return Err(Untraceable);
        }
        self.put("enum ");
        self.put(name);
        let known = self
            .tracer
            .enums
            .entry((name, variants.to_vec()))
            .or_insert_with(|| Known {
                contents: vec![None; variants.len()],
                met: 0,
            });
        let index = (known.contents.iter())
            .position(Option::is_none)
            .unwrap_or(known.met % variants.len());
        known.met += 1;
        // The variant's content is written apart, then kept with the enum.
        let outer = std::mem::take(&mut self.tracer.out);
        let value = visitor.visit_enum(Variant {
            tracing: self.deeper()?,
            name: variants[index],
        });
        let content = std::mem::replace(&mut self.tracer.out, outer);
        let value = value?;
        if let Some(slot) = (self.tracer.enums.get_mut(&(name, variants.to_vec())))
            .and_then(|known| known.contents.get_mut(index))
            .filter(|slot| slot.is_none())
        {
            *slot = Some(content);
        }
        Ok(value)
    }
}

/// The elements of a sequence or tuple.
struct Elements<'t> {
    tracing: Tracing<'t>,
    left: usize,
    first: bool,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Untraceable;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Untraceable> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        if !std::mem::take(&mut self.first) {
            self.tracing.put(",");
        }
        seed.deserialize(self.tracing.deeper()?).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A struct's fields by name, in order, or a map's one entry.
struct Fields<'t> {
    tracing: Tracing<'t>,
    names: &'static [&'static str],
    entries: usize,
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Untraceable;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Untraceable> {
        if self.next == self.entries {
            return Ok(None);
        }
        if self.next > 0 {
            self.tracing.put(",");
        }
        let key = match self.names.get(self.next) {
            Some(&field) => {
                self.tracing.put(field);
                seed.deserialize(IntoDeserializer::<Untraceable>::into_deserializer(field))?
            }
            None => seed.deserialize(self.tracing.deeper()?)?,
        };
        self.next += 1;
        self.tracing.put(":");
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Untraceable> {
        seed.deserialize(self.tracing.deeper()?)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries - self.next)
    }
}

/// The variant chosen in this pass.
struct Variant<'t> {
    tracing: Tracing<'t>,
    name: &'static str,
}

impl<'de> EnumAccess<'de> for Variant<'_> {
    type Error = Untraceable;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), Untraceable> {
        let tag = seed.deserialize(IntoDeserializer::<Untraceable>::into_deserializer(
            self.name,
        ))?;
        Ok((tag, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Untraceable;

    fn unit_variant(mut self) -> Result<(), Untraceable> {
        self.tracing.put("unit");
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Untraceable> {
        seed.deserialize(self.tracing)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        self.tracing.elements("(", len, ")", visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Untraceable> {
        de::Deserializer::deserialize_struct(self.tracing, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(dead_code, reason = "only the shapes of these types are read")]

    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    mod before {
        #[derive(serde::Deserialize)]
        pub(super) struct Account {
            balance: u64,
            limit: u32,
        }
        #[derive(serde::Deserialize)]
        pub(super) enum Kind {
            Admin,
            Guest(u8),
        }
    }

    mod after {
        #[derive(serde::Deserialize)]
        pub(super) struct Account {
            limit: i32,
            balance: u64,
        }
        #[derive(serde::Deserialize)]
        pub(super) enum Kind {
            Guest(u8),
            Admin,
        }
    }

    #[derive(Deserialize)]
    enum Nested {
        A(Option<before::Kind>),
        B {
            inner: Vec<before::Kind>,
            n: (u8, i16),
        },
    }

    #[test]
    fn shapes_tell_layouts_apart() {
        assert_eq!(shape::<u32>().as_deref(), Some("u32"));
        assert_eq!(
            shape::<before::Account>().as_deref(),
            Some("Account{balance:u64,limit:u32}")
        );
        assert_ne!(shape::<before::Account>(), shape::<after::Account>());
        assert_ne!(shape::<before::Kind>(), shape::<after::Kind>());
        assert_ne!(shape::<u32>(), shape::<i32>());
        assert_ne!(shape::<(u32, String)>(), shape::<(String, u32)>());
    }

    #[test]
    fn every_variant_of_every_nested_enum_is_explored() {
        let text = shape::<(u8, Nested)>().expect("traceable");
        for part in [
            "Nested::A=option<enum Kind>",
            "Nested::B={inner:[enum Kind],n:(u8,i16)}",
            "Kind::Admin=unit",
            "Kind::Guest=u8",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn std_types_trace() {
        for text in [
            shape::<HashMap<String, Vec<u8>>>(),
            shape::<Option<std::num::NonZeroU32>>(),
            shape::<std::time::Duration>(),
            shape::<Box<str>>(),
            shape::<[u16; 3]>(),
            shape::<Result<u8, String>>(),
        ] {
            assert!(text.is_some());
        }
    }

    #[test]
    fn what_cannot_be_traced_falls_back_to_the_name() {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Loose {
            N(u32),
        }
        #[derive(Deserialize)]
        struct Tree {
            _children: Vec<Tree>,
        }
        assert_eq!(shape::<Loose>(), None);
        assert_eq!(shape::<Tree>(), None);
        assert_ne!(fingerprint::<u8, Loose>(0), fingerprint::<u8, Tree>(0));
    }
}
