pub fn word_count(text: &str) -> usize {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    #[cfg(not(debug_assertions))]
    {
        let __memo_hash = match {
            use ::memo::__private::{QuickHit as _, QuickNone as _};
            (&::memo::__private::Quick(text, ::memo::__private::PhantomData::<usize>))
                .quick_hit(&__MEMO_CELL)
        } {
            ::memo::__private::Ok(__memo_value) => return __memo_value,
            ::memo::__private::Err(__memo_hash) => __memo_hash,
        };
        ::memo::__private::out_of_line(
            __memo_hash,
            move |__memo_hash| {
                let __memo_cache = ::memo::__private::cache(
                    &__MEMO_CELL,
                    ::core::concat!(::core::module_path!(), "::", "word_count", "#", 0),
                    ::memo::__private::scope(&|| ()),
                    ::memo::__private::preset::<0usize, 0u64>,
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
                            (&&&::memo::__private::Outcome::<usize>::new())
                                .keep(false, false)
                        },
                    ),
                    text,
                    __memo_hash,
                    (&mut __memo_owned_key, &mut __memo_lead_place),
                ) {
                    ::memo::__private::Ok(__memo_value) => __memo_value,
                    ::memo::__private::Err(__memo_lead) => {
                        __memo_lead
                            .finish(
                                (move || -> usize { text.split_whitespace().count() })(),
                            )
                    }
                }
            },
        )
    }
    #[cfg(debug_assertions)]
    {
        let __memo_cache = ::memo::__private::cache(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "word_count", "#", 0),
            ::memo::__private::scope(&|| ()),
            ::memo::__private::preset::<0usize, 0u64>,
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
                    (&&&::memo::__private::Outcome::<usize>::new()).keep(false, false)
                },
            ),
            text,
            ::memo::__private::UNHASHED,
            (&mut __memo_owned_key, &mut __memo_lead_place),
        ) {
            ::memo::__private::Ok(__memo_value) => __memo_value,
            ::memo::__private::Err(__memo_lead) => {
                __memo_lead
                    .finish((move || -> usize { text.split_whitespace().count() })())
            }
        }
    }
}
/** The cache behind `word_count`: statistics, length, invalidation, clearing.

 Its key is `::std::string::String`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
pub fn word_count_cache() -> &'static ::memo::__private::Cache<
    ::std::string::String,
    usize,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "word_count", "#", 0),
        ::memo::__private::scope(&|| ()),
        ::memo::__private::preset::<0usize, 0u64>,
    )
}
