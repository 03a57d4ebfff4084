//! Attacks on function identities (issue 17, items 1 and 3): same-named functions and instances
//! that a cached call must keep apart, and what used to work that must keep working.

use std::marker::PhantomData;

use memo::cached;

trait Unit {
    const SUFFIX: &'static str;
}

struct Length<U>(PhantomData<U>);

impl<U: Unit> Length<U> {
    #[cached]
    fn label(n: u32) -> String {
        format!("{n}{}", U::SUFFIX)
    }

    #[cached]
    fn fib(n: u64) -> u64 {
        if n < 2 {
            n + U::SUFFIX.len() as u64
        } else {
            Self::fib(n - 1) + Self::fib(n - 2)
        }
    }

    #[cached]
    async fn page(n: u32) -> String {
        format!("page {n}{}", U::SUFFIX)
    }
}

struct Feet;
struct Yards;

impl Unit for Feet {
    const SUFFIX: &'static str = "ft";
}

impl Unit for Yards {
    const SUFFIX: &'static str = "yd";
}

/// `type_name` writes two types of one name in two blocks of one function alike
/// (`trust_attacks::f::Inch`): the instances of `Length` they make are one by name, two by the
/// type of the closure that names them.
#[test]
fn same_named_types_in_two_blocks_get_two_caches() {
    let first = {
        struct Inch;
        impl Unit for Inch {
            const SUFFIX: &'static str = "in";
        }
        Length::<Inch>::label(5)
    };
    let second = {
        struct Inch;
        impl Unit for Inch {
            const SUFFIX: &'static str = "inch";
        }
        Length::<Inch>::label(5)
    };
    assert_eq!(first, "5in");
    assert_eq!(second, "5inch");
}

/// Closures as a generic impl's argument: both are `trust_attacks::f::{{closure}}`.
struct Op<F>(F);

impl<F: Fn(u64) -> u64> Op<F> {
    #[cached(key = n)]
    fn run(&self, n: u64) -> u64 {
        (self.0)(n)
    }
}

#[test]
fn two_closures_as_type_arguments_get_two_caches() {
    let add = Op(|n| n + 1);
    let double = Op(|n| n * 2);
    assert_eq!(add.run(10), 11);
    assert_eq!(double.run(10), 20);
}

#[test]
fn recursion_in_a_generic_impl() {
    fn plain(n: u64) -> u64 {
        if n < 2 {
            n + 2
        } else {
            plain(n - 1) + plain(n - 2)
        }
    }
    assert_eq!(Length::<Feet>::fib(20), plain(20));
    assert_eq!(Length::<Yards>::fib(20), plain(20));
    assert_eq!(Length::<Feet>::fib_cache().stats().misses, 21);
    assert_eq!(Length::<Yards>::fib_cache().len(), 21);
}

#[test]
fn async_methods_of_a_generic_impl() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(Length::<Feet>::page(1).await, "page 1ft");
        assert_eq!(Length::<Yards>::page(1).await, "page 1yd");
        assert_eq!(Length::<Feet>::page(1).await, "page 1ft");
    });
    assert_eq!(Length::<Feet>::page_cache().stats().hits, 1);
    assert_eq!(Length::<Yards>::page_cache().stats().hits, 0);
}

#[test]
fn the_companion_of_an_instance_is_its_cache() {
    assert_eq!(Length::<Yards>::label(9), "9yd");
    assert_eq!(
        Length::<Yards>::label_cache().get(&9).as_deref(),
        Some("9yd")
    );
    assert!(Length::<Yards>::label_cache().invalidate(&9));
    assert_eq!(Length::<Yards>::label(9), "9yd");
    assert_eq!(Length::<Yards>::label_cache().stats().misses, 2);
}

/// Lifetimes are erased (`Borrowed<'_>`): one instance, and the companion finds it.
struct Borrowed<'a>(&'a str);

#[allow(
    clippy::elidable_lifetime_names,
    reason = "the lifetime parameter is the point"
)]
impl<'a> Borrowed<'a> {
    #[cached]
    fn size(n: usize) -> usize {
        n * 2
    }
}

