//! Signatures and options that once made `#[cached]` return another call's value, reach a cache
//! other than the function's, or refuse a function it can cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use memo::{Cache, cached};

static SHARED: LazyLock<Cache<(Account, u32), u32>> = LazyLock::new(|| Cache::builder().build());

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Account {
    base: u32,
}

impl Account {
    /// A cache that `self` does not hold serves every account: `self` stays in the key (it was
    /// once left out, so the second account read the first one's sum).
    #[cached(cache = SHARED)]
    fn plus(&self, n: u32) -> u32 {
        self.base + n
    }
}

#[test]
fn a_cache_held_elsewhere_keys_by_self() {
    let first = Account { base: 100 };
    let second = Account { base: 200 };
    assert_eq!(first.plus(1), 101);
    assert_eq!(second.plus(1), 201, "another account's value");
    assert_eq!(first.plus(1), 101);
    assert_eq!(SHARED.len(), 2);
    assert_eq!(SHARED.stats().hits, 1);
}

static SHARED_PAGES: LazyLock<Cache<(Account, u32), String>> =
    LazyLock::new(|| Cache::builder().build());

impl Account {
    /// The same, for an `async fn`.
    #[cached(cache = SHARED_PAGES)]
    async fn page(&self, n: u32) -> String {
        format!("{} page {n}", self.base)
    }
}

#[test]
fn an_async_method_with_a_cache_held_elsewhere_keys_by_self() {
    let (first, second) = (Account { base: 1 }, Account { base: 2 });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pages = runtime.block_on(async {
        (
            first.page(7).await,
            second.page(7).await,
            first.page(7).await,
        )
    });
    assert_eq!(
        pages,
        ("1 page 7".into(), "2 page 7".into(), "1 page 7".into())
    );
    assert_eq!(SHARED_PAGES.stats().hits, 1);
}

mod mine {
    /// A type of the user's that happens to be named `Path`.
    #[derive(Clone, Debug, Hash, PartialEq, Eq)]
    pub(crate) struct Path(pub(crate) u32);
}

static OWN_PATH_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Keyed by `mine::Path` itself: the companion was once a `Cache<PathBuf, _>`, a cache apart
/// from the function's, so its `invalidate` and `clear` reached nothing.
#[cached]
fn own_path(path: &mine::Path) -> u32 {
    OWN_PATH_RUNS.fetch_add(1, Ordering::SeqCst);
    path.0 * 10
}

#[test]
fn a_users_type_named_path_is_keyed_by_itself() {
    use mine::Path;
    assert_eq!(own_path(&Path(1)), 10);
    assert_eq!(own_path(&Path(1)), 10);
    let companion: &Cache<Path, u32> = own_path_cache();
    assert_eq!(companion.len(), 1, "the companion is the function's cache");
    companion.clear();
    assert_eq!(own_path(&Path(1)), 10);
    assert_eq!(
        OWN_PATH_RUNS.load(Ordering::SeqCst),
        2,
        "cleared, computed again"
    );
}

/// `&std::path::Path` (a path written out) is keyed by `PathBuf`: it was once keyed by the
/// unsized `Path`, a compile error about `[u8]`.
#[cached]
fn path_len(path: &std::path::Path) -> usize {
    path.as_os_str().len()
}

#[cached]
fn os_len(text: &std::ffi::OsStr) -> usize {
    text.len()
}

#[test]
fn std_paths_written_out_are_keyed_by_their_owned_form() {
    assert_eq!(path_len(std::path::Path::new("abc")), 3);
    assert_eq!(path_len(std::path::Path::new("abc")), 3);
    let companion: &Cache<std::path::PathBuf, usize> = path_len_cache();
    assert_eq!(companion.stats().hits, 1);
    assert_eq!(os_len(std::ffi::OsStr::new("ab")), 2);
    let _: &Cache<std::ffi::OsString, usize> = os_len_cache();
}

/// A function pointer or an `Fn` trait object taking a reference borrows nothing while stored:
/// these return types were once refused as borrowing.
#[cached]
fn measure(double: bool) -> fn(&str) -> usize {
    if double {
        |s: &str| s.len() * 2
    } else {
        str::len
    }
}

#[cached]
fn offset(by: usize) -> Arc<dyn Fn(&str) -> usize + Send + Sync> {
    Arc::new(move |s: &str| s.len() + by)
}

#[test]
fn functions_taking_references_can_be_returned() {
    assert_eq!(measure(true)("abc"), 6);
    assert_eq!(measure(false)("abc"), 3);
    assert_eq!(measure(true)("ab"), 4);
    assert_eq!(offset(10)("ab"), 12);
    assert_eq!(offset(10)("abc"), 13);
    assert_eq!(measure_cache().stats().hits, 1);
    assert_eq!(offset_cache().stats().hits, 1);
}

