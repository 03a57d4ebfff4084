//! Generic functions: one cache per instance (the body may depend on the type parameters), the
//! companion takes the same parameters; the key and value types may not name a parameter.

use std::fmt::Display;

use memo::cached;

/// The value depends on `T`; the key (`n`) does not.
#[cached]
fn describe<T: Default + Display>(n: u64) -> String {
    format!("{n}:{}", T::default())
}

#[test]
fn each_instance_has_a_cache_of_its_own() {
    assert_eq!(describe::<u8>(1), "1:0");
    assert_eq!(
        describe::<bool>(1),
        "1:false",
        "not the u8 instance's value"
    );
    assert_eq!(describe::<u8>(1), "1:0");
    assert_eq!(describe::<bool>(1), "1:false");
    let (bytes, flags) = (
        describe_cache::<u8>().stats(),
        describe_cache::<bool>().stats(),
    );
    assert_eq!((bytes.misses, bytes.hits), (1, 1));
    assert_eq!((flags.misses, flags.hits), (1, 1));
}

/// cached's `generic_cached_where`: arguments of any displayable types, keyed by their text.
#[cached(key = format!("{a}|{b}"), key_type = String)]
fn joined<A, B>(a: A, b: B) -> String
where
    A: Display,
    B: Display,
{
    format!("{a} and {b}")
}

#[test]
fn a_key_chosen_without_the_parameters_works_per_instance() {
    assert_eq!(joined(1, "x"), "1 and x");
    assert_eq!(joined(1, "x"), "1 and x");
    assert_eq!(joined(1.5, 'y'), "1.5 and y");
    assert_eq!(joined_cache::<i32, &str>().stats().hits, 1);
    assert_eq!(joined_cache::<f64, char>().stats().misses, 1);
    assert!(joined_cache::<i32, &str>().contains_key("1|x"));
}

/// cached's `generic_once_where`: no arguments, one value per instance.
#[cached]
fn type_label<T: 'static>() -> &'static str {
    std::any::type_name::<T>()
}

#[test]
fn a_function_without_arguments_keeps_one_value_per_instance() {
    assert_eq!(type_label::<u16>(), "u16");
    assert_eq!(type_label::<String>(), "alloc::string::String");
    assert_eq!(type_label::<u16>(), "u16");
    assert_eq!(type_label_cache::<u16>().stats().hits, 1);
}