#[test]
fn an_impl_with_a_lifetime() {
    let text = String::from("x");
    let _ = Borrowed(&text).0;
    assert_eq!(Borrowed::size(2), 4);
    assert_eq!(Borrowed::size(2), 4);
    assert_eq!(Borrowed::size_cache().stats().hits, 1);
}

/// `#[cached]` in a trait impl is refused (its companion is no member of the trait), as before.
struct Cat;
struct Dog;

/// One static for every implementor: the scope tells them apart.
trait Named {
    const NAME: &'static str;

    #[cached]
    fn greet(n: u32) -> String {
        format!("{} x{n}", Self::NAME)
    }
}

impl Named for Cat {
    const NAME: &'static str = "cat";
}

impl Named for Dog {
    const NAME: &'static str = "dog";
}

#[test]
fn a_default_method_of_a_trait() {
    assert_eq!(Cat::greet(3), "cat x3");
    assert_eq!(Dog::greet(3), "dog x3");
    assert_eq!(Cat::greet(3), "cat x3");
    assert_eq!(<Dog as Named>::greet_cache().stats().misses, 1);
}

/// Generic arguments with `->` and `dyn` in them.
struct Call<F: ?Sized>(PhantomData<F>);

impl<F: ?Sized + 'static> Call<F> {
    #[cached]
    fn name(n: u8) -> String {
        format!("{n}:{}", std::any::type_name::<F>())
    }
}

#[test]
fn generic_arguments_with_arrows_and_dyn() {
    let a = Call::<dyn Fn(u8) -> u16>::name(1);
    let b = Call::<dyn Fn(u8) -> u32>::name(1);
    let c = Call::<fn(Vec<u8>) -> Option<u8>>::name(1);
    assert_ne!(a, b);
    assert_eq!(a, Call::<dyn Fn(u8) -> u16>::name(1));
    assert_eq!(c, Call::<fn(Vec<u8>) -> Option<u8>>::name(1));
    assert_eq!(Call::<dyn Fn(u8) -> u16>::name_cache().stats().hits, 1);
}

#[cfg(feature = "disk")]
mod disk {
    use std::sync::Once;

    use memo::cached;

