fn rate(currency: &str) -> f64 {
    ::memo::__private::require_disk!();
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::store_cache::<
            _,
            _,
            ::memo::__private::DiskStore<_, _>,
        >(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "rate", "#", 0),
            ::memo::__private::scope(&|| ()),
            || {
                ::memo::__private::Config::new()
                    .ttl(::memo::__private::Duration::from_millis(600000u64))
                    .refresh_early(1.0)
            },
            ::memo::__private::Remote {
                store: "rates",
                json: false,
                shape: {
                    use ::memo::__private::{Shaped as _, Unshaped as _};
                    (&::memo::__private::Shape::<::std::string::String, f64>::NEW)
                        .fingerprint()
                },
                version: {
                    const VERSION: u64 = ::memo::__private::crate_version(
                        12352974949683488221,
                        ::core::option_env!("CARGO_PKG_VERSION"),
                        ::core::option_env!("CARGO_BIN_NAME"),
                    );
                    VERSION
                },
                redlock: false,
                equal: {
                    use ::memo::__private::{Comparable as _, Incomparable as _};
                    (&::memo::__private::Compare::<f64>::NEW).equal()
                },
            },
            ::core::convert::identity,
        )
    };
    #[allow(unused_variables, unused_mut, unused_braces, clippy::needless_pass_by_value)]
    let __memo_refresh: fn(::std::string::String) -> ::memo::__private::Option<f64> = |
        __memo_key: ::std::string::String,
    | -> ::memo::__private::Option<f64> {
        ::memo::__private::Some(
            (move || -> f64 {
                let __memo_part0 = __memo_key;
                let currency: &str = &__memo_part0;
                { lookup(currency) }
            })(),
        )
    };
    let __memo_keep = {
        use ::memo::__private::{KeepAny as _, KeepOption as _, KeepResult as _};
        (&&&::memo::__private::Outcome::<f64>::new()).keep(false, false)
    };
    match ::memo::__private::lead(
        ::memo::__private::hit_or_renew(
            __memo_cache,
            currency,
            __memo_refresh,
            __memo_keep,
        ),
        __memo_keep,
    ) {
        ::memo::__private::Ok(__memo_value) => __memo_value,
        ::memo::__private::Err(__memo_lead) => {
            __memo_lead.finish((move || -> f64 { lookup(currency) })())
        }
    }
}
/** The cache behind `rate`: statistics, length, invalidation, clearing.

 Its key is `::std::string::String`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn rate_cache() -> &'static ::memo::__private::Cache<
    ::std::string::String,
    f64,
    ::memo::__private::DiskStore<::std::string::String, f64>,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::store_cache::<
        _,
        _,
        ::memo::__private::DiskStore<_, _>,
    >(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "rate", "#", 0),
        ::memo::__private::scope(&|| ()),
        || {
            ::memo::__private::Config::new()
                .ttl(::memo::__private::Duration::from_millis(600000u64))
                .refresh_early(1.0)
        },
        ::memo::__private::Remote {
            store: "rates",
            json: false,
            shape: {
                use ::memo::__private::{Shaped as _, Unshaped as _};
                (&::memo::__private::Shape::<::std::string::String, f64>::NEW)
                    .fingerprint()
            },
            version: {
                const VERSION: u64 = ::memo::__private::crate_version(
                    12352974949683488221,
                    ::core::option_env!("CARGO_PKG_VERSION"),
                    ::core::option_env!("CARGO_BIN_NAME"),
                );
                VERSION
            },
            redlock: false,
            equal: {
                use ::memo::__private::{Comparable as _, Incomparable as _};
                (&::memo::__private::Compare::<f64>::NEW).equal()
            },
        },
        ::core::convert::identity,
    )
}
