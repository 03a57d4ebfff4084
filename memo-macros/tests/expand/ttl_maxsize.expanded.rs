/// Calls a slow API.
fn api_call(endpoint: &str, page: u32) -> Result<String, std::io::Error> {
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::cache(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "api_call", "#", 0),
            ::memo::__private::scope(&|| ()),
            ::memo::__private::preset::<100usize, 10000u64>,
        )
    };
    match ::memo::__private::lead_fallible(
        ::memo::__private::hit_or_miss(__memo_cache, (endpoint, &page)),
        {
            use ::memo::__private::{ShareClone as _, ShareNone as _};
            (&&::memo::__private::Sharing::<Result<String, std::io::Error>>::new())
                .share()
        },
    ) {
        ::memo::__private::Ok(__memo_result) => __memo_result,
        ::memo::__private::Err(__memo_lead) => {
            __memo_lead
                .finish(
                    (move || -> Result<String, std::io::Error> {
                        Ok(format!("{endpoint}?page={page}"))
                    })(),
                )
        }
    }
}
/** The cache behind `api_call`: statistics, length, invalidation, clearing.

 Its key is `(::std::string::String, u32)`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn api_call_cache() -> &'static ::memo::__private::Cache<
    (::std::string::String, u32),
    <Result<String, std::io::Error> as ::memo::__private::Fallible>::Ok,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "api_call", "#", 0),
        ::memo::__private::scope(&|| ()),
        ::memo::__private::preset::<100usize, 10000u64>,
    )
}
