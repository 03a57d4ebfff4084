//! Arguments are keyed by their owned form; hits look up the borrowed form and allocate nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;

use crate::alloc_count::allocations_during;

static SHOUT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn shout(word: &str) -> String {
    SHOUT_RUNS.fetch_add(1, Ordering::SeqCst);
    word.to_uppercase()
}

#[test]
fn str_arguments_are_keyed_by_string_and_hits_do_not_allocate() {
    assert_eq!(shout("hello"), "HELLO");
    let owned = String::from("hello");
    assert_eq!(shout(&owned), "HELLO");
    assert_eq!(SHOUT_RUNS.load(Ordering::SeqCst), 1);
    // The handle's key type is `String`; lookups take `&str` too.
    let cache: &'static memo::Cache<String, String> = shout_cache();
    assert_eq!(cache.get("hello").as_deref(), Some("HELLO"));

    let word = String::from("x");
    shout(&word);
    // The returned `String` is a clone (an allocation of the value); the lookup itself must add none.
    let per_hit = allocations_during(|| {
        for _ in 0..1000 {
            std::hint::black_box(shout(&word));
        }
    });
    assert_eq!(
        per_hit, 1000,
        "one allocation per hit: the cloned String, none for the key"
    );
}

#[cached]
fn len_of(word: &str) -> usize {
    word.len()
}

#[test]
fn hit_with_copy_value_allocates_nothing_at_all() {
    len_of("warm");
    let allocations = allocations_during(|| {
        for _ in 0..1000 {
            std::hint::black_box(len_of("warm"));
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(len_of_cache().stats().hits, 1000);
}

static SUM_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn sum(values: &[u64]) -> u64 {
    SUM_RUNS.fetch_add(1, Ordering::SeqCst);
    values.iter().sum()
}

#[test]
fn slices_are_keyed_by_vec() {
    assert_eq!(sum(&[1, 2, 3]), 6);
    let owned: Vec<u64> = (1..=3).collect();
    assert_eq!(sum(&owned), 6);
    assert_eq!(SUM_RUNS.load(Ordering::SeqCst), 1);
    // A hit looks the slice up as it is: no `Vec` is built (the value is a `u64`, no allocation).
    let values = [1, 2, 3];
    let allocations = allocations_during(|| {
        for _ in 0..1000 {
            std::hint::black_box(sum(&values));
        }
    });
    assert_eq!(
        allocations, 0,
        "a hit on a slice argument allocates nothing"
    );
    let cache: &'static memo::Cache<Vec<u64>, u64> = sum_cache();
    assert!(cache.invalidate(&[1, 2, 3][..]));
    assert!(!cache.invalidate(&vec![1, 2, 3]));
}

static CLONES: AtomicUsize = AtomicUsize::new(0);

/// A key part that counts its clones.
#[derive(Hash, PartialEq, Eq)]
struct Counted(u32);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Self(self.0)
    }
}

#[cached]
fn double(n: Counted) -> u32 {
    n.0 * 2
}

#[test]
fn an_argument_taken_by_value_is_not_cloned_on_a_hit() {
    assert_eq!(double(Counted(4)), 8);
    let clones_at_the_miss = CLONES.load(Ordering::SeqCst);
    for _ in 0..100 {
        assert_eq!(double(Counted(4)), 8);
    }
    assert_eq!(double_cache().stats().hits, 100);
    assert_eq!(
        CLONES.load(Ordering::SeqCst),
        clones_at_the_miss,
        "a hit looks the argument up by reference"
    );
}

#[derive(Clone, Hash, PartialEq, Eq, Debug)]
struct Point {
    x: i32,
    y: i32,
}

#[cached]
fn norm1(p: &Point) -> i32 {
    p.x.abs() + p.y.abs()
}

#[test]
fn references_are_keyed_by_the_value() {
    assert_eq!(norm1(&Point { x: 3, y: -4 }), 7);
    let cache: &'static memo::Cache<Point, i32> = norm1_cache();
    assert_eq!(cache.get(&Point { x: 3, y: -4 }), Some(7));
}

static CONCAT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn concat(name: &str, times: usize, sep: char) -> String {
    CONCAT_RUNS.fetch_add(1, Ordering::SeqCst);
    vec![name; times].join(&sep.to_string())
}

#[test]
fn several_arguments_are_keyed_by_a_tuple() {
    assert_eq!(concat("ab", 3, '-'), "ab-ab-ab");
    assert_eq!(concat("ab", 3, '-'), "ab-ab-ab");
    assert_eq!(concat("ab", 2, '-'), "ab-ab");
    assert_eq!(CONCAT_RUNS.load(Ordering::SeqCst), 2);
    let cache: &'static memo::Cache<(String, usize, char), String> = concat_cache();
    assert!(cache.invalidate(&("ab".to_string(), 3, '-')));
    assert_eq!(cache.len(), 1);
    // Or by the tuple of borrowed parts, as the call looks it up.
    assert_eq!(cache.get(("ab", &2, &'-')).as_deref(), Some("ab-ab"));
    assert!(cache.contains_key(("ab", &2, &'-')));
    assert!(cache.invalidate(("ab", &2, &'-')));
    assert!(cache.is_empty());
}

static BUMP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn bump(mut n: u32) -> u32 {
    BUMP_RUNS.fetch_add(1, Ordering::SeqCst);
    n += 100;
    n
}

#[test]
fn mut_arguments_are_keyed_by_the_value_passed_in() {
    assert_eq!(bump(1), 101);
    assert_eq!(bump(1), 101);
    assert_eq!(BUMP_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(bump_cache().get(&1), Some(101));
    assert_eq!(bump_cache().get(&101), None);
}

static NOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn startup_time() -> u64 {
    NOW_RUNS.fetch_add(1, Ordering::SeqCst) as u64 + 42
}

#[test]
fn no_arguments_means_one_entry() {
    assert_eq!(startup_time(), 42);
    assert_eq!(startup_time(), 42);
    assert_eq!(NOW_RUNS.load(Ordering::SeqCst), 1);
    assert!(startup_time_cache().invalidate(&()));
}

static PAIR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = (id, lang))]
fn greeting(id: u32, lang: &str, _request_id: u64) -> String {
    PAIR_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{lang}:{id}")
}

