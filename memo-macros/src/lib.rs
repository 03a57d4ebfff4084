//! Implementation detail of the `memo` crate: the `#[cached]` attribute.
//!
//! The pipeline lives in `expand::cached`: parse the options (`args.rs`), parse the function
//! (`item.rs`), cross-check them (`validate.rs`), generate code (`expand.rs`).

mod args;
mod duration;
mod expand;
mod item;
mod key_hint;
mod renew;
mod validate;

use proc_macro::TokenStream;

// Documented where the `memo` crate re-exports it: rustdoc would add a doc of its own here after
// that one, on the facade's page.
#[allow(missing_docs, reason = "documented by the facade's re-export")]
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}
