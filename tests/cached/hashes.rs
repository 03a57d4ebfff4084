//! A memoized call hashes its key once, hit or miss (issue 19): the hash the lookup made goes
//! on to the miss. `scripts/test` runs these in release too, where a function without `ttl`
//! tries its quick hit first, which hands its hash on to the miss.

use std::cell::Cell;
use std::hash::{Hash, Hasher};

use memo::{Cache, cached};

thread_local! {
    /// Hashes of [`Counted`] keys on this thread (each test counts its own calls).
    static HASHES: Cell<u64> = const { Cell::new(0) };
}

/// A key that counts how often it is hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Counted(u64);

impl Hash for Counted {
    fn hash<H: Hasher>(&self, state: &mut H) {
        HASHES.with(|hashes| hashes.set(hashes.get() + 1));
        self.0.hash(state);
    }
}

/// The hashes of a miss, then of a hit, of `call` on a new key, once its cache exists (the
/// first call of a function makes the cache, and there is no quick try to hand a hash on).
fn miss_then_hit(key: u64, call: impl Fn(Counted) -> u64) -> [u64; 2] {
    assert_eq!(call(Counted(key + 1_000)), (key + 1_000) * 2);
    [0, 1].map(|_| {
        let before = HASHES.with(Cell::get);
        assert_eq!(call(Counted(key)), key * 2);
        HASHES.with(Cell::get) - before
    })
}

/// Runs `future` on this thread, where its hashes are counted.
fn on_this_thread<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    runtime.expect("a runtime").block_on(future)
}

#[cached]
fn forever(key: Counted) -> u64 {
    key.0 * 2
}

#[cached]
fn forever_fallible(key: Counted) -> Result<u64, String> {
    Ok(key.0 * 2)
}

#[cached(ttl = "1h")]
fn timed(key: Counted) -> u64 {
    key.0 * 2
}

#[cached(maxsize = 10)]
async fn later(key: Counted) -> u64 {
    key.0 * 2
}

#[test]
fn a_memoized_function_hashes_its_key_once_per_call() {
    assert_eq!(miss_then_hit(1, forever), [1, 1], "without `ttl`");
    let fallible = |key| forever_fallible(key).unwrap();
    assert_eq!(miss_then_hit(2, fallible), [1, 1], "a `Result`");
    assert_eq!(miss_then_hit(3, timed), [1, 1], "with `ttl`");
    let awaited = |key| on_this_thread(later(key));
    assert_eq!(miss_then_hit(4, awaited), [1, 1], "an `async fn`");
}

/// Methods whose caches are fields (`cache = self.field`).
struct Doubler {
    plain: Cache<Counted, u64>,
    fallible: Cache<Counted, u64>,
    awaited: Cache<Counted, u64>,
}

impl Doubler {
    #[cached(cache = self.plain)]
    fn double(&self, key: Counted) -> u64 {
        key.0 * 2
    }

    #[cached(cache = self.fallible)]
    fn try_double(&self, key: Counted) -> Result<u64, String> {
        Ok(key.0 * 2)
    }

    #[cached(cache = self.awaited)]
    async fn double_later(&self, key: Counted) -> u64 {
        key.0 * 2
    }
}

#[test]
fn a_method_over_its_own_cache_hashes_its_key_once_per_call() {
    let doubler = Doubler {
        plain: Cache::builder().build(),
        fallible: Cache::builder().build(),
        awaited: Cache::builder().build(),
    };
    assert_eq!(miss_then_hit(1, |key| doubler.double(key)), [1, 1]);
    let fallible = |key| doubler.try_double(key).unwrap();
    assert_eq!(miss_then_hit(2, fallible), [1, 1], "a `Result`");
    let awaited = |key| on_this_thread(doubler.double_later(key));
    assert_eq!(miss_then_hit(3, awaited), [1, 1], "an `async fn`");
}
