//! Whose cache a call and a companion reach: functions a `macro_rules!` makes, the default
//! methods of a generic trait, generic functions; and what `invalidate`, `remove` and `clear`
//! through one function's companion leave of another's entries.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;

/// Makes a cached `$name` whose value is `n + $add`, counting its executions in `$runs`.
macro_rules! adder {
    ($vis:vis $name:ident, $add:expr, $runs:ident) => {
        $vis static $runs: ::std::sync::atomic::AtomicUsize = ::std::sync::atomic::AtomicUsize::new(0);

        #[cached]
        $vis fn $name(n: u64) -> u64 {
            $runs.fetch_add(1, ::std::sync::atomic::Ordering::SeqCst);
            n + $add
        }
    };
}

/// Makes a cached `$name` whose options and return type come in as bare tokens (not `ty`
/// fragments), so they carry this macro's hygiene, not the attribute's.
macro_rules! from_tokens {
    ($name:ident($n:ident), $runs:ident, [$($opts:tt)*], $body:expr, $($ret:tt)*) => {
        static $runs: AtomicUsize = AtomicUsize::new(0);

        #[cached($($opts)*)]
        fn $name($n: u32) -> $($ret)* {
            $runs.fetch_add(1, Ordering::SeqCst);
            $body
        }
    };
}

from_tokens!(
    widened(n),
    WIDENED_RUNS,
    [maxsize = 10],
    u64::from(n) * 2,
    u64
);
from_tokens!(
    checked(n),
    CHECKED_RUNS,
    [cache_err = true],
    Err(n.to_string()),
    Result<u64, String>
);

/// Makes a cached method whose receiver and body come in from the caller, so `self` carries
/// the caller's hygiene and the attribute this macro's: a `stale` or `refresh` method's body is
/// copied into its background refresh, with `self` renamed.
macro_rules! refreshed_method {
    ($name:ident(&$this:ident, $n:ident) -> $ret:ty $body:block) => {
        #[cached(ttl = "1h", stale = "1h")]
        fn $name(&$this, $n: u32) -> $ret $body
    };
}

/// An aisle whose label a macro caches.
#[derive(Clone, Hash, PartialEq, Eq)]
struct Aisle(u32);

static AISLE_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Aisle {
    refreshed_method!(label(&self, n) -> String {
        AISLE_RUNS.fetch_add(1, Ordering::SeqCst);
        format!("aisle {} row {n}", self.0)
    });
}

#[test]
fn a_refreshed_method_whose_receiver_a_macro_passes_is_cached() {
    assert_eq!(Aisle(1).label(2), "aisle 1 row 2");
    assert_eq!(Aisle(1).label(2), "aisle 1 row 2");
    assert_eq!(Aisle(3).label(2), "aisle 3 row 2");
    assert_eq!(AISLE_RUNS.load(Ordering::SeqCst), 2);
}

mod tens {
    use memo::cached;
    adder!(pub(super) add, 10, RUNS);
}

mod hundreds {
    use memo::cached;
    adder!(pub(super) add, 100, RUNS);
}

// Two in one module, under two names.
adder!(add_one, 1, ONE_RUNS);
adder!(add_two, 2, TWO_RUNS);

