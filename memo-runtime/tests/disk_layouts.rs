//! Review 2, R4, end to end: a disk store whose value holds a leaf that refuses the tracer's
//! first samples (a `Uuid`, an RFC 3339 date) never reads an entry written under another layout
//! of the value's other fields, in either codec.
#![cfg(feature = "disk")]
#![allow(missing_docs, clippy::missing_panics_doc, reason = "tests")]

use std::fmt::Write as _;
use std::path::PathBuf;

use memo_runtime::{Codec, Config, DiskOptions, DiskStore, Store};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("memo-layouts-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serialized as uuid 1.x does: 32 hex digits in JSON, 16 bytes in postcard.
#[derive(Clone, Debug, PartialEq)]
struct Id([u8; 16]);

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let mut hex = String::with_capacity(32);
            for b in self.0 {
                let _ = write!(hex, "{b:02x}");
            }
            s.serialize_str(&hex)
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = Id;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a uuid")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
        if v.len() != 32 {
            return Err(E::custom("bad uuid"));
        }
        let mut out = [0; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(E::custom)?;
        }
        Ok(Id(out))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Id, E> {
        v.try_into().map(Id).map_err(|_| E::custom("bad length"))
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(IdVisitor)
        } else {
            d.deserialize_bytes(IdVisitor)
        }
    }
}

fn open<V: DeserializeOwned>(tmp: &TempDir, codec: Codec) -> DiskStore<String, V> {
    let store = DiskOptions::new("layouts")
        .root(&tmp.0)
        .function("tests::account", 0)
        .codec(codec)
        .open(&Config::new());
    assert!(store.is_persistent());
    store
}

/// Two layouts of one type, as two builds of a program see it: `Account`, defined in two blocks
/// of one function, has one type name.
#[test]
fn a_rebuild_that_reorders_fields_around_a_uuid_does_not_read_old_entries() {
    for (tag, codec) in [("binary", Codec::Binary), ("json", Codec::Json)] {
        let tmp = TempDir::new(tag);
        let name = {
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            struct Account {
                id: Id,
                balance: u64,
                limit: u64,
            }
            let account = Account {
                id: Id([7; 16]),
                balance: 100,
                limit: 5,
            };
            let store = open::<Account>(&tmp, codec);
            store.insert("a".into(), account.clone());
            store.flush();
            drop(store);
            // The same layout finds it again: the store is persistent.
            let again = open::<Account>(&tmp, codec).get(&"a");
            assert_eq!(again, Some(account), "{tag}");
            std::any::type_name::<Account>()
        };
        {
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            struct Account {
                id: Id,
                limit: u64,
                balance: u64,
            }
            assert_eq!(std::any::type_name::<Account>(), name);
            let rebuilt = open::<Account>(&tmp, codec).get(&"a");
            assert_eq!(
                rebuilt, None,
                "{tag}: the old layout decoded as the new one"
            );
        }
    }
}