/// A `macro_rules!` passing a reference type as `$t:ty`: with `stale`, the background refresh
/// once bound the owned key part by value to it, a type error.
macro_rules! refreshed_len {
    ($name:ident, $t:ty) => {
        #[cached(ttl = "1h", stale = "1h")]
        fn $name(text: $t) -> usize {
            text.len()
        }
    };
}

refreshed_len!(refreshed_len, &str);

#[test]
fn a_reference_type_a_macro_passes_is_refreshed() {
    assert_eq!(refreshed_len("abcd"), 4);
    assert_eq!(refreshed_len("abcd"), 4);
    assert_eq!(refreshed_len_cache().stats().hits, 1);
}

static LABELLED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A generic function with an `impl Trait` argument left out of the key: its companion
/// (`labelled_cache::<u8>()`) was once a cache apart from the calls' (whose instance `type_name`
/// writes with the argument's type, `labelled<u8, &str>`), so `clear` reached none of them.
#[cached(key = n)]
fn labelled<T: Default + std::fmt::Debug>(n: u32, label: impl std::fmt::Display) -> String {
    LABELLED_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = label.to_string();
    format!("{:?} {n}", T::default())
}

#[test]
fn a_generic_functions_companion_is_its_cache_with_impl_trait_arguments() {
    assert_eq!(labelled::<u8>(1, "x"), "0 1");
    assert_eq!(labelled::<u8>(1, 7), "0 1");
    assert_eq!(
        LABELLED_RUNS.load(Ordering::SeqCst),
        1,
        "the label is not in the key"
    );
    assert_eq!(labelled_cache::<u8>().len(), 1);
    labelled_cache::<u8>().clear();
    assert_eq!(labelled::<u8>(1, "x"), "0 1");
    assert_eq!(
        LABELLED_RUNS.load(Ordering::SeqCst),
        2,
        "cleared, computed again"
    );
    // Another instance keeps apart.
    assert_eq!(labelled::<bool>(1, "x"), "false 1");
    assert_eq!(LABELLED_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(labelled_cache::<bool>().len(), 1);
    assert_eq!(labelled_cache::<u8>().len(), 1);
}

static TAGGED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The bound of an `impl Trait` argument names a lifetime, which `type_name` then writes in the
/// function's instance (`tagged<'_, u8, &str>`) but not in its companion's.
#[cached(key = n)]
fn tagged<'a, T: Default + std::fmt::Debug>(n: u32, tag: impl std::fmt::Display + 'a) -> String {
    TAGGED_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = tag.to_string();
    format!("{:?} {n}", T::default())
}

