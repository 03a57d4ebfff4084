//! Code generation: the pipeline entry point and the expansion of one cached function.
//!
//! ```text
//! // Input:
//! #[cached(maxsize = 100)]
//! pub fn f(name: &str, n: u32) -> String { BODY }
//!
//! // Output:
//! pub fn f(name: &str, n: u32) -> String {
//!     static __MEMO_CELL: CacheCell = CacheCell::new();
//!     // Only where entries never expire (no `ttl`) in a sync function over memory:
//!     #[cfg(not(debug_assertions))]
//!     let __memo_hash = match (&Quick((name, &n), PhantomData::<String>)).quick_hit(&__MEMO_CELL) {
//!         Ok(__memo_value) => return __memo_value,
//!         Err(__memo_hash) => __memo_hash, // the key's hash, or `UNHASHED`
//!     };
//!     out_of_line(__memo_hash, move |__memo_hash| {
//!         let __memo_cache = cache(&__MEMO_CELL, ID, scope(&|| ()), preset::<100, 0>);
//!         let mut __memo_owned_key = None; // the owned key, while the body runs
//!         let mut __memo_lead_place = LeadPlace::NEW; // and the lead
//!         let places = (&mut __memo_owned_key, &mut __memo_lead_place);
//!         match hit_or_lead((__memo_cache, always), (name, &n), __memo_hash, places) {
//!             Ok(__memo_value) => __memo_value,
//!             Err(__memo_lead) => __memo_lead.finish((move || -> String { BODY })()),
//!         }
//!     })
//! }
//! pub fn f_cache() -> &'static Cache<(String, u32), String> { /* the same cache, by ID */ }
//! ```
//!
//! A return type spelled `…Result<…>` (without `cache_err`) caches its `Ok` type alone,
//! `<R as Fallible>::Ok`, through `lead_fallible` (or `compute_fallible_async`), which hand a
//! failed leader's error to its waiters where it can be cloned (see the runtime's `fallible.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::args::{Args, Written};
use crate::item::CachedFn;
use crate::validate::{Plan, Remote, RemoteKind, validate};

/// `#[cached(args)] item`, as tokens; errors become `compile_error!` next to the untouched item.
#[allow(
    clippy::needless_pass_by_value,
    reason = "the proc-macro entry point hands over owned streams"
)]
pub(crate) fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    static EXPANSIONS: AtomicUsize = AtomicUsize::new(0);
    let nonce = EXPANSIONS.fetch_add(1, Ordering::Relaxed);
    expand_with_nonce(args, item.clone(), nonce).unwrap_or_else(|err| {
        // Keep the function so that its callers, and the IDE, still see it.
        let error = err.into_compile_error();
        quote!(#item #error)
    })
}

/// The pipeline. `nonce` makes the function's cache id unique within its module.
fn expand_with_nonce(
    args: TokenStream,
    item: TokenStream,
    nonce: usize,
) -> syn::Result<TokenStream> {
    let args = Args::from_tokens(args)?;
    let func = CachedFn::parse(item)?;
    let plan = validate(&args, &func)?;
    Ok(expand(&plan, &func, nonce))
}

