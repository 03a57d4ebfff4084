//! The options of `#[cached(...)]`, parsed from real Rust syntax with `syn::meta`.
//!
//! Every option goes through one setter ([`Opt::set`]) that reports a second occurrence, and
//! every mistake found while parsing is collected, so all of them are reported at once.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitBool, LitInt, LitStr, Path, Type, UnOp};

use crate::duration;

const MAXSIZE: &str = "maxsize";
const TTL: &str = "ttl";
const IDLE: &str = "idle";
const TTL_FROM: &str = "ttl_from";
const KEY: &str = "key";
const KEY_TYPE: &str = "key_type";
const CACHE_ERR: &str = "cache_err";
const CACHE_NONE: &str = "cache_none";
const CRATE: &str = "crate";
const JITTER: &str = "jitter";
const STALE: &str = "stale";
const REFRESH: &str = "refresh";
const BETA: &str = "beta";
const STORE: &str = "store";
const CODEC: &str = "codec";
const POLICY: &str = "policy";
const MAXWEIGHT: &str = "maxweight";
const WEIGHT: &str = "weight";
const ON_EVICT: &str = "on_evict";
const LOCK: &str = "lock";
const VERSION: &str = "version";
const CACHE: &str = "cache";

const VALID: &str = "expected one of `maxsize`, `ttl`, `ttl_from`, `idle`, `jitter`, `stale`, `refresh`, `beta`, `key`, `key_type`, `cache_err`, `cache_none`, `store`, `codec`, `lock`, `version`, `policy`, `maxweight`, `weight`, `on_evict`, `cache`, `crate`";

const STORES: &str = "expected `memory`, `disk`, `disk(\"name\")`, `redis`, or `tiered`";

/// An option's value and where it was written.
pub(crate) struct Opt<T> {
    name: &'static str,
    value: Option<(Path, T)>,
    /// The span of the value's last token, for options whose expansion points at the whole
    /// option ([`Opt::written`]).
    end: Option<Span>,
}

/// Where an option was written, from its name to the end of its value (`store = disk`): a
/// macro call spanned over it (`expand::require_at`) underlines the option, not the attribute.
#[derive(Clone, Copy)]
pub(crate) struct Written {
    pub(crate) start: Span,
    pub(crate) end: Span,
}

impl<T> Opt<T> {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            value: None,
            end: None,
        }
    }

    /// Records the option; a second occurrence is an error at its path.
    fn set(&mut self, path: &Path, value: T) -> syn::Result<()> {
        if self.value.is_some() {
            return Err(syn::Error::new_spanned(
                path,
                format!("duplicate `{}` option", self.name),
            ));
        }
        self.value = Some((path.clone(), value));
        Ok(())
    }

    /// [`Opt::set`], also recording where the value ends (`value`'s last token).
    fn set_written(&mut self, path: &Path, value: T, written: &impl ToTokens) -> syn::Result<()> {
        self.set(path, value)?;
        self.end = written
            .to_token_stream()
            .into_iter()
            .last()
            .map(|t| t.span());
        Ok(())
    }

    /// Where the option was written, from its name to the end of its value (its name alone when
    /// the value's end was not recorded).
    pub(crate) fn written(&self) -> Option<Written> {
        let path = self.path()?;
        let start = path
            .to_token_stream()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |t| t.span());
        Some(Written {
            start,
            end: self.end.unwrap_or(start),
        })
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    /// The option's name as written, for errors about it.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.value.as_ref().map(|(p, _)| p)
    }
}

/// A `ttl`: a literal checked at compile time, or any `Duration` expression.
pub(crate) enum Ttl {
    Millis(u64, Span),
    Expr(Expr),
}

/// Where the entries live: `store = memory` (the default), `store = disk` / `disk("name")`,
/// `store = redis` or `store = tiered`.
pub(crate) enum StoreKind {
    Memory,
    /// The persistent store, under its name (`default` when none is given).
    Disk(Option<LitStr>),
    /// Redis, every hit a `GET`.
    Redis,
    /// An in-memory L1 in front of Redis.
    Tiered,
}

