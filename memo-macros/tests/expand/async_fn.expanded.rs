async fn fetch(url: &str) -> Result<String, Error> {
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::cache(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "fetch", "#", 0),
            ::memo::__private::scope(&|| ()),
            ::memo::__private::preset::<0usize, 3600000u64>,
        )
    };
    match ::memo::__private::hit_or_miss(__memo_cache, url) {
        ::memo::__private::Ok(__memo_value) => ::memo::__private::Ok(__memo_value),
        ::memo::__private::Err(__memo_miss) => {
            __memo_miss
                .compute_fallible_async(
                    ::memo::__private::returns::<
                        Result<String, Error>,
                        _,
                    >(async move {
                        let body = client().get(url).await?;
                        Ok(body)
                    }),
                    {
                        use ::memo::__private::{ShareClone as _, ShareNone as _};
                        (&&::memo::__private::Sharing::<Result<String, Error>>::new())
                            .share()
                    },
                )
                .await
        }
    }
}
/** The cache behind `fetch`: statistics, length, invalidation, clearing.

 Its key is `::std::string::String`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn fetch_cache() -> &'static ::memo::__private::Cache<
    ::std::string::String,
    <Result<String, Error> as ::memo::__private::Fallible>::Ok,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "fetch", "#", 0),
        ::memo::__private::scope(&|| ()),
        ::memo::__private::preset::<0usize, 3600000u64>,
    )
}