fn expand(plan: &Plan, func: &CachedFn, nonce: usize) -> TokenStream {
    if let Some(cache) = &plan.instance {
        return expand_instance(plan, func, cache);
    }
    let Plan {
        runtime,
        key_type,
        prelude,
        lookup,
        output,
        value,
        ..
    } = plan;
    let CachedFn {
        attrs, vis, sig, ..
    } = func;
    let name = sig.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let id = cache_id(plan, func, name, nonce);
    let StoreParts {
        find,
        store_type,
        require,
        hit_entry,
        awaits,
    } = store_parts(plan, &id, sig.asyncness.is_some(), &scope_of(plan, func));
    // Named after the attribute, so a clash with a user item is reported at `#[cached]`.
    let companion = format_ident!("{}_cache", name, span = Span::call_site());
    let cfgs = attrs.iter().filter(|a| a.path().is_ident("cfg"));
    let (generics, where_clause) = companion_generics(plan, sig);
    // No intra-doc link: a receiver-less function in an `impl` cannot be told from a free one.
    let doc = format!(
        " The cache behind `{name}`: statistics, length, invalidation, clearing.\n\n Its key is `{}`.",
        tidy(&key_type.to_token_stream().to_string()),
    );
    // rustc reports a key that cannot be cached at the call, and a value that cannot be cached at
    // the argument whose type holds it: span them at the arguments and the return type.
    let args_span = sig.paren_token.span.join();
    // Spanned at the return type, where rustc reports a value that cannot be cached; declared
    // with this span too, as a return type a `macro_rules!` passes in as tokens has its hygiene.
    let cache_arg = proc_macro2::Ident::new("__memo_cache", output.span());
    let HitEntry {
        entry,
        extra_args,
        renew,
        keep,
    } = hit_entry_of(plan, func, hit_entry);
    let mut call_args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#cache_arg, #lookup #extra_args),
    );
    call_args.set_span(args_span);
    let hit_or_miss = respan(entry, args_span);
    let awaited = if awaits { quote!(.await) } else { quote!() };
    let hit_or_miss = quote!(#hit_or_miss #call_args #awaited);
    // After the quick try, the lookup takes the hash it made (issue 19).
    let mut hashed_args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#cache_arg, #lookup, __memo_hash),
    );
    hashed_args.set_span(args_span);
    let hashed = respan(quote!(#runtime::hit_or_miss_hashed), args_span);
    let hashed = lookup_and_compute(plan, func, &quote!(#hashed #hashed_args), &keep);
    let lookup_and_compute = lookup_and_compute(plan, func, &hit_or_miss, &keep);
    // Where no `Result` is returned, the quick try's rest (and a debug build's call) leads in
    // one step (`hit_or_lead`).
    let (lookup_and_compute, hashed) = if plan.quick && plan.handover.is_none() {
        let lead = |hash| hit_or_lead(plan, func, (&cache_arg, &keep, args_span), &hash);
        (lead(quote!(#runtime::UNHASHED)), lead(quote!(__memo_hash)))
    } else {
        (lookup_and_compute, hashed)
    };
    // Each function (and its companion) finds its cache through a `static` cell of its own.
    let cell = quote!(static __MEMO_CELL: #runtime::CacheCell = #runtime::CacheCell::new(););
    let body = if plan.quick {
        quick_body(
            plan,
            (&cell, &cache_arg),
            &find,
            (&lookup_and_compute, &hashed),
        )
    } else {
        quote! {
            #require
            let #cache_arg = { #cell #find };
            #prelude
            #renew
            #lookup_and_compute
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }

        #(#cfgs)*
        #[doc = #doc]
        #[must_use]
        // The options' expressions (a `weight` closure's unused `key`) are warned of once, in
        // the function, not again in this copy of them.
        #[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
        #vis fn #companion #generics () -> &'static #runtime::Cache<#key_type, #value #store_type> #where_clause {
            #cell
            #find
        }
    }
}

/// A function whose cache is `cache = expr`'s (a field: one cache per instance): the lookup
/// goes to that cache, and a miss runs the body under its single-flight through the cache
/// object's own methods; no static, no companion.
///
/// ```text
/// fn name(&self, id: u64) -> String {
///     // The cache, and whether it is this function's (the first to call with it).
///     // A closure's type tells apart the instances of a generic function.
///     let __memo_cache = instance(&(self.names), { static OWNER: Owner = ..; &OWNER }, &|| ());
///     let __memo_key = &id;
///     match instance_hit(&__memo_cache, &__memo_key) {
///         Ok(__memo_value) => __memo_value,
///         // The hash the lookup made goes to the miss: the key is hashed once.
///         Err(__memo_hash) => instance_miss(&__memo_cache, __memo_hash, Lookup::to_key(&__memo_key), move || -> String { BODY }, keep),
///     }
/// }
/// ```
fn expand_instance(plan: &Plan, func: &CachedFn, cache: &syn::Expr) -> TokenStream {
    let Plan {
        runtime,
        prelude,
        lookup,
        output,
        keep,
        ..
    } = plan;
    let CachedFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = func;
    // Spanned at the expression, so a field of another type is reported there.
    let cache_ref = quote_spanned!(cache.span()=> &(#cache));
    let name = &sig.ident;
    let body = match (&plan.handover, sig.asyncness.is_some()) {
        (None, false) => quote! {
            let __memo_key = #lookup;
            match #runtime::instance_hit(&__memo_cache, &__memo_key) {
                #runtime::Ok(__memo_value) => __memo_value,
                #runtime::Err(__memo_hash) => {
                    let __memo_owned = #runtime::Lookup::to_key(&__memo_key);
                    #runtime::instance_miss(
                        &__memo_cache, __memo_hash, __memo_owned, move || -> #output #block, #keep,
                    )
                }
            }
        },
        (Some(_), false) => quote! {
            let __memo_key = #lookup;
            match #runtime::instance_hit(&__memo_cache, &__memo_key) {
                #runtime::Ok(__memo_value) => #runtime::Ok(__memo_value),
                #runtime::Err(__memo_hash) => {
                    let __memo_owned = #runtime::Lookup::to_key(&__memo_key);
                    #runtime::instance_try_miss(
                        &__memo_cache, __memo_hash, __memo_owned, move || -> #output #block,
                    )
                }
            }
        },
        (None, true) => quote! {
            let __memo_owned = #runtime::Lookup::to_key(&#lookup);
            #runtime::instance_miss_async(
                __memo_cache,
                __memo_owned,
                #runtime::returns::<#output, _>(async move #block),
                #keep,
            ).await
        },
        (Some(_), true) => quote! {
            let __memo_owned = #runtime::Lookup::to_key(&#lookup);
            #runtime::instance_try_miss_async(
                __memo_cache,
                __memo_owned,
                #runtime::returns::<#output, _>(async move #block),
            ).await
        },
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let __memo_cache = #runtime::instance(#cache_ref, {
                static __MEMO_OWNER: #runtime::Owner =
                    #runtime::Owner::new(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)));
                &__MEMO_OWNER
            }, &|| ());
            #prelude
            #body
        }
    }
}

