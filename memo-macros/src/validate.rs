//! Cross-checks between the options and the function, and the plan the expansion follows.
//!
//! Every independent mistake is collected and reported together, each at its own token.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Expr, GenericParam, Ident, Lifetime, ReceiverKind, Type, TypePath, TypeReference};

use crate::args::{Args, StoreKind, Ttl, Written};
use crate::item::{Arg, CachedFn};
use crate::key_hint;

/// The most arguments keyed without `key = ...` (the runtime's largest `Lookup` tuple).
const MAX_KEY_PARTS: usize = 12;

/// Everything the expansion needs, decided.
pub(crate) struct Plan {
    /// `::memo::__private`, or `<crate = path>::__private`.
    pub(crate) runtime: TokenStream,
    /// The owned key type, written in the companion's signature.
    pub(crate) key_type: Type,
    /// Statements before the lookup: type assertions of `cache_err`/`cache_none`, and the key of
    /// `key = expr, key_type = T`.
    pub(crate) prelude: TokenStream,
    /// The borrowed view passed to the lookup.
    pub(crate) lookup: TokenStream,
    /// The expression choosing which results are stored.
    pub(crate) keep: TokenStream,
    /// The `Config` expression.
    pub(crate) config: TokenStream,
    /// The return type (`()` when none is written).
    pub(crate) output: Type,
    /// The type the cache stores: the return type, or for a `…Result<…>` (without `cache_err`,
    /// `stale`, `refresh`) its `Ok` type, `<R as Fallible>::Ok`.
    pub(crate) value: Type,
    /// For such a `Result`: the expression telling whether a failed leader's error can be
    /// handed to its waiters (`Handover`).
    pub(crate) handover: Option<TokenStream>,
    /// Entries are refreshed in the background (`stale`, `refresh = "early"`): the expansion
    /// passes a copy of the body that runs from the owned key. Where the option was written
    /// (the first of them), for the error of an `async fn` without the `tokio` feature.
    pub(crate) renews: Option<Written>,
    /// `store = disk`, `redis` or `tiered`: where, under which name, and in which codec.
    pub(crate) remote: Option<Remote>,
    /// `weight`, `on_evict`, `ttl_from`: a `fn(S) -> S` that sets them on the new store `S`.
    pub(crate) hooks: Option<TokenStream>,
    /// A sync function over memory whose entries never expire (no `ttl`, nothing renewed): its
    /// expansion tries `quick_hit` first and runs the rest out of line.
    pub(crate) quick: bool,
    /// The function has type or const parameters: each instance gets a cache of its own, and the
    /// companion takes the same parameters.
    pub(crate) generic: bool,
    /// `cache = self.lookups`: the cache is this expression's (one per instance of the type
    /// holding it), not a static of the function's; there is no companion.
    pub(crate) instance: Option<Expr>,
}

/// A store outside the process.
pub(crate) struct Remote {
    pub(crate) kind: RemoteKind,
    /// The store's name (a disk store's directory; `default` otherwise).
    pub(crate) name: String,
    /// Values are JSON (`codec = "json"`), not the binary default.
    pub(crate) json: bool,
    /// The stampede lock is Redlock over several servers (`lock = "redlock"`).
    pub(crate) redlock: bool,
    /// `version = N` (0 without it).
    pub(crate) version: u64,
    /// A hash of the function's own code (its signature, body and `key = …`): an edit of it
    /// sets the old entries aside, and same-named functions of two blocks (or two expansions of
    /// one `macro_rules!`) keep apart.
    pub(crate) code: u64,
    /// Where `store = …` was written, for the error of a store whose feature is off.
    pub(crate) written: Written,
}

/// Which store outside the process.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteKind {
    Disk,
    Redis,
    Tiered,
}

/// Errors collected during validation.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        self.0.map_or(Ok(value), Err)
    }
}

/// One part of the key: how to view it borrowed, and its owned type.
struct Part {
    lookup: TokenStream,
    ty: Type,
}

