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
            ::memo::__private::preset::<0usize, 300000u64>,
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
    match ::memo::__private::hit_or_miss_async_in(__memo_cache, &id).await {
        ::memo::__private::Ok(__memo_value) => __memo_value,
        ::memo::__private::Err(__memo_miss) => {
            __memo_miss
                .compute_async(
                    ::memo::__private::returns::<
                        Option<String>,
                        _,
                    >(async move { load(id).await }),
                    {
                        use ::memo::__private::{
                            KeepAny as _, KeepOption as _, KeepResult as _,
                        };
                        (&&&::memo::__private::Outcome::<Option<String>>::new())
                            .keep(false, false)
                    },
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
        ::memo::__private::preset::<0usize, 300000u64>,
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