/// The parsed options of one `#[cached(...)]`.
pub(crate) struct Args {
    pub(crate) maxsize: Opt<Expr>,
    pub(crate) ttl: Opt<Ttl>,
    pub(crate) idle: Opt<Ttl>,
    pub(crate) jitter: Opt<Expr>,
    pub(crate) stale: Opt<Ttl>,
    /// `refresh = "early"`, the only refresh mode so far.
    pub(crate) refresh: Opt<LitStr>,
    pub(crate) beta: Opt<Expr>,
    pub(crate) key: Opt<Expr>,
    pub(crate) key_type: Opt<Type>,
    pub(crate) cache_err: Opt<bool>,
    pub(crate) cache_none: Opt<bool>,
    pub(crate) store: Opt<StoreKind>,
    /// `codec = "binary" | "json"`, for `store = disk`, `redis` and `tiered`.
    pub(crate) codec: Opt<LitStr>,
    /// `lock = "single" | "redlock"`: where `store = redis` and `tiered` take the stampede lock.
    pub(crate) lock: Opt<LitStr>,
    /// `version = N`: part of the namespace of `store = disk`, `redis` and `tiered`, to set old
    /// entries aside by hand.
    pub(crate) version: Opt<u64>,
    /// `policy = "auto" | "lru" | "lfu" | "fifo"`: which entries a full cache evicts.
    pub(crate) policy: Opt<LitStr>,
    /// `maxweight = N`: the most total weight held, as `weight` weighs entries.
    pub(crate) maxweight: Opt<Expr>,
    /// `weight = |k, v| v.len()`: a closure or a fn path taking `(&K, &V)`, returning an integer.
    pub(crate) weight: Opt<Expr>,
    /// `ttl_from = |v| ...`: a closure or a fn path taking `&V`, returning each value's own
    /// `Option<Duration>` (`None`: the `ttl`).
    pub(crate) ttl_from: Opt<Expr>,
    /// `on_evict = |k, v, cause| ...`: told of every entry that leaves.
    pub(crate) on_evict: Opt<Expr>,
    /// `cache = self.lookups`: a `memo::Cache` held elsewhere (a field: one per instance).
    pub(crate) cache: Opt<Expr>,
    pub(crate) krate: Opt<Path>,
}