#[test]
fn key_names_a_subset_of_the_arguments() {
    assert_eq!(greeting(1, "en", 100), "en:1");
    assert_eq!(greeting(1, "en", 200), "en:1");
    assert_eq!(PAIR_RUNS.load(Ordering::SeqCst), 1);
    let cache: &'static memo::Cache<(u32, String), String> = greeting_cache();
    assert!(cache.contains_key(&(1, "en".to_string())));
}

pub(crate) struct User {
    id: u64,
    name: String,
}

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = user.id, key_type = u64)]
fn profile(user: &User) -> String {
    PROFILE_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("#{} {}", user.id, user.name)
}

#[test]
fn key_expressions_with_their_type() {
    let alice = User {
        id: 7,
        name: "alice".into(),
    };
    let renamed = User {
        id: 7,
        name: "alicia".into(),
    };
    assert_eq!(profile(&alice), "#7 alice");
    assert_eq!(profile(&renamed), "#7 alice", "keyed by id only");
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), 1);
    assert!(profile_cache().invalidate(&7));
}

static FLOAT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = x.to_bits(), key_type = u64)]
fn half(x: f64) -> f64 {
    FLOAT_RUNS.fetch_add(1, Ordering::SeqCst);
    x / 2.0
}

#[test]
fn non_hash_arguments_can_be_keyed_through_key() {
    assert!((half(3.0) - 1.5).abs() < f64::EPSILON);
    assert!((half(3.0) - 1.5).abs() < f64::EPSILON);
    assert_eq!(FLOAT_RUNS.load(Ordering::SeqCst), 1);
}

