/// An `io::Result` with background refresh: the cache and the refresh hold the `Ok` type alone.
async fn read(path: &str) -> io::Result<String> {
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::cache(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "read", "#", 0),
            ::memo::__private::scope(&|| ()),
            || {
                ::memo::__private::Config::new()
                    .ttl(::memo::__private::Duration::from_millis(60000u64))
                    .stale(::memo::__private::Duration::from_millis(10000u64))
            },
        )
    };
    ::memo::__private::require_tokio!();
    #[allow(unused_variables, unused_mut, unused_braces, clippy::needless_pass_by_value)]
    let __memo_refresh: fn(
        ::std::string::String,
    ) -> ::memo::__private::BoxFuture<
        ::memo::__private::Option<
            <io::Result<String> as ::memo::__private::Fallible>::Ok,
        >,
    > = |
        __memo_key: ::std::string::String,
    | -> ::memo::__private::BoxFuture<
        ::memo::__private::Option<
            <io::Result<String> as ::memo::__private::Fallible>::Ok,
        >,
    > {
        ::std::boxed::Box::pin(async move {
            ::memo::__private::returns::<
                io::Result<String>,
                _,
            >(async move {
                    let __memo_part0 = __memo_key;
                    let path: &str = &__memo_part0;
                    { Ok(path.to_uppercase()) }
                })
                .await
                .ok()
        })
    };
    let __memo_keep = ::memo::__private::always;
    match ::memo::__private::hit_or_renew_async(
        __memo_cache,
        path,
        __memo_refresh,
        __memo_keep,
    ) {
        ::memo::__private::Ok(__memo_value) => ::memo::__private::Ok(__memo_value),
        ::memo::__private::Err(__memo_miss) => {
            __memo_miss
                .compute_fallible_async(
                    ::memo::__private::returns::<
                        io::Result<String>,
                        _,
                    >(async move { Ok(path.to_uppercase()) }),
                    {
                        use ::memo::__private::{ShareClone as _, ShareNone as _};
                        (&&::memo::__private::Sharing::<io::Result<String>>::new())
                            .share()
                    },
                )
                .await
        }
    }
}
/** The cache behind `read`: statistics, length, invalidation, clearing.

 Its key is `::std::string::String`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn read_cache() -> &'static ::memo::__private::Cache<
    ::std::string::String,
    <io::Result<String> as ::memo::__private::Fallible>::Ok,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "read", "#", 0),
        ::memo::__private::scope(&|| ()),
        || {
            ::memo::__private::Config::new()
                .ttl(::memo::__private::Duration::from_millis(60000u64))
                .stale(::memo::__private::Duration::from_millis(10000u64))
        },
    )
}
