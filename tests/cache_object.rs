//! The cache object (`memo::Cache::builder()`), used directly as diskcache's `Cache`,
//! cachetools' `TTLCache` or moka's `Cache` are: the same methods and semantics in memory, on
//! disk and in Redis (a private `redis-server`), each tested on every store it applies to.
#![cfg(all(feature = "disk", feature = "redis"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use memo::redis::{RedisClient, RedisConfig};
use memo::testing::RedisServer;
use memo::{Cache, DiskCache, DiskOptions, Policy, RedisCache, RedisOptions, Store, TieredCache};

/// A disk cache in a directory of its own, removed on drop.
struct TempDisk<K, V> {
    cache: DiskCache<K, V>,
    dir: std::path::PathBuf,
}

impl<K, V> Drop for TempDisk<K, V> {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn disk<K, V>(test: &str, builder: memo::CacheBuilder<K, V>) -> TempDisk<K, V>
where
    K: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
{
    let dir = std::env::temp_dir().join(format!("memo-object-{test}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let cache = builder
        .disk_options(DiskOptions::new(test).root(&dir))
        .build();
    assert!(cache.store().is_persistent());
    TempDisk { cache, dir }
}

/// A Redis cache on a private server (kept alive beside it).
fn redis<K, V>(builder: memo::CacheBuilder<K, V>) -> (RedisCache<K, V>, RedisServer)
where
    K: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
{
    let server = RedisServer::start();
    let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    let cache = builder
        .redis_options(RedisOptions::new("object").client(client))
        .build();
    (cache, server)
}

/// What every store must do with a `String`-keyed cache (`S` any store).
fn borrowed_keys_and_counts<S: Store<String, u32>>(cache: &Cache<String, u32, S>) {
    cache.insert("tea".to_string(), 3);
    assert_eq!(cache.get("tea"), Some(3), "a `&str` finds a `String` key");
    assert_eq!(
        cache.get(&"tea".to_string()),
        Some(3),
        "so does a `&String`"
    );
    assert_eq!(cache.get("milk"), None);
    assert!(cache.contains_key("tea"));
    assert_eq!(cache.peek("tea"), Some(3));
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (2, 1),
        "`get` counts; `contains_key` and `peek` do not"
    );
    assert_eq!(cache.len(), 1);
    assert!(!cache.is_empty());
    assert_eq!(cache.remove("tea"), Some(3));
    assert_eq!(cache.remove("tea"), None);
    cache.insert("tea".to_string(), 4);
    assert!(cache.invalidate("tea"));
    assert!(!cache.invalidate("tea"));
    assert!(cache.is_empty());
    assert_eq!(
        cache.get_or_insert_with("coffee".to_string(), || 5),
        5,
        "computed"
    );
    assert_eq!(cache.get_or_insert_with("coffee".to_string(), || 6), 5);
    assert_eq!(
        cache.try_get_or_insert_with("juice".to_string(), || Err::<u32, _>("no juice")),
        Err("no juice")
    );
    assert!(!cache.contains_key("juice"), "an `Err` is not stored");
    assert_eq!(
        cache.try_get_or_insert_with("juice".to_string(), || Ok::<_, &str>(7)),
        Ok(7)
    );
    assert_eq!(cache.get("juice"), Some(7));
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn memory_borrowed_keys_and_counts() {
    borrowed_keys_and_counts(&Cache::builder().maxsize(100).build());
}

#[test]
fn disk_borrowed_keys_and_counts() {
    let disk = disk("borrowed", Cache::builder().maxsize(100));
    borrowed_keys_and_counts(&disk.cache);
}

#[test]
fn redis_borrowed_keys_and_counts() {
    let (cache, _server) = redis(Cache::builder());
    borrowed_keys_and_counts(&cache);
}

#[test]
fn tiered_borrowed_keys_and_counts() {
    let server = RedisServer::start();
    let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    let store = RedisOptions::new("object-tiered")
        .client(client)
        .open_tiered(&memo::Config::new().maxsize(100));
    borrowed_keys_and_counts(&Cache::with_store(store));
}

/// `policy = "lru"`, two entries: `get` is a use of the entry (as in moka and cachetools), so
/// the other key is evicted; `contains_key` and `peek` are not, so the looked-at key is.
#[test]
fn lru_get_marks_used_contains_key_and_peek_do_not() {
    type Look = fn(&Cache<u32, u32>);
    let evicted_after = |look: &dyn Fn(&Cache<u32, u32>)| {
        let cache = Cache::builder().maxsize(2).policy(Policy::Lru).build();
        cache.insert(1, 10);
        cache.insert(2, 20);
        look(&cache);
        cache.insert(3, 30);
        let mut keys = cache.keys();
        keys.sort_unstable();
        keys
    };
    assert_eq!(evicted_after(&|_| {}), [2, 3], "untouched: the oldest goes");
    assert_eq!(
        evicted_after(&|cache| assert_eq!(cache.get(&1), Some(10))),
        [1, 3],
        "`get` keeps key 1"
    );
    assert_eq!(
        evicted_after(&|cache| assert!(cache.contains_key(&1))),
        [2, 3],
        "`contains_key` does not"
    );
    assert_eq!(
        evicted_after(&|cache| assert_eq!(cache.peek(&1), Some(10))),
        [2, 3],
        "`peek` does not"
    );
    // docs/cache-object.md: `entries` is "neither counted nor a use of the entries (as
    // `peek`)"; `keys` and a `retain` that keeps everything read the same snapshot.
    let looks: [(&str, Look); 3] = [
        ("entries", |cache| {
            let mut entries = cache.entries();
            entries.sort_unstable();
            assert_eq!(entries, [(1, 10), (2, 20)]);
        }),
        ("keys", |cache| assert_eq!(cache.keys().len(), 2)),
        ("retain", |cache| assert_eq!(cache.retain(|_, _| true), 0)),
    ];
    for (name, look) in looks {
        let uncounted = |cache: &Cache<u32, u32>| {
            look(cache);
            let stats = cache.stats();
            assert_eq!(
                (stats.hits, stats.misses),
                (0, 0),
                "`{name}` counts nothing"
            );
        };
        assert_eq!(evicted_after(&uncounted), [2, 3], "`{name}` does not");
    }
}

/// An expired entry is gone for every method alike.
fn expired_is_gone<S: Store<u32, u32>>(cache: &Cache<u32, u32, S>, lists_keys: bool) {
    cache.insert(1, 10); // the cache's own time to live: an hour
    cache.insert_with_ttl(2, 20, Duration::from_millis(100));
    assert_eq!(cache.get(&2), Some(20));
    assert_eq!(cache.len(), 2);
    sleep(Duration::from_millis(250));
    assert_eq!(cache.get(&2), None);
    assert!(!cache.contains_key(&2));
    assert_eq!(cache.peek(&2), None);
    assert_eq!(cache.len(), 1, "not counted");
    if lists_keys {
        assert_eq!(cache.keys(), [1], "not listed");
        assert_eq!(cache.entries(), [(1, 10)], "not listed");
    }
    assert!(!cache.invalidate(&2), "already gone");
    cache.insert_with_ttl(3, 30, Duration::from_millis(100));
    sleep(Duration::from_millis(250));
    assert_eq!(cache.remove(&3), None, "already gone");
    assert_eq!(cache.get(&1), Some(10), "the hour-long entry stays");
}

#[test]
fn memory_expired_is_gone() {
    let cache = Cache::builder().ttl(Duration::from_secs(3600)).build();
    expired_is_gone(&cache, true);
    // A cache without a `ttl` of its own expires an entry given one too.
    let cache: Cache<u32, u32> = Cache::builder().build();
    cache.insert_with_ttl(1, 10, Duration::from_millis(50));
    sleep(Duration::from_millis(150));
    assert_eq!((cache.get(&1), cache.len()), (None, 0));
}

#[test]
fn disk_expired_is_gone() {
    let timed = disk("expired", Cache::builder().ttl(Duration::from_secs(3600)));
    expired_is_gone(&timed.cache, true);
    let untimed = disk("expired-no-ttl", Cache::builder());
    untimed
        .cache
        .insert_with_ttl(1, 10, Duration::from_millis(50));
    sleep(Duration::from_millis(150));
    assert_eq!((untimed.cache.get(&1), untimed.cache.len()), (None, 0));
}

#[test]
fn redis_expired_is_gone() {
    let (cache, _server) = redis(Cache::builder().ttl(Duration::from_secs(3600)));
    expired_is_gone(&cache, false);
}

/// `entries` lists every live entry; `retain` removes those `keep` refuses and counts them, and
/// `keep` may call the cache. Neither counts a hit.
fn entries_and_retain<S: Store<u32, u32>>(cache: &Cache<u32, u32, S>) {
    for n in 0..10 {
        cache.insert(n, n * 10);
    }
    let mut entries = cache.entries();
    entries.sort_unstable();
    assert_eq!(entries, (0..10).map(|n| (n, n * 10)).collect::<Vec<_>>());
    let removed = cache.retain(|key, value| {
        assert_eq!(cache.peek(key), Some(*value), "`keep` may call the cache");
        key % 2 == 0
    });
    assert_eq!(removed, 5);
    let mut keys = cache.keys();
    keys.sort_unstable();
    assert_eq!(keys, [0, 2, 4, 6, 8]);
    assert_eq!(cache.retain(|_, _| true), 0);
    assert_eq!(cache.stats().hits, 0);
}

#[test]
fn memory_entries_and_retain() {
    let told = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&told);
    let cache = Cache::builder()
        .maxsize(100)
        .eviction_listener(move |_, _, cause| {
            assert_eq!(cause, memo::RemovalCause::Invalidated);
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    entries_and_retain(&cache);
    assert_eq!(
        told.load(Ordering::SeqCst),
        5,
        "the listener is told of each removal"
    );
}

#[test]
fn disk_entries_and_retain() {
    let disk = disk("retain", Cache::builder().maxsize(100));
    entries_and_retain(&disk.cache);
    let reopened: DiskCache<u32, u32> = Cache::builder()
        .disk_options(DiskOptions::new("retain").root(&disk.dir))
        .build();
    assert_eq!(
        reopened.len(),
        5,
        "removed from the file, not only this handle's front"
    );
}

/// With `store = tiered`, the entries this process holds a copy of; each removal reaches Redis.
/// With `store = redis`, none: the store cannot list its keys.
#[test]
fn tiered_and_redis_entries_and_retain() {
    let server = RedisServer::start();
    let client = || RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    let tiered: TieredCache<u32, u32> = Cache::builder()
        .maxsize(100)
        .tiered_options(RedisOptions::new("object-retain").client(client()))
        .build();
    entries_and_retain(&tiered);
    let shared: RedisCache<u32, u32> = Cache::builder()
        .redis_options(RedisOptions::new("object-retain").client(client()))
        .build();
    assert_eq!(shared.len(), 5, "removed from Redis too");
    assert_eq!(shared.get(&1), None);
    assert!(shared.entries().is_empty());
    assert_eq!(shared.retain(|_, _| false), 0);
    assert_eq!(shared.len(), 5);
}

/// `retain` removes as `invalidate` does: a refresh of a removed key running meanwhile stores
/// nothing.
#[test]
fn retain_outdates_a_computation_in_progress() {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::builder().build());
    cache.insert(1, 10);
    let (entered, go) = (
        Arc::new(std::sync::Barrier::new(2)),
        Arc::new(std::sync::Barrier::new(2)),
    );
    let refresh = std::thread::spawn({
        let (cache, entered, go) = (Arc::clone(&cache), Arc::clone(&entered), Arc::clone(&go));
        move || {
            cache.refresh(|| {
                cache.get_or_compute(&1, |_| {
                    entered.wait();
                    go.wait();
                    11
                })
            })
        }
    });
    entered.wait();
    assert_eq!(cache.retain(|_, _| false), 1);
    go.wait();
    assert_eq!(refresh.join().unwrap(), 11, "its caller gets the value");
    assert_eq!(cache.peek(&1), None, "but it is not stored");
}

/// `retain` works on its snapshot (`docs/cache-object.md`): a key first stored while it runs is
/// kept, and a value stored for a refused key while it runs is removed with it.
#[test]
fn retain_keeps_a_key_stored_after_its_snapshot() {
    let cache: Cache<u32, u32> = Cache::builder().build();
    cache.insert(1, 10);
    let removed = cache.retain(|_, _| {
        cache.insert(2, 20);
        cache.insert(1, 11);
        false
    });
    assert_eq!(removed, 1);
    assert_eq!(
        cache.peek(&2),
        Some(20),
        "first stored after the snapshot: kept"
    );
    assert_eq!(
        cache.peek(&1),
        None,
        "refused in the snapshot: removed, new value too"
    );
}

/// `len()` counts the namespace's values with SCAN: never 0 while entries exist, and only this
/// cache's (not another namespace's, nor the lock keys).
#[test]
fn redis_len_counts_the_namespace() {
    let server = RedisServer::start();
    let open = |name: &str| -> RedisCache<u32, u32> {
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        Cache::builder()
            .redis_options(RedisOptions::new(name).client(client))
            .build()
    };
    let (ours, theirs) = (open("ours"), open("theirs"));
    assert!(ours.is_empty());
    for n in 0..25 {
        ours.insert(n, n);
    }
    theirs.insert(1, 1);
    assert_eq!(ours.len(), 25);
    assert!(!ours.is_empty());
    assert_eq!(theirs.len(), 1);
    ours.clear();
    assert_eq!((ours.len(), theirs.len()), (0, 1));
}

/// Concurrent callers of one missing key compute once, sync and async; an `Err` is not shared.
fn single_flight<S: Store<u32, u32> + 'static>(cache: &Arc<Cache<u32, u32, S>>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, runs) = (Arc::clone(cache), Arc::clone(&runs));
            std::thread::spawn(move || {
                cache.get_or_insert_with(1, || {
                    runs.fetch_add(1, Ordering::Relaxed);
                    sleep(Duration::from_millis(100));
                    10
                })
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 10);
    }
    assert_eq!(runs.load(Ordering::Relaxed), 1, "sync: computed once");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, runs) = (Arc::clone(cache), Arc::clone(&runs));
                tokio::spawn(async move {
                    cache
                        .try_get_or_insert_with_async(2, async {
                            runs.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Ok::<_, String>(20)
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(20));
        }
        assert_eq!(runs.load(Ordering::Relaxed), 2, "async: computed once");
        let failed = cache
            .try_get_or_insert_with_async(3, async { Err::<u32, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
        assert!(!cache.contains_key(&3));
        let value = cache.get_or_insert_with_async(3, async { 30 }).await;
        assert_eq!(value, 30);
    });
    assert_eq!(cache.get(&3), Some(30));
}

#[test]
fn memory_single_flight() {
    single_flight(&Arc::new(Cache::builder().build()));
}

#[test]
fn disk_single_flight() {
    let dir = std::env::temp_dir().join(format!("memo-object-flight-{}", std::process::id()));
    let cache = Cache::builder()
        .disk_options(DiskOptions::new("flight").root(&dir))
        .build();
    single_flight(&Arc::new(cache));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn redis_single_flight() {
    let (cache, _server) = redis(Cache::builder());
    single_flight(&Arc::new(cache));
}

/// The async forms' futures are `Send` over every concrete store, so they can be spawned (a
/// future generic over the store hid rust-lang/rust#100013, which the concrete types hit).
#[test]
fn async_forms_can_be_spawned_on_every_store() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let memory: Arc<Cache<u32, String>> = Arc::new(Cache::builder().build());
    let cache = Arc::clone(&memory);
    let spawned = runtime.spawn(async move {
        let two = cache.get_or_insert_with_async(2, async { "two".to_string() });
        two.await
    });
    assert_eq!(runtime.block_on(spawned).unwrap(), "two");
    let disk = Arc::new(disk("spawned", Cache::builder()));
    let cache = Arc::clone(&disk);
    let spawned = runtime.spawn(async move {
        let one = cache
            .cache
            .try_get_or_insert_with_async(1, async { Ok::<_, String>(1) });
        one.await
    });
    assert_eq!(runtime.block_on(spawned).unwrap(), Ok(1));
    let (redis, _server) = redis::<u32, String>(Cache::builder());
    let redis = Arc::new(redis);
    let cache = Arc::clone(&redis);
    let spawned = runtime.spawn(async move {
        let two = cache.get_or_insert_with_async(2, async { "two".to_string() });
        two.await
    });
    assert_eq!(runtime.block_on(spawned).unwrap(), "two");
    assert_eq!(redis.get(&2).as_deref(), Some("two"));
}

/// `insert_with_ttl` outlives nothing: a shorter time to live than the cache's wins, and a
/// longer one too.
#[test]
fn insert_with_ttl_overrides_the_cache_ttl() {
    let cache = Cache::builder().ttl(Duration::from_millis(100)).build();
    cache.insert_with_ttl(1, 10, Duration::from_secs(3600));
    cache.insert(2, 20);
    sleep(Duration::from_millis(250));
    assert_eq!((cache.get(&1), cache.get(&2)), (Some(10), None));
}

/// The builder's settings reach the store, whichever it is.
#[test]
fn the_builder_configures_every_store() {
    let memory: Cache<u32, u32> = Cache::builder()
        .maxsize(3)
        .ttl(Duration::from_secs(300))
        .policy(Policy::Lfu)
        .build();
    for n in 0..10 {
        memory.insert(n, n);
    }
    assert_eq!(memory.len(), 3);
    assert_eq!(memory.config().policy, Policy::Lfu);
    let disk = disk("builder", Cache::builder().maxsize(3));
    for n in 0..10 {
        disk.cache.insert(n, n);
    }
    disk.cache.store().flush();
    assert_eq!(disk.cache.len(), 3);
    assert_eq!(disk.cache.backend(), "disk");
    let (redis, _server) = redis::<u32, u32>(Cache::builder().ttl(Duration::from_secs(300)));
    assert_eq!(redis.config().ttl, Some(Duration::from_secs(300)));
    assert_eq!(redis.backend(), "redis");
}

/// The builder's `tiered`: every entry in Redis, at most `maxsize` copies in this process, the
/// builder's settings on both.
#[test]
fn the_builder_makes_a_tiered_cache() {
    let server = RedisServer::start();
    let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    let cache: TieredCache<u32, u32> = Cache::builder()
        .maxsize(2)
        .ttl(Duration::from_secs(300))
        .tiered_options(RedisOptions::new("object-tiered-builder").client(client))
        .build();
    for n in 0..5 {
        cache.insert(n, n * 10);
    }
    assert_eq!(cache.backend(), "tiered");
    assert_eq!(cache.len(), 5, "every entry in Redis");
    assert!(cache.store().held() <= 2, "{} copies", cache.store().held());
    for n in 0..5 {
        assert_eq!(cache.get(&n), Some(n * 10));
    }
    assert_eq!(cache.stats().hits, 5);
    assert_eq!(cache.config().ttl, Some(Duration::from_secs(300)));
    let names = memo::testing::redis_command(server.port(), "KEYS memo:*");
    assert_eq!(names.matches("object-tiered-builder").count(), 5, "{names}");
}

/// A tiered cache whose server is gone never fails: its copies still answer, and a key it holds
/// no copy of is computed and returned, the failure counted.
#[test]
fn a_tiered_cache_without_its_server_answers_from_its_copies() {
    let mut server = RedisServer::start();
    let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    let cache: TieredCache<u32, u32> = Cache::builder()
        .maxsize(10)
        .tiered_options(RedisOptions::new("object-tiered-down").client(client))
        .build();
    cache.insert(1, 10);
    server.kill();
    assert_eq!(cache.get(&1), Some(10), "from the copy");
    assert_eq!(cache.get_or_insert_with(2, || 20), 20);
    assert!(cache.stats().backend_errors > 0, "{:?}", cache.stats());
}

/// Issue 21: `ttl_from` on the builder times each value as it says, in every store; the `ttl`
/// where it answers `None`.
#[cfg(feature = "test-util")]
mod issue21 {
    use std::time::Duration;

    use memo::{Cache, Clock, Store};

    /// Seconds to live, if the value says.
    fn max_age(value: &(u32, Option<u64>)) -> Option<Duration> {
        value.1.map(Duration::from_secs)
    }

    fn lives_as_it_says<S: Store<u32, (u32, Option<u64>)>>(
        cache: &Cache<u32, (u32, Option<u64>), S>,
        mock: &memo::MockClock,
    ) {
        cache.insert(1, (10, Some(5)));
        cache.insert(2, (20, None));
        cache.insert_with_ttl(3, (30, Some(5)), Duration::from_secs(30));
        mock.increment(Duration::from_millis(4_999));
        assert!(cache.get(&1).is_some());
        mock.increment(Duration::from_millis(1));
        assert_eq!(cache.get(&1), None, "5 s, as the value said");
        assert!(cache.get(&2).is_some(), "the ttl");
        assert!(cache.get(&3).is_some(), "insert_with_ttl wins");
        mock.increment(Duration::from_secs(55));
        assert_eq!(cache.get(&2), None, "60 s, the ttl");
    }

    #[test]
    fn memory() {
        let cache = Cache::builder()
            .ttl(Duration::from_secs(60))
            .ttl_from(max_age)
            .build();
        let (clock, mock) = Clock::mock();
        cache.set_clock(clock);
        lives_as_it_says(&cache, &mock);
        // Without a `ttl`, a value that does not say never expires.
        let cache = Cache::builder().ttl_from(max_age).build();
        let (clock, mock) = Clock::mock();
        cache.set_clock(clock);
        cache.insert(1, (10, Some(5)));
        cache.insert(2, (20, None));
        mock.increment(Duration::from_secs(3600));
        assert_eq!((cache.get(&1), cache.get(&2)), (None, Some((20, None))));
    }

    #[test]
    fn disk() {
        let disk = super::disk(
            "ttl-from",
            Cache::builder()
                .ttl(Duration::from_secs(60))
                .ttl_from(max_age),
        );
        let (clock, mock) = Clock::mock();
        disk.cache.store().set_clock(clock);
        lives_as_it_says(&disk.cache, &mock);
    }

    #[test]
    fn redis() {
        let (cache, server) = super::redis(
            Cache::builder()
                .ttl(Duration::from_secs(60))
                .ttl_from(max_age),
        );
        cache.insert(1, (10, Some(5)));
        cache.insert(2, (20, None));
        set_as_they_say(&server);
    }

    #[test]
    fn tiered() {
        use super::{RedisClient, RedisConfig, RedisOptions, RedisServer};
        let server = RedisServer::start();
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let cache: memo::TieredCache<u32, (u32, Option<u64>)> = Cache::builder()
            .ttl(Duration::from_secs(60))
            .ttl_from(max_age)
            .tiered_options(RedisOptions::new("object").client(client))
            .build();
        cache.insert(1, (10, Some(5)));
        cache.insert(2, (20, None));
        set_as_they_say(&server);
    }

    /// The two values in Redis live 5 s (from the value) and 60 s (the `ttl`), as `redis-cli`
    /// reads their `PTTL`; the one with a time to live of its own has a mark beside it (`…:ttl`,
    /// which a build of the function with `idle` reads), living as long.
    fn set_as_they_say(server: &super::RedisServer) {
        let keys = memo::testing::redis_command(server.port(), "KEYS memo:*");
        let names = || keys.split("\r\n").filter(|line| line.starts_with("memo:"));
        let pttl = |name: &str| -> i64 {
            let reply = memo::testing::redis_command(server.port(), &format!("PTTL {name}"));
            reply.trim_start_matches(':').trim().parse().unwrap()
        };
        let marks: Vec<&str> = names().filter(|name| name.ends_with(":ttl")).collect();
        assert_eq!(marks.len(), 1, "{keys:?}");
        assert!(0 < pttl(marks[0]) && pttl(marks[0]) <= 5_000, "{keys:?}");
        let mut pttls: Vec<i64> = names()
            .filter(|name| !name.ends_with(":ttl"))
            .map(pttl)
            .collect();
        pttls.sort_unstable();
        let [short, long] = pttls[..] else {
            panic!("two values: {keys:?}");
        };
        assert!(0 < short && short <= 5_000, "PX from the value: {short}");
        assert!(5_000 < long && long <= 60_000, "PX from the ttl: {long}");
    }
}

/// The builder's `idle` (moka's `time_to_idle`): an entry read every half period lives on (cached's
/// `test_cached_timed_refresh`: 4 hits, 1 miss), one left unread expires, in memory and on disk.
mod idle {
    use std::time::Duration;

    use memo::{Cache, Clock, MockClock};

    fn lives_while_used<S: memo::Store<u32, u32>>(cache: &Cache<u32, u32, S>, mock: &MockClock) {
        cache.insert(1, 10);
        for _ in 0..4 {
            mock.increment(Duration::from_secs(30));
            assert_eq!(cache.get(&1), Some(10));
        }
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (4, 0));
        mock.increment(Duration::from_secs(61));
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn memory() {
        let cache = Cache::builder().idle(Duration::from_secs(60)).build();
        let (clock, mock) = Clock::mock();
        cache.set_clock(clock);
        lives_while_used(&cache, &mock);
    }

    #[test]
    fn disk() {
        let disk = super::disk("idle", Cache::builder().idle(Duration::from_secs(60)));
        let (clock, mock) = Clock::mock();
        disk.cache.store().set_clock(clock);
        lives_while_used(&disk.cache, &mock);
    }
}
