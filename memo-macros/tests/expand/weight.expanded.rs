pub fn page(url: &str) -> String {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    #[cfg(not(debug_assertions))]
    {
        let __memo_hash = match {
            use ::memo::__private::{QuickHit as _, QuickNone as _};
            (&::memo::__private::Quick(url, ::memo::__private::PhantomData::<String>))
                .quick_hit(&__MEMO_CELL)
        } {
            ::memo::__private::Ok(__memo_value) => return __memo_value,
            ::memo::__private::Err(__memo_hash) => __memo_hash,
        };
        ::memo::__private::out_of_line(
            __memo_hash,
            move |__memo_hash| {
                let __memo_cache = ::memo::__private::cache_with(
                    &__MEMO_CELL,
                    ::core::concat!(::core::module_path!(), "::", "page", "#", 0),
                    ::memo::__private::scope(&|| ()),
                    || ::memo::__private::Config::new().max_weight(1_000_000),
                    |
                        __memo_store: ::memo::__private::MemoryStore<
                            ::std::string::String,
                            String,
                        >|
                    {
                        __memo_store
                            .weigher(|
                                __memo_key: &::std::string::String,
                                __memo_value: &String|
                            {
                                ::memo::__private::weigh(
                                    |_url, page| page.len(),
                                    __memo_key,
                                    __memo_value,
                                )
                            })
                            .eviction_listener(log_eviction)
                    },
                );
                let mut __memo_owned_key = ::memo::__private::None;
                let mut __memo_lead_place = ::memo::__private::LeadPlace::NEW;
                match ::memo::__private::hit_or_lead(
                    (
                        __memo_cache,
                        {
                            use ::memo::__private::{
                                KeepAny as _, KeepOption as _, KeepResult as _,
                            };
                            (&&&::memo::__private::Outcome::<String>::new())
                                .keep(false, false)
                        },
                    ),
                    url,
                    __memo_hash,
                    (&mut __memo_owned_key, &mut __memo_lead_place),
                ) {
                    ::memo::__private::Ok(__memo_value) => __memo_value,
                    ::memo::__private::Err(__memo_lead) => {
                        __memo_lead.finish((move || -> String { url.to_string() })())
                    }
                }
            },
        )
    }
    #[cfg(debug_assertions)]
    {
        let __memo_cache = ::memo::__private::cache_with(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "page", "#", 0),
            ::memo::__private::scope(&|| ()),
            || ::memo::__private::Config::new().max_weight(1_000_000),
            |
                __memo_store: ::memo::__private::MemoryStore<
                    ::std::string::String,
                    String,
                >|
            {
                __memo_store
                    .weigher(|__memo_key: &::std::string::String, __memo_value: &String| {
                        ::memo::__private::weigh(
                            |_url, page| page.len(),
                            __memo_key,
                            __memo_value,
                        )
                    })
                    .eviction_listener(log_eviction)
            },
        );
        let mut __memo_owned_key = ::memo::__private::None;
        let mut __memo_lead_place = ::memo::__private::LeadPlace::NEW;
        match ::memo::__private::hit_or_lead(
            (
                __memo_cache,
                {
                    use ::memo::__private::{
                        KeepAny as _, KeepOption as _, KeepResult as _,
                    };
                    (&&&::memo::__private::Outcome::<String>::new()).keep(false, false)
                },
            ),
            url,
            ::memo::__private::UNHASHED,
            (&mut __memo_owned_key, &mut __memo_lead_place),
        ) {
            ::memo::__private::Ok(__memo_value) => __memo_value,
            ::memo::__private::Err(__memo_lead) => {
                __memo_lead.finish((move || -> String { url.to_string() })())
            }
        }
    }
}
/** The cache behind `page`: statistics, length, invalidation, clearing.

 Its key is `::std::string::String`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
pub fn page_cache() -> &'static ::memo::__private::Cache<::std::string::String, String> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache_with(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "page", "#", 0),
        ::memo::__private::scope(&|| ()),
        || ::memo::__private::Config::new().max_weight(1_000_000),
        |__memo_store: ::memo::__private::MemoryStore<::std::string::String, String>| {
            __memo_store
                .weigher(|__memo_key: &::std::string::String, __memo_value: &String| {
                    ::memo::__private::weigh(
                        |_url, page| page.len(),
                        __memo_key,
                        __memo_value,
                    )
                })
                .eviction_listener(log_eviction)
        },
    )
}
