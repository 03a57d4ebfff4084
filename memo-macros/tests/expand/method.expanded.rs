pub fn area(&self, scale: Scale) -> u64 {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    #[cfg(not(debug_assertions))]
    {
        let __memo_hash = match {
            use ::memo::__private::{QuickHit as _, QuickNone as _};
            (&::memo::__private::Quick(
                (self, &scale),
                ::memo::__private::PhantomData::<u64>,
            ))
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
                    ::core::concat!(::core::module_path!(), "::", "area", "#", 0, "s"),
                    ::memo::__private::scope_self(
                        &|| (),
                        ::memo::__private::PhantomData::<
                            (::memo::__private::PhantomData<Self>,),
                        >,
                    ),
                    ::memo::__private::preset::<1000usize, 0u64>,
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
                            (&&&::memo::__private::Outcome::<u64>::new())
                                .keep(false, false)
                        },
                    ),
                    (self, &scale),
                    __memo_hash,
                    (&mut __memo_owned_key, &mut __memo_lead_place),
                ) {
                    ::memo::__private::Ok(__memo_value) => __memo_value,
                    ::memo::__private::Err(__memo_lead) => {
                        __memo_lead
                            .finish((move || -> u64 { self.w * self.h * scale.0 })())
                    }
                }
            },
        )
    }
    #[cfg(debug_assertions)]
    {
        let __memo_cache = ::memo::__private::cache(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "area", "#", 0, "s"),
            ::memo::__private::scope_self(
                &|| (),
                ::memo::__private::PhantomData::<(::memo::__private::PhantomData<Self>,)>,
            ),
            ::memo::__private::preset::<1000usize, 0u64>,
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
                    (&&&::memo::__private::Outcome::<u64>::new()).keep(false, false)
                },
            ),
            (self, &scale),
            ::memo::__private::UNHASHED,
            (&mut __memo_owned_key, &mut __memo_lead_place),
        ) {
            ::memo::__private::Ok(__memo_value) => __memo_value,
            ::memo::__private::Err(__memo_lead) => {
                __memo_lead.finish((move || -> u64 { self.w * self.h * scale.0 })())
            }
        }
    }
}
/** The cache behind `area`: statistics, length, invalidation, clearing.

 Its key is `(Self, Scale)`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
pub fn area_cache() -> &'static ::memo::__private::Cache<(Self, Scale), u64> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "area", "#", 0, "s"),
        ::memo::__private::scope_self(
            &|| (),
            ::memo::__private::PhantomData::<(::memo::__private::PhantomData<Self>,)>,
        ),
        ::memo::__private::preset::<1000usize, 0u64>,
    )
}
