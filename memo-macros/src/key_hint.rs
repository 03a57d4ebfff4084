//! What a key error suggests writing: an owned key for an argument whose type borrows below
//! its top level (`key = name.map(str::to_owned), key_type = Option<String>`), and `key = name`
//! for cached's `key = "T"`.

use quote::ToTokens;
use syn::{Ident, Type, TypePath, TypeReference};

use crate::item::CachedFn;
use crate::validate::{find_key_borrow, unwrap_group};

/// cached's `key = "T"` (the key's type, with `convert = …` computing it): `key` is an
/// expression here; a string naming an argument is told to lose its quotes.
pub(crate) fn quoted_key(text: &syn::LitStr, func: &CachedFn) -> String {
    let value = text.value();
    let peers =
        "(cached's `key = \"T\"` is `key_type = T` here, and its `convert = …` is `key = …`)";
    let named = syn::parse_str::<Ident>(value.trim())
        .ok()
        .filter(|ident| func.arg(ident).is_some() || (ident == "self" && func.receiver.is_some()));
    if let Some(ident) = named {
        return format!(
            "`key` is an expression over the arguments, not a string: write `key = {ident}` {peers}"
        );
    }
    let example = match syn::parse_str::<Type>(&value) {
        Ok(ty) => format!(
            "write `key = <expression>, key_type = {}`",
            tidy(&ty.to_token_stream().to_string())
        ),
        Err(_) => "write `key = <expression>, key_type = T`, e.g. `key = user.id, key_type = u64`"
            .to_string(),
    };
    format!("`key` is an expression over the arguments, not a string: {example} {peers}")
}

