//! A cached call returns what the function would have returned for these arguments in this
//! build: never another function's value (same-named functions of two impls, instances of a
//! generic impl, methods keyed by `self`), never a value written under another layout of the key
//! or value types.
//!
//! Each test here failed before function identities were resolved (`type_name` of the call's
//! scope) and namespaces carried the types' serde shapes.

use std::marker::PhantomData;

use memo::cached;

/// The units of a generic impl whose key and value types do not mention the unit.
trait Unit {
    const SUFFIX: &'static str;
}

struct Feet;
struct Meters;

impl Unit for Feet {
    const SUFFIX: &'static str = "ft";
}

impl Unit for Meters {
    const SUFFIX: &'static str = "m";
}

struct Length<U>(PhantomData<U>);

impl<U: Unit> Length<U> {
    #[cached]
    fn label(n: u32) -> String {
        format!("{n}{}", U::SUFFIX)
    }
}

#[test]
fn each_instance_of_a_generic_impl_has_its_own_memory_cache() {
    assert_eq!(Length::<Meters>::label(3), "3m");
    assert_eq!(Length::<Feet>::label(3), "3ft");
    assert_eq!(Length::<Meters>::label(3), "3m");
    assert_eq!(Length::<Feet>::label(3), "3ft");
    let meters = Length::<Meters>::label_cache().stats();
    let feet = Length::<Feet>::label_cache().stats();
    assert_eq!((meters.hits, meters.misses), (1, 1));
    assert_eq!((feet.hits, feet.misses), (1, 1));
    assert!(Length::<Feet>::label_cache().invalidate(&3));
    assert_eq!(
        Length::<Meters>::label_cache().len(),
        1,
        "the other instance keeps its entry"
    );
}

#[cfg(feature = "disk")]
mod disk {
    use std::path::PathBuf;
    use std::sync::Once;

    use memo::{Cache, Codec, Config, DiskOptions, DiskStore, cached};
    use serde::{Deserialize, Serialize};