impl Args {
    /// Parses the attribute's arguments, reporting every mistake found.
    pub(crate) fn from_tokens(tokens: TokenStream) -> syn::Result<Self> {
        let mut args = Self {
            maxsize: Opt::new(MAXSIZE),
            ttl: Opt::new(TTL),
            idle: Opt::new(IDLE),
            jitter: Opt::new(JITTER),
            stale: Opt::new(STALE),
            refresh: Opt::new(REFRESH),
            beta: Opt::new(BETA),
            key: Opt::new(KEY),
            key_type: Opt::new(KEY_TYPE),
            cache_err: Opt::new(CACHE_ERR),
            cache_none: Opt::new(CACHE_NONE),
            store: Opt::new(STORE),
            codec: Opt::new(CODEC),
            lock: Opt::new(LOCK),
            version: Opt::new(VERSION),
            cache: Opt::new(CACHE),
            policy: Opt::new(POLICY),
            maxweight: Opt::new(MAXWEIGHT),
            weight: Opt::new(WEIGHT),
            ttl_from: Opt::new(TTL_FROM),
            on_evict: Opt::new(ON_EVICT),
            krate: Opt::new(CRATE),
        };
        let mut errors: Option<syn::Error> = None;
        syn::meta::parser(|meta| {
            if let Err(err) = args.parse_one(&meta) {
                // Skip the value of a rejected option so parsing can go on to the next one.
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<Expr>()?;
                }
                combine(&mut errors, err);
            }
            Ok(())
        })
        .parse2(tokens)?;
        match errors {
            Some(err) => Err(err),
            None => Ok(args),
        }
    }

    fn parse_one(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if path.is_ident(MAXSIZE) {
            let expr = value_of(meta, "maxsize = 1000")?;
            check_maxsize(&expr)?;
            self.maxsize.set(path, expr)
        } else if path.is_ident(TTL) {
            let expr = value_of(meta, "ttl = \"10s\"")?;
            let ttl = ttl_of(expr)?;
            self.ttl.set(path, ttl)
        } else if path.is_ident(IDLE) {
            let expr = value_of(meta, "idle = \"10m\"")?;
            let idle = ttl_of(expr).map_err(|err| retarget(err, "ttl", "idle"))?;
            self.idle.set(path, idle)
        } else if path.is_ident(JITTER) {
            let expr = value_of(meta, "jitter = 0.1")?;
            check_jitter(&expr)?;
            self.jitter.set(path, expr)
        } else if path.is_ident(STALE) {
            let expr = value_of(meta, "stale = \"30s\"")?;
            let written = expr.to_token_stream();
            let stale = ttl_of(expr).map_err(|err| retarget(err, "ttl", "stale"))?;
            self.stale.set_written(path, stale, &written)
        } else if path.is_ident(REFRESH) {
            refuse_refresh_flag(meta)?;
            let mode = choice_of(meta, "refresh mode", &["early"])?;
            self.refresh.set_written(path, mode.clone(), &mode)
        } else if path.is_ident(BETA) {
            let expr = value_of(meta, "beta = 1.0")?;
            check_beta(&expr)?;
            self.beta.set(path, expr)
        } else if path.is_ident(KEY) {
            let expr = value_of(meta, "key = id")?;
            self.key.set(path, expr)
        } else if path.is_ident(KEY_TYPE) {
            let ty = meta.value()?.parse::<Type>()?;
            self.key_type.set(path, ty)
        } else if path.is_ident(CACHE_ERR) {
            let flag = flag_of(meta)?;
            self.cache_err.set(path, flag)
        } else if path.is_ident(CACHE_NONE) {
            let flag = flag_of(meta)?;
            self.cache_none.set(path, flag)
        } else if path.is_ident(STORE) {
            let expr = value_of(meta, "store = disk")?;
            self.store.set_written(path, store_of(&expr)?, &expr)
        } else if path.is_ident(CODEC) {
            let codec = choice_of(meta, "codec", &["binary", "json"])?;
            self.codec.set(path, codec)
        } else if path.is_ident(LOCK) {
            let lock = choice_of(meta, "lock", &["single", "redlock"])?;
            self.lock.set(path, lock)
        } else if path.is_ident(CACHE) {
            let expr = value_of(meta, "cache = self.lookups")?;
            self.cache.set(path, expr)
        } else if path.is_ident(VERSION) {
            let version = version_of(meta)?;
            self.version.set(path, version)
        } else if path.is_ident(POLICY) {
            let policy = choice_of(meta, "policy", &["auto", "lru", "lfu", "fifo"])?;
            self.policy.set(path, policy)
        } else if path.is_ident(MAXWEIGHT) {
            let expr = value_of(meta, "maxweight = 1_000_000")?;
            check_maxweight(&expr)?;
            self.maxweight.set(path, expr)
        } else if path.is_ident(WEIGHT) {
            let expr = value_of(meta, "weight = |key, value| value.len()")?;
            self.weight.set(path, expr)
        } else if path.is_ident(TTL_FROM) {
            let expr = value_of(meta, "ttl_from = |value| value.max_age")?;
            self.ttl_from.set(path, expr)
        } else if path.is_ident(ON_EVICT) {
            let expr = value_of(meta, "on_evict = |key, value, cause| ...")?;
            self.on_evict.set(path, expr)
        } else if path.is_ident(CRATE) || path.is_ident("crate_path") {
            let krate = crate_of(meta)?;
            self.krate.set(path, krate)
        } else {
            Err(meta.error(unknown_option(path)))
        }
    }
}

fn combine(errors: &mut Option<syn::Error>, err: syn::Error) {
    match errors {
        Some(all) => all.combine(err),
        None => *errors = Some(err),
    }
}

