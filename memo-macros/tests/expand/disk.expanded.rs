pub fn fetch(url: &str) -> Result<String, String> {
    ::memo::__private::require_disk!();
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::store_cache::<
            _,
            _,
            ::memo::__private::DiskStore<_, _>,
        >(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "fetch", "#", 0),
            ::memo::__private::scope(&|| ()),
            ::memo::__private::preset::<0usize, 900000u64>,
            ::memo::__private::Remote {
                store: "pages",
                json: true,
                shape: {
                    use ::memo::__private::{Shaped as _, Unshaped as _};
                    (&::memo::__private::Shape::<
                        ::std::string::String,
                        <Result<String, String> as ::memo::__private::Fallible>::Ok,
                    >::NEW)
                        .fingerprint()
                },
                version: {
                    const VERSION: u64 = ::memo::__private::crate_version(
                        8233952582334220172,
                        ::core::option_env!("CARGO_PKG_VERSION"),
                        ::core::option_env!("CARGO_BIN_NAME"),
                    );
                    VERSION
                },
                redlock: false,
                equal: {
                    use ::memo::__private::{Comparable as _, Incomparable as _};
                    (&::memo::__private::Compare::<
                        <Result<String, String> as ::memo::__private::Fallible>::Ok,
                    >::NEW)
                        .equal()
                },
            },
            ::core::convert::identity,
        )
    };
    match ::memo::__private::lead_fallible(
        ::memo::__private::hit_or_miss_in(__memo_cache, url),
        {
            use ::memo::__private::{ShareClone as _, ShareNone as _};
            (&&::memo::__private::Sharing::<Result<String, String>>::new()).share()
        },
    ) {
        ::memo::__private::Ok(__memo_result) => __memo_result,
        ::memo::__private::Err(__memo_lead) => {
            __memo_lead
                .finish((move || -> Result<String, String> { Ok(url.to_string()) })())
        }
    }
}
/** The cache behind `fetch`: statistics, length, invalidation, clearing.

 Its key is `::std::string::String`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
pub fn fetch_cache() -> &'static ::memo::__private::Cache<
    ::std::string::String,
    <Result<String, String> as ::memo::__private::Fallible>::Ok,
    ::memo::__private::DiskStore<
        ::std::string::String,
        <Result<String, String> as ::memo::__private::Fallible>::Ok,
    >,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::store_cache::<
        _,
        _,
        ::memo::__private::DiskStore<_, _>,
    >(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "fetch", "#", 0),
        ::memo::__private::scope(&|| ()),
        ::memo::__private::preset::<0usize, 900000u64>,
        ::memo::__private::Remote {
            store: "pages",
            json: true,
            shape: {
                use ::memo::__private::{Shaped as _, Unshaped as _};
                (&::memo::__private::Shape::<
                    ::std::string::String,
                    <Result<String, String> as ::memo::__private::Fallible>::Ok,
                >::NEW)
                    .fingerprint()
            },
            version: {
                const VERSION: u64 = ::memo::__private::crate_version(
                    8233952582334220172,
                    ::core::option_env!("CARGO_PKG_VERSION"),
                    ::core::option_env!("CARGO_BIN_NAME"),
                );
                VERSION
            },
            redlock: false,
            equal: {
                use ::memo::__private::{Comparable as _, Incomparable as _};
                (&::memo::__private::Compare::<
                    <Result<String, String> as ::memo::__private::Fallible>::Ok,
                >::NEW)
                    .equal()
            },
        },
        ::core::convert::identity,
    )
}
