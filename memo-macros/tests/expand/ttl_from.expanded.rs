/// A value read from the network: how long it may be kept comes with it.
fn fetch(url: &str) -> Page {
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::cache_with(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "fetch", "#", 0),
            ::memo::__private::scope(&|| ()),
            ::memo::__private::preset::<0usize, 600000u64>,
            |__memo_store: ::memo::__private::MemoryStore<::std::string::String, Page>| {
                __memo_store
                    .ttl_from(|__memo_value: &Page| ::memo::__private::ttl_of(
                        |page: &Page| page.max_age,
                        __memo_value,
                    ))
            },
        )
    };
    match ::memo::__private::lead(
        ::memo::__private::hit_or_miss(__memo_cache, url),
        {
            use ::memo::__private::{KeepAny as _, KeepOption as _, KeepResult as _};
            (&&&::memo::__private::Outcome::<Page>::new()).keep(false, false)
        },
    ) {
        ::memo::__private::Ok(__memo_value) => __memo_value,
        ::memo::__private::Err(__memo_lead) => {
            __memo_lead.finish((move || -> Page { get(url) })())
        }
    }
}
/** The cache behind `fetch`: statistics, length, invalidation, clearing.

 Its key is `::std::string::String`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn fetch_cache() -> &'static ::memo::__private::Cache<::std::string::String, Page> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache_with(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "fetch", "#", 0),
        ::memo::__private::scope(&|| ()),
        ::memo::__private::preset::<0usize, 600000u64>,
        |__memo_store: ::memo::__private::MemoryStore<::std::string::String, Page>| {
            __memo_store
                .ttl_from(|__memo_value: &Page| ::memo::__private::ttl_of(
                    |page: &Page| page.max_age,
                    __memo_value,
                ))
        },
    )
}
/// On disk, over the `Ok` value of a `Result`, with a `fn` path.
fn login(user: u32) -> Result<Token, Error> {
    ::memo::__private::require_disk!();
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::store_cache::<
            _,
            _,
            ::memo::__private::DiskStore<_, _>,
        >(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "login", "#", 0),
            ::memo::__private::scope(&|| ()),
            ::memo::__private::preset::<0usize, 3600000u64>,
            ::memo::__private::Remote {
                store: "default",
                json: false,
                shape: {
                    use ::memo::__private::{Shaped as _, Unshaped as _};
                    (&::memo::__private::Shape::<
                        u32,
                        <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
                    >::NEW)
                        .fingerprint()
                },
                version: {
                    const VERSION: u64 = ::memo::__private::crate_version(
                        1402973631336810410,
                        ::core::option_env!("CARGO_PKG_VERSION"),
                        ::core::option_env!("CARGO_BIN_NAME"),
                    );
                    VERSION
                },
                redlock: false,
                equal: {
                    use ::memo::__private::{Comparable as _, Incomparable as _};
                    (&::memo::__private::Compare::<
                        <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
                    >::NEW)
                        .equal()
                },
            },
            |
                __memo_store: ::memo::__private::DiskStore<
                    u32,
                    <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
                >|
            {
                __memo_store
                    .ttl_from(|
                        __memo_value: &<Result<
                            Token,
                            Error,
                        > as ::memo::__private::Fallible>::Ok|
                    ::memo::__private::ttl_of(token_ttl, __memo_value))
            },
        )
    };
    match ::memo::__private::lead_fallible(
        ::memo::__private::hit_or_miss_in(__memo_cache, &user),
        {
            use ::memo::__private::{ShareClone as _, ShareNone as _};
            (&&::memo::__private::Sharing::<Result<Token, Error>>::new()).share()
        },
    ) {
        ::memo::__private::Ok(__memo_result) => __memo_result,
        ::memo::__private::Err(__memo_lead) => {
            __memo_lead.finish((move || -> Result<Token, Error> { sign_in(user) })())
        }
    }
}
/** The cache behind `login`: statistics, length, invalidation, clearing.

 Its key is `u32`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn login_cache() -> &'static ::memo::__private::Cache<
    u32,
    <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
    ::memo::__private::DiskStore<
        u32,
        <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
    >,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::store_cache::<
        _,
        _,
        ::memo::__private::DiskStore<_, _>,
    >(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "login", "#", 0),
        ::memo::__private::scope(&|| ()),
        ::memo::__private::preset::<0usize, 3600000u64>,
        ::memo::__private::Remote {
            store: "default",
            json: false,
            shape: {
                use ::memo::__private::{Shaped as _, Unshaped as _};
                (&::memo::__private::Shape::<
                    u32,
                    <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
                >::NEW)
                    .fingerprint()
            },
            version: {
                const VERSION: u64 = ::memo::__private::crate_version(
                    1402973631336810410,
                    ::core::option_env!("CARGO_PKG_VERSION"),
                    ::core::option_env!("CARGO_BIN_NAME"),
                );
                VERSION
            },
            redlock: false,
            equal: {
                use ::memo::__private::{Comparable as _, Incomparable as _};
                (&::memo::__private::Compare::<
                    <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
                >::NEW)
                    .equal()
            },
        },
        |
            __memo_store: ::memo::__private::DiskStore<
                u32,
                <Result<Token, Error> as ::memo::__private::Fallible>::Ok,
            >|
        {
            __memo_store
                .ttl_from(|
                    __memo_value: &<Result<
                        Token,
                        Error,
                    > as ::memo::__private::Fallible>::Ok|
                ::memo::__private::ttl_of(token_ttl, __memo_value))
        },
    )
}