/// A string naming one of `choices` (`what`: how an error calls the value).
fn choice_of(meta: &ParseNestedMeta<'_>, what: &str, choices: &[&str]) -> syn::Result<LitStr> {
    let name = meta.path.to_token_stream().to_string();
    let listed = choices
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>();
    let listed = match listed.as_slice() {
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
        [] => String::new(),
    };
    // Parsed as any expression first, so that a wrong kind of value is consumed and reported here.
    let value = match value_of(meta, &format!("{name} = \"{}\"", choices[0]))? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(value),
            ..
        }) => value,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format_args!("`{name}` expects {listed}: `{name} = \"{}\"`", choices[0]),
            ));
        }
    };
    if !choices.contains(&value.value().as_str()) {
        return Err(syn::Error::new_spanned(
            &value,
            format_args!("unknown {what} \"{}\"; expected {listed}", value.value()),
        ));
    }
    Ok(value)
}

/// `version = N`: an integer literal that fits in a `u64`.
fn version_of(meta: &ParseNestedMeta<'_>) -> syn::Result<u64> {
    match value_of(meta, "version = 2")? {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) if int.suffix().is_empty() => int.base10_parse::<u64>(),
        other => Err(syn::Error::new_spanned(
            other,
            "`version` expects an integer literal, e.g. `version = 2`",
        )),
    }
}

/// The value after `=`; a missing value gets an example of the option's form.
fn value_of(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<Expr> {
    if !meta.input.peek(syn::Token![=]) {
        let name = meta.path.to_token_stream();
        return Err(meta.error(format_args!("`{name}` needs a value, e.g. `{example}`")));
    }
    // A value a `macro_rules!` passes as `$v:expr` comes in an invisible group, which would hide
    // a literal (`ttl = $ttl` of `"10s"` was once taken for a `Duration` expression, a type
    // error) or an argument's name (`key = $k`): the whole value needs none.
    let mut value: Expr = meta.value()?.parse()?;
    while let Expr::Group(group) = value {
        value = *group.expr;
    }
    Ok(value)
}

/// `memory`, `disk`, or `disk("name")` with a name that makes a directory name.
fn store_of(expr: &Expr) -> syn::Result<StoreKind> {
    let named = |path: &Expr, name: &str| matches!(path, Expr::Path(p) if p.path.is_ident(name));
    match expr {
        _ if named(expr, "memory") => Ok(StoreKind::Memory),
        _ if named(expr, "disk") => Ok(StoreKind::Disk(None)),
        _ if named(expr, "redis") => Ok(StoreKind::Redis),
        _ if named(expr, "tiered") => Ok(StoreKind::Tiered),
        Expr::Call(call) if named(&call.func, "disk") => match call.args.first() {
            Some(Expr::Lit(ExprLit {
                lit: Lit::Str(name),
                ..
            })) if call.args.len() == 1 => {
                let text = name.value();
                if text.is_empty()
                    || text.starts_with('.')
                    || !text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(syn::Error::new_spanned(
                        name,
                        "a disk store's name is a directory name: ASCII letters, digits, `-`, `_` and `.`, not first",
                    ));
                }
                Ok(StoreKind::Disk(Some(name.clone())))
            }
            _ => Err(syn::Error::new_spanned(
                &call.args,
                "`disk(...)` takes the store's name as a string: `store = disk(\"pages\")`",
            )),
        },
        // `store = "tiered"`, as other crates spell their options: the name without quotes.
        Expr::Lit(ExprLit {
            lit: Lit::Str(name),
            ..
        }) if name
            .parse::<Expr>()
            .is_ok_and(|unquoted| store_of(&unquoted).is_ok()) =>
        {
            Err(syn::Error::new_spanned(
                name,
                format_args!(
                    "`store` expects a name without quotes: `store = {}`",
                    name.value()
                ),
            ))
        }
        _ => Err(syn::Error::new_spanned(
            expr,
            format_args!("unknown store; {STORES}"),
        )),
    }
}

/// `maxsize` literals are checked here; other expressions are evaluated at run time.
fn check_maxsize(expr: &Expr) -> syn::Result<()> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            if int.base10_parse::<u128>()? == 0 {
                return Err(syn::Error::new_spanned(
                    int,
                    "`maxsize = 0` would cache nothing; use at least 1, or omit `maxsize` for an unbounded cache",
                ));
            }
            Ok(())
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => Err(syn::Error::new_spanned(
            expr,
            "`maxsize` is a count of entries: it cannot be negative",
        )),
        Expr::Lit(ExprLit { lit, .. }) => Err(syn::Error::new_spanned(
            lit,
            "`maxsize` expects an integer count of entries, e.g. `maxsize = 1000`",
        )),
        _ => Ok(()),
    }
}