    fn init() {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("memo-trust-attacks");
            let _ = std::fs::remove_dir_all(&dir);
            // SAFETY: set before any cache is opened, by the first disk test.
            unsafe { std::env::set_var("MEMO_CACHE_DIR", &dir) };
        });
    }

    fn inner_functions_in_two_functions() -> (String, String) {
        fn first() -> String {
            #[cached(store = disk)]
            fn lookup(n: u32) -> String {
                format!("first {n}")
            }
            lookup(1)
        }
        fn second() -> String {
            #[cached(store = disk)]
            fn lookup(n: u32) -> String {
                format!("second {n}")
            }
            lookup(1)
        }
        (first(), second())
    }

    struct Op<F>(F);

    impl<F: Fn(u64) -> u64> Op<F> {
        #[cached(store = disk, key = n)]
        fn run(&self, n: u64) -> u64 {
            (self.0)(n)
        }
    }

    /// `type_name` writes both instances `…::disk::Op<…::{{closure}}>::run`: their entries on
    /// disk are named apart by their bodies' types (a new user read 11 for 20).
    #[test]
    fn closures_as_type_arguments_on_disk() {
        init();
        let add = Op(|n| n + 1);
        let double = Op(|n| n * 2);
        assert_eq!(add.run(10), 11);
        assert_eq!(double.run(10), 20, "not the other closure's entry");
        assert_eq!(add.run(10), 11);
        assert_eq!(double.run(10), 20);
    }

    struct Priced<F>(F);

    impl<F: Fn(u64) -> u64> Priced<F> {
        #[cached(store = disk, key = n)]
        fn price(&self, n: u64) -> u64 {
            (self.0)(n)
        }
    }

    fn price_cache_of<F: Fn(u64) -> u64>(
        _: &Priced<F>,
    ) -> &'static memo::Cache<u64, u64, memo::DiskStore<u64, u64>> {
        Priced::<F>::price_cache()
    }

    /// Two instances that `type_name` writes alike on disk: each companion names its own
    /// instance's entries, those the calls read, even when it comes first (it was a cache of
    /// its own, named for no instance, or the first instance's).
    #[test]
    fn the_companion_of_a_closure_instance_on_disk_is_its_own() {
        init();
        let add = Priced(|n| n + 1);
        let double = Priced(|n| n * 2);
        price_cache_of(&double).insert(5, 500);
        assert_eq!(add.price(5), 6, "not the other closure's entry");
        assert_eq!(double.price(5), 500, "the entry its companion stored");
        assert_eq!(double.price(10), 20);
        assert_eq!(add.price(10), 11);
        assert_eq!(price_cache_of(&add).get(&10), Some(11));
        assert!(price_cache_of(&double).invalidate(&10));
        assert_eq!(
            price_cache_of(&add).get(&10),
            Some(11),
            "the other's entry stays"
        );
        assert_eq!(price_cache_of(&add).get(&5), Some(6));
    }

    #[test]
    fn inner_functions_of_two_functions_on_disk() {
        init();
        let (a, b) = inner_functions_in_two_functions();
        assert_eq!((a.as_str(), b.as_str()), ("first 1", "second 1"));
    }

    /// Both are `trust_attacks::disk::blocks::lookup` to `type_name`: told apart by their code.
    #[test]
    fn inner_functions_of_two_blocks_on_disk() {
        init();
        let a = {
            #[cached(store = disk)]
            fn lookup(n: u32) -> String {
                format!("block one {n}")
            }
            lookup(1)
        };
        let b = {
            #[cached(store = disk)]
            fn lookup(n: u32) -> String {
                format!("block two {n}")
            }
            lookup(1)
        };
        assert_eq!((a.as_str(), b.as_str()), ("block one 1", "block two 1"));
    }

    /// Hands out what each anonymous const's `Unit::name(1)` returns.
    trait Go {
        fn go() -> String;
    }

    struct One;
    struct Two;

    // Both are `trust_attacks::disk::_::<impl trust_attacks::disk::_::Unit>::name`.
    const _: () = {
        struct Unit;
        impl Unit {
            #[cached(store = disk)]
            fn name(n: u32) -> String {
                format!("const one {n}")
            }
        }
        impl Go for One {
            fn go() -> String {
                Unit::name(1)
            }
        }
    };

    const _: () = {
        struct Unit;
        impl Unit {
            #[cached(store = disk)]
            fn name(n: u32) -> String {
                format!("const two {n}")
            }
        }
        impl Go for Two {
            fn go() -> String {
                Unit::name(1)
            }
        }
    };

    /// Told apart by their code, as the inner functions above.
    #[test]
    fn types_of_two_anonymous_consts_on_disk() {
        init();
        assert_eq!(One::go(), "const one 1");
        assert_eq!(Two::go(), "const two 1");
    }

    /// A `macro_rules!` that writes a memoized function of one name each time it is used, with
    /// the number it is given in the body (a new user read `10 10` for `10 1000`).
    macro_rules! rate {
        ($factor:expr) => {{
            #[cached(store = disk)]
            fn rate(region: u64) -> u64 {
                region * $factor
            }
            rate(1)
        }};
    }

    #[test]
    fn expansions_of_one_macro_on_disk() {
        init();
        assert_eq!((rate!(10), rate!(1000)), (10, 1000));
    }
}

/// The companion of an instance that `type_name` writes alike: `Op::<F>::run_cache()` for the
/// second closure must be that closure's cache, not the first's.
fn run_cache_of<F: Fn(u64) -> u64>(_: &Op<F>) -> &'static memo::Cache<u64, u64> {
    Op::<F>::run_cache()
}

/// It was the first instance's cache, or, called first, one no instance used.
#[test]
fn the_companion_of_a_closure_instance_is_its_own() {
    let add = Op(|n| n + 100);
    let double = Op(|n| n * 200);
    assert_eq!(add.run(1), 101);
    assert_eq!(double.run(1), 200);
    assert_eq!(
        run_cache_of(&double).get(&1),
        Some(200),
        "not the other closure's value"
    );
    assert!(run_cache_of(&double).invalidate(&1));
    assert_eq!(
        run_cache_of(&add).get(&1),
        Some(101),
        "the other closure's entry stays"
    );
}
