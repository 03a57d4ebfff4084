async fn profile(id: u64) -> Option<String> {
    ::memo::__private::require_redis!();
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::store_cache::<
            _,
            _,
            ::memo::__private::RedisStore<_, _>,
        >(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "profile", "#", 0),
            ::memo::__private::scope(&|| ()),
            || {
                ::memo::__private::Config::new()
                    .ttl(::memo::__private::Duration::from_millis(300000u64))
                    .stale(::memo::__private::Duration::from_millis(60000u64))
            },
            ::memo::__private::Remote {
                store: "default",
                json: true,
                shape: {
                    use ::memo::__private::{Shaped as _, Unshaped as _};
                    (&::memo::__private::Shape::<u64, Option<String>>::NEW).fingerprint()
                },
                version: {
                    const VERSION: u64 = ::memo::__private::crate_version(
                        3608934007119226424,
                        ::core::option_env!("CARGO_PKG_VERSION"),
                        ::core::option_env!("CARGO_BIN_NAME"),
                    );
                    VERSION
                },
                redlock: false,
                equal: {
                    use ::memo::__private::{Comparable as _, Incomparable as _};
                    (&::memo::__private::Compare::<Option<String>>::NEW).equal()
                },
            },
            ::core::convert::identity,
        )
    };
    ::memo::__private::require_tokio!();
    #[allow(unused_variables, unused_mut, unused_braces, clippy::needless_pass_by_value)]
    let __memo_refresh: fn(
        u64,
    ) -> ::memo::__private::BoxFuture<::memo::__private::Option<Option<String>>> = |
        __memo_key: u64,
    | -> ::memo::__private::BoxFuture<::memo::__private::Option<Option<String>>> {
        ::std::boxed::Box::pin(async move {
            ::memo::__private::Some(
                ::memo::__private::returns::<
                    Option<String>,
                    _,
                >(async move {
                        let __memo_part0 = __memo_key;
                        let id: u64 = __memo_part0;
                        { load(id).await }
                    })
                    .await,
            )
        })
    };
    let __memo_keep = {
        use ::memo::__private::{KeepAny as _, KeepOption as _, KeepResult as _};
        (&&&::memo::__private::Outcome::<Option<String>>::new()).keep(false, false)
    };
    match ::memo::__private::hit_or_renew_async_in(
            __memo_cache,
            &id,
            __memo_refresh,
            __memo_keep,
        )
        .await
    {
        ::memo::__private::Ok(__memo_value) => __memo_value,
        ::memo::__private::Err(__memo_miss) => {
            __memo_miss
                .compute_async(
                    ::memo::__private::returns::<
                        Option<String>,
                        _,
                    >(async move { load(id).await }),
                    __memo_keep,
                )
                .await
        }
    }
}
/** The cache behind `profile`: statistics, length, invalidation, clearing.

 Its key is `u64`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn profile_cache() -> &'static ::memo::__private::Cache<
    u64,
    Option<String>,
    ::memo::__private::RedisStore<u64, Option<String>>,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::store_cache::<
        _,
        _,
        ::memo::__private::RedisStore<_, _>,
    >(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "profile", "#", 0),
        ::memo::__private::scope(&|| ()),
        || {
            ::memo::__private::Config::new()
                .ttl(::memo::__private::Duration::from_millis(300000u64))
                .stale(::memo::__private::Duration::from_millis(60000u64))
        },
        ::memo::__private::Remote {
            store: "default",
            json: true,
            shape: {
                use ::memo::__private::{Shaped as _, Unshaped as _};
                (&::memo::__private::Shape::<u64, Option<String>>::NEW).fingerprint()
            },
            version: {
                const VERSION: u64 = ::memo::__private::crate_version(
                    3608934007119226424,
                    ::core::option_env!("CARGO_PKG_VERSION"),
                    ::core::option_env!("CARGO_BIN_NAME"),
                );
                VERSION
            },
            redlock: false,
            equal: {
                use ::memo::__private::{Comparable as _, Incomparable as _};
                (&::memo::__private::Compare::<Option<String>>::NEW).equal()
            },
        },
        ::core::convert::identity,
    )
}