pub(crate) fn validate(args: &Args, func: &CachedFn) -> syn::Result<Plan> {
    let mut errors = Errors::default();
    check_signature(func, &mut errors);
    if let (Some(path), None) = (args.jitter.path(), args.ttl.get()) {
        errors.at(
            path,
            "`jitter` spreads the time to live, which is missing; add `ttl = ...`",
        );
    }
    if let (Some(idle), Some(_)) = (args.idle.path(), args.ttl.get()) {
        errors.at(
            idle,
            "`idle` renews each entry's time to live whenever it is used, in place of a fixed \
             `ttl`: keep one of them",
        );
    }
    check_instance(args, &mut errors);
    let renews = check_renewal(args, &mut errors);
    let output = func.output();
    check_output(&output, &mut errors);
    let runtime = args.krate.get().map_or_else(
        || quote!(::memo::__private),
        |path| quote!(#path::__private),
    );
    let (keep, asserts) = keep(args, &output, &runtime);
    let key = key(args, func, &mut errors);
    let (key_type, key_prelude, lookup) =
        key.unwrap_or_else(|| (syn::parse_quote!(()), quote!(), quote!(&())));
    let prelude = quote!(#asserts #key_prelude);
    let config = config(args, &runtime);
    let remote = check_remote(args, func, &mut errors);
    check_weight(args, &mut errors);
    check_ttl_from(args, &mut errors);
    let generic = check_generics(func, &key_type, &output, &mut errors);
    let (value, handover) = fallible(args, &output, &runtime);
    // A `Result`'s `Ok` values alone reach its cache: each is kept.
    let keep = if handover.is_some() {
        quote!(#runtime::always)
    } else {
        keep
    };
    let store = remote.as_ref().map(|remote| remote.kind);
    let hooks = hooks(args, &runtime, store, &key_type, &value);
    let quick = func.sig.asyncness.is_none()
        && args.cache.get().is_none()
        && remote.is_none()
        && renews.is_none()
        && args.ttl.get().is_none()
        && args.idle.get().is_none();
    errors.finish(Plan {
        runtime,
        key_type,
        prelude,
        lookup,
        keep,
        config,
        output,
        value,
        handover,
        renews,
        remote,
        hooks,
        quick,
        generic,
        instance: args.cache.get().cloned(),
    })
}

/// With `cache = …` the cache is built elsewhere: each option that configures a cache is an
/// error at it, saying where it goes instead.
fn check_instance(args: &Args, errors: &mut Errors) {
    let Some(cache) = args.cache.get() else {
        return;
    };
    let cache = cache.to_token_stream().to_string().replace(' ', "");
    let configuring = [
        args.maxsize.path(),
        args.ttl.path(),
        args.ttl_from.path(),
        args.idle.path(),
        args.jitter.path(),
        args.stale.path(),
        args.refresh.path(),
        args.beta.path(),
        args.store.path(),
        args.codec.path(),
        args.lock.path(),
        args.version.path(),
        args.policy.path(),
        args.maxweight.path(),
        args.weight.path(),
        args.on_evict.path(),
    ];
    for path in configuring.into_iter().flatten() {
        let name = path.to_token_stream().to_string();
        errors.at(
            path,
            format_args!(
                "`{name}` configures a cache, and `cache = {cache}` names one built elsewhere: set \
                 it where that cache is built (`memo::Cache::builder()`)"
            ),
        );
    }
}

/// `maxweight` and `weight` come together: each without the other is an error at it.
fn check_weight(args: &Args, errors: &mut Errors) {
    match (args.maxweight.path(), args.weight.path()) {
        (Some(maxweight), None) => errors.at(
            maxweight,
            "`maxweight` bounds the total of the entries' weights, which needs a weigher; add `weight = |key, value| ...`",
        ),
        (None, Some(weight)) => errors.at(
            weight,
            "`weight` weighs entries for a bound that is missing; add `maxweight = N`",
        ),
        _ => {}
    }
}

/// `ttl_from` reads each value's own time to live, with `ttl` for the values it answers `None`
/// for; what spreads, serves past or refreshes the `ttl` cannot follow times chosen per value.
fn check_ttl_from(args: &Args, errors: &mut Errors) {
    let Some(ttl_from) = args.ttl_from.path() else {
        return;
    };
    if let Some(idle) = args.idle.path() {
        errors.at(
            idle,
            "`idle` renews each entry's time to live on use, while `ttl_from` chooses it per \
             value; keep one of them",
        );
    } else if args.ttl.get().is_none() {
        errors.at(
            ttl_from,
            "`ttl_from` falls back to `ttl` for the values it answers `None` for, which is missing; \
             add `ttl = ...`",
        );
    }
    if let Some(jitter) = args.jitter.path() {
        errors.at(
            jitter,
            "`jitter` spreads the `ttl`, while `ttl_from` gives each value its own time to live; \
             remove one of them",
        );
    }
    for option in [args.stale.path(), args.refresh.path()]
        .into_iter()
        .flatten()
    {
        let name = option.to_token_stream().to_string();
        errors.at(
            option,
            format_args!(
                "`{name}` renews entries by the `ttl`, and cannot follow the times to live \
                 `ttl_from` chooses per value yet; remove one of them"
            ),
        );
    }
}

/// The value `ttl_from` is given, from the value the cache stores: `T` of a return type spelled
/// `…Result<T, …>` (an `Err` kept by `cache_err` lives the `ttl`), the return type otherwise.
/// The expression maps `__memo_value: &V` to the `Option<Duration>` chosen.
fn ttl_from_call(ttl_from: &Expr, runtime: &TokenStream, value: &Type) -> TokenStream {
    // Spanned at `ttl_from`'s value, so a closure of the wrong shape is reported there.
    let ttl_of = crate::expand::respan(quote!(#runtime::ttl_of), ttl_from.span());
    let result = match unwrap_group(value) {
        Type::Path(TypePath {
            qself: None, path, ..
        }) => path.segments.last().is_some_and(|last| {
            last.ident == "Result"
                && matches!(&last.arguments, syn::PathArguments::AngleBracketed(args)
                    if matches!(args.args.first(), Some(syn::GenericArgument::Type(_))))
        }),
        _ => false,
    };
    if result {
        quote_spanned! {ttl_from.span()=>
            match __memo_value {
                #runtime::Ok(__memo_ok) => #ttl_of(#ttl_from, __memo_ok),
                #runtime::Err(_) => #runtime::None,
            }
        }
    } else {
        quote_spanned!(ttl_from.span()=> #ttl_of(#ttl_from, __memo_value))
    }
}

/// The store's weigher, eviction listener and `ttl_from`, set on the new store by a `fn` the
/// runtime calls once, when the cache is created. The weigher is a non-capturing closure (a `fn`
/// pointer), so the user's `weight` may return any integer; so is `ttl_from`'s.
fn hooks(
    args: &Args,
    runtime: &TokenStream,
    remote: Option<RemoteKind>,
    key: &Type,
    value: &Type,
) -> Option<TokenStream> {
    if args.weight.get().is_none() && args.on_evict.get().is_none() && args.ttl_from.get().is_none()
    {
        return None;
    }
    let mut store = quote!(__memo_store);
    if let Some(weight) = args.weight.get() {
        // Spanned at `weight`'s value, so a weigher that returns no integer is reported there.
        let weigh = crate::expand::respan(quote!(#runtime::weigh), weight.span());
        store = quote_spanned! {weight.span()=>
            #store.weigher(|__memo_key: &#key, __memo_value: &#value| {
                #weigh(#weight, __memo_key, __memo_value)
            })
        };
    }
    if let Some(on_evict) = args.on_evict.get() {
        store = quote_spanned!(on_evict.span()=> #store.eviction_listener(#on_evict));
    }
    if let Some(ttl_from) = args.ttl_from.get() {
        let call = ttl_from_call(ttl_from, runtime, value);
        store = quote_spanned! {ttl_from.span()=>
            #store.ttl_from(|__memo_value: &#value| #call)
        };
    }
    let store_type = match remote {
        None => quote!(MemoryStore),
        Some(RemoteKind::Disk) => quote!(DiskStore),
        Some(RemoteKind::Redis) => quote!(RedisStore),
        Some(RemoteKind::Tiered) => quote!(TieredStore),
    };
    Some(quote!(|__memo_store: #runtime::#store_type<#key, #value>| #store))
}

/// `store = disk`, `redis` or `tiered`, with its name and codec; `codec` needs one of them, and
/// each rejects the options it cannot honour, at the option.
fn check_remote(args: &Args, func: &CachedFn, errors: &mut Errors) -> Option<Remote> {
    let json = args
        .codec
        .get()
        .is_some_and(|codec| codec.value() == "json");
    let (kind, name, store) = match args.store.get() {
        Some(StoreKind::Disk(name)) => (RemoteKind::Disk, name.as_ref(), "disk"),
        Some(StoreKind::Redis) => (RemoteKind::Redis, None, "redis"),
        Some(StoreKind::Tiered) => (RemoteKind::Tiered, None, "tiered"),
        Some(StoreKind::Memory) | None => {
            if let Some(codec) = args.codec.path() {
                errors.at(
                    codec,
                    "`codec` sets how `store = disk`, `redis` or `tiered` encode values; add one of them",
                );
            }
            if let Some(lock) = args.lock.path() {
                errors.at(
                    lock,
                    "`lock` chooses where `store = redis` or `tiered` take the stampede lock; add one of them",
                );
            }
            if let Some(version) = args.version.path() {
                errors.at(
                    version,
                    "`version` names the entries of `store = disk`, `redis` or `tiered`, which outlive \
                     the process; a memory cache starts empty in each build: add one of them, or remove `version`",
                );
            }
            return None;
        }
    };
    // The weigher and the eviction listener belong to the in-memory store.
    let mut unsupported = vec![
        args.maxweight.path(),
        args.weight.path(),
        args.on_evict.path(),
    ];
    match kind {
        RemoteKind::Disk => {
            unsupported.push(args.policy.path());
            if let Some(lock) = args.lock.path() {
                errors.at(
                    lock,
                    "`store = disk` takes its stampede lock in its own database; `lock` chooses \
                     the lock of `store = redis` or `tiered`",
                );
            }
        }
        RemoteKind::Redis => {
            unsupported.push(args.policy.path());
            if let Some(maxsize) = args.maxsize.path() {
                errors.at(
                    maxsize,
                    "`store = redis` keeps no entries in the process: Redis bounds its memory itself \
                     (`maxmemory`); remove `maxsize`, or use `store = tiered` for a bounded local copy",
                );
            }
        }
        RemoteKind::Tiered => {}
    }
    for option in unsupported.into_iter().flatten() {
        let option_name = option.to_token_stream().to_string();
        errors.at(
            option,
            format_args!(
                "`{option_name}` is not supported with `store = {store}` yet; remove one of them"
            ),
        );
    }
    let name = name.map_or_else(|| "default".to_string(), syn::LitStr::value);
    let redlock = args
        .lock
        .get()
        .is_some_and(|lock| lock.value() == "redlock");
    Some(Remote {
        kind,
        name,
        json,
        redlock,
        version: args.version.get().copied().unwrap_or(0),
        code: code_hash(func, args.key.get()),
        written: args.store.written().expect("a remote store was written"),
    })
}

/// [`Remote::code`]: 64-bit FNV-1a over the tokens of the signature, the body and the key
/// expression, each token's text and each group's delimiters: the same whatever the layout and
/// the comments around them.
fn code_hash(func: &CachedFn, key: Option<&Expr>) -> u64 {
    fn hash_tokens(hash: u64, tokens: TokenStream) -> u64 {
        tokens.into_iter().fold(hash, |hash, token| match token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                let hash = hash_text(hash, open);
                hash_text(hash_tokens(hash, group.stream()), close)
            }
            TokenTree::Ident(ident) => hash_text(hash, &ident.to_string()),
            TokenTree::Punct(punct) => hash_text(hash, punct.as_char().encode_utf8(&mut [0; 4])),
            TokenTree::Literal(literal) => hash_text(hash, &literal.to_string()),
        })
    }
    fn hash_text(hash: u64, text: &str) -> u64 {
        // A separator after each token: `a b` and `ab` differ.
        text.bytes().chain([0]).fold(hash, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
    }
    let mut hash = 0xcbf2_9ce4_8422_2325;
    hash = hash_tokens(hash, func.sig.to_token_stream());
    hash = hash_tokens(hash, func.block.to_token_stream());
    key.map_or(hash, |key| hash_tokens(hash, key.to_token_stream()))
}

/// `stale` and `refresh` recompute an entry in the background from its owned key, so they need a
/// time to live and a key made of the arguments themselves.
fn check_renewal(args: &Args, errors: &mut Errors) -> Option<Written> {
    if let (Some(path), None) = (args.beta.path(), args.refresh.get()) {
        errors.at(
            path,
            "`beta` weighs early refresh, which is off; add `refresh = \"early\"`",
        );
    }
    let (option, written) = match (args.stale.path(), args.refresh.path()) {
        (Some(stale), _) => (stale, args.stale.written().expect("`stale` was written")),
        (None, Some(refresh)) => (
            refresh,
            args.refresh.written().expect("`refresh` was written"),
        ),
        (None, None) => return None,
    };
    let name = option.to_token_stream().to_string();
    if args.ttl.get().is_none() {
        errors.at(
            option,
            format_args!(
                "`{name}` acts when the time to live runs out, which is missing; add `ttl = ...`"
            ),
        );
    }
    if let Some(key) = args.key.path() {
        errors.at(
            key,
            format_args!(
                "`{name}` recomputes entries from their key, so the key must be the arguments \
                 themselves; remove `key = ...`"
            ),
        );
    }
    Some(written)
}

fn check_signature(func: &CachedFn, errors: &mut Errors) {
    let sig = &func.sig;
    if let Some(constness) = &sig.constness {
        errors.at(
            constness,
            "`#[cached]` cannot wrap a `const fn`: a cache lives at run time; remove `const`",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(
            variadic,
            "`#[cached]` cannot wrap a variadic function: its arguments cannot be keyed",
        );
    }
}

/// The type and const parameters of a generic function, which gets one cache per instance: each
/// holds one key type and one value type, so neither may name a parameter.
fn check_generics(func: &CachedFn, key_type: &Type, output: &Type, errors: &mut Errors) -> bool {
    let params: Vec<&Ident> = func
        .sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some(&param.ident),
            GenericParam::Const(param) => Some(&param.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let names_param = |ty: &Type| {
        matches!(ty, Type::Path(path)
            if path.qself.is_none()
                && path.path.segments.first().is_some_and(|s| params.contains(&&s.ident)))
    };
    for (ty, what) in [(key_type, "key"), (output, "return")] {
        if let Some(found) = find_type(ty, &names_param) {
            errors.at(
                found,
                format_args!(
                    "the {what} type of a cached generic function cannot name a type parameter: \
                     each instance has a cache of its own, but all of one key type and one value \
                     type; {}",
                    if what == "key" {
                        "choose a key that does not with `key = ..., key_type = ...`"
                    } else {
                        "return a type that does not name it"
                    }
                ),
            );
        }
    }
    !params.is_empty()
}

fn check_output(output: &Type, errors: &mut Errors) {
    if let Some(impl_trait) = find_type(output, &|t| matches!(t, Type::ImplTrait(_))) {
        errors.at(
            impl_trait,
            "a cached function cannot return `impl Trait`: the cache stores values of a type it can name; \
             return a concrete type (or a `Box<dyn Trait>`/`Arc<dyn Trait>`)",
        );
    } else if let Some(borrowed) = find_key_borrow(output) {
        errors.at(
            borrowed,
            "a cached function returns clones of a stored value, so its return type cannot borrow: \
             return an owned type (`String` for `&str`, `Vec<T>` for `&[T]`, `Arc<T>` to share)",
        );
    }
}

/// The value type of the cache, and for a return type spelled `…Result<…>` the error handover.
///
/// Such a `Result` is stored as its `Ok` type only, so that its error type needs nothing: it is
/// decided by the last path segment, and the runtime's `Fallible` (implemented for
/// `std::result::Result` alone) rejects a user's own type named `Result` with a sentence. An
/// alias of another name keeps the whole `Result` as the value (`keep` stores only `Ok`), as
/// does `cache_err` (which stores errors too).
fn fallible(args: &Args, output: &Type, runtime: &TokenStream) -> (Type, Option<TokenStream>) {
    let named_result = matches!(unwrap_group(output), Type::Path(TypePath { qself: None, path, .. })
        if path.segments.last().is_some_and(|last| last.ident == "Result"
            && matches!(last.arguments, syn::PathArguments::AngleBracketed(_))));
    if !named_result || args.cache_err.get() == Some(&true) {
        return (output.clone(), None);
    }
    let span = output.span();
    let value = syn::parse_quote_spanned!(span=> <#output as #runtime::Fallible>::Ok);
    let handover = quote! {{
        use #runtime::{ShareClone as _, ShareNone as _};
        (&&#runtime::Sharing::<#output>::new()).share()
    }};
    (value, Some(handover))
}

/// The `keep` expression (which results are stored), decided from the return type at type-check
/// time so that aliases of `Result` and `Option` count; plus the assertions `cache_err` and
/// `cache_none` make about that type, spanned at the option.
fn keep(args: &Args, output: &Type, runtime: &TokenStream) -> (TokenStream, TokenStream) {
    let cache_err = args.cache_err.get() == Some(&true);
    let cache_none = args.cache_none.get() == Some(&true);
    let mut asserts = TokenStream::new();
    for (opt, check) in [
        (&args.cache_err, "require_result"),
        (&args.cache_none, "require_option"),
    ] {
        if let Some(path) = opt.path() {
            let check = Ident::new(check, path.span());
            // Declared with the option's span as it is used, as an option a `macro_rules!`
            // passes in as tokens has that macro's hygiene.
            let outcome = Ident::new("__memo_outcome", path.span());
            let call = quote_spanned!(path.span()=> #runtime::#check(#outcome));
            asserts.extend(quote! {
                let #outcome: #runtime::PhantomData<#output> = #runtime::PhantomData;
                #call;
            });
        }
    }
    let keep = quote! {{
        use #runtime::{KeepAny as _, KeepOption as _, KeepResult as _};
        (&&&#runtime::Outcome::<#output>::new()).keep(#cache_err, #cache_none)
    }};
    (keep, asserts)
}

/// The key type, the statements computing it, and the lookup expression.
fn key(
    args: &Args,
    func: &CachedFn,
    errors: &mut Errors,
) -> Option<(Type, TokenStream, TokenStream)> {
    if let (Some(path), None) = (args.key_type.path(), args.key.get()) {
        errors.at(
            path,
            "`key_type` gives the type of `key = ...`, which is missing; add `key = <expression>`",
        );
        return None;
    }
    if let (
        Some(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(text),
            ..
        })),
        None,
    ) = (args.key.get(), args.key_type.path())
    {
        errors.at(text, key_hint::quoted_key(text, func));
        return None;
    }
    let parts = match (args.key.get(), args.key_type.get()) {
        (Some(expr), Some(ty)) => {
            let ty = with_static_lifetimes(ty.clone());
            let prelude = quote_spanned!(expr.span()=> let __memo_key: #ty = #expr;);
            return Some((ty, prelude, quote!(&__memo_key)));
        }
        (Some(expr), None) => key_expr_parts(expr, func, errors)?,
        // A cache that `self` holds (`cache = self.lookups`) is its instance's alone, so the key
        // leaves `self` out; one held elsewhere (`cache = SHARED`) serves every instance, so
        // `self` stays in the key, as with the function's own cache.
        (None, _) => all_parts(
            func,
            args.cache.get().is_none_or(|cache| !reads_self(cache)),
            errors,
        )?,
    };
    Some(combine(parts, func.sig.paren_token.span.join()))
}

/// Whether `expr` reads `self` (in its macro calls too).
fn reads_self(expr: &Expr) -> bool {
    fn in_tokens(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => ident == "self",
            TokenTree::Group(group) => in_tokens(group.stream()),
            _ => false,
        })
    }
    in_tokens(expr.to_token_stream())
}

/// Without `key = ...`: the receiver (if any, and if `keyed`: a cache held by the receiver is
/// the receiver's alone) and every argument.
fn all_parts(func: &CachedFn, keyed: bool, errors: &mut Errors) -> Option<Vec<Part>> {
    let mut parts = Vec::new();
    let mut ok = true;
    let items: Vec<(String, Type)> = func
        .receiver
        .iter()
        .filter(|_| keyed)
        .map(|receiver| ("self".to_string(), receiver_type(receiver)))
        .chain(func.args.iter().filter_map(|arg| {
            arg.ident
                .as_ref()
                .map(|ident| (ident.to_string(), arg.ty.clone()))
        }))
        .collect();
    if let Some(receiver) = func.receiver.as_ref().filter(|_| keyed) {
        match receiver_part(receiver, errors) {
            Some(part) => parts.push(part),
            None => ok = false,
        }
    }
    for arg in &func.args {
        match arg_part(arg, &items, errors) {
            Some(part) => parts.push(part),
            None => ok = false,
        }
    }
    if parts.len() > MAX_KEY_PARTS {
        errors.at(
            &func.sig.inputs[MAX_KEY_PARTS],
            format_args!(
                "`#[cached]` keys by at most {MAX_KEY_PARTS} arguments; choose the key with `key = ...` \
                 (e.g. a struct of the arguments, with `key_type = ...`)"
            ),
        );
        ok = false;
    }
    ok.then_some(parts)
}

/// `key = arg` or `key = (a, b)`: parts named by the arguments; anything else needs `key_type`.
fn key_expr_parts(expr: &Expr, func: &CachedFn, errors: &mut Errors) -> Option<Vec<Part>> {
    // Seen through the invisible groups of a `macro_rules!`'s `$k:expr` (`key = $k` naming an
    // argument was once refused as an expression of unknown type).
    fn ungrouped(expr: &Expr) -> &Expr {
        match expr {
            Expr::Group(group) => ungrouped(&group.expr),
            other => other,
        }
    }
    let named = |expr: &Expr| -> Option<Ident> {
        match ungrouped(expr) {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => p.path.get_ident().cloned(),
            _ => None,
        }
    };
    let expr = ungrouped(expr);
    let elems: Vec<&Expr> = match expr {
        Expr::Tuple(t) => t.elems.iter().collect(),
        Expr::Paren(p) => vec![&*p.expr],
        other => vec![other],
    };
    let idents: Option<Vec<Ident>> = elems.iter().map(|e| named(e)).collect();
    let Some(idents) = idents.filter(|ids| ids.len() <= MAX_KEY_PARTS) else {
        errors.at(
            expr,
            "the type of this key cannot be read from the attribute: add it with `key_type = ...`, \
             e.g. `#[cached(key = user.id, key_type = u64)]` (arguments and tuples of arguments need no `key_type`)",
        );
        return None;
    };
    let items: Vec<(String, Type)> = idents
        .iter()
        .filter_map(|ident| {
            if ident == "self" {
                func.receiver
                    .as_ref()
                    .map(|r| (ident.to_string(), receiver_type(r)))
            } else {
                func.arg(ident)
                    .map(|arg| (ident.to_string(), arg.ty.clone()))
            }
        })
        .collect();
    let mut parts = Vec::new();
    for ident in &idents {
        if ident == "self" {
            let Some(receiver) = &func.receiver else {
                errors.at(
                    ident,
                    format_args!(
                        "`self` is not an argument of `{}`: it is not a method",
                        func.sig.ident
                    ),
                );
                return None;
            };
            parts.push(receiver_part(receiver, errors)?);
        } else if let Some(arg) = func.arg(ident) {
            parts.push(arg_part(arg, &items, errors)?);
        } else {
            errors.at(
                ident,
                format_args!(
                    "`{ident}` is not an argument of `{}`; `key = ...` names arguments, or is any \
                     expression over them given with `key_type = ...`",
                    func.sig.ident
                ),
            );
            return None;
        }
    }
    if let Expr::Tuple(t) = expr
        && t.elems.is_empty()
    {
        // `key = ()`: one value for every call.
        return Some(Vec::new());
    }
    Some(parts)
}

/// One key from its parts; a tuple view is spanned at the argument list, where errors about it land.
fn combine(parts: Vec<Part>, args_span: Span) -> (Type, TokenStream, TokenStream) {
    match parts.len() {
        0 => (syn::parse_quote!(()), quote!(), quote!(&())),
        1 => {
            let Part { lookup, ty } = parts.into_iter().next().expect("one part");
            (ty, quote!(), lookup)
        }
        _ => {
            let (lookups, tys): (Vec<_>, Vec<_>) =
                parts.into_iter().map(|p| (p.lookup, p.ty)).unzip();
            (
                syn::parse_quote!((#(#tys),*)),
                quote!(),
                quote_spanned!(args_span=> (#(#lookups),*)),
            )
        }
    }
}

/// The receiver's type: `&Self`, `Self`, or as written (`self: Arc<Self>`).
fn receiver_type(receiver: &syn::Receiver) -> Type {
    match &receiver.kind {
        ReceiverKind::Reference(..) => syn::parse_quote!(&Self),
        ReceiverKind::Typed(_, ty) => (**ty).clone(),
        _ => syn::parse_quote!(Self),
    }
}

/// The receiver as a part of the key; `None` once its refusal is reported. A `&mut` receiver,
/// as `&mut self` or `self: &mut Self`, is refused as a `&mut` argument is (`key = self` of
/// one was once keyed by `()`, every call one entry); so is a typed receiver that borrows below
/// its top (`self: Pin<&mut Self>`), which a `'static` key cannot hold.
fn receiver_part(receiver: &syn::Receiver, errors: &mut Errors) -> Option<Part> {
    let self_token = &receiver.self_token;
    let self_type: Type = syn::parse_quote_spanned!(self_token.span=> Self);
    match &receiver.kind {
        ReceiverKind::Reference(_, _, None) => Some(Part {
            lookup: quote!(#self_token),
            ty: self_type,
        }),
        ReceiverKind::Value => Some(Part {
            lookup: quote!(&#self_token),
            ty: self_type,
        }),
        ReceiverKind::Typed(_, ty) => {
            let below = match unwrap_group(ty) {
                Type::Reference(TypeReference {
                    mutability: Some(_),
                    ..
                }) => {
                    errors.at(receiver, MUT_IN_KEY);
                    return None;
                }
                Type::Reference(reference) => &*reference.elem,
                other => other,
            };
            if find_key_borrow(below).is_some() {
                errors.at(
                    receiver,
                    "this receiver borrows, and a cache key must own its parts: `#[cached]` cannot \
                     key by it; choose the key with `key = ...`",
                );
                return None;
            }
            Some(owned_part(quote!(#self_token), ty))
        }
        // `&mut self` (and a receiver syn may parse in time, such as `&pin mut self`).
        _ => {
            errors.at(receiver, MUT_IN_KEY);
            None
        }
    }
}

/// Why a `&mut` argument or receiver is not keyed by default.
const MUT_IN_KEY: &str = "a `&mut` argument is not keyed by default: on a hit the body does not run, so \
     its writes through this reference would not happen; if that is intended, choose the key with \
     `key = ...` (leaving this argument out)";

/// `arg` is part of the key, with `items` (each keyed name and its type) for a suggestion.
fn arg_part(arg: &Arg, items: &[(String, Type)], errors: &mut Errors) -> Option<Part> {
    // Once keyed as any other, then `cannot find value` where its `cfg` is off.
    if let Some(cfg) = &arg.cfg {
        errors.at(
            cfg,
            "an argument under `#[cfg(...)]` cannot be keyed by default, as it may not exist: choose \
             the key with `key = ...` (leaving this argument out)",
        );
        return None;
    }
    let Some(ident) = &arg.ident else {
        errors.at(
            &arg.pat,
            "`#[cached]` keys by each argument's value, so each needs a plain name: bind this one to a \
             name, or choose the key with `key = ...`",
        );
        return None;
    };
    if let Type::Reference(
        reference @ TypeReference {
            mutability: Some(_),
            ..
        },
    ) = unwrap_group(&arg.ty)
    {
        errors.at(reference, MUT_IN_KEY);
        return None;
    }
    if let Some(impl_trait) = find_type(&arg.ty, &|t| matches!(t, Type::ImplTrait(_))) {
        errors.at(
            impl_trait,
            "an `impl Trait` argument cannot be part of the key (its type is not known to the cache); \
             use a concrete type, or choose the key with `key = ...`",
        );
        return None;
    }
    // `&T` is keyed by an owned `T`; a borrow anywhere else would have to outlive the call.
    let below = match unwrap_group(&arg.ty) {
        Type::Reference(reference) => &*reference.elem,
        other => other,
    };
    if find_key_borrow(below).is_some() {
        errors.at(&arg.ty, key_hint::borrowed_key(ident, &arg.ty, items));
        return None;
    }
    Some(owned_part(quote!(#ident), &arg.ty))
}

/// `x: &T` is viewed as `x` and owned as `T` (`String` for `str`, `Vec<T>` for `[T]`);
/// `x: T` is viewed as `&x` and owned as `T`.
///
/// The view is spanned at the argument's type, so a type that cannot be keyed is reported there.
fn owned_part(ident: TokenStream, ty: &Type) -> Part {
    let span = ty.span();
    match unwrap_group(ty) {
        Type::Reference(TypeReference {
            mutability, elem, ..
        }) => Part {
            lookup: if mutability.is_some() {
                quote_spanned!(span=> &*#ident)
            } else {
                ident
            },
            ty: with_static_lifetimes(owned_of_borrowed(elem)),
        },
        other => Part {
            lookup: quote_spanned!(span=> &#ident),
            ty: with_static_lifetimes(other.clone()),
        },
    }
}

/// The owned form of a borrowed type, spelled as users know it: `String` for `str`, `Vec<T>`
/// for `[T]`. `Path`, `OsStr` and `CStr` (and a `str` written with its path) are owned as
/// `<T as ToOwned>::Owned`, the type the lookup's `KeyPart` owns them as: a type of the user's
/// named `Path` is its own owned form, not `PathBuf` (whose companion was once a cache apart
/// from the function's), and `&std::path::Path` is owned as `PathBuf` (once keyed by the
/// unsized `Path`).
fn owned_of_borrowed(elem: &Type) -> Type {
    let span = elem.span();
    match unwrap_group(elem) {
        Type::Slice(slice) => {
            let inner = &slice.elem;
            syn::parse_quote_spanned!(span=> ::std::vec::Vec<#inner>)
        }
        Type::Path(TypePath {
            qself: None, path, ..
        }) if path.segments.len() == 1 && path.segments[0].ident == "str" => {
            syn::parse_quote_spanned!(span=> ::std::string::String)
        }
        Type::Path(TypePath {
            qself: None, path, ..
        }) if path.segments.last().is_some_and(|last| {
            last.arguments.is_none()
                && ["str", "Path", "OsStr", "CStr"]
                    .iter()
                    .any(|name| last.ident == name)
        }) =>
        {
            syn::parse_quote_spanned!(span=> <#elem as ::std::borrow::ToOwned>::Owned)
        }
        _ => elem.clone(),
    }
}

pub(crate) fn unwrap_group(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => unwrap_group(&g.elem),
        Type::Paren(p) => unwrap_group(&p.elem),
        other => other,
    }
}

/// A key type lives in a `'static` cache: its lifetimes become `'static`.
fn with_static_lifetimes(mut ty: Type) -> Type {
    struct Static;
    impl VisitMut for Static {
        fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
            *lifetime = Lifetime::new("'static", lifetime.span());
        }
        fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
            if reference.lifetime.is_none() {
                reference.lifetime = Some(Lifetime::new("'static", reference.and_token.span));
            }
            syn::visit_mut::visit_type_reference_mut(self, reference);
        }
    }
    Static.visit_type_mut(&mut ty);
    ty
}

/// The first type inside `ty` (itself included) matching `pred`.
pub(crate) fn find_type(ty: &Type, pred: &dyn Fn(&Type) -> bool) -> Option<Type> {
    struct Find<'a> {
        pred: &'a dyn Fn(&Type) -> bool,
        found: Option<Type>,
    }
    impl VisitMut for Find<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if self.found.is_none() {
                if (self.pred)(ty) {
                    self.found = Some(ty.clone());
                } else {
                    syn::visit_mut::visit_type_mut(self, ty);
                }
            }
        }
    }
    let mut find = Find { pred, found: None };
    find.visit_type_mut(&mut ty.clone());
    find.found
}

/// A reference or lifetime in `ty` that is not `'static`, as a stored key or value holds one:
/// the arguments and results of `fn(&str)` and `Fn(&str)` borrow only while they are called (a
/// function returning `fn(&str) -> usize` or `Arc<dyn Fn(&str) -> usize + Send + Sync>` was
/// once refused as borrowing).
pub(crate) fn find_key_borrow(ty: &Type) -> Option<TokenStream> {
    struct Borrow {
        found: Option<TokenStream>,
    }
    impl VisitMut for Borrow {
        fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
            if reference
                .lifetime
                .as_ref()
                .is_none_or(|l| l.ident != "static")
                && self.found.is_none()
            {
                self.found = Some(reference.to_token_stream());
            }
            syn::visit_mut::visit_type_reference_mut(self, reference);
        }
        fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
            if lifetime.ident != "static" && self.found.is_none() {
                self.found = Some(lifetime.to_token_stream());
            }
        }
        fn visit_type_fn_ptr_mut(&mut self, _: &mut syn::TypeFnPtr) {}
        fn visit_parenthesized_generic_arguments_mut(
            &mut self,
            _: &mut syn::ParenthesizedGenericArguments,
        ) {
        }
    }
    let mut borrow = Borrow { found: None };
    borrow.visit_type_mut(&mut ty.clone());
    borrow.found
}

/// A `fn() -> Config` for `cache()`. Literal options name a shared preset (no code per function);
/// expressions get a closure, evaluated once, when the cache is created.
fn config(args: &Args, runtime: &TokenStream) -> TokenStream {
    let literal_maxsize = match args.maxsize.get() {
        None => Some(0),
        Some(Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        })) => int.base10_parse::<usize>().ok(),
        Some(_) => None,
    };
    let plain = args.jitter.get().is_none()
        && args.idle.get().is_none()
        && args.stale.get().is_none()
        && args.refresh.get().is_none()
        && args.policy.get().is_none()
        && args.maxweight.get().is_none();
    let literal_ttl = match args.ttl.get() {
        _ if !plain => None,
        None => Some(0),
        Some(Ttl::Millis(ms, _)) => Some(*ms),
        Some(Ttl::Expr(_)) => None,
    };
    if let (Some(maxsize), Some(ttl_ms)) = (literal_maxsize, literal_ttl) {
        return quote!(#runtime::preset::<#maxsize, #ttl_ms>);
    }
    let mut config = quote!(#runtime::Config::new());
    if let Some(maxsize) = args.maxsize.get() {
        config = quote_spanned!(maxsize.span()=> #config.maxsize(#maxsize));
    }
    match args.ttl.get() {
        Some(Ttl::Millis(ms, span)) => {
            config = quote_spanned!(*span=> #config.ttl(#runtime::Duration::from_millis(#ms)));
        }
        Some(Ttl::Expr(expr)) => config = quote_spanned!(expr.span()=> #config.ttl(#expr)),
        None => {}
    }
    match args.idle.get() {
        Some(Ttl::Millis(ms, span)) => {
            config = quote_spanned!(*span=> #config.idle(#runtime::Duration::from_millis(#ms)));
        }
        Some(Ttl::Expr(expr)) => config = quote_spanned!(expr.span()=> #config.idle(#expr)),
        None => {}
    }
    if let Some(jitter) = args.jitter.get() {
        config = quote_spanned!(jitter.span()=> #config.jitter(#jitter));
    }
    match args.stale.get() {
        Some(Ttl::Millis(ms, span)) => {
            config = quote_spanned!(*span=> #config.stale(#runtime::Duration::from_millis(#ms)));
        }
        Some(Ttl::Expr(expr)) => config = quote_spanned!(expr.span()=> #config.stale(#expr)),
        None => {}
    }
    if args.refresh.get().is_some() {
        let beta = args
            .beta
            .get()
            .map_or_else(|| quote!(1.0), ToTokens::to_token_stream);
        config = quote!(#config.refresh_early(#beta));
    }
    if let Some(maxweight) = args.maxweight.get() {
        config = quote_spanned!(maxweight.span()=> #config.max_weight(#maxweight));
    }
    if let Some(policy) = args.policy.get() {
        let variant = match policy.value().as_str() {
            "lru" => quote!(Lru),
            "lfu" => quote!(Lfu),
            "fifo" => quote!(Fifo),
            _ => quote!(Auto),
        };
        config = quote_spanned!(policy.span()=> #config.policy(#runtime::Policy::#variant));
    }
    quote!(|| #config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(item: TokenStream, key: Option<&Expr>) -> u64 {
        code_hash(&CachedFn::parse(item).unwrap(), key)
    }

    #[test]
    fn the_code_hash_follows_the_code_alone() {
        let base = code_of(
            quote!(
                fn f(n: u64) -> u64 {
                    n * 2
                }
            ),
            None,
        );
        let laid_out = code_of(
            syn::parse_str(
                "/// Doubles.\n#[inline]\nfn f(n: u64) -> u64 {\n    // twice\n    n * 2\n}",
            )
            .unwrap(),
            None,
        );
        assert_eq!(base, laid_out, "layout, comments and other attributes");
        let edited = code_of(
            quote!(
                fn f(n: u64) -> u64 {
                    n * 3
                }
            ),
            None,
        );
        assert_ne!(base, edited, "the body");
        let renamed = code_of(
            quote!(
                fn f(m: u64) -> u64 {
                    m * 2
                }
            ),
            None,
        );
        assert_ne!(base, renamed, "the signature");
        let keyed = code_of(
            quote!(
                fn f(n: u64) -> u64 {
                    n * 2
                }
            ),
            Some(&syn::parse_quote!(n)),
        );
        assert_ne!(base, keyed, "the key");
        let joined = code_of(
            quote!(
                fn f(n: u64) -> u64 {
                    n * 2
                }
            ),
            None,
        );
        assert_eq!(base, joined);
        let spaced = code_of(
            quote!(
                fn f(n: u64) -> u64 {
                    n * 2
                }
            ),
            None,
        );
        assert_eq!(base, spaced);
    }
}