    /// One cache directory for this test binary (the caches are process-wide statics).
    fn init() {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            let dir = root().join("attribute");
            let _ = std::fs::remove_dir_all(&dir);
            // SAFETY: every disk test calls `init` before any cache is opened; std's readers of
            // the environment take the lock `set_var` takes, and no foreign code reads it meanwhile.
            unsafe { std::env::set_var("MEMO_CACHE_DIR", &dir) };
        });
    }

    fn root() -> PathBuf {
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("memo-trust-tests")
    }

    struct Celsius;
    struct Fahrenheit;

    impl Celsius {
        #[cached(store = disk)]
        fn boiling(scale: u32) -> String {
            format!("celsius:{}", 100 * scale)
        }
    }

    impl Fahrenheit {
        #[cached(store = disk)]
        fn boiling(scale: u32) -> String {
            format!("fahrenheit:{}", 212 * scale)
        }
    }

    #[test]
    fn same_named_associated_functions_of_two_impls_never_share_entries() {
        init();
        assert_eq!(Celsius::boiling(1), "celsius:100");
        assert_eq!(Fahrenheit::boiling(1), "fahrenheit:212");
        assert_eq!(Celsius::boiling(1), "celsius:100");
        assert_eq!(Fahrenheit::boiling(1), "fahrenheit:212");
        assert_eq!(Fahrenheit::boiling_cache().stats().misses, 1);
    }

    #[derive(Clone, Hash, PartialEq, Eq, Serialize, Deserialize)]
    struct UserId(u32);

    #[derive(Clone, Hash, PartialEq, Eq, Serialize, Deserialize)]
    struct OrderId(u32);

    impl UserId {
        #[cached(store = disk)]
        fn describe(&self) -> String {
            format!("user #{}", self.0)
        }
    }

    impl OrderId {
        #[cached(store = disk)]
        fn describe(&self) -> String {
            format!("order #{}", self.0)
        }
    }

    #[test]
    fn methods_keyed_by_self_of_two_types_never_share_entries() {
        init();
        assert_eq!(UserId(7).describe(), "user #7");
        assert_eq!(OrderId(7).describe(), "order #7");
        assert_eq!(OrderId(7).describe(), "order #7");
    }

    pub(super) mod before {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub(crate) struct Account {
            pub(crate) balance: u64,
            pub(crate) limit: u64,
        }

        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub(crate) enum Plan {
            Free,
            Pro,
        }
    }

    pub(super) mod after {
        /// The same name; two fields swapped, and `limit` became signed.
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub(crate) struct Account {
            pub(crate) limit: i64,
            pub(crate) balance: u64,
        }

        /// The same variants, reordered.
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub(crate) enum Plan {
            Pro,
            Free,
        }
    }

    /// The store of `app::account` as one build or the next opens it: what `#[cached]` passes.
    fn account_store<K, V>(dir: &str, codec: Codec, version: u64) -> Cache<K, V, DiskStore<K, V>>
    where
        K: serde::de::DeserializeOwned,
        V: serde::de::DeserializeOwned,
    {
        let store = DiskOptions::new("default")
            .root(root().join(dir))
            .function("app::account", version)
            .codec(codec)
            .open(&Config::new());
        Cache::with_store(store)
    }

    #[test]
    fn a_changed_layout_is_a_miss_not_garbage() {
        for codec in [Codec::Binary, Codec::Json] {
            let dir = format!("layout-{}", codec.name());
            let _ = std::fs::remove_dir_all(root().join(&dir));
            let old: Cache<u32, before::Account, _> = account_store(&dir, codec, 0);
            let account = before::Account {
                balance: 1001,
                limit: 50,
            };
            old.insert(1, account.clone());
            assert_eq!(old.get(&1), Some(account));
            let new: Cache<u32, after::Account, _> = account_store(&dir, codec, 0);
            assert_eq!(new.get(&1), None, "{codec:?}: fields reordered and retyped");

            let old: Cache<u32, before::Plan, _> = account_store(&dir, codec, 0);
            old.insert(1, before::Plan::Free);
            let new: Cache<u32, after::Plan, _> = account_store(&dir, codec, 0);
            assert_eq!(new.get(&1), None, "{codec:?}: variants reordered");

            // A key type alias that became signed: postcard reads 5 as -3.
            let old: Cache<u32, String, _> = account_store(&dir, codec, 0);
            old.insert(5, "id=5".to_string());
            let new: Cache<i32, String, _> = account_store(&dir, codec, 0);
            assert_eq!(new.get(&-3), None, "{codec:?}: key type changed");
            assert_eq!(new.get(&5), None, "{codec:?}: key type changed");

            // The same types, by hand: `version = N` sets the old entries aside.
            let bumped: Cache<u32, String, _> = account_store(&dir, codec, 1);
            assert_eq!(bumped.get(&5), None, "{codec:?}: version bumped");
            let same: Cache<u32, String, _> = account_store(&dir, codec, 0);
            assert_eq!(
                same.get(&5).as_deref(),
                Some("id=5"),
                "{codec:?}: same build"
            );
        }
    }

    /// A value postcard cannot carry: with `max` left out, the next program would read
    /// `count` in its place (`Some(3)`, 9, `[42]` for what was `None`, 1, `[9, 1, 42]`).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(super) struct Stats {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub(super) max: Option<u32>,
        pub(super) count: u32,
        pub(super) values: Vec<u32>,
    }

    pub(super) fn skipped() -> Stats {
        Stats {
            max: None,
            count: 1,
            values: vec![9, 1, 42],
        }
    }

    /// A key postcard cannot tell apart: `Num(0)` and `Name("")` are both the byte 0.
    #[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub(super) enum Id {
        Num(u64),
        Name(String),
    }

    /// Each value comes back as it was or not at all: what the codec cannot carry is computed
    /// by every program (counted as an error where it is written), never read back as another.
    #[test]
    fn what_a_codec_cannot_carry_is_computed_again_not_read_back_as_another_value() {
        for codec in [Codec::Binary, Codec::Json] {
            let dir = format!("unfaithful-{}", codec.name());
            let _ = std::fs::remove_dir_all(root().join(&dir));
            let first: Cache<u32, Stats, _> = account_store(&dir, codec, 0);
            let whole = Stats {
                max: Some(3),
                ..skipped()
            };
            first.insert(0, skipped());
            first.insert(1, whole.clone());
            let next: Cache<u32, Stats, _> = account_store(&dir, codec, 0);
            let expected = (codec == Codec::Json).then(skipped);
            assert_eq!(next.get(&0), expected, "{codec:?}: a field left out");
            assert_eq!(next.get(&1), Some(whole), "{codec:?}");
            let errors = u64::from(codec == Codec::Binary);
            assert_eq!(first.stats().backend_errors, errors, "{codec:?}");

            // JSON writes all three as `null`.
            let first: Cache<u32, Vec<Option<Option<f64>>>, _> = account_store(&dir, codec, 0);
            let odd = vec![Some(None), Some(Some(f64::NAN)), None];
            first.insert(2, odd.clone());
            let next: Cache<u32, Vec<Option<Option<f64>>>, _> = account_store(&dir, codec, 0);
            let read = next.get(&2).map(|values| format!("{values:?}"));
            let expected = (codec == Codec::Binary).then(|| format!("{odd:?}"));
            assert_eq!(read, expected, "{codec:?}: null, null and null");

            let first: Cache<Id, String, _> = account_store(&dir, codec, 0);
            first.insert(Id::Num(0), "number 0".to_string());
            let next: Cache<Id, String, _> = account_store(&dir, codec, 0);
            assert_eq!(next.get(&Id::Name(String::new())), None, "{codec:?}");
            assert_eq!(next.get(&Id::Num(0)), None, "{codec:?}");
        }
    }

    /// A value whose `Serialize` leaves a part out: another program would read `token` back as
    /// `None`. What it serializes is the same before and after, so only its `==` tells.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(super) struct Session {
        pub(super) user: String,
        #[serde(skip)]
        pub(super) token: Option<String>,
    }

    pub(super) fn session_of(user: &str) -> Session {
        Session {
            user: user.to_string(),
            token: Some(format!("token of {user}")),
        }
    }

    #[cached(store = disk)]
    fn session(user: String) -> Session {
        session_of(&user)
    }

    #[test]
    fn a_value_that_would_read_back_unequal_is_not_written_to_disk() {
        init();
        assert_eq!(session("ada".into()), session_of("ada"));
        assert_eq!(session("ada".into()), session_of("ada"), "kept in memory");
        assert_eq!(session_cache().len(), 0, "no row for the next program");
        assert_eq!(session_cache().stats().backend_errors, 1);
    }

    static VERSIONED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// A memoized function of one path and one code at each use, `version = …` as given: what
    /// it returns for 1.
    macro_rules! versioned {
        ($($version:tt)*) => {{
            #[cached(store = disk $($version)*)]
            fn versioned(n: u64) -> u64 {
                VERSIONED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                n + 1
            }
            versioned(1)
        }};
    }

    /// `version = 3` names the entries in the store: a function of the same path, code and
    /// version reads what another wrote there, and one of another version does not.
    #[test]
    fn the_version_names_the_entries() {
        init();
        let runs = || VERSIONED.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(versioned!(, version = 3), 2);
        assert_eq!(runs(), 1);
        assert_eq!(versioned!(, version = 3), 2);
        assert_eq!(
            runs(),
            1,
            "read from the store: same path, code and version"
        );
        assert_eq!(versioned!(), 2);
        assert_eq!(runs(), 2, "version 0: entries of its own");
    }
}

