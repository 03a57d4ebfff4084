fn sum(a: &[u64], b: u64, log: &mut Vec<String>) -> u64 {
    static __MEMO_CELL: ::reexport::memo::__private::CacheCell = ::reexport::memo::__private::CacheCell::new();
    #[cfg(not(debug_assertions))]
    {
        let __memo_hash = match {
            use ::reexport::memo::__private::{QuickHit as _, QuickNone as _};
            (&::reexport::memo::__private::Quick(
                (a, &b),
                ::reexport::memo::__private::PhantomData::<u64>,
            ))
                .quick_hit(&__MEMO_CELL)
        } {
            ::reexport::memo::__private::Ok(__memo_value) => return __memo_value,
            ::reexport::memo::__private::Err(__memo_hash) => __memo_hash,
        };
        ::reexport::memo::__private::out_of_line(
            __memo_hash,
            move |__memo_hash| {
                let __memo_cache = ::reexport::memo::__private::cache(
                    &__MEMO_CELL,
                    ::core::concat!(::core::module_path!(), "::", "sum", "#", 0),
                    ::reexport::memo::__private::scope(&|| ()),
                    ::reexport::memo::__private::preset::<0usize, 0u64>,
                );
                let mut __memo_owned_key = ::reexport::memo::__private::None;
                let mut __memo_lead_place = ::reexport::memo::__private::LeadPlace::NEW;
                match ::reexport::memo::__private::hit_or_lead(
                    (
                        __memo_cache,
                        {
                            use ::reexport::memo::__private::{
                                KeepAny as _, KeepOption as _, KeepResult as _,
                            };
                            (&&&::reexport::memo::__private::Outcome::<u64>::new())
                                .keep(false, false)
                        },
                    ),
                    (a, &b),
                    __memo_hash,
                    (&mut __memo_owned_key, &mut __memo_lead_place),
                ) {
                    ::reexport::memo::__private::Ok(__memo_value) => __memo_value,
                    ::reexport::memo::__private::Err(__memo_lead) => {
                        __memo_lead
                            .finish(
                                (move || -> u64 {
                                    log.push("computed".into());
                                    a.iter().sum::<u64>() + b
                                })(),
                            )
                    }
                }
            },
        )
    }
    #[cfg(debug_assertions)]
    {
        let __memo_cache = ::reexport::memo::__private::cache(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "sum", "#", 0),
            ::reexport::memo::__private::scope(&|| ()),
            ::reexport::memo::__private::preset::<0usize, 0u64>,
        );
        let mut __memo_owned_key = ::reexport::memo::__private::None;
        let mut __memo_lead_place = ::reexport::memo::__private::LeadPlace::NEW;
        match ::reexport::memo::__private::hit_or_lead(
            (
                __memo_cache,
                {
                    use ::reexport::memo::__private::{
                        KeepAny as _, KeepOption as _, KeepResult as _,
                    };
                    (&&&::reexport::memo::__private::Outcome::<u64>::new())
                        .keep(false, false)
                },
            ),
            (a, &b),
            ::reexport::memo::__private::UNHASHED,
            (&mut __memo_owned_key, &mut __memo_lead_place),
        ) {
            ::reexport::memo::__private::Ok(__memo_value) => __memo_value,
            ::reexport::memo::__private::Err(__memo_lead) => {
                __memo_lead
                    .finish(
                        (move || -> u64 {
                            log.push("computed".into());
                            a.iter().sum::<u64>() + b
                        })(),
                    )
            }
        }
    }
}
/** The cache behind `sum`: statistics, length, invalidation, clearing.

 Its key is `(::std::vec::Vec<u64>, u64)`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn sum_cache() -> &'static ::reexport::memo::__private::Cache<
    (::std::vec::Vec<u64>, u64),
    u64,
> {
    static __MEMO_CELL: ::reexport::memo::__private::CacheCell = ::reexport::memo::__private::CacheCell::new();
    ::reexport::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "sum", "#", 0),
        ::reexport::memo::__private::scope(&|| ()),
        ::reexport::memo::__private::preset::<0usize, 0u64>,
    )
}