/// The value of a numeric literal (`0.1`, `2`, `-1.0`); `None` for any other expression.
fn literal_number(expr: &Expr) -> syn::Result<Option<f64>> {
    match expr {
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => Ok(literal_number(expr)?.map(|number| -number)),
        Expr::Lit(ExprLit {
            lit: Lit::Float(float),
            ..
        }) => float.base10_parse().map(Some),
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int.base10_parse().map(Some),
        _ => Ok(None),
    }
}

/// A literal `jitter` is a fraction of the time to live: above 0, at most 1.
fn check_jitter(expr: &Expr) -> syn::Result<()> {
    if let Expr::Lit(ExprLit {
        lit: lit @ (Lit::Str(_) | Lit::Bool(_) | Lit::Char(_)),
        ..
    }) = expr
    {
        return Err(syn::Error::new_spanned(
            lit,
            "`jitter` expects a fraction of the `ttl`, e.g. `jitter = 0.1` for ±10 %",
        ));
    }
    match literal_number(expr)? {
        Some(fraction) if fraction <= 0.0 || fraction > 1.0 => Err(syn::Error::new_spanned(
            expr,
            "`jitter` is a fraction of the `ttl` above 0 and at most 1, e.g. `jitter = 0.1` for ±10 %",
        )),
        _ => Ok(()),
    }
}

/// A literal `beta` must be positive.
fn check_beta(expr: &Expr) -> syn::Result<()> {
    match literal_number(expr)? {
        Some(beta) if beta <= 0.0 => Err(syn::Error::new_spanned(
            expr,
            "`beta` weighs early refresh and must be above 0 (1.0 is usual)",
        )),
        _ => Ok(()),
    }
}

/// The same duration rules for `stale` and `idle` as for `ttl`, with the option's own name in the
/// message.
fn retarget(err: syn::Error, from: &str, to: &str) -> syn::Error {
    let mut all: Option<syn::Error> = None;
    for e in err {
        let e = syn::Error::new(
            e.span(),
            e.to_string()
                .replace(&format!("`{from}"), &format!("`{to}"))
                .replace(&format!("a `{to}`"), &format!("{} `{to}`", article(to))),
        );
        match &mut all {
            Some(all) => all.combine(e),
            None => all = Some(e),
        }
    }
    all.unwrap_or_else(|| syn::Error::new(proc_macro2::Span::call_site(), "invalid duration"))
}

/// "a" or "an", before `word`.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn ttl_of(expr: Expr) -> syn::Result<Ttl> {
    match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => millis_of(text),
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => Err(bare_number(int)),
        Expr::Lit(ExprLit {
            lit: Lit::Float(float),
            ..
        }) => Err(syn::Error::new_spanned(
            float,
            "a `ttl` needs a unit: write it as text in whole units, such as `ttl = \"1500ms\"` or \
             `ttl = \"2s\"`, or as a `Duration`",
        )),
        Expr::Lit(ExprLit { lit, .. }) => Err(syn::Error::new_spanned(
            lit,
            "`ttl` expects a duration such as \"500ms\", \"10s\", \"5m\", \"1h\", or a `Duration` expression",
        )),
        _ => Ok(Ttl::Expr(expr)),
    }
}

fn millis_of(text: &LitStr) -> syn::Result<Ttl> {
    duration::parse_millis(&text.value())
        .map(|ms| Ttl::Millis(ms, text.span()))
        .map_err(|msg| syn::Error::new(text.span(), msg))
}

fn bare_number(int: &LitInt) -> syn::Error {
    syn::Error::new_spanned(
        int,
        format_args!(
            "a `ttl` needs a unit: write `ttl = \"{}s\"` for seconds (or \"ms\", \"m\", \"h\", \"d\"), or a `Duration`",
            int.base10_digits()
        ),
    )
}

