//! Methods key on `self` when `Self: Hash + Eq + Clone`; `key = …` can leave `self` out.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo::cached;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Rect {
    w: u64,
    h: u64,
}

static AREA_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Rect {
    #[cached]
    fn area(&self, scale: u64) -> u64 {
        AREA_RUNS.fetch_add(1, Ordering::SeqCst);
        self.w * self.h * scale
    }

    #[cached]
    fn unit(side: u64) -> Self {
        Self { w: side, h: side }
    }

    #[cached]
    fn into_perimeter(self) -> u64 {
        2 * (self.w + self.h)
    }
}

#[test]
fn methods_key_on_self_and_arguments() {
    let r = Rect { w: 2, h: 3 };
    assert_eq!(r.area(10), 60);
    assert_eq!(r.clone().area(10), 60);
    assert_eq!(Rect { w: 3, h: 2 }.area(10), 60);
    assert_eq!(AREA_RUNS.load(Ordering::SeqCst), 2);
    let cache: &'static memo::Cache<(Rect, u64), u64> = Rect::area_cache();
    assert!(cache.invalidate(&(Rect { w: 2, h: 3 }, 10)));
}

#[test]
fn associated_functions_and_by_value_receivers() {
    assert_eq!(Rect::unit(4).w, 4);
    assert_eq!(Rect::unit(4).h, 4);
    assert_eq!(Rect::unit_cache().stats().hits, 1);
    assert_eq!(Rect { w: 1, h: 2 }.into_perimeter(), 6);
    assert!(Rect::into_perimeter_cache().contains_key(&Rect { w: 1, h: 2 }));
}

/// Not `Hash`: methods on it must say what the key is.
struct Client {
    base: String,
}

static FETCH_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Client {
    #[cached(key = path)]
    fn fetch(&self, path: &str) -> String {
        FETCH_RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{}/{path}", self.base)
    }
}

#[test]
fn key_can_leave_self_out() {
    let a = Client {
        base: "http://a".into(),
    };
    let b = Client {
        base: "http://b".into(),
    };
    assert_eq!(a.fetch("x"), "http://a/x");
    assert_eq!(b.fetch("x"), "http://a/x", "keyed by path alone");
    assert_eq!(FETCH_RUNS.load(Ordering::SeqCst), 1);
    let cache: &'static memo::Cache<String, String> = Client::fetch_cache();
    assert_eq!(cache.len(), 1);
}

struct Typed<T>(std::marker::PhantomData<T>);

impl<T: Default + Clone + Send + Sync + 'static> Typed<T> {
    #[cached]
    fn make(n: u32) -> (u32, T) {
        (n, T::default())
    }
}

#[test]
fn generic_impls_get_one_cache_per_type() {
    assert_eq!(Typed::<String>::make(1), (1, String::new()));
    assert_eq!(Typed::<u8>::make(1), (1, 0));
    assert_eq!(Typed::<u8>::make(1), (1, 0));
    assert_eq!(Typed::<String>::make_cache().len(), 1);
    assert_eq!(Typed::<u8>::make_cache().stats().hits, 1);
    assert_eq!(Typed::<String>::make_cache().stats().hits, 0);
}
