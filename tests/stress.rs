//! Many threads mixing every operation on small caches: the bound holds at every instant and no
//! call ever sees another key's value.
//!
//! Values carry their key (`key * STRIDE + version`), so a value served for the wrong key, or a
//! torn one, fails the check wherever it is read.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use memo::{Cache, Config, MemoryStore};

const STRIDE: u64 = 1 << 32;
const MAXSIZE: usize = 64;
const THREADS: usize = 8;
const OPS_PER_THREAD: u64 = 40_000;
/// Keys drawn from a range several times the bound, so the store evicts all the time.
const KEYS: u64 = 512;

fn key_of(value: u64) -> u64 {
    value / STRIDE
}

/// A small xorshift stream per thread: deterministic, and different for each thread.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs the mixed load on `cache`; returns how many values were read back (all checked).
fn hammer(cache: &Cache<u64, u64>) -> usize {
    hammer_within(cache, MAXSIZE, u64::MAX)
}

/// [`hammer`], checking the bounds `maxsize` and `max_weight` all along.
fn hammer_within(cache: &Cache<u64, u64>, maxsize: usize, max_weight: u64) -> usize {
    let version = AtomicU64::new(1);
    let checked = AtomicUsize::new(0);
    let running = AtomicBool::new(true);
    let max_seen = AtomicUsize::new(0);
    let max_weighed = AtomicU64::new(0);
    thread::scope(|s| {
        // A watcher samples the length the whole time.
        s.spawn(|| {
            while running.load(Ordering::Relaxed) {
                max_seen.fetch_max(cache.len(), Ordering::Relaxed);
                max_weighed.fetch_max(cache.weight().unwrap_or(0), Ordering::Relaxed);
                thread::yield_now();
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (version, checked) = (&version, &checked);
                s.spawn(move || {
                    let mut draw = Draw(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                    for _ in 0..OPS_PER_THREAD {
                        let roll = draw.next();
                        let key = (roll >> 8) % KEYS;
                        let fresh = || key * STRIDE + version.fetch_add(1, Ordering::Relaxed);
                        let read = match roll % 100 {
                            0..=59 => Some(cache.get_or_compute(&key, |_| fresh())),
                            60..=79 => cache.get(&key),
                            80..=91 => {
                                cache.insert(key, fresh());
                                None
                            }
                            92..=98 => {
                                cache.invalidate(&key);
                                None
                            }
                            _ => {
                                if roll % 1000 == 999 {
                                    cache.clear();
                                } else {
                                    for k in cache.keys() {
                                        assert!(k < KEYS, "a key nobody stored: {k}");
                                    }
                                }
                                None
                            }
                        };
                        if let Some(value) = read {
                            assert_eq!(key_of(value), key, "value {value:#x} served for key {key}");
                            checked.fetch_add(1, Ordering::Relaxed);
                        }
                        assert!(cache.len() <= maxsize, "len {} > {maxsize}", cache.len());
                        let weight = cache.weight().unwrap_or(0);
                        assert!(weight <= max_weight, "weight {weight} > {max_weight}");
                    }
                })
            })
            .collect();
        // The watcher stops before a failed check is reported: the scope would wait for it.
        let failed = workers
            .into_iter()
            .map(std::thread::ScopedJoinHandle::join)
            .filter(Result::is_err)
            .count();
        running.store(false, Ordering::Relaxed);
        assert_eq!(failed, 0, "a worker failed a check");
    });
    let max_seen = max_seen.load(Ordering::Relaxed);
    assert!(max_seen <= maxsize, "the watcher saw {max_seen} entries");
    let max_weighed = max_weighed.load(Ordering::Relaxed);
    assert!(
        max_weighed <= max_weight,
        "the watcher saw a weight of {max_weighed}"
    );
    checked.load(Ordering::Relaxed)
}

#[test]
fn bounded_cache_under_mixed_load_keeps_its_bound_and_its_keys() {
    let cache = Cache::new(Config::new().maxsize(MAXSIZE));
    let checked = hammer(&cache);
    assert!(checked > 100_000, "only {checked} reads checked");
    let stats = cache.stats();
    assert!(stats.evictions > 0, "the load must evict: {stats:?}");
}

#[test]
fn bounded_ttl_cache_under_mixed_load_with_expiry_keeps_its_bound_and_its_keys() {
    // A time to live shorter than the run, so entries also expire while the load runs.
    let cache = Cache::new(
        Config::new()
            .maxsize(MAXSIZE)
            .ttl(Duration::from_micros(200))
            .jitter(0.5),
    );
    let checked = hammer(&cache);
    assert!(checked > 100_000, "only {checked} reads checked");
    // On a slow machine entries may all expire before the bound is reached: then nothing is
    // evicted, but something must have expired.
    let stats = cache.stats();
    assert!(stats.expired > 0, "entries must expire: {stats:?}");
}

/// A value weighs 0 to 60 KiB, by its version: a replacement changes the weight.
#[allow(clippy::trivially_copy_pass_by_ref, reason = "a weigher's signature")]
fn weigh(_: &u64, value: &u64) -> u64 {
    (value % 61) << 10
}

#[test]
fn weighted_cache_under_mixed_load_keeps_its_weight_bound_and_its_keys() {
    // 16 shards of 64 KiB: about 30 entries held, of the 512 keys.
    const MAX_WEIGHT: u64 = 16 << 16;
    let store = MemoryStore::new(&Config::new().max_weight(MAX_WEIGHT)).weigher(weigh);
    let cache = Cache::with_store(store);
    let checked = hammer_within(&cache, usize::MAX, MAX_WEIGHT);
    assert!(checked > 100_000, "only {checked} reads checked");
    let stats = cache.stats();
    assert!(stats.evictions > 0, "the load must evict: {stats:?}");
    assert!(cache.weight().unwrap() <= MAX_WEIGHT);
}

/// What an eviction listener heard of each value (by its version): when, in a sequence the
/// readers also draw from, and why.
struct Heard {
    sequence: AtomicU64,
    at: Vec<AtomicU64>,
    cause: Vec<std::sync::Mutex<Option<memo::RemovalCause>>>,
    twice: AtomicUsize,
}

impl Heard {
    fn new(versions: usize) -> Self {
        Self {
            sequence: AtomicU64::new(1),
            at: (0..versions).map(|_| AtomicU64::new(0)).collect(),
            cause: (0..versions).map(|_| std::sync::Mutex::new(None)).collect(),
            twice: AtomicUsize::new(0),
        }
    }

    fn hear(&self, key: u64, value: u64, cause: memo::RemovalCause) {
        assert_eq!(
            key_of(value),
            key,
            "told of value {value:#x} under key {key}"
        );
        let version = usize::try_from(value % STRIDE).unwrap();
        let now = self.sequence.fetch_add(1, Ordering::SeqCst);
        if self.at[version].swap(now, Ordering::SeqCst) != 0 {
            self.twice.fetch_add(1, Ordering::SeqCst);
        }
        *self.cause[version].lock().unwrap() = Some(cause);
    }

    /// Asserts that the listener was not told of `value` before `began` (of its sequence).
    fn assert_not_told_before(&self, value: u64, began: u64) {
        let at = self.heard_at(value);
        assert!(
            at == 0 || at > began,
            "{value:#x} read, told of its leaving at {at} before the read began at {began}"
        );
    }

    /// When the listener heard of `value`: 0 if not yet.
    fn heard_at(&self, value: u64) -> u64 {
        self.at[usize::try_from(value % STRIDE).unwrap()].load(Ordering::SeqCst)
    }

    fn cause(&self, value: u64) -> Option<memo::RemovalCause> {
        *self.cause[usize::try_from(value % STRIDE).unwrap()]
            .lock()
            .unwrap()
    }
}

/// Many threads computing, inserting (with and without a time to live of their own), removing,
/// invalidating and clearing a small cache whose mock clock moves on: the eviction listener is
/// told of each value that leaves exactly once, under its own key; a value it was told of
/// before a read began is never read; a value `remove` returned is told as `Invalidated`; and
/// once the cache is cleared, every value inserted has been told.
#[test]
fn the_eviction_listener_is_told_of_each_value_once_and_never_of_one_still_served() {
    listener_attack(|builder| builder.maxsize(MAXSIZE));
}

/// [`the_eviction_listener_is_told_of_each_value_once_and_never_of_one_still_served`] in a cache
/// bounded by weight, where an entry heavier than its shard's share is told of at once.
#[test]
fn the_eviction_listener_of_a_weighed_cache_is_told_of_each_value_once() {
    // 16 shards of 64 KiB (`weigh`: up to 60 KiB a value).
    listener_attack(|builder| builder.max_weight(16 << 16).weigher(weigh));
}

/// The attack of the listener tests on a cache `bounded` as they say, with a time to live.
fn listener_attack(
    bounded: impl FnOnce(memo::CacheBuilder<u64, u64>) -> memo::CacheBuilder<u64, u64>,
) {
    use memo::RemovalCause;
    use std::sync::Arc;
    const THREADS: usize = 4;
    const OPS: u64 = 50_000;
    let heard = Arc::new(Heard::new(THREADS * usize::try_from(OPS).unwrap() + 2));
    let cache: Cache<u64, u64> = bounded(Cache::builder())
        .ttl(Duration::from_secs(10))
        .eviction_listener({
            let heard = Arc::clone(&heard);
            move |key, value, cause| heard.hear(key, value, cause)
        })
        .build();
    let (clock, mock) = memo::Clock::mock();
    cache.set_clock(clock);
    let version = AtomicU64::new(1);
    let inserted = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, heard, version, inserted, mock) =
                (&cache, &*heard, &version, &inserted, &mock);
            s.spawn(move || {
                let mut draw = Draw(0xD1B5_4A32_D192_ED03 ^ (t as u64 + 1));
                let mut mine = Vec::new();
                for _ in 0..OPS {
                    let roll = draw.next();
                    let key = (roll >> 8) % (KEYS / 4);
                    let fresh = || key * STRIDE + version.fetch_add(1, Ordering::SeqCst);
                    let began = heard.sequence.fetch_add(1, Ordering::SeqCst);
                    let read = match roll % 100 {
                        0..=49 => Some(cache.get_or_compute(&key, |_| fresh())),
                        50..=64 => {
                            let got = cache.get(&key);
                            if let Some(value) = got {
                                heard.assert_not_told_before(value, began);
                            }
                            got
                        }
                        65..=74 => {
                            let value = fresh();
                            cache.insert(key, value);
                            mine.push(value);
                            None
                        }
                        75..=79 => {
                            let value = fresh();
                            cache.insert_with_ttl(key, value, Duration::from_secs(1));
                            mine.push(value);
                            None
                        }
                        80..=89 => {
                            let removed = cache.remove(&key);
                            if let Some(value) = removed {
                                let at = heard.heard_at(value);
                                assert!(at > began, "removed {value:#x}, told at {at} < {began}");
                                assert_eq!(heard.cause(value), Some(RemovalCause::Invalidated));
                            }
                            removed
                        }
                        90..=96 => {
                            cache.invalidate(&key);
                            None
                        }
                        97 => {
                            mock.increment(Duration::from_millis(700));
                            None
                        }
                        _ => {
                            if roll % 1000 < 20 {
                                cache.clear();
                            }
                            None
                        }
                    };
                    // A call that missed may still join a computation whose value was stored and
                    // evicted since (or declined by the policy): that value is the one being
                    // computed, not one the listener was told had left the store.
                    if let Some(value) = read {
                        assert_eq!(key_of(value), key, "value {value:#x} read for key {key}");
                    }
                }
                inserted.lock().unwrap().extend(mine);
            });
        }
    });
    cache.clear();
    assert_eq!((cache.len(), cache.weight().unwrap_or(0)), (0, 0));
    assert_eq!(
        heard.twice.load(Ordering::SeqCst),
        0,
        "told twice of a value"
    );
    let untold: Vec<_> = inserted
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|&value| heard.heard_at(value) == 0)
        .collect();
    assert!(untold.is_empty(), "inserted, left, never told: {untold:x?}");
}