/// cached's `refresh = true` (each hit renews the time to live) is `idle` in memo: say so at the
/// flag.
fn refuse_refresh_flag(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    let fork = meta.input.fork();
    if fork.parse::<syn::Token![=]>().is_err() || !fork.peek(LitBool) {
        return Ok(());
    }
    let flag: LitBool = meta.value()?.parse()?;
    Err(syn::Error::new_spanned(
        flag,
        "`refresh = \"early\"` refreshes entries before they expire; for what cached's \
         `refresh = true` does (each hit renews the time to live), write `idle = \"…\"` in place \
         of `ttl`",
    ))
}

/// `cache_err`, `cache_err = true` or `cache_err = false`.
fn flag_of(meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
    if !meta.input.peek(syn::Token![=]) {
        return Ok(true);
    }
    match meta.value()?.parse::<Expr>()? {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(LitBool { value, .. }),
            ..
        }) => Ok(value),
        other => {
            let name = meta.path.to_token_stream();
            Err(syn::Error::new_spanned(
                other,
                format_args!("`{name}` expects `true` or `false`"),
            ))
        }
    }
}

/// `crate = path::to::memo`.
fn crate_of(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return Err(syn::Error::new_spanned(
            &lit,
            format_args!(
                "`crate` expects a path without quotes: `crate = {}`",
                lit.value()
            ),
        ));
    }
    value.call(Path::parse_mod_style)
}

/// A literal `maxweight` must be a positive integer (`0` would cache nothing).
fn check_maxweight(expr: &Expr) -> syn::Result<()> {
    let literal = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => Some(int.base10_parse::<u64>()),
        Expr::Lit(ExprLit { lit, .. }) => {
            return Err(syn::Error::new_spanned(
                lit,
                "`maxweight` expects an integer: `maxweight = 1_000_000`",
            ));
        }
        _ => None,
    };
    match literal {
        Some(Ok(0)) => Err(syn::Error::new_spanned(
            expr,
            "`maxweight = 0` would cache nothing; remove `#[cached]` instead",
        )),
        Some(Err(err)) => Err(syn::Error::new_spanned(expr, err)),
        _ => Ok(()),
    }
}