#[test]
fn a_lifetime_of_an_impl_trait_bound_leaves_the_instance_too() {
    assert_eq!(tagged::<u8>(1, "x"), "0 1");
    assert_eq!(tagged_cache::<u8>().len(), 1);
    tagged_cache::<u8>().clear();
    assert_eq!(tagged::<u8>(1, "y"), "0 1");
    assert_eq!(
        TAGGED_RUNS.load(Ordering::SeqCst),
        2,
        "cleared, computed again"
    );
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Shelf(u32);

impl Shelf {
    /// A typed reference receiver, with `stale`: the background refresh once bound the key's
    /// owned `Self` to `&Self`, a type error.
    #[cached(ttl = "1h", stale = "1h")]
    #[allow(clippy::needless_arbitrary_self_type)]
    fn typed(self: &Self, n: u32) -> u32 {
        self.0 + n
    }

    #[cached(ttl = "1h", refresh = "early")]
    fn shared(self: &Arc<Self>, n: u32) -> u32 {
        self.0 * n
    }
}

#[test]
fn typed_reference_receivers_are_refreshed() {
    assert_eq!(Shelf(1).typed(2), 3);
    assert_eq!(Shelf(1).typed(2), 3);
    assert_eq!(Shelf(2).typed(2), 4);
    assert_eq!(Shelf::typed_cache().stats().hits, 1);
    let shelf = Arc::new(Shelf(3));
    assert_eq!(shelf.shared(2), 6);
    assert_eq!(shelf.shared(2), 6);
    let _: &Cache<(Arc<Shelf>, u32), u32> = Shelf::shared_cache();
}

/// Options a `macro_rules!` passes as `$v:expr`, each in an invisible group: `key = $k` naming
/// an argument was refused (its type "cannot be read"), and `ttl = $ttl` of `"10s"` was taken
/// for a `Duration` expression (a type error).
macro_rules! keyed_by {
    ($name:ident($a:ident, $b:ident), $key:expr, $ttl:expr, $max:expr) => {
        #[cached(key = $key, ttl = $ttl, maxsize = $max)]
        fn $name($a: u32, $b: u32) -> u32 {
            $a * 10 + $b
        }
    };
}

keyed_by!(by_first(first, second), first, "10s", 5);
keyed_by!(by_both(first, second), (first, second), "1m", 5);

#[test]
fn options_a_macro_passes_as_expressions_are_read_as_written() {
    assert_eq!(by_first(1, 2), 12);
    assert_eq!(by_first(1, 3), 12, "keyed by the first argument alone");
    let _: &Cache<u32, u32> = by_first_cache();
    assert_eq!(by_both(1, 2), 12);
    assert_eq!(by_both(1, 3), 13);
    let _: &Cache<(u32, u32), u32> = by_both_cache();
}

/// A trait's default method whose bounds on `Self` are in its `where` clause: the companion
/// once lacked them, an error that `Self` "cannot be cached".
trait Make: From<u32> {
    #[cached]
    fn make(n: u32) -> Self
    where
        Self: Clone + Send + Sync + 'static,
    {
        Self::from(n)
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Made(u32);

impl From<u32> for Made {
    fn from(n: u32) -> Self {
        Self(n)
    }
}

impl Make for Made {}

#[test]
fn a_default_methods_where_clause_reaches_its_companion() {
    assert_eq!(Made::make(3), Made(3));
    assert_eq!(Made::make(3), Made(3));
    assert_eq!(<Made as Make>::make_cache().stats().hits, 1);
}

static APPLIED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Closures as a type argument, which `type_name` writes alike, beside an `impl Trait`
/// argument: each closure is an instance of its own, whatever the `impl Trait` argument's type.
#[cached(key = n)]
fn applied<F: Fn(u32) -> u32>(f: F, n: u32, tag: impl std::fmt::Display) -> u32 {
    APPLIED_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = tag.to_string();
    f(n)
}

#[test]
fn closures_as_type_arguments_keep_apart_beside_impl_trait_arguments() {
    let plus_one = |x: u32| x + 1;
    assert_eq!(applied(plus_one, 1, "a"), 2);
    assert_eq!(
        applied(|x: u32| x + 2, 1, "a"),
        3,
        "another closure's value"
    );
    assert_eq!(applied(plus_one, 1, 7), 2);
    assert_eq!(
        APPLIED_RUNS.load(Ordering::SeqCst),
        2,
        "one instance, whatever the tag"
    );
}

struct Scaled<U>(std::marker::PhantomData<U>);

impl<U: Default + std::fmt::Debug> Scaled<U> {
    /// A generic method of a generic impl with an `impl Trait` argument: each instance of the
    /// impl keeps its own cache, though the method's own parameters are alike.
    #[cached(key = n)]
    fn describe<T: Default + std::fmt::Debug>(n: u32, tag: impl std::fmt::Display) -> String {
        let _ = tag.to_string();
        format!("{:?} {:?} {n}", U::default(), T::default())
    }
}

#[test]
fn a_generic_impls_instances_keep_apart_in_a_method_with_impl_trait_arguments() {
    assert_eq!(Scaled::<u8>::describe::<bool>(1, "x"), "0 false 1");
    assert_eq!(Scaled::<String>::describe::<bool>(1, "x"), "\"\" false 1");
    assert_eq!(Scaled::<u8>::describe::<bool>(1, 2), "0 false 1");
    assert_eq!(Scaled::<String>::describe_cache::<bool>().len(), 1);
}

struct Op<F>(F);

impl<F: Fn(u32) -> u32> Op<F> {
    /// The same in an impl whose instances `type_name` writes alike (closures as its argument):
    /// each keeps its own cache.
    #[cached(key = n)]
    fn applied<T: Default + Into<u32>>(&self, n: u32, tag: impl std::fmt::Display) -> u32 {
        let _ = tag.to_string();
        (self.0)(n) + T::default().into()
    }
}

#[test]
fn closures_as_an_impls_arguments_keep_apart_in_a_method_with_impl_trait_arguments() {
    let plus_one = Op(|x: u32| x + 1);
    let plus_two = Op(|x: u32| x + 2);
    assert_eq!(plus_one.applied::<u8>(1, "x"), 2);
    assert_eq!(plus_two.applied::<u8>(1, "x"), 3, "another closure's value");
}

struct Tagged<T>(T);

impl<T: std::fmt::Debug> Tagged<T> {
    /// A method with an `impl Trait` argument, of an impl whose instances `type_name` writes
    /// alike: same-named types of two blocks as its argument.
    #[cached(key = n)]
    fn shown(&self, n: u32, tag: impl std::fmt::Display) -> String {
        let _ = tag.to_string();
        format!("{:?} {n}", self.0)
    }
}

/// The two `Tagged<…::Unit>` are one to `type_name`: the method's body and its companion find
/// the instance's cache by `Self` (they once shared one, `("Unit 1", "Unit 1")`).
#[test]
fn same_named_types_of_two_blocks_keep_apart_in_a_method_with_impl_trait_arguments() {
    let first = {
        #[derive(Debug)]
        struct Unit;
        Tagged(Unit).shown(1, "x")
    };
    let second = {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Unit(u8);
        Tagged(Unit(7)).shown(1, "x")
    };
    assert_eq!((first.as_str(), second.as_str()), ("Unit 1", "Unit(7) 1"));
}

impl<T: std::fmt::Debug> Tagged<T> {
    /// A method with a receiver and a const parameter, which the instance's site (of `Self`
    /// and the type parameters) leaves out: its scope tells the values apart.
    #[cached(key = n)]
    fn nth<const N: usize>(&self, n: u32) -> String {
        format!("{:?} {n} {N}", self.0)
    }
}

#[test]
fn a_methods_const_arguments_keep_apart_with_a_receiver() {
    let tagged = Tagged(1_u8);
    assert_eq!(tagged.nth::<1>(5), "1 5 1");
    assert_eq!(tagged.nth::<2>(5), "1 5 2", "not the other value's");
    assert_eq!(tagged.nth::<1>(5), "1 5 1");
    assert_eq!(
        Tagged::<u8>::nth_cache::<2>().get(&5).as_deref(),
        Some("1 5 2")
    );
    assert_eq!(Tagged::<u8>::nth_cache::<1>().len(), 1);
}

/// The companion of an instance of `Tagged`, from a value of it: its own type may be a block's.
fn shown_cache_of<T: std::fmt::Debug>(_: &Tagged<T>) -> &'static Cache<u32, String> {
    Tagged::<T>::shown_cache()
}

/// The companion of each `Tagged<…::Unit>` reaches its instance's entries alone (it was the
/// first instance's cache, whichever it was asked for).
#[test]
fn the_companion_of_same_named_types_of_two_blocks_in_a_method_with_impl_trait_arguments() {
    let first = {
        #[derive(Debug)]
        struct Unit;
        Tagged(Unit)
    };
    let second = {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Unit(u8);
        Tagged(Unit(7))
    };
    assert_eq!(first.shown(2, "x"), "Unit 2");
    assert_eq!(second.shown(2, 'y'), "Unit(7) 2");
    assert_eq!(
        shown_cache_of(&second).get(&2).as_deref(),
        Some("Unit(7) 2")
    );
    assert!(shown_cache_of(&second).invalidate(&2));
    assert_eq!(
        shown_cache_of(&first).get(&2).as_deref(),
        Some("Unit 2"),
        "the other's stays"
    );
    assert!(!shown_cache_of(&second).contains_key(&2));
    shown_cache_of(&second).insert(3, "inserted".to_string());
    assert_eq!(
        second.shown(3, "x"),
        "inserted",
        "the companion's entry is the call's"
    );
    assert_eq!(first.shown(3, "x"), "Unit 3");
}

/// A trait's default method with a receiver: every implementor's instance is the method's.
trait Described: std::fmt::Debug {
    #[cached(key = n)]
    fn described(&self, n: u32) -> String {
        format!("{self:?} {n}")
    }
}

/// The companion of an implementor of `Described`, from a value of it.
fn described_cache_of<T: Described>(_: &T) -> &'static Cache<u32, String> {
    T::described_cache()
}

/// Two same-named types of two blocks, one to `type_name`, implement a trait whose default
/// method is memoized: each call and each companion reaches its own type's entries (the
/// companion was the first type's cache).
#[test]
fn a_default_method_with_a_receiver_keeps_same_named_types_of_two_blocks_apart() {
    let first = {
        #[derive(Debug)]
        struct Unit;
        impl Described for Unit {}
        Unit
    };
    let second = {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Unit(u8);
        impl Described for Unit {}
        Unit(7)
    };
    assert_eq!(first.described(1), "Unit 1");
    assert_eq!(second.described(1), "Unit(7) 1");
    assert_eq!(
        described_cache_of(&second).get(&1).as_deref(),
        Some("Unit(7) 1")
    );
    assert_eq!(
        described_cache_of(&first).get(&1).as_deref(),
        Some("Unit 1")
    );
    assert!(described_cache_of(&second).invalidate(&1));
    assert_eq!(
        described_cache_of(&first).len(),
        1,
        "the other's entry stays"
    );
    assert!(!described_cache_of(&second).contains_key(&1));
    described_cache_of(&second).insert(4, "inserted".to_string());
    assert_eq!(
        second.described(4),
        "inserted",
        "the companion's entry is the call's"
    );
    assert_eq!(first.described(4), "Unit 4");
}