/// The hit path's `match`: the value of a hit, or the miss, under which the body runs.
///
/// The body runs in its own scope, so `return` and `?` act on it alone: a closure for a sync
/// function, an `async` block (its output pinned to the return type) for an `async fn`. The
/// closure is called here, between the miss's lead and finish, rather than handed to the
/// runtime: a runtime function generic over it would be compiled anew for every function.
fn lookup_and_compute(
    plan: &Plan,
    func: &CachedFn,
    hit_or_miss: &TokenStream,
    keep: &TokenStream,
) -> TokenStream {
    let Plan {
        runtime, output, ..
    } = plan;
    let block = &func.block;
    match (&plan.handover, func.sig.asyncness.is_some()) {
        (None, true) => quote! {
            match #hit_or_miss {
                #runtime::Ok(__memo_value) => __memo_value,
                #runtime::Err(__memo_miss) => __memo_miss.compute_async(
                    #runtime::returns::<#output, _>(async move #block), #keep
                ).await,
            }
        },
        (None, false) => quote! {
            match #runtime::lead(#hit_or_miss, #keep) {
                #runtime::Ok(__memo_value) => __memo_value,
                #runtime::Err(__memo_lead) => __memo_lead.finish((move || -> #output #block)()),
            }
        },
        // A `Result` whose `Ok` values alone are stored: a hit is one.
        (Some(handover), true) => quote! {
            match #hit_or_miss {
                #runtime::Ok(__memo_value) => #runtime::Ok(__memo_value),
                #runtime::Err(__memo_miss) => __memo_miss.compute_fallible_async(
                    #runtime::returns::<#output, _>(async move #block), #handover
                ).await,
            }
        },
        (Some(handover), false) => quote! {
            match #runtime::lead_fallible(#hit_or_miss, #handover) {
                #runtime::Ok(__memo_result) => __memo_result,
                #runtime::Err(__memo_lead) => __memo_lead.finish((move || -> #output #block)()),
            }
        },
    }
}