/// One macro, two modules, one name: two caches, each its own value; clearing one leaves the
/// other whole.
#[test]
fn a_function_whose_return_type_and_options_a_macro_passes_as_tokens_is_cached() {
    assert_eq!((widened(2), widened(2)), (4, 4));
    assert_eq!(WIDENED_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(checked(3), Err("3".to_string()));
    assert_eq!(checked(3), Err("3".to_string()));
    assert_eq!(
        CHECKED_RUNS.load(Ordering::SeqCst),
        1,
        "cache_err keeps errors"
    );
}

#[test]
fn a_macros_function_in_two_modules_keeps_two_caches() {
    assert_eq!(tens::add(1), 11);
    assert_eq!(hundreds::add(1), 101);
    assert_eq!(tens::add(1), 11);
    assert_eq!(hundreds::add(1), 101);
    assert_eq!(tens::RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(hundreds::RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(tens::add_cache().remove(&1), Some(11));
    assert_eq!(
        hundreds::add_cache().get(&1),
        Some(101),
        "the other kept its own"
    );
    hundreds::add_cache().clear();
    assert_eq!(tens::add(1), 11);
    assert_eq!(tens::add(1), 11);
    assert_eq!(tens::RUNS.load(Ordering::SeqCst), 2, "computed again once");
    assert_eq!(hundreds::add(1), 101);
    assert_eq!(hundreds::RUNS.load(Ordering::SeqCst), 2);
}

#[test]
fn a_macros_functions_in_one_module_keep_two_caches() {
    assert_eq!(add_one(5), 6);
    assert_eq!(add_two(5), 7);
    assert!(add_one_cache().invalidate(&5));
    assert_eq!(add_two_cache().peek(&5), Some(7));
    assert_eq!(add_two(5), 7);
    assert_eq!(add_one(5), 6);
    assert_eq!(ONE_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(TWO_RUNS.load(Ordering::SeqCst), 1);
}

/// The same macro, expanded twice with one name in two blocks of one function: two functions
/// that `type_name` writes alike (`…::blocks::look`), each with its own cache and companion.
#[test]
fn a_macros_function_in_two_blocks_of_one_function() {
    let (first, first_cache) = {
        adder!(look, 1000, RUNS);
        (look(1), look_cache())
    };
    let (second, second_cache) = {
        adder!(look, 2000, RUNS);
        assert_eq!(look(1), 2001);
        (look(1), look_cache())
    };
    assert_eq!((first, second), (1001, 2001));
    assert!(!std::ptr::eq(first_cache, second_cache));
    assert_eq!(first_cache.stats().misses, 1);
    assert_eq!(second_cache.stats().hits, 1);
    assert!(first_cache.invalidate(&1));
    assert_eq!(
        second_cache.get(&1),
        Some(2001),
        "the other block's entry stays"
    );
}

/// A generic trait whose default method is cached: each implementation (of each instance of
/// the trait) has its own cache, reached by its companion.
trait Repo<T: Default + std::fmt::Debug> {
    const NAME: &'static str;

    #[cached]
    fn get(id: u64) -> String {
        format!("{}:{id}:{:?}", Self::NAME, T::default())
    }

    #[cached(ttl = "1h")]
    async fn fetch(id: u64) -> Result<String, String> {
        if id == 0 {
            return Err(format!("{}: no id 0", Self::NAME));
        }
        Ok(format!("{} fetched {id} {:?}", Self::NAME, T::default()))
    }
}

struct Users;
struct Orders;

impl Repo<u8> for Users {
    const NAME: &'static str = "users";
}

impl Repo<bool> for Users {
    const NAME: &'static str = "flags";
}

impl Repo<u8> for Orders {
    const NAME: &'static str = "orders";
}

#[test]
fn default_methods_of_a_generic_trait_keep_a_cache_per_implementation() {
    assert_eq!(<Users as Repo<u8>>::get(1), "users:1:0");
    assert_eq!(<Users as Repo<bool>>::get(1), "flags:1:false");
    assert_eq!(<Orders as Repo<u8>>::get(1), "orders:1:0");
    assert_eq!(<Users as Repo<u8>>::get(1), "users:1:0");
    assert_eq!(<Users as Repo<u8>>::get_cache().stats().hits, 1);
    assert!(<Users as Repo<bool>>::get_cache().invalidate(&1));
    assert_eq!(
        <Orders as Repo<u8>>::get_cache().peek(&1).as_deref(),
        Some("orders:1:0")
    );
    assert_eq!(
        <Users as Repo<u8>>::get_cache().peek(&1).as_deref(),
        Some("users:1:0")
    );
    assert_eq!(<Users as Repo<bool>>::get(1), "flags:1:false");
    assert_eq!(<Users as Repo<bool>>::get_cache().stats().misses, 2);
}

#[test]
fn async_default_methods_of_a_generic_trait() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(
            <Users as Repo<u8>>::fetch(2).await.as_deref(),
            Ok("users fetched 2 0")
        );
        assert_eq!(
            <Orders as Repo<u8>>::fetch(2).await.as_deref(),
            Ok("orders fetched 2 0")
        );
        assert_eq!(
            <Users as Repo<bool>>::fetch(0).await,
            Err("flags: no id 0".to_string())
        );
        assert_eq!(
            <Users as Repo<u8>>::fetch(2).await.as_deref(),
            Ok("users fetched 2 0")
        );
    });
    assert_eq!(<Users as Repo<u8>>::fetch_cache().stats().hits, 1);
    assert_eq!(
        <Orders as Repo<u8>>::fetch_cache().get(&2).as_deref(),
        Some("orders fetched 2 0")
    );
    assert!(<Users as Repo<bool>>::fetch_cache().is_empty());
}

static SCALED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A generic function whose value depends on its const parameter.
#[cached]
fn scaled<const N: u64>(n: u64) -> u64 {
    SCALED_RUNS.fetch_add(1, Ordering::SeqCst);
    n * N
}

#[test]
fn a_const_generic_functions_instances_keep_apart_and_invalidate_apart() {
    assert_eq!(scaled::<2>(5), 10);
    assert_eq!(scaled::<3>(5), 15);
    assert_eq!(scaled::<2>(5), 10);
    assert!(scaled_cache::<3>().invalidate(&5));
    assert_eq!(scaled_cache::<2>().peek(&5), Some(10));
    assert_eq!(scaled::<3>(5), 15);
    assert_eq!(scaled::<2>(5), 10);
    assert_eq!(SCALED_RUNS.load(Ordering::SeqCst), 3);
}

/// A generic method of a generic impl: each pair of the impl's and the method's arguments has a
/// cache of its own, and each companion reaches its own.
struct Shelf<U>(std::marker::PhantomData<U>);

impl<U: Default + std::fmt::Debug> Shelf<U> {
    #[cached]
    fn pair<T: Default + std::fmt::Debug>(n: u64) -> String {
        format!("{n}:{:?}:{:?}", U::default(), T::default())
    }
}

#[test]
fn a_generic_method_of_a_generic_impl_keeps_a_cache_per_pair() {
    assert_eq!(Shelf::<u8>::pair::<bool>(1), "1:0:false");
    assert_eq!(Shelf::<bool>::pair::<u8>(1), "1:false:0");
    assert_eq!(Shelf::<u8>::pair::<Vec<u8>>(1), "1:0:[]");
    assert_eq!(Shelf::<Vec<u8>>::pair::<u8>(1), "1:[]:0");
    assert_eq!(Shelf::<u8>::pair::<bool>(1), "1:0:false");
    assert_eq!(Shelf::<u8>::pair_cache::<bool>().stats().hits, 1);
    assert!(Shelf::<bool>::pair_cache::<u8>().invalidate(&1));
    assert_eq!(
        Shelf::<u8>::pair_cache::<bool>().peek(&1).as_deref(),
        Some("1:0:false")
    );
    assert_eq!(
        Shelf::<Vec<u8>>::pair_cache::<u8>().peek(&1).as_deref(),
        Some("1:[]:0")
    );
    assert!(Shelf::<bool>::pair_cache::<u8>().is_empty());
}

/// Background refreshes recompute from the key alone: in a generic impl and a trait's default
/// method, each instance's refresh runs its own body.
#[cfg(feature = "test-util")]
mod refreshed {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use memo::{Clock, cached};

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    trait Name {
        const NAME: &'static str;
    }

    struct Bin<N>(std::marker::PhantomData<N>);

    impl<N: Name> Bin<N> {
        #[cached(ttl = "10s", stale = "1h")]
        fn label(n: u32) -> String {
            format!("{}{n}#{}", N::NAME, RUNS.fetch_add(1, Ordering::SeqCst))
        }
    }

    trait Stock {
        const NAME: &'static str;

        #[cached(ttl = "10s", refresh = "early", beta = 1e12)]
        fn level(n: u32) -> String {
            std::thread::sleep(Duration::from_millis(1));
            format!("{}{n}#{}", Self::NAME, RUNS.fetch_add(1, Ordering::SeqCst))
        }
    }

    struct Red;
    struct Blue;

    impl Name for Red {
        const NAME: &'static str = "red";
    }

    impl Name for Blue {
        const NAME: &'static str = "blue";
    }

    impl Stock for Red {
        const NAME: &'static str = "red";
    }

    impl Stock for Blue {
        const NAME: &'static str = "blue";
    }

    /// Reads `read` until its cache holds a refreshed value (bounded), asserting every answer
    /// starts with `prefix`.
    fn refreshed_with(prefix: &str, read: fn(u32) -> String, peek: impl Fn() -> Option<String>) {
        let first = read(1);
        assert!(first.starts_with(prefix), "{first}");
        let done = crate::calls::eventually(|| {
            let value = read(1);
            assert!(
                value.starts_with(prefix),
                "{value}: another instance's value"
            );
            peek().is_some_and(|now| now != first)
        });
        assert!(done, "{prefix}: refreshed");
        let now = peek().unwrap();
        assert!(now.starts_with(prefix), "{now}: another instance's refresh");
    }

    #[test]
    fn each_instance_refreshes_with_its_own_body() {
        let (clock, time) = Clock::mock();
        Bin::<Red>::label_cache().set_clock(clock.clone());
        Bin::<Blue>::label_cache().set_clock(clock);
        assert!(Bin::<Red>::label(1).starts_with("red1"));
        assert!(Bin::<Blue>::label(1).starts_with("blue1"));
        time.increment(Duration::from_secs(11));
        refreshed_with("red1#", Bin::<Red>::label, || {
            Bin::<Red>::label_cache().peek(&1)
        });
        refreshed_with("blue1#", Bin::<Blue>::label, || {
            Bin::<Blue>::label_cache().peek(&1)
        });
        refreshed_with("red1#", <Red as Stock>::level, || {
            <Red as Stock>::level_cache().peek(&1)
        });
        refreshed_with("blue1#", <Blue as Stock>::level, || {
            <Blue as Stock>::level_cache().peek(&1)
        });
    }
}
