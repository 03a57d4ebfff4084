fn lookup(&self, name: &str, n: u32) -> Result<String, std::io::Error> {
    let __memo_cache = ::memo::__private::instance(
        &(self.lookups),
        {
            static __MEMO_OWNER: ::memo::__private::Owner = ::memo::__private::Owner::new(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(lookup)),
            );
            &__MEMO_OWNER
        },
        &|| (),
    );
    let __memo_key = (name, &n);
    match ::memo::__private::instance_hit(&__memo_cache, &__memo_key) {
        ::memo::__private::Ok(__memo_value) => ::memo::__private::Ok(__memo_value),
        ::memo::__private::Err(__memo_hash) => {
            let __memo_owned = ::memo::__private::Lookup::to_key(&__memo_key);
            ::memo::__private::instance_try_miss(
                &__memo_cache,
                __memo_hash,
                __memo_owned,
                move || -> Result<String, std::io::Error> {
                    Ok(format!("{}: {name} #{n}", self.id))
                },
            )
        }
    }
}