/// The message for an option we do not know, with a hint where it is a known peer's spelling.
fn unknown_option(path: &Path) -> String {
    let name = path.to_token_stream().to_string().replace(' ', "");
    let hint = match name.as_str() {
        "max_size" => Some("`max_size` is spelled `maxsize` in memo"),
        "size" => Some("memo's bound on the number of entries is `maxsize = N` (cached's `size`)"),
        "capacity" | "max_capacity" | "max_entries" => Some(
            "memo's bound on the number of entries is `maxsize = N` (moka's `max_capacity`, \
             cached's `size`)",
        ),
        "ttl_secs" | "ttl_millis" | "time" | "time_to_live" | "expire" => Some(
            "write the time to live as `ttl = \"60s\"` (or \"500ms\", \"5m\", \"1h\") or `ttl = Duration::from_secs(60)`",
        ),
        "time_to_idle" | "tti" | "idle_ttl" | "expire_after_access" => {
            Some("an entry that lives while it is used is `idle = \"10m\"` in memo")
        }
        "result" => Some(
            "memo caches only `Ok` values by default; use `cache_err = true` to cache errors too",
        ),
        "option" => Some(
            "memo caches only `Some` values by default; use `cache_none = true` to cache `None` too",
        ),
        "convert" | "key_fn" => Some(
            "give the key as an expression over the arguments: `key = ...` (cached's `convert = …` \
             is `key = …` in memo, and its `key = \"T\"` is `key_type = T`)",
        ),
        "ty" | "type" => Some(
            "memo picks the cache's store and policy by options, in place of cached's cache type \
             `ty = \"…\"`: `maxsize = N`, `policy = \"lru\"`, `ttl = \"…\"`, `store = …`; \
             `key_type = T` gives only the type of `key = …`",
        ),
        "create" => Some(
            "memo builds the cache from options, in place of cached's `create = …`: `maxsize = N`, \
             `policy = \"lru\"`, `ttl = \"…\"`, `store = …` (or `cache = …` naming a \
             `memo::Cache` built with `memo::Cache::builder()`)",
        ),
        "key_ty" => Some("the key's type is given with `key_type = T`, beside `key = …`"),
        "disk" => Some(
            "cached's `disk = true` is `store = disk` in memo (or `store = disk(\"name\")` for a \
             directory of its own)",
        ),
        "redis" => Some(
            "cached's `redis = true` is `store = redis` in memo (or `store = tiered` to keep a \
             bounded copy in the process too)",
        ),
        "memory" | "tiered" | "in_memory" => {
            Some("where entries live is chosen with `store = memory`, `disk`, `redis` or `tiered`")
        }
        "unbound" => Some("omit `maxsize` for an unbounded cache"),
        "sync_writes" => {
            Some("memo always runs concurrent misses of one key once; there is nothing to set")
        }
        "expires" | "expire_after" | "expiry" | "ttl_of" => Some(
            "a time to live read from the value is `ttl_from = |value| ...` in memo, returning an \
             `Option<Duration>`, beside `ttl = ...` for the values it answers `None` for",
        ),
        "max_weight" => Some("`max_weight` is spelled `maxweight` in memo"),
        "max_bytes" => Some(
            "memo's bound on the total weight of the entries is `maxweight = N`, beside \
             `weight = |key, value| ...`",
        ),
        "weigher" | "getsizeof" => {
            Some("the weigher is `weight = |key, value| ...` in memo, beside `maxweight = N`")
        }
        "eviction_listener" | "on_evicted" | "on_remove" | "listener" => {
            Some("the eviction listener is `on_evict = |key, value, cause| ...` in memo")
        }
        "time_refresh" => Some(
            "an entry whose time to live each hit renews is `idle = \"10m\"` in memo (cached's \
             `time_refresh`), in place of `ttl`",
        ),
        "name" => Some(
            "memo names a function's cache after it: `fn_name_cache()` is its handle, and its \
             metrics are labelled with the function's path; there is nothing to name",
        ),
        "with_cached_flag" => Some(
            "memo returns the value alone, with no `Return<T>` wrapper: `f_cache().stats()` counts \
             the hits, and `f_cache().contains_key(..)` tells whether a key is cached",
        ),
        "in_impl" => {
            Some("not needed: `#[cached]` works on methods and associated functions as they are")
        }
        _ => None,
    };
    match (hint, nearest(&name)) {
        (Some(hint), _) => format!("unknown `cached` option `{name}`: {hint}"),
        (None, Some(near)) => format!("unknown `cached` option `{name}`: did you mean `{near}`?"),
        (None, None) => format!("unknown `cached` option `{name}`; {VALID}"),
    }
}

/// The option `name` is a slip of (at most two letters changed, added, removed or swapped),
/// if one is and no other as near.
fn nearest(name: &str) -> Option<&'static str> {
    let options = VALID.split('`').skip(1).step_by(2);
    let mut scored: Vec<(usize, &'static str)> = options
        .map(|option| (distance(name, option), option))
        .filter(|&(d, _)| d <= 2.min(name.len() / 2))
        .collect();
    scored.sort_unstable();
    match scored.as_slice() {
        [(d, option), rest @ ..] if rest.first().is_none_or(|(next, _)| next > d) => Some(option),
        _ => None,
    }
}

