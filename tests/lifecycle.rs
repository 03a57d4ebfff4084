//! A cache moves, clones and drops its keys and values as a `HashMap` would, whatever their
//! types: each one made is dropped exactly once, over-aligned and zero-sized types come back
//! intact, and a key or value whose `Hash`, `Eq` or `Clone` panics leaves no caller waiting and
//! the cache usable. The store keeps entries in memory it manages itself (slots of a stride, values
//! moved through type-erased boxes), so these are its attacks.

use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use memo::{Cache, Policy};

/// A key that counts its live copies, with a heap part (a double drop or a lost one shows).
struct Key {
    live: &'static AtomicIsize,
    id: u64,
    name: String,
}

impl Key {
    fn new(live: &'static AtomicIsize, id: u64) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self {
            live,
            id,
            name: format!("key-{id}"),
        }
    }
}

impl Clone for Key {
    fn clone(&self) -> Self {
        self.live.fetch_add(1, Ordering::SeqCst);
        Self {
            live: self.live,
            id: self.id,
            name: self.name.clone(),
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        assert_eq!(
            self.name,
            format!("key-{}", self.id),
            "a key dropped intact"
        );
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// A value that counts its live copies, its contents derived from `id`.
struct Value {
    live: &'static AtomicIsize,
    id: u64,
    words: Vec<u64>,
}

impl Value {
    fn new(live: &'static AtomicIsize, id: u64) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self {
            live,
            id,
            words: (0..8).map(|i| id * 31 + i).collect(),
        }
    }

    fn is_intact(&self, id: u64) -> bool {
        self.id == id && self.words == (0..8).map(|i| id * 31 + i).collect::<Vec<_>>()
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        self.live.fetch_add(1, Ordering::SeqCst);
        Self {
            live: self.live,
            id: self.id,
            words: self.words.clone(),
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Inserts, reads, evicts, replaces, removes, computes through single-flight and clears on a
/// cache of `policy`, then drops it: every key and value made is dropped once, none twice.
fn every_key_and_value_is_dropped_once(
    policy: Policy,
    keys: &'static AtomicIsize,
    values: &'static AtomicIsize,
) {
    let cache: Cache<Key, Value> = Cache::builder().maxsize(64).policy(policy).build();
    for id in 0..1_000 {
        cache.insert(Key::new(keys, id), Value::new(values, id));
        if id % 3 == 0 {
            // A replacement drops the value it replaces.
            cache.insert(Key::new(keys, id), Value::new(values, id));
        }
        let probe = Key::new(keys, id / 2);
        if let Some(value) = cache.get(&probe) {
            assert!(value.is_intact(id / 2));
        }
        if id % 7 == 0 {
            let taken = cache.remove(&probe);
            assert!(taken.is_none_or(|value| value.is_intact(id / 2)));
        }
    }
    assert!(cache.len() <= 64, "{}", cache.len());
    for id in 2_000..2_100 {
        let value = cache.get_or_insert_with(Key::new(keys, id), || Value::new(values, id));
        assert!(value.is_intact(id));
    }
    let ttl = Duration::from_secs(60);
    cache.insert_with_ttl(Key::new(keys, 5_000), Value::new(values, 5_000), ttl);
    assert!(cache.get(&Key::new(keys, 5_000)).unwrap().is_intact(5_000));
    let held = cache.len();
    assert!(held > 0);
    cache.clear();
    assert_eq!(cache.len(), 0);
    for id in 0..10 {
        cache.insert(Key::new(keys, id), Value::new(values, id));
    }
    drop(cache);
    assert_eq!(
        keys.load(Ordering::SeqCst),
        0,
        "keys alive after the cache ({policy:?})"
    );
    assert_eq!(
        values.load(Ordering::SeqCst),
        0,
        "values alive after the cache ({policy:?})"
    );
}

#[test]
fn every_key_and_value_is_dropped_once_under_each_policy() {
    static KEYS: [AtomicIsize; 4] = [const { AtomicIsize::new(0) }; 4];
    static VALUES: [AtomicIsize; 4] = [const { AtomicIsize::new(0) }; 4];
    let policies = [Policy::Auto, Policy::Lru, Policy::Lfu, Policy::Fifo];
    for (i, policy) in policies.into_iter().enumerate() {
        every_key_and_value_is_dropped_once(policy, &KEYS[i], &VALUES[i]);
    }
}

/// Values that waiters of one computation take: each waiter's copy is dropped too.
#[test]
fn values_handed_to_waiters_are_dropped_once() {
    static KEYS: AtomicIsize = AtomicIsize::new(0);
    static VALUES: AtomicIsize = AtomicIsize::new(0);
    let _watchdog = Watchdog::start(60);
    let cache: Arc<Cache<Key, Value>> = Arc::new(Cache::builder().maxsize(16).build());
    for round in 0..20 {
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, start) = (Arc::clone(&cache), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    let value = cache.get_or_insert_with(Key::new(&KEYS, round), || {
                        std::thread::sleep(Duration::from_millis(5));
                        Value::new(&VALUES, round)
                    });
                    assert!(value.is_intact(round));
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
    drop(cache);
    assert_eq!(KEYS.load(Ordering::SeqCst), 0);
    assert_eq!(VALUES.load(Ordering::SeqCst), 0);
}

/// A type aligned to 256 bytes: a slot placed at the wrong offset would read it misaligned (which
/// the standard library's debug checks catch) or torn.
#[derive(Clone, Debug, PartialEq)]
#[repr(align(256))]
struct Page {
    bytes: [u8; 300],
}

impl Page {
    fn of(id: u32) -> Self {
        #[allow(clippy::cast_possible_truncation, reason = "bytes of a pattern")]
        let bytes = std::array::from_fn(|i| (id as usize * 7 + i) as u8);
        Self { bytes }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[repr(align(64))]
struct WideKey(u32);

#[test]
fn over_aligned_keys_and_values_come_back_intact() {
    for policy in [Policy::Auto, Policy::Lru, Policy::Lfu, Policy::Fifo] {
        let cache: Cache<WideKey, Page> = Cache::builder().maxsize(200).policy(policy).build();
        for id in 0..2_000 {
            cache.insert(WideKey(id), Page::of(id));
            let look = id - id % 5;
            if let Some(page) = cache.get(&WideKey(look)) {
                assert_eq!(page, Page::of(look));
            }
        }
        assert!(cache.len() <= 200);
        let mut held = 0;
        for id in 0..2_000 {
            if let Some(page) = cache.peek(&WideKey(id)) {
                assert_eq!(page, Page::of(id), "{policy:?}");
                held += 1;
            }
        }
        assert_eq!(held, cache.len());
        let page = cache.get_or_insert_with(WideKey(9_999), || Page::of(9_999));
        assert_eq!(page, Page::of(9_999));
    }
}

#[memo::cached(maxsize = 100)]
fn render(id: u32) -> Page {
    Page::of(id)
}

#[test]
fn a_memoized_function_of_over_aligned_values_returns_them_intact() {
    for round in 0..3 {
        for id in 0..300 {
            assert_eq!(render(id), Page::of(id), "round {round}");
        }
    }
    assert!(render_cache().len() <= 100);
}

#[test]
fn zero_sized_keys_and_values_are_kept() {
    let units: Cache<u32, ()> = Cache::builder().maxsize(10).build();
    for id in 0..100 {
        units.insert(id, ());
    }
    assert_eq!(units.len(), 10);
    assert_eq!(units.keys().len(), 10);
    let one: Cache<(), u64> = Cache::builder().build();
    one.insert((), 1);
    one.insert((), 2);
    assert_eq!((one.get(&()), one.len()), (Some(2), 1));
    let nothing: Cache<(), ()> = Cache::builder().build();
    assert_eq!(nothing.get_or_insert_with((), || ()), ());
    assert!(nothing.contains_key(&()));
    assert_eq!(nothing.remove(&()), Some(()));
    assert!(nothing.is_empty());
}

/// Aborts the test process if it is still running `seconds` from now, unless dropped first: a
/// caller left waiting for ever fails the run instead of hanging it.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn start(seconds: u64) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&done);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(seconds));
            if !seen.load(Ordering::SeqCst) {
                eprintln!("a caller was left waiting for {seconds} s");
                std::process::abort();
            }
        });
        Self(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A value whose clone panics while `FAIL_CLONE` is set.
#[derive(Debug, PartialEq)]
struct Brittle(u64);

static FAIL_CLONE: AtomicBool = AtomicBool::new(false);

impl Clone for Brittle {
    fn clone(&self) -> Self {
        assert!(!FAIL_CLONE.load(Ordering::SeqCst), "a clone that panics");
        Self(self.0)
    }
}

/// A computation whose value cannot be cloned for its waiters: each waiter is told (it panics
/// with the clone, or computes again), none waits for ever, and the cache stays usable.
#[test]
fn a_value_whose_clone_panics_leaves_no_waiter_behind() {
    let _watchdog = Watchdog::start(60);
    let cache: Arc<Cache<u32, Brittle>> = Arc::new(Cache::builder().build());
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(4));
    FAIL_CLONE.store(true, Ordering::SeqCst);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, runs, start) = (Arc::clone(&cache), Arc::clone(&runs), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                catch_unwind(AssertUnwindSafe(|| {
                    cache.get_or_insert_with(1, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Brittle(1)
                    })
                }))
                .ok()
            })
        })
        .collect();
    // Every thread returns: a value, or the panic of a clone.
    let done: Vec<Option<Brittle>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(done.iter().flatten().all(|value| *value == Brittle(1)));
    assert!(runs.load(Ordering::SeqCst) >= 1);
    FAIL_CLONE.store(false, Ordering::SeqCst);
    assert_eq!(cache.get_or_insert_with(1, || Brittle(1)), Brittle(1));
    assert_eq!(cache.get_or_insert_with(2, || Brittle(2)), Brittle(2));
    assert_eq!(cache.get(&2), Some(Brittle(2)));
}

/// Keys that all hash alike, whose `Eq` panics when it meets `TOUCHY`.
#[derive(Clone, Debug)]
struct Collide(u32);

const TOUCHY: u32 = 13;

impl PartialEq for Collide {
    fn eq(&self, other: &Self) -> bool {
        assert!(self.0 != TOUCHY && other.0 != TOUCHY, "an Eq that panics");
        self.0 == other.0
    }
}

impl Eq for Collide {}

impl Hash for Collide {
    fn hash<H: Hasher>(&self, state: &mut H) {
        0_u8.hash(state);
    }
}

/// An `Eq` that panics while another caller computes a key of the same hash: the panic reaches
/// its caller alone; the computation finishes, its value is stored, and the cache serves on.
#[test]
fn a_key_whose_eq_panics_leaves_the_cache_usable() {
    let _watchdog = Watchdog::start(60);
    let cache: Arc<Cache<Collide, u32>> = Arc::new(Cache::builder().build());
    let computing = Arc::new(Barrier::new(2));
    let leader = {
        let (cache, computing) = (Arc::clone(&cache), Arc::clone(&computing));
        std::thread::spawn(move || {
            cache.get_or_insert_with(Collide(1), || {
                computing.wait();
                std::thread::sleep(Duration::from_millis(30));
                10
            })
        })
    };
    computing.wait();
    // Key 13 meets key 1's computation in the same bucket: its `Eq` panics.
    let touchy = catch_unwind(AssertUnwindSafe(|| {
        cache.get_or_insert_with(Collide(TOUCHY), || 130)
    }));
    assert!(touchy.is_err(), "the panic reaches its caller");
    assert_eq!(leader.join().unwrap(), 10);
    assert_eq!(cache.get(&Collide(1)), Some(10));
    assert_eq!(cache.get_or_insert_with(Collide(2), || 20), 20);
    assert_eq!(cache.get(&Collide(2)), Some(20));
    assert_eq!(cache.len(), 2);
}
