fn describe(&self, name: &str, mut n: u32) -> String {
    let __memo_cache = {
        static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
        ::memo::__private::cache(
            &__MEMO_CELL,
            ::core::concat!(::core::module_path!(), "::", "describe", "#", 0, "s"),
            ::memo::__private::scope_self(
                &|| (),
                ::memo::__private::PhantomData::<(::memo::__private::PhantomData<Self>,)>,
            ),
            || {
                ::memo::__private::Config::new()
                    .ttl(::memo::__private::Duration::from_millis(10000u64))
                    .stale(::memo::__private::Duration::from_millis(5000u64))
                    .refresh_early(1.0)
            },
        )
    };
    #[allow(unused_variables, unused_mut, unused_braces, clippy::needless_pass_by_value)]
    let __memo_refresh: fn(
        (Self, ::std::string::String, u32),
    ) -> ::memo::__private::Option<String> = |
        __memo_key: (Self, ::std::string::String, u32),
    | -> ::memo::__private::Option<String> {
        ::memo::__private::Some(
            (move || -> String {
                let (__memo_part0, __memo_part1, __memo_part2) = __memo_key;
                let __memo_self: &Self = &__memo_part0;
                let name: &str = &__memo_part1;
                let mut n: u32 = __memo_part2;
                {
                    n += 1;
                    format!("{}: {name} #{n}", __memo_self.id)
                }
            })(),
        )
    };
    let __memo_keep = {
        use ::memo::__private::{KeepAny as _, KeepOption as _, KeepResult as _};
        (&&&::memo::__private::Outcome::<String>::new()).keep(false, false)
    };
    match ::memo::__private::lead(
        ::memo::__private::hit_or_renew(
            __memo_cache,
            (self, name, &n),
            __memo_refresh,
            __memo_keep,
        ),
        __memo_keep,
    ) {
        ::memo::__private::Ok(__memo_value) => __memo_value,
        ::memo::__private::Err(__memo_lead) => {
            __memo_lead
                .finish(
                    (move || -> String {
                        n += 1;
                        format!("{}: {name} #{n}", self.id)
                    })(),
                )
        }
    }
}
/** The cache behind `describe`: statistics, length, invalidation, clearing.

 Its key is `(Self,::std::string::String, u32)`.*/
#[must_use]
#[allow(dead_code, warnings, unused, clippy::all, clippy::pedantic, clippy::nursery)]
fn describe_cache() -> &'static ::memo::__private::Cache<
    (Self, ::std::string::String, u32),
    String,
> {
    static __MEMO_CELL: ::memo::__private::CacheCell = ::memo::__private::CacheCell::new();
    ::memo::__private::cache(
        &__MEMO_CELL,
        ::core::concat!(::core::module_path!(), "::", "describe", "#", 0, "s"),
        ::memo::__private::scope_self(
            &|| (),
            ::memo::__private::PhantomData::<(::memo::__private::PhantomData<Self>,)>,
        ),
        || {
            ::memo::__private::Config::new()
                .ttl(::memo::__private::Duration::from_millis(10000u64))
                .stale(::memo::__private::Duration::from_millis(5000u64))
                .refresh_early(1.0)
        },
    )
}