/// Token text as people write it: `Option<String>`, not `Option < String >`.
fn tidy(text: &str) -> String {
    let mut out = text.to_string();
    for (from, to) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" ::", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        while out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

/// The error for an argument `ident: ty` whose type holds a borrow below its top level, with a
/// `key = …, key_type = …` keying every item in `items` by an owned copy where one is plain.
pub(crate) fn borrowed_key(ident: &Ident, ty: &Type, items: &[(String, Type)]) -> String {
    let ty_text = tidy(&ty.to_token_stream().to_string());
    let owned: Option<Vec<(String, String)>> = items
        .iter()
        .map(|(name, ty)| owned_copy(name, ty))
        .collect();
    let suggestion = match owned.as_deref() {
        Some([(expr, ty)]) => format!("`key = {expr}, key_type = {ty}`"),
        Some(parts) if !parts.is_empty() => {
            let (exprs, tys): (Vec<&str>, Vec<&str>) = parts
                .iter()
                .map(|(expr, ty)| (expr.as_str(), ty.as_str()))
                .unzip();
            format!(
                "`key = ({}), key_type = ({})`",
                exprs.join(", "),
                tys.join(", ")
            )
        }
        _ => "`key = <expression>, key_type = <its owned type>` (`String` for `&str`, \
              `Vec<T>` for `&[T]`)"
            .to_string(),
    };
    format!(
        "`{ident}: {ty_text}` holds a borrow, so `{ident}` cannot be part of the key as it is (the \
         cache keeps its keys after the call returns): key by an owned copy with {suggestion}"
    )
}

/// An expression making an owned copy of `name: ty`, and its type, where one is plain.
fn owned_copy(name: &str, ty: &Type) -> Option<(String, String)> {
    let text = |ty: &Type| tidy(&ty.to_token_stream().to_string());
    match unwrap_group(ty) {
        Type::Reference(TypeReference {
            mutability: None,
            elem,
            ..
        }) => {
            if find_key_borrow(elem).is_none() {
                Some(owned_of_ref(name, elem))
            } else {
                owned_collection(name, elem)
            }
        }
        Type::Tuple(tuple) if find_key_borrow(ty).is_some() => {
            let parts: Option<Vec<(String, String)>> = tuple
                .elems
                .iter()
                .enumerate()
                .map(|(i, elem)| owned_copy(&format!("{name}.{i}"), elem))
                .collect();
            let (exprs, tys): (Vec<String>, Vec<String>) = parts?.into_iter().unzip();
            let comma = if tys.len() == 1 { "," } else { "" };
            Some((
                format!("({}{comma})", exprs.join(", ")),
                format!("({}{comma})", tys.join(", ")),
            ))
        }
        other if find_key_borrow(other).is_none() => {
            let copy = matches!(other, Type::Path(TypePath { qself: None, path, .. })
                if path.get_ident().is_some_and(|ident| COPY_PRIMITIVES.contains(&ident.to_string().as_str())));
            if copy {
                Some((name.to_string(), text(other)))
            } else {
                Some((format!("{name}.clone()"), text(other)))
            }
        }
        Type::Path(TypePath {
            qself: None, path, ..
        }) => {
            let last = path.segments.last()?;
            let syn::PathArguments::AngleBracketed(generic) = &last.arguments else {
                return None;
            };
            let [syn::GenericArgument::Type(inner)] =
                generic.args.iter().collect::<Vec<_>>().as_slice()
            else {
                return None;
            };
            if last.ident == "Vec" {
                return owned_collection(name, unwrap_group(ty));
            }
            if last.ident != "Option" {
                return None;
            }
            let Type::Reference(TypeReference {
                mutability: None,
                elem,
                ..
            }) = unwrap_group(inner)
            else {
                return None;
            };
            if find_key_borrow(elem).is_some() {
                return None;
            }
            let (expr, owned) = match unwrap_group(elem) {
                Type::Path(p) if p.path.is_ident("str") => {
                    (format!("{name}.map(str::to_owned)"), "String".to_string())
                }
                Type::Slice(slice) => (
                    format!("{name}.map(<[{}]>::to_vec)", text(&slice.elem)),
                    format!("Vec<{}>", text(&slice.elem)),
                ),
                other => (format!("{name}.cloned()"), text(other)),
            };
            Some((expr, format!("Option<{owned}>")))
        }
        _ => None,
    }
}

/// `Vec<&T>` or `[&T]` named `name`: its items copied into a `Vec`.
fn owned_collection(name: &str, ty: &Type) -> Option<(String, String)> {
    let item = match unwrap_group(ty) {
        Type::Slice(slice) => &*slice.elem,
        Type::Path(TypePath {
            qself: None, path, ..
        }) => {
            let last = path.segments.last().filter(|last| last.ident == "Vec")?;
            match &last.arguments {
                syn::PathArguments::AngleBracketed(generic) => match generic.args.first() {
                    Some(syn::GenericArgument::Type(item)) if generic.args.len() == 1 => item,
                    _ => return None,
                },
                _ => return None,
            }
        }
        _ => return None,
    };
    let Type::Reference(TypeReference {
        mutability: None,
        elem,
        ..
    }) = unwrap_group(item)
    else {
        return None;
    };
    if find_key_borrow(elem).is_some() {
        return None;
    }
    let (copy, owned) = owned_of_ref("x", elem);
    Some((
        format!("{name}.iter().map(|&x| {copy}).collect()"),
        format!("Vec<{owned}>"),
    ))
}

/// An owned copy of `name: &elem`, and its type.
fn owned_of_ref(name: &str, elem: &Type) -> (String, String) {
    let text = |ty: &Type| tidy(&ty.to_token_stream().to_string());
    match unwrap_group(elem) {
        Type::Slice(slice) => (
            format!("{name}.to_vec()"),
            format!("Vec<{}>", text(&slice.elem)),
        ),
        Type::Path(p) if p.path.is_ident("str") => {
            (format!("{name}.to_owned()"), "String".to_string())
        }
        Type::Path(p) if p.path.is_ident("Path") => {
            (format!("{name}.to_path_buf()"), "PathBuf".to_string())
        }
        other => (format!("{name}.clone()"), text(other)),
    }
}

/// Types whose copies need no `.clone()`.
const COPY_PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "bool",
    "char",
];