/// Letters changed, added, removed or swapped to turn `a` into `b` (Damerau–Levenshtein, the
/// optimal string alignment variant).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn a_slip_of_an_option_is_named() {
        assert_eq!(nearest("tll"), Some("ttl"));
        assert_eq!(nearest("maxsiez"), Some("maxsize"));
        assert_eq!(nearest("verison"), Some("version"));
        assert_eq!(nearest("stroe"), Some("store"));
        assert_eq!(nearest("keys"), Some("key"));
        assert_eq!(nearest("frobnicate"), None);
        assert_eq!(nearest("x"), None);
    }

    fn errors(tokens: TokenStream) -> Vec<String> {
        match Args::from_tokens(tokens) {
            Ok(_) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn parses_every_option() {
        let args = Args::from_tokens(quote!(
            maxsize = 10,
            ttl = "1h30m",
            key = (a, b),
            key_type = (u32, u32),
            cache_err,
            cache_none = false,
            crate = ::my::memo
        ))
        .unwrap();
        assert!(args.maxsize.get().is_some());
        assert!(matches!(args.ttl.get(), Some(Ttl::Millis(5_400_000, _))));
        assert_eq!(args.cache_err.get(), Some(&true));
        assert_eq!(args.cache_none.get(), Some(&false));
        assert!(
            args.key.get().is_some() && args.key_type.get().is_some() && args.krate.get().is_some()
        );
    }

    #[test]
    fn reports_all_mistakes_at_once() {
        let errs = errors(quote!(
            max_size = 10,
            ttl = 5,
            ttl = "1s",
            bogus = 1,
            maxsize = 0
        ));
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].contains("`max_size` is spelled `maxsize`"));
        assert!(errs[1].contains("ttl = \"5s\""));
        assert!(errs[2].contains("unknown `cached` option `bogus`; expected one of"));
        assert!(errs[3].contains("`maxsize = 0` would cache nothing"));
        assert_eq!(
            errors(quote!(ttl = "1s", ttl = "2s")),
            ["duplicate `ttl` option"]
        );
    }

    #[test]
    fn ttl_from_takes_a_closure_or_a_path_and_hints_at_its_peers_names() {
        let args = Args::from_tokens(quote!(ttl = "1m", ttl_from = |page| page.max_age)).unwrap();
        assert!(matches!(args.ttl_from.get(), Some(Expr::Closure(_))));
        let args = Args::from_tokens(quote!(ttl = "1m", ttl_from = Page::fresh_for)).unwrap();
        assert!(matches!(args.ttl_from.get(), Some(Expr::Path(_))));
        assert_eq!(
            errors(quote!(ttl_from = a, ttl_from = b)),
            ["duplicate `ttl_from` option"]
        );
        for peer in [quote!(expires = true), quote!(expire_after = f)] {
            let errs = errors(peer);
            assert!(
                errs[0].contains("is `ttl_from = |value| ...` in memo"),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn peers_options_name_what_was_written_and_memos_spelling() {
        for (peer, said) in [
            (
                quote!(capacity = 10),
                "`capacity`: memo's bound on the number of entries is `maxsize = N`",
            ),
            (
                quote!(size = 10),
                "`size`: memo's bound on the number of entries is `maxsize = N`",
            ),
            (
                quote!(max_capacity = 10),
                "`max_capacity`: memo's bound on the number of entries is `maxsize = N`",
            ),
            (
                quote!(max_size = 10),
                "`max_size`: `max_size` is spelled `maxsize` in memo",
            ),
            (
                quote!(ty = "SizedCache<u32, u32>"),
                "`ty`: memo picks the cache's store and policy by options",
            ),
            (
                quote!(create = r"{ SizedCache::with_size(1) }"),
                "`create`: memo builds the cache from options",
            ),
            (
                quote!(disk = true),
                "`disk`: cached's `disk = true` is `store = disk` in memo",
            ),
            (
                quote!(redis = true),
                "`redis`: cached's `redis = true` is `store = redis` in memo",
            ),
            (
                quote!(time_refresh = true),
                "`time_refresh`: an entry whose time to live each hit renews is `idle",
            ),
            (
                quote!(name = "FIB"),
                "`name`: memo names a function's cache after it: `fn_name_cache()`",
            ),
            (
                quote!(with_cached_flag = true),
                "`with_cached_flag`: memo returns the value alone",
            ),
        ] {
            let errs = errors(peer);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].starts_with(&format!("unknown `cached` option {said}")),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn a_quoted_store_name_is_told_to_drop_its_quotes() {
        assert_eq!(
            errors(quote!(store = "tiered")),
            ["`store` expects a name without quotes: `store = tiered`"]
        );
        assert_eq!(
            errors(quote!(store = "disk(\"pages\")")),
            ["`store` expects a name without quotes: `store = disk(\"pages\")`"]
        );
        assert!(errors(quote!(store = "postgres"))[0].starts_with("unknown store; expected"));
    }

    #[test]
    fn ttl_expressions_pass_through() {
        let args = Args::from_tokens(quote!(ttl = Duration::from_secs(60))).unwrap();
        assert!(matches!(args.ttl.get(), Some(Ttl::Expr(_))));
    }
}