static ONCE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = ())]
fn config_value(_path: &str) -> usize {
    ONCE_RUNS.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn unit_key_computes_once_for_all_arguments() {
    assert_eq!(config_value("a"), 0);
    assert_eq!(config_value("b"), 0);
    assert_eq!(ONCE_RUNS.load(Ordering::SeqCst), 1);
}

#[cached(key = id)]
fn describe(id: u32, label: impl AsRef<str>) -> String {
    format!("{id}:{}", label.as_ref())
}

#[test]
fn impl_trait_arguments_can_stay_out_of_the_key() {
    assert_eq!(describe(1, "a"), "1:a");
    assert_eq!(
        describe(1, String::from("b")),
        "1:a",
        "keyed by id only, whatever the label's type"
    );
    assert_eq!(describe_cache().len(), 1);
}

#[cached(maxsize = 100_000)]
fn doubled(n: u64) -> u64 {
    n * 2
}

/// A miss on the memory store allocates the flight's copy of the key and the flight, and
/// nothing for its look at the store, its claim and its write (unit futures); with the
/// `metrics` feature, the load's record adds one. The keys missed were held and invalidated, so
/// the store and the flight table have room for them; what growth is left (the eviction rings)
/// stays under one allocation per ten misses.
#[test]
fn a_miss_in_memory_allocates_only_its_flight() {
    const MISSES: u64 = 1_000;
    for n in 0..5_000 {
        doubled(n);
    }
    for n in 0..MISSES {
        assert!(doubled_cache().invalidate(&n));
    }
    let allocations = allocations_during(|| {
        for n in 0..MISSES {
            std::hint::black_box(doubled(n));
        }
    });
    assert_eq!(doubled_cache().stats().misses, 5_000 + MISSES);
    let per_miss = if cfg!(feature = "metrics") { 3 } else { 2 };
    let expected = MISSES * per_miss;
    assert!(
        (expected..expected + MISSES / 10).contains(&allocations),
        "{allocations} allocations for {MISSES} misses, {per_miss} each expected"
    );
}

// A borrow below an argument's top level cannot be the key as it is: the compile error suggests
// an owned copy, which these use as suggested.

#[cached(key = name.map(str::to_owned), key_type = Option<String>)]
fn greet(name: Option<&str>) -> String {
    format!("hello {}", name.unwrap_or("you"))
}

#[cached(key = words.iter().map(|&x| x.to_owned()).collect(), key_type = Vec<String>)]
fn join(words: &[&str]) -> String {
    words.join(" ")
}

#[cached(key = (pair.0, pair.1.to_owned()), key_type = (u32, String))]
fn label(pair: (u32, &str)) -> String {
    format!("{}{}", pair.0, pair.1)
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Item(u32);

#[cached(key = (items.iter().map(|&x| x.clone()).collect(), scale), key_type = (Vec<Item>, u32))]
fn total(items: Vec<&Item>, scale: u32) -> u32 {
    items.iter().map(|item| item.0).sum::<u32>() * scale
}

// A `'static` borrow is keyed as it is.
#[cached]
fn level(name: Option<&'static str>) -> usize {
    name.map_or(0, str::len)
}

// A `fn` pointer borrows its argument only while it is called: it is keyed as it is.
#[cached]
fn apply(f: fn(&str) -> usize) -> usize {
    f("four")
}

#[test]
fn borrowed_parts_are_keyed_by_an_owned_copy() {
    assert_eq!(greet(Some("ann")), "hello ann");
    assert!(greet_cache().contains_key(&Some("ann".to_string())));
    assert_eq!(join(&["a", "b"]), "a b");
    assert!(join_cache().contains_key(&vec!["a".to_string(), "b".to_string()]));
    assert_eq!(label((1, "x")), "1x");
    assert!(label_cache().contains_key(&(1, "x".to_string())));
    assert_eq!(total(vec![&Item(1), &Item(2)], 2), 6);
    assert!(total_cache().contains_key(&(vec![Item(1), Item(2)], 2)));
    assert_eq!(level(Some("info")), 4);
    assert_eq!(level(Some("info")), 4);
    assert_eq!(level_cache().stats().hits, 1);
    // (Whether two `fn` pointers to one function are equal is not guaranteed: no hit is asserted.)
    assert_eq!(apply(str::len), 4);
}
