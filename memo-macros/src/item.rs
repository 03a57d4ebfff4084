//! The function under `#[cached]`: its signature, receiver, arguments and return type.

use proc_macro2::TokenStream;
use syn::{
    Attribute, Block, FnArg, Ident, ItemFn, Pat, Receiver, ReturnType, Signature, Type, Visibility,
};

/// A function argument that may become part of the key.
pub(crate) struct Arg {
    /// The name it is bound to; `None` for a pattern (`(a, b): (u32, u32)`, `_`).
    pub(crate) ident: Option<Ident>,
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
    /// Its `#[cfg(...)]`, if any: an argument that may not exist cannot be keyed by default.
    pub(crate) cfg: Option<Attribute>,
}

/// The function, split into what the expansion keeps and what it inspects.
pub(crate) struct CachedFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) block: Box<Block>,
    pub(crate) receiver: Option<Receiver>,
    pub(crate) args: Vec<Arg>,
}

impl CachedFn {
    pub(crate) fn parse(item: TokenStream) -> syn::Result<Self> {
        let ItemFn {
            attrs,
            vis,
            modifiers,
            sig,
            block,
        } = syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
            // Point at the attribute: the parse error's own span (a `;`, a `struct`) says little.
            let span = proc_macro2::Span::call_site();
            if syn::parse2::<syn::TraitItemFn>(item).is_ok() {
                syn::Error::new(
                    span,
                    "`#[cached]` needs a function body: it cannot go on a trait method declaration",
                )
            } else {
                syn::Error::new(
                    span,
                    "`#[cached]` applies to functions and methods with a body",
                )
            }
        })?;
        modifiers.require_empty()?;
        let mut receiver = None;
        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = Some(r.clone()),
                FnArg::Typed(typed) => args.push(Arg {
                    ident: match &*typed.pat {
                        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                            Some(p.ident.clone())
                        }
                        _ => None,
                    },
                    pat: (*typed.pat).clone(),
                    ty: (*typed.ty).clone(),
                    cfg: typed
                        .attrs
                        .iter()
                        .find(|a| a.path().is_ident("cfg"))
                        .cloned(),
                }),
            }
        }
        Ok(Self {
            attrs,
            vis,
            sig,
            block,
            receiver,
            args,
        })
    }

    /// The return type; `()` when none is written.
    pub(crate) fn output(&self) -> Type {
        match &self.sig.output {
            ReturnType::Type(_, ty) => (**ty).clone(),
            ReturnType::Default => syn::parse_quote!(()),
        }
    }

    /// The argument bound to `ident`, if any.
    pub(crate) fn arg(&self, ident: &Ident) -> Option<&Arg> {
        self.args.iter().find(|a| a.ident.as_ref() == Some(ident))
    }
}
