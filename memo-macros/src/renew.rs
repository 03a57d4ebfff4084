//! The body again, as a `fn(Key) -> Output`: what `stale` and `refresh = "early"` run in the
//! background, where the caller's borrowed arguments are gone and only the owned key is left.
//!
//! ```text
//! // For `fn f(&self, name: &str, n: u32) -> R { BODY }`, keyed by `(Self, String, u32)`:
//! |__memo_key: (Self, String, u32)| -> R {
//!     let (__memo_part0, __memo_part1, __memo_part2) = __memo_key;
//!     let __memo_self: &Self = &__memo_part0;
//!     let name: &str = &__memo_part1;
//!     let n: u32 = __memo_part2;
//!     BODY // with `self` renamed `__memo_self`
//! }
//! ```

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::visit_mut::VisitMut;
use syn::{Block, Lifetime, ReceiverKind, Type};

use crate::item::CachedFn;

/// The closure; it captures nothing, so it coerces to a function pointer. For an `async fn` it
/// returns the body as a boxed future (`runtime::BoxFuture`).
pub(crate) fn refresh_fn(
    func: &CachedFn,
    key_type: &Type,
    (output, value): (&Type, &Type),
    fallible: bool,
    runtime: &TokenStream,
) -> TokenStream {
    let receiver = func.receiver.as_ref();
    let count = usize::from(receiver.is_some()) + func.args.len();
    let parts: Vec<Ident> = (0..count)
        .map(|i| format_ident!("__memo_part{i}"))
        .collect();
    // A part lent out as `&mut` must be bound `mut`.
    let mutable: Vec<bool> = receiver
        .map(|r| matches!(r.kind, ReceiverKind::Reference(_, _, Some(_))) || r.mutability.is_some())
        .into_iter()
        .chain(
            func.args
                .iter()
                .map(|a| matches!(&a.ty, Type::Reference(r) if r.mutability.is_some())),
        )
        .collect();
    let bindings = parts
        .iter()
        .zip(&mutable)
        .map(|(part, &m)| if m { quote!(mut #part) } else { quote!(#part) });
    let destructure = match count {
        0 => quote!(let () = __memo_key;),
        1 => quote!(let #(#bindings)* = __memo_key;),
        _ => quote!(let (#(#bindings),*) = __memo_key;),
    };
    let mut rebinds = Vec::new();
    let mut part = parts.iter();
    if let Some(receiver) = receiver {
        let from = part.next();
        // Spanned as the receiver's `self`, as the body's renamed `self` is: a `macro_rules!`
        // that passes both in gives them its caller's hygiene, not the attribute's.
        let this = Ident::new("__memo_self", receiver.self_token.span);
        rebinds.push(match &receiver.kind {
            ReceiverKind::Reference(_, _, None) => quote!(let #this: &Self = &#from;),
            ReceiverKind::Reference(_, _, Some(_)) => {
                quote!(let #this: &mut Self = &mut #from;)
            }
            // A typed reference (`self: &Self`, `self: &Arc<Self>`) is keyed by what it points
            // at, so it is lent the key's part (it was once bound to the part itself, a type
            // error).
            ReceiverKind::Typed(_, ty) => {
                let by_reference = matches!(crate::validate::unwrap_group(ty), Type::Reference(_));
                let ty = anonymous_lifetimes(ty);
                if by_reference {
                    quote!(let #this: #ty = &#from;)
                } else {
                    quote!(let #this: #ty = #from;)
                }
            }
            _ => {
                let mutability = receiver.mutability;
                quote!(let #mutability #this: Self = #from;)
            }
        });
    }
    for arg in &func.args {
        let from = part.next();
        let binding = &arg.pat;
        let ty = anonymous_lifetimes(&arg.ty);
        // The type as written, seen through the invisible group of a `macro_rules!`'s `$t:ty`
        // (whose `&str` was once bound by value, a type error).
        rebinds.push(match crate::validate::unwrap_group(&arg.ty) {
            Type::Reference(r) if r.mutability.is_some() => quote!(let #binding: #ty = &mut #from;),
            Type::Reference(_) => quote!(let #binding: #ty = &#from;),
            _ => quote!(let #binding: #ty = #from;),
        });
    }
    let mut block: Block = (*func.block).clone();
    RenameSelf.visit_block_mut(&mut block);
    // What the refresh stores: the body's value, or a `Result`'s `Ok` value (`None` for an `Err`).
    let stored = |result: TokenStream| {
        if fallible {
            quote!(#result.ok())
        } else {
            quote!(#runtime::Some(#result))
        }
    };
    if func.sig.asyncness.is_some() {
        let stored = stored(quote! {
            #runtime::returns::<#output, _>(async move {
                #destructure
                #(#rebinds)*
                #block
            }).await
        });
        quote! {
            |__memo_key: #key_type| -> #runtime::BoxFuture<#runtime::Option<#value>> {
                ::std::boxed::Box::pin(async move { #stored })
            }
        }
    } else {
        let stored = stored(quote! {
            (move || -> #output {
                #destructure
                #(#rebinds)*
                #block
            })()
        });
        quote! {
            |__memo_key: #key_type| -> #runtime::Option<#value> { #stored }
        }
    }
}

/// Named lifetimes of the arguments' types do not exist in the closure: let the compiler infer.
fn anonymous_lifetimes(ty: &Type) -> Type {
    struct Anonymous;
    impl VisitMut for Anonymous {
        fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
            if lifetime.ident != "static" {
                *lifetime = Lifetime::new("'_", lifetime.span());
            }
        }
    }
    let mut ty = ty.clone();
    Anonymous.visit_type_mut(&mut ty);
    ty
}

/// `self` cannot be a closure's parameter: the copied body reads `__memo_self` instead, in its
/// expressions and in the tokens of its macro calls (`format!("{}", self.name)`). Nested items
/// keep their own `self`.
struct RenameSelf;

impl VisitMut for RenameSelf {
    fn visit_ident_mut(&mut self, ident: &mut Ident) {
        if ident == "self" {
            *ident = Ident::new("__memo_self", ident.span());
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = rename_in_tokens(std::mem::take(&mut mac.tokens));
    }
}

fn rename_in_tokens(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Ident(ident) if ident == "self" => {
                TokenTree::Ident(Ident::new("__memo_self", ident.span()))
            }
            TokenTree::Group(group) => {
                let mut renamed =
                    proc_macro2::Group::new(group.delimiter(), rename_in_tokens(group.stream()));
                renamed.set_span(group.span());
                TokenTree::Group(renamed)
            }
            other => other,
        })
        .collect()
}
