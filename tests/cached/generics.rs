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

static RACED_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A value that names its instance.
#[cached]
fn raced<T: 'static>(n: u64) -> (u64, &'static str) {
    RACED_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(10));
    (n, std::any::type_name::<T>())
}

/// Threads making the first calls of four instances of one function at once, on the same keys:
/// each instance's cache is made once (its key computed once, by one caller) and each caller
/// gets its own instance's value.
#[test]
fn the_first_calls_of_several_instances_at_once_keep_apart() {
    fn call(t: usize) -> (u64, &'static str) {
        let n = (t / 4 % 2) as u64;
        match t % 4 {
            0 => raced::<u8>(n),
            1 => raced::<u16>(n),
            2 => raced::<String>(n),
            _ => raced::<()>(n),
        }
    }
    let barrier = std::sync::Barrier::new(32);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    (t, call(t))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let names = ["u8", "u16", "alloc::string::String", "()"];
    for (t, (n, name)) in results {
        assert_eq!((n, name), ((t / 4 % 2) as u64, names[t % 4]), "caller {t}");
    }
    assert_eq!(
        RACED_RUNS.load(std::sync::atomic::Ordering::SeqCst),
        8,
        "each instance's two keys computed once"
    );
    assert_eq!(raced_cache::<u8>().len() + raced_cache::<()>().len(), 4);
}
