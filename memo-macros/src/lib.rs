//! Implementation detail of the `memo` crate: the `#[cached]` attribute.
//!
//! The pipeline lives in `expand::cached`: parse the options (`args.rs`), parse the function
//! (`item.rs`), cross-check them (`validate.rs`), generate code (`expand.rs`).

mod args;
mod duration;
mod expand;
mod item;
mod renew;
mod validate;

use proc_macro::TokenStream;

/// Memoizes a function. See the `memo` crate for the options and the generated `f_cache()` handle.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}