#[cfg(feature = "redis")]
#[path = "../memo-runtime/tests/support/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
mod redis {
    use std::sync::OnceLock;

    use memo::cached;
    use serde::{Deserialize, Serialize};

    use super::redis_server::RedisServer;

    static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

    extern "C" fn stop() {
        super::redis_server::command(
            PORT.load(std::sync::atomic::Ordering::Relaxed),
            "SHUTDOWN NOSAVE",
        );
    }

    /// The server of this binary's Redis functions, for the life of the process (statics are
    /// never dropped: it is shut down when the process exits).
    fn init() {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let server = RedisServer::start();
            PORT.store(server.port(), std::sync::atomic::Ordering::Relaxed);
            // SAFETY: `stop` is an `extern "C" fn` that only sends one command.
            unsafe { libc::atexit(stop) };
            // SAFETY: every Redis test calls `init` before any Redis cache is opened, and no
            // foreign code reads the environment meanwhile.
            unsafe { std::env::set_var("MEMO_REDIS_URL", server.url()) };
            server
        });
    }

    struct Celsius;
    struct Fahrenheit;

    impl Celsius {
        #[cached(store = redis)]
        fn boiling(scale: u32) -> String {
            format!("celsius:{}", 100 * scale)
        }
    }

    impl Fahrenheit {
        #[cached(store = redis)]
        fn boiling(scale: u32) -> String {
            format!("fahrenheit:{}", 212 * scale)
        }
    }

    #[derive(Clone, Hash, PartialEq, Eq, Serialize, Deserialize)]
    struct UserId(u32);

    #[derive(Clone, Hash, PartialEq, Eq, Serialize, Deserialize)]
    struct OrderId(u32);

    impl UserId {
        #[cached(store = tiered)]
        async fn describe(&self) -> String {
            format!("user #{}", self.0)
        }
    }

    impl OrderId {
        #[cached(store = tiered)]
        async fn describe(&self) -> String {
            format!("order #{}", self.0)
        }
    }

    #[test]
    fn same_named_functions_of_two_impls_never_share_redis_entries() {
        init();
        assert_eq!(Celsius::boiling(1), "celsius:100");
        assert_eq!(Fahrenheit::boiling(1), "fahrenheit:212");
        assert_eq!(Fahrenheit::boiling(1), "fahrenheit:212");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(UserId(7).describe().await, "user #7");
            assert_eq!(OrderId(7).describe().await, "order #7");
            assert_eq!(OrderId(7).describe().await, "order #7");
        });
    }

    /// As on disk: a build whose key or value types changed misses in Redis, never decodes
    /// the entries of the last.
    #[cfg(feature = "disk")]
    #[test]
    fn a_changed_layout_is_a_redis_miss_not_garbage() {
        use memo::{Cache, Codec, Config, RedisOptions, RedisStore};

        use super::disk::{after, before};

        fn open<K, V>(codec: Codec, version: u64) -> Cache<K, V, RedisStore<K, V>>
        where
            K: serde::de::DeserializeOwned,
            V: serde::de::DeserializeOwned,
        {
            let name = format!("layout-{}", codec.name());
            let options = RedisOptions::new(&name).function("app::account", version);
            Cache::with_store(options.codec(codec).open(&Config::new()))
        }

        init();
        for codec in [Codec::Binary, Codec::Json] {
            let account = before::Account {
                balance: 1001,
                limit: 50,
            };
            let old: Cache<u32, before::Account, _> = open(codec, 0);
            old.insert(1, account.clone());
            assert_eq!(old.get(&1), Some(account));
            let new: Cache<u32, after::Account, _> = open(codec, 0);
            assert_eq!(new.get(&1), None, "{codec:?}: fields reordered and retyped");

            let old: Cache<u32, before::Plan, _> = open(codec, 0);
            old.insert(1, before::Plan::Free);
            let new: Cache<u32, after::Plan, _> = open(codec, 0);
            assert_eq!(new.get(&1), None, "{codec:?}: variants reordered");

            let old: Cache<u32, String, _> = open(codec, 0);
            old.insert(5, "id=5".to_string());
            let new: Cache<i32, String, _> = open(codec, 0);
            assert_eq!(new.get(&-3), None, "{codec:?}: key type changed");
            assert_eq!(new.get(&5), None, "{codec:?}: key type changed");

            let bumped: Cache<u32, String, _> = open(codec, 1);
            assert_eq!(bumped.get(&5), None, "{codec:?}: version bumped");
            let same: Cache<u32, String, _> = open(codec, 0);
            assert_eq!(same.get(&5).as_deref(), Some("id=5"), "{codec:?}");
        }
    }

    static GREETS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[cached(store = redis)]
    fn greet(name: &str) -> String {
        GREETS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("hi {name}")
    }

    /// A scope's Redis functions start their keys with its own prefix: the second scope does
    /// not find what the first stored on the same server.
    #[cfg(feature = "test-util")]
    #[test]
    fn each_isolated_scope_has_redis_entries_of_its_own() {
        init();
        for scope in 1..=2 {
            let _scope = memo::testing::isolate();
            assert_eq!(greet("two"), "hi two");
            assert_eq!(greet("two"), "hi two");
            let stats = greet_cache().stats();
            assert_eq!((stats.misses, stats.hits), (1, 1), "scope {scope}");
        }
        assert_eq!(GREETS.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[cached(store = redis)]
    fn wave(name: &str) -> String {
        format!("bye {name}")
    }

    /// A scope may name the server its Redis functions use, where the process's
    /// `MEMO_REDIS_URL` names another.
    #[cfg(feature = "test-util")]
    #[test]
    fn a_scope_may_name_its_own_redis_server() {
        init();
        let own = RedisServer::start();
        {
            let _scope = memo::testing::isolate().redis_url(&own.url());
            assert_eq!(wave("own"), "bye own");
            assert_eq!(wave_cache().stats().backend_errors, 0);
        }
        let keys = super::redis_server::command(own.port(), "DBSIZE");
        assert_eq!(keys.trim(), ":1", "the entry is on the scope's server");
    }

    static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[cfg(feature = "disk")]
    #[cached(store = redis)]
    fn session(user: String) -> super::disk::Session {
        SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        super::disk::session_of(&user)
    }

    /// A value that would read back not `==` to itself is computed by every call, never read
    /// back from Redis without its skipped field.
    #[cfg(feature = "disk")]
    #[test]
    fn a_value_that_would_read_back_unequal_is_not_written_to_redis() {
        init();
        for _ in 0..2 {
            assert_eq!(session("ada".into()), super::disk::session_of("ada"));
        }
        assert_eq!(SESSIONS.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(session_cache().stats().backend_errors, 2);
    }

    /// As on disk: what postcard cannot carry is computed again by the next program, never
    /// read back as another value or another key's.
    #[cfg(feature = "disk")]
    #[test]
    fn what_the_codec_cannot_carry_is_never_read_back_from_redis_as_another_value() {
        use memo::{Cache, Config, RedisOptions};

        use super::disk::{Id, Stats, skipped};

        init();
        let options = || RedisOptions::new("unfaithful").function("app::stats", 0);
        let first = Cache::with_store(options().open::<u32, Stats>(&Config::new()));
        first.insert(0, skipped());
        let next = Cache::with_store(options().open::<u32, Stats>(&Config::new()));
        assert_eq!(next.get(&0), None, "a field left out");
        assert_eq!(first.stats().backend_errors, 1);

        let first = Cache::with_store(options().open::<Id, String>(&Config::new()));
        first.insert(Id::Num(42), "number 42".to_string());
        first.insert(Id::Name("42".to_string()), "name 42".to_string());
        let next = Cache::with_store(options().open::<Id, String>(&Config::new()));
        assert_eq!(next.get(&Id::Name("42".to_string())), None);
        assert_eq!(next.get(&Id::Num(42)), None);
    }
}

#[cached]
fn after_the_modules(n: u32) -> u32 {
    n
}

#[test]
fn a_plain_function_keeps_its_fast_path() {
    assert_eq!(after_the_modules(1), 1);
    assert_eq!(after_the_modules(1), 1);
    assert_eq!(after_the_modules_cache().stats().hits, 1);
}
