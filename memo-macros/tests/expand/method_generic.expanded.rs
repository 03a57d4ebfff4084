fn shown<T: Default + std::fmt::Debug, const N: usize>(
    &self,
    n: u32,
    tag: impl std::fmt::Display,
) -> String {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    #[cfg(not(debug_assertions))]
    {
        let __memo_hash = match {
            use ::memo::__private::{QuickHit as _, QuickNone as _};
            (&::memo::__private::Quick(&n, ::memo::__private::PhantomData::<String>))
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
                    ::core::concat!(
                        ::core::module_path!(), "::", "shown", "#", 0, "si2g"
                    ),
                    ::memo::__private::scope_self(
                        &|| (),
                        ::memo::__private::PhantomData::<
                            (
                                ::memo::__private::PhantomData<Self>,
                                ::memo::__private::PhantomData<T>,
                            ),
                        >,
                    ),
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
                            (&&&::memo::__private::Outcome::<String>::new())
                                .keep(false, false)
                        },
                    ),
                    &n,
                    __memo_hash,
                    (&mut __memo_owned_key, &mut __memo_lead_place),
                ) {
                    ::memo::__private::Ok(__memo_value) => __memo_value,
                    ::memo::__private::Err(__memo_lead) => {
                        __memo_lead
                            .finish(
                                (move || -> String {
                                    format!("{:?} {n} {tag} {N}", T::default())
                                })(),
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
            ::core::concat!(::core::module_path!(), "::", "shown", "#", 0, "si2g"),
            ::memo::__private::scope_self(
                &|| (),
                ::memo::__private::PhantomData::<
                    (
                        ::memo::__private::PhantomData<Self>,
                        ::memo::__private::PhantomData<T>,
                    ),
                >,
            ),
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
                    (&&&::memo::__private::Outcome::<String>::new()).keep(false, false)
                },
            ),
            &n,
            ::memo::__private::UNHASHED,
            (&mut __memo_owned_key, &mut __memo_lead_place),
        ) {
            ::memo::__private::Ok(__memo_value) => __memo_value,
            ::memo::__private::Err(__memo_lead) => {
                __memo_lead
                    .finish(
                        (move || -> String {
                            format!("{:?} {n} {tag} {N}", T::default())
                        })(),
                    )
            }
        }
    }
}
/** The cache behind `shown`: statistics, length, invalidation, clearing.

 Its key is `u32`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn shown_cache<T: Default + std::fmt::Debug, const N: usize>() -> &'static ::memo::__private::Cache<
    u32,
    String,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "shown", "#", 0, "si2g"),
        ::memo::__private::scope_self(
            &|| (),
            ::memo::__private::PhantomData::<
                (::memo::__private::PhantomData<Self>, ::memo::__private::PhantomData<T>),
            >,
        ),
        ::memo::__private::preset::<0usize, 0u64>,
    )
}