/// The call of a sync function over memory that returns no `Result`, in one step: look, and
/// on a miss lead, then run the body and finish (`hit_or_lead`), with the hash the quick try
/// made (`hash`: `__memo_hash`, or `UNHASHED` without a try).
fn hit_or_lead(
    plan: &Plan,
    func: &CachedFn,
    (cache_arg, keep, args_span): (&proc_macro2::Ident, &TokenStream, Span),
    hash: &TokenStream,
) -> TokenStream {
    let Plan {
        runtime,
        lookup,
        output,
        ..
    } = plan;
    // The cache and the keep, whose types both name the value's, travel as one argument,
    // spanned at the return type: rustc reports a value that cannot be cached there.
    let mut cache_keep = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#cache_arg, #keep),
    );
    cache_keep.set_span(output.span());
    let mut args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(#cache_keep, #lookup, #hash, (&mut __memo_owned_key, &mut __memo_lead_place)),
    );
    args.set_span(args_span);
    let entry = respan(quote!(#runtime::hit_or_lead), args_span);
    let block = &func.block;
    // The owned key and the lead stay here, in the function's frame, while the body runs.
    quote! {
        let mut __memo_owned_key = #runtime::None;
        let mut __memo_lead_place = #runtime::LeadPlace::NEW;
        match #entry #args {
            #runtime::Ok(__memo_value) => __memo_value,
            #runtime::Err(__memo_lead) => __memo_lead.finish((move || -> #output #block)()),
        }
    }
}

/// The id of the function's cache: its module path, name and `nonce`, which ends with `g` for a
/// generic function (the runtime then keys its caches by instance).
///
/// A generic function with `impl Trait` arguments ends it with `i<count>g`, the count of its
/// type and const parameters: `type_name` writes the `impl Trait` arguments' types after them
/// (`f<u8, &str>`), and the companion (`f_cache::<u8>()`) cannot name them, so the runtime keys
/// the instance by the first `count` alone (the companion was once a cache apart, its
/// `invalidate` and `clear` reaching none of the calls).
///
/// A function with a receiver puts an `s` after the nonce: its body and companion give the
/// runtime one site, of `Self` (`scope_self`), by which both claim the instance's cache.
fn cache_id(plan: &Plan, func: &CachedFn, name: &str, nonce: usize) -> TokenStream {
    let nonce = proc_macro2::Literal::usize_unsuffixed(nonce);
    let receiver = if func.sig.receiver().is_some() {
        "s"
    } else {
        ""
    };
    let generic = if plan.generic && has_impl_trait_args(func) {
        let count = func
            .sig
            .generics
            .params
            .iter()
            .filter(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
            .count();
        format!("i{count}g")
    } else if plan.generic {
        "g".to_string()
    } else {
        String::new()
    };
    let mark = format!("{receiver}{generic}");
    let mark = (!mark.is_empty()).then(|| quote!(, #mark));
    quote!(::core::concat!(::core::module_path!(), "::", #name, "#", #nonce #mark))
}

/// Whether an argument's type is (or holds) `impl Trait`.
fn has_impl_trait_args(func: &CachedFn) -> bool {
    func.sig.inputs.iter().any(|input| {
        matches!(input, syn::FnArg::Typed(typed)
            if crate::validate::find_type(&typed.ty, &|t| matches!(t, syn::Type::ImplTrait(_))).is_some())
    })
}

/// The scope of the call (see the runtime's `cell`): the `type_name` of a closure in the
/// function names it with the impl's type and generic arguments resolved; its `TypeId` tells
/// apart the instances that `type_name` writes alike.
///
/// A function with a receiver is told apart by a type of `Self` and its own type parameters
/// (`scope_self`), alike in its body and its companion, which both name `Self`: the companion
/// then finds its own instance's cache. A generic function with
/// `impl Trait` arguments and no receiver is told apart by a type of its own type and const
/// parameters alone (`scope_marked`): the closure's type also names the `impl Trait` arguments'
/// types, which make no instance (see `cache_id`), yet the instances of its parameters that
/// `type_name` writes alike (two closures) keep apart. A function without a receiver cannot
/// know it is in an `impl`, where alone `Self` compiles.
fn scope_of(plan: &Plan, func: &CachedFn) -> TokenStream {
    let runtime = &plan.runtime;
    let receiver = func.sig.receiver().is_some();
    instance_marker(plan, func).map_or_else(
        || quote!(#runtime::scope(&|| ())),
        |(declared, marker)| {
            let scope = if receiver {
                quote!(scope_self)
            } else {
                quote!(scope_marked)
            };
            let scope = quote!(#runtime::#scope(&|| (), #runtime::PhantomData::<#marker>));
            if declared.is_empty() {
                scope
            } else {
                quote!({ #declared #scope })
            }
        },
    )
}

/// What tells an instance of the function apart where the closure's type would say too much or
/// too little, and what declares it. With a receiver, a tuple of `Self` and the function's own
/// type parameters (as `PhantomData`, which takes unsized ones), a type that the body and the
/// companion write alike: a type declared in each would be two (a const parameter is in the
/// scope, which the runtime compares too). For a generic function with `impl Trait` arguments,
/// a struct of its own type and const parameters alone, declared by the first tokens (the
/// companion takes the first instance written alike).
fn instance_marker(plan: &Plan, func: &CachedFn) -> Option<(TokenStream, TokenStream)> {
    let runtime = &plan.runtime;
    let params = &func.sig.generics.params;
    if func.sig.receiver().is_some() {
        let types = params.iter().filter_map(|param| match param {
            syn::GenericParam::Type(param) => Some(&param.ident),
            _ => None,
        });
        let marker = quote!((#runtime::PhantomData<Self>, #(#runtime::PhantomData<#types>,)*));
        return Some((TokenStream::new(), marker));
    }
    if !(plan.generic && has_impl_trait_args(func)) {
        return None;
    }
    let mut declared = Vec::new();
    let mut used = Vec::new();
    let mut pointers = Vec::new();
    for param in params {
        match param {
            syn::GenericParam::Type(param) => {
                let ident = &param.ident;
                declared.push(quote!(#ident: ?::core::marker::Sized));
                used.push(quote!(#ident));
                pointers.push(quote!(fn() -> *const #ident));
            }
            syn::GenericParam::Const(param) => {
                let (ident, ty) = (&param.ident, &param.ty);
                declared.push(quote!(const #ident: #ty));
                used.push(quote!(#ident));
            }
            syn::GenericParam::Lifetime(_) => {}
        }
    }
    Some((
        quote! {
            #[allow(dead_code, non_camel_case_types)]
            struct __MemoInstance<#(#declared),*>((#(#pointers,)*));
        },
        quote!(__MemoInstance<#(#used),*>),
    ))
}

/// A generic function's companion takes its parameters (`parse_cache::<u32>()`): its generics
/// and its `where` clause; so does a function with a `where` clause (with its lifetimes), whose
/// bounds the key and value types may need (a trait's default method bounding `Self` by
/// `Clone + Send + Sync + 'static` there, once an error at its companion); nothing for another
/// function.
fn companion_generics(plan: &Plan, sig: &syn::Signature) -> (TokenStream, TokenStream) {
    if plan.generic || sig.generics.where_clause.is_some() {
        (
            sig.generics.to_token_stream(),
            sig.generics.where_clause.to_token_stream(),
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    }
}

/// The body of a sync function over memory whose entries never expire: a plain hit is tried
/// first, with no call on its path, and the rest (finding the cache, the full lookup, the miss)
/// runs out of line (see `private::Quick`), given the hash the try made. `lookup_and_compute`
/// is the rest without a try, and with its hash.
///
/// Only where debug assertions are off: unoptimized, nothing is inlined, so the try would gain
/// nothing, and the closure around the rest would cost build time (0.6 ms of an incremental build
/// per function, `benches/compile.rs`). With them on, the rest is the body as it is; `.ci/run`
/// runs the behaviour tests in release for the other form.
fn quick_body(
    plan: &Plan,
    (cell, cache_arg): (&TokenStream, &proc_macro2::Ident),
    find: &TokenStream,
    (lookup_and_compute, hashed): (&TokenStream, &TokenStream),
) -> TokenStream {
    let Plan {
        runtime,
        prelude,
        lookup,
        value,
        ..
    } = plan;
    // A `Result` stores its `Ok` values: a hit is one.
    let hit = if plan.handover.is_some() {
        quote!(#runtime::Ok(__memo_value))
    } else {
        quote!(__memo_value)
    };
    quote! {
        #cell
        #prelude
        #[cfg(not(debug_assertions))]
        {
            let __memo_hash = match {
                use #runtime::{QuickHit as _, QuickNone as _};
                (&#runtime::Quick(#lookup, #runtime::PhantomData::<#value>)).quick_hit(&__MEMO_CELL)
            } {
                #runtime::Ok(__memo_value) => return #hit,
                #runtime::Err(__memo_hash) => __memo_hash,
            };
            #runtime::out_of_line(__memo_hash, move |__memo_hash| {
                let #cache_arg = #find;
                #hashed
            })
        }
        #[cfg(debug_assertions)]
        {
            let #cache_arg = #find;
            #lookup_and_compute
        }
    }
}

/// The hit path's entry, and what it needs besides the cache and the lookup.
struct HitEntry {
    /// `hit_or_miss` (or its store's), or `hit_or_renew` with background refresh.
    entry: TokenStream,
    /// The arguments after the lookup: with background refresh, the refresh and the keep.
    extra_args: TokenStream,
    /// The statements that declare them.
    renew: TokenStream,
    /// The expression choosing which results are stored.
    keep: TokenStream,
}

/// With background refresh, the hit path also gets the body as a `fn(Key) -> Output`, and the
/// keep expression, named, since the refresh uses it too.
fn hit_entry_of(plan: &Plan, func: &CachedFn, hit_entry: TokenStream) -> HitEntry {
    let Plan {
        runtime,
        key_type,
        keep,
        output,
        value,
        renews,
        ..
    } = plan;
    let Some(renewal) = renews else {
        return HitEntry {
            entry: hit_entry,
            extra_args: quote!(),
            renew: quote!(),
            keep: keep.clone(),
        };
    };
    let fallible = plan.handover.is_some();
    let refresh = crate::renew::refresh_fn(func, key_type, (output, value), fallible, runtime);
    // One entry for every store (the cache's type says which); an `async fn` over a store read
    // over the network awaits its read.
    let awaited = plan
        .remote
        .as_ref()
        .is_some_and(|remote| remote.kind != RemoteKind::Disk);
    let (entry, refreshed, requirement) = if func.sig.asyncness.is_some() {
        let entry = if awaited {
            quote!(hit_or_renew_async_in)
        } else {
            quote!(hit_or_renew_async)
        };
        (
            quote!(#runtime::#entry),
            quote!(#runtime::BoxFuture<#runtime::Option<#value>>),
            require_at(runtime, "require_tokio", *renewal),
        )
    } else {
        (
            quote!(#runtime::hit_or_renew),
            quote!(#runtime::Option<#value>),
            quote!(),
        )
    };
    HitEntry {
        entry,
        extra_args: quote!(, __memo_refresh, __memo_keep),
        renew: quote! {
            #requirement
            // `unused_braces`: the copied body is the tail of the closure's block, which rustc
            // calls needless braces when the body is written on one line (`{ n }`).
            #[allow(unused_variables, unused_mut, unused_braces, clippy::needless_pass_by_value)]
            let __memo_refresh: fn(#key_type) -> #refreshed = #refresh;
            let __memo_keep = #keep;
        },
        keep: quote!(__memo_keep),
    }
}

/// What differs between a memory cache and one outside the process in the expansion.
struct StoreParts {
    /// The call that finds (or opens) the cache through `__MEMO_CELL`, the same in the body and
    /// the companion.
    find: TokenStream,
    /// The store type argument of the companion's `Cache<K, V, S>` (empty for memory).
    store_type: TokenStream,
    /// `require_disk!();` (or `require_redis!();`), which stops the build with one sentence
    /// without the store's feature.
    require: TokenStream,
    /// The hit path's entry.
    hit_entry: TokenStream,
    /// The hit path is awaited (an `async fn` over Redis: its `GET` must not block).
    awaits: bool,
}

/// How the cache is found: the call is spanned at the return type, so a return type that cannot
/// be cached is reported there, once. A cache outside the process also gets its store's name,
/// its codec, the fingerprint of its key and value types' shapes and its `version`, which keep
/// `version = N` with the hash of the function's code ([`Remote::code`]).
fn mixed_version(version: u64, code: u64) -> u64 {
    (version ^ code).wrapping_mul(0x0100_0000_01b3)
}

/// entries of another layout out of reach.
fn store_parts(plan: &Plan, id: &TokenStream, is_async: bool, scope: &TokenStream) -> StoreParts {
    let Plan {
        runtime,
        key_type,
        output,
        value,
        config,
        ..
    } = plan;
    let (finder, remote_args, parts) = match &plan.remote {
        Some(Remote {
            kind,
            name,
            json,
            redlock,
            version,
            code,
            written,
        }) => {
            // The key and value types' serde shapes, traced when the cache is made.
            let shape = quote! {{
                use #runtime::{Shaped as _, Unshaped as _};
                (&#runtime::Shape::<#key_type, #value>::NEW).fingerprint()
            }};
            // The function's own code counts as part of its version.
            let version = proc_macro2::Literal::u64_unsuffixed(mixed_version(*version, *code));
            let (store, feature) = match kind {
                RemoteKind::Disk => ("disk", "disk"),
                RemoteKind::Redis => ("redis", "redis"),
                RemoteKind::Tiered => ("tiered", "redis"),
            };
            let awaits = is_async && *kind != RemoteKind::Disk;
            let store_ty = format_ident!("{}Store", capitalized(store));
            let hit = if awaits {
                quote!(hit_or_miss_async_in)
            } else {
                quote!(hit_or_miss_in)
            };
            (
                // The store is named once, here; the hit path takes it from the cache's type.
                quote!(#runtime::store_cache::<_, _, #runtime::#store_ty<_, _>>),
                {
                    let hooks = plan
                        .hooks
                        .as_ref()
                        .map_or_else(|| quote!(::core::convert::identity), |hooks| quote!(#hooks));
                    quote!(, #runtime::Remote {
                        store: #name,
                        json: #json,
                        shape: #shape,
                        version: {
                            const VERSION: u64 = #runtime::crate_version(
                                #version,
                                ::core::option_env!("CARGO_PKG_VERSION"),
                                ::core::option_env!("CARGO_BIN_NAME"),
                            );
                            VERSION
                        },
                        redlock: #redlock,
                        equal: {
                            use #runtime::{Comparable as _, Incomparable as _};
                            (&#runtime::Compare::<#value>::NEW).equal()
                        },
                    }, #hooks)
                },
                StoreParts {
                    find: TokenStream::new(),
                    store_type: quote!(, #runtime::#store_ty<#key_type, #value>),
                    require: require_at(runtime, &format!("require_{feature}"), *written),
                    hit_entry: quote!(#runtime::#hit),
                    awaits,
                },
            )
        }
        None => (
            if plan.hooks.is_some() {
                quote!(#runtime::cache_with)
            } else {
                quote!(#runtime::cache)
            },
            plan.hooks
                .as_ref()
                .map(|hooks| quote!(, #hooks))
                .unwrap_or_default(),
            StoreParts {
                find: TokenStream::new(),
                store_type: quote!(),
                require: quote!(),
                hit_entry: quote!(#runtime::hit_or_miss),
                awaits: false,
            },
        ),
    };
    let path = respan(finder, output.span());
    let mut args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(&__MEMO_CELL, #id, #scope, #config #remote_args),
    );
    args.set_span(output.span());
    StoreParts {
        find: quote!(#path #args),
        ..parts
    }
}

/// `disk` → `Disk`.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// `#runtime::require_disk!();` (or another `require_…`), spanned over the option that needs the
/// feature as it was written (`store = disk`): without the feature, the sentence the runtime's
/// macro stops the build with underlines that option, not the whole attribute.
fn require_at(runtime: &TokenStream, name: &str, written: Written) -> TokenStream {
    let path = respan(runtime.clone(), written.start);
    let name = proc_macro2::Ident::new(name, written.end);
    quote_spanned!(written.end=> #path::#name!();)
}

/// `tokens` with every span set to `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(group) = &tt {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tt = inner.into();
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// Token text as a person writes it: `(::std::string::String, u32)`, not `(:: std :: string :: String , u32)`.
fn tidy(tokens: &str) -> String {
    [
        (" :: ", "::"),
        (":: ", "::"),
        (" ,", ","),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        ("& ", "&"),
        ("as::std::borrow::ToOwned>", "as ToOwned>"),
        ("( ", "("),
        (" )", ")"),
    ]
    .iter()
    .fold(tokens.to_string(), |text, (from, to)| {
        text.replace(from, to)
    })
}

#[cfg(test)]
mod tests {
    //! Expansion snapshots: `tests/expand/<case>.rs` holds one `#[cached]` function per file;
    //! its expansion must match `<case>.expanded.rs`. Rewrite them with `MEMO_BLESS=1`.

    use super::*;
    use std::path::Path;

    fn expand_file(source: &str) -> String {
        let file: syn::File = syn::parse_str(source).expect("case parses");
        let mut out = TokenStream::new();
        for mut item in file.items {
            let syn::Item::Fn(func) = &mut item else {
                out.extend(item.into_token_stream());
                continue;
            };
            let pos = func
                .attrs
                .iter()
                .position(|a| a.path().is_ident("cached"))
                .expect("a #[cached] fn");
            let attr = func.attrs.remove(pos);
            let args = match attr.meta {
                syn::Meta::List(list) => list.tokens,
                _ => TokenStream::new(),
            };
            out.extend(expand_with_nonce(args, func.to_token_stream(), 0).expect("case expands"));
        }
        prettyplease::unparse(&syn::parse2(out).expect("expansion parses"))
    }

    #[test]
    fn expansion_snapshots() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand");
        let bless = std::env::var_os("MEMO_BLESS").is_some();
        let mut cases = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let is_case = path.extension().is_some_and(|e| e == "rs")
                && path
                    .with_extension("")
                    .extension()
                    .is_none_or(|e| e != "expanded");
            if !is_case {
                continue;
            }
            cases += 1;
            let expanded = expand_file(&std::fs::read_to_string(&path).unwrap());
            let snapshot = path.with_extension("expanded.rs");
            if bless {
                std::fs::write(&snapshot, &expanded).unwrap();
            } else {
                let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
                assert!(
                    expected == expanded,
                    "{name}: expansion changed (MEMO_BLESS=1 to accept):\n{expanded}"
                );
            }
        }
        assert!(
            cases >= 5,
            "expected the expansion cases in {}",
            dir.display()
        );
    }
}
