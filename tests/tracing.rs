//! The `tracing` feature: a `memo.compute` span per computation, with the function and how it
//! ended; nothing for plain hits. A minimal subscriber records what it is told.

#![cfg(feature = "tracing")]

#[path = "support/calls.rs"]
mod calls;

use std::cell::Cell;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use memo::cached;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Each span's `function`, `outcome` and `kind`, by id (its index + 1); each event's `backend`
/// field (empty for events without one); and the `function` of each warning.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<(String, String, String)>>>,
    events: Arc<Mutex<Vec<String>>>,
    warnings: Arc<Mutex<Vec<String>>>,
    /// The message of each warning.
    warning_lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// The `(outcome, kind)` of each span of `function`, in the order they opened.
    fn spans_of(&self, function: &str) -> Vec<(String, String)> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|(f, _, _)| f == function)
            .map(|(_, outcome, kind)| (outcome.clone(), kind.clone()))
            .collect()
    }
}

struct Fields<'a>(&'a mut (String, String, String));

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "function" | "backend" => self.0.0 = value.to_string(),
            "outcome" => self.0.1 = value.to_string(),
            "kind" => self.0.2 = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn Debug) {}
}

/// An event's message.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = (String::new(), String::new(), String::new());
        span.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(fields);
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let index = usize::try_from(span.into_u64()).unwrap() - 1;
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[index]));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = (String::new(), String::new(), String::new());
        event.record(&mut Fields(&mut fields));
        if *event.metadata().level() == tracing::Level::WARN {
            self.warnings.lock().unwrap().push(fields.0.clone());
            let mut line = Message(String::new());
            event.record(&mut line);
            self.warning_lines.lock().unwrap().push(line.0);
        }
        self.events.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[cached]
fn parse(text: &str) -> Result<u32, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[test]
fn each_computation_is_a_span_with_its_outcome_and_hits_are_silent() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("1"), Ok(1));
        assert!(parse("x").is_err());
    });
    let spans = recorder.spans.lock().unwrap().clone();
    let seen: Vec<(&str, &str)> = spans
        .iter()
        .map(|(f, o, _)| (f.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("tracing::parse", "miss"), ("tracing::parse", "error")],
        "no span for the hit"
    );
    assert!(spans.iter().all(|(_, _, kind)| kind == "call"));
}

/// Comparisons of two `Gate`s so far: a caller compares its key with the one in flight (under
/// the flight table's lock, which the leader takes to finish), and so waits for it.
static GATE_COMPARED: AtomicUsize = AtomicUsize::new(0);
/// Whether a `Gate` clone paused, and whether it may go on.
static GATE_PAUSED: AtomicBool = AtomicBool::new(false);
static GATE_RELEASED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set on a thread whose next `Gate` clone pauses: a caller clones its key after it missed
    /// the store and before it looks for a computation in flight (its span opens after).
    static PAUSE_NEXT_CLONE: Cell<bool> = const { Cell::new(false) };
}

/// A key that lets the test order two callers of one key without timing them.
#[derive(Debug)]
struct Gate(u32);

impl Hash for Gate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        GATE_COMPARED.fetch_add(1, Ordering::SeqCst);
        self.0 == other.0
    }
}

impl Eq for Gate {}

impl Clone for Gate {
    fn clone(&self) -> Self {
        if PAUSE_NEXT_CLONE.replace(false) {
            GATE_PAUSED.store(true, Ordering::SeqCst);
            assert!(calls::eventually(|| GATE_RELEASED.load(Ordering::SeqCst)));
        }
        Self(self.0)
    }
}

static GATED_STARTED: AtomicBool = AtomicBool::new(false);

/// Key 1 computes until another caller waits for it.
#[cached]
fn gated(key: Gate) -> u32 {
    if key.0 == 1 {
        GATED_STARTED.store(true, Ordering::SeqCst);
        assert!(calls::eventually(
            || GATE_COMPARED.load(Ordering::SeqCst) > 0
        ));
    }
    key.0 * 10
}

/// README: "a `memo.compute` span per computation (`function`, `outcome`: miss, error,
/// coalesced, hit, refresh) ...; nothing on plain hits": a caller that waited for another's
/// computation says `coalesced`; one that missed, then found the value stored before it could
/// take the lead, says `hit`; a forced refresh says `refresh` (kind `refresh`); plain hits open
/// no span.
#[test]
fn waiters_late_leaders_and_forced_refreshes_say_so_and_plain_hits_stay_silent() {
    let recorder = Recorder::default();
    let traced = |call: fn() -> u32| {
        let recorder = recorder.clone();
        move || tracing::subscriber::with_default(recorder, call)
    };
    // Coalesced: the leader computes key 1 until the second caller has joined its flight.
    let leader = std::thread::spawn(traced(|| gated(Gate(1))));
    assert!(calls::eventually(|| GATED_STARTED.load(Ordering::SeqCst)));
    assert_eq!(traced(|| gated(Gate(1)))(), 10);
    assert_eq!(leader.join().unwrap(), 10);
    // Hit: the late caller missed key 2, then paused before looking for a computation; the
    // other computed and stored it meanwhile (its span opened first).
    let late = std::thread::spawn(traced(|| {
        PAUSE_NEXT_CLONE.set(true);
        gated(Gate(2))
    }));
    assert!(calls::eventually(|| GATE_PAUSED.load(Ordering::SeqCst)));
    assert_eq!(traced(|| gated(Gate(2)))(), 20);
    GATE_RELEASED.store(true, Ordering::SeqCst);
    assert_eq!(late.join().unwrap(), 20);
    // Plain hits, then a forced refresh.
    assert_eq!(traced(|| gated(Gate(1)) + gated(Gate(2)))(), 30);
    assert_eq!(traced(|| gated_cache().refresh(|| gated(Gate(2))))(), 20);
    let stats = gated_cache().stats();
    assert_eq!(
        (stats.misses, stats.coalesced, stats.hits, stats.refreshes),
        (2, 1, 3, 1),
        "the callers did what their spans say"
    );
    let span = |outcome: &str, kind: &str| (outcome.to_string(), kind.to_string());
    assert_eq!(
        recorder.spans_of("tracing::gated"),
        [
            span("miss", "call"),
            span("coalesced", "call"),
            span("miss", "call"),
            span("hit", "call"),
            span("refresh", "refresh"),
        ],
        "one span per computation, with its outcome; none for the plain hits"
    );
    assert!(recorder.warnings.lock().unwrap().is_empty());
}

#[cfg(feature = "disk")]
#[cached(store = disk("tracing"))]
fn stored(n: u32) -> u32 {
    n * 2
}

/// Each failure of a backend is an event naming it; the calls go on uncached.
#[cfg(feature = "disk")]
#[test]
fn each_backend_error_is_an_event() {
    // A cache directory under a regular file: it cannot be created, not even by root.
    let file = std::env::temp_dir().join(format!("memo-tracing-{}", std::process::id()));
    std::fs::write(&file, b"").unwrap();
    // SAFETY: no other test of this binary opens a disk cache or reads the environment.
    unsafe { std::env::set_var("MEMO_CACHE_DIR", file.join("cache")) };
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        assert_eq!(stored(1), 2);
        assert_eq!(stored(1), 2);
    });
    std::fs::remove_file(&file).unwrap();
    let errors = stored_cache().stats().backend_errors;
    assert!(errors >= 1, "the unusable directory is counted");
    let events = recorder.events.lock().unwrap().clone();
    let disk_events = events.iter().filter(|backend| *backend == "disk").count();
    assert_eq!(
        u64::try_from(disk_events).unwrap(),
        errors,
        "one event per counted error: {events:?}"
    );
}

/// A key postcard cannot read back (it does not describe itself).
#[cfg(any(feature = "disk", feature = "redis"))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Untagged {
    Num(u32),
    Name(String),
}

/// Three values of a type the binary codec cannot carry (`serde_json::Value`: postcard writes it
/// but cannot read it back), then three keys it cannot carry, into `values` and `keys`: each
/// refusal is counted, and each store says its first once, with the type and the way out.
#[cfg(any(feature = "disk", feature = "redis"))]
fn refusals_are_said_once<S, T>(
    values: &memo::Cache<u32, serde_json::Value, S>,
    keys: &memo::Cache<Untagged, u32, T>,
) where
    S: memo::Store<u32, serde_json::Value>,
    T: memo::Store<Untagged, u32>,
{
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        for n in 0..3 {
            values.insert(n, serde_json::json!({ "n": n }));
            keys.insert(Untagged::Num(n), n);
        }
    });
    assert_eq!(values.stats().backend_errors, 3);
    assert_eq!(keys.stats().backend_errors, 3);
    let lines = recorder.warning_lines.lock().unwrap().clone();
    let said = |what: &str| lines.iter().filter(|line| line.contains(what)).count();
    assert_eq!(said("was not stored"), 2, "{lines:#?}");
    assert_eq!(
        said("a value of type `serde_json::value::Value`"),
        1,
        "{lines:#?}"
    );
    assert_eq!(said("codec = \"json\" can"), 1, "{lines:#?}");
    assert_eq!(said("a key of type `tracing::Untagged`"), 1, "{lines:#?}");
}

/// A disk store that refuses a key or value says so once, not only in `backend_errors`: a
/// type that is always refused turns the store off for its function.
#[cfg(feature = "disk")]
#[test]
fn a_disk_store_says_once_what_it_refuses_and_why() {
    let dir = std::env::temp_dir().join(format!("memo-tracing-refused-{}", std::process::id()));
    let open = |name: &str| memo::DiskOptions::new(name).root(&dir);
    let values: memo::DiskCache<u32, serde_json::Value> =
        memo::Cache::builder().disk_options(open("values")).build();
    let keys: memo::DiskCache<Untagged, u32> =
        memo::Cache::builder().disk_options(open("keys")).build();
    refusals_are_said_once(&values, &keys);
    std::fs::remove_dir_all(&dir).ok();
}

/// With the feature on and no subscriber set, a store's warning is a line on standard error,
/// as without the feature: it was lost (a new user with `tracing` on heard nothing).
#[cfg(feature = "disk")]
#[test]
fn a_warning_without_a_subscriber_goes_to_standard_error() {
    let dir = std::env::temp_dir().join(format!("memo-tracing-unheard-{}", std::process::id()));
    if std::env::var_os("MEMO_TEST_UNHEARD").is_some() {
        let values: memo::DiskCache<u32, serde_json::Value> = memo::Cache::builder()
            .disk_options(memo::DiskOptions::new("unheard").root(&dir))
            .build();
        values.insert(0, serde_json::json!({ "n": 0 }));
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_warning_without_a_subscriber_goes_to_standard_error",
            "--nocapture",
        ])
        .env("MEMO_TEST_UNHEARD", "1")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("memo: ") && stderr.contains("was not stored"),
        "{stderr}"
    );
}

/// As on disk, in Redis.
#[cfg(feature = "redis")]
#[test]
fn a_redis_store_says_once_what_it_refuses_and_why() {
    use memo::redis::{RedisClient, RedisConfig};
    let server = memo::testing::RedisServer::start();
    let client = || RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
    let open = |name: &str| memo::RedisOptions::new(name).client(client());
    let values: memo::RedisCache<u32, serde_json::Value> =
        memo::Cache::builder().redis_options(open("values")).build();
    let keys: memo::RedisCache<Untagged, u32> =
        memo::Cache::builder().redis_options(open("keys")).build();
    refusals_are_said_once(&values, &keys);
}

/// Whether `quote` fails.
#[cfg(feature = "test-util")]
static QUOTE_FAILS: AtomicBool = AtomicBool::new(false);
#[cfg(feature = "test-util")]
static QUOTE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cfg(feature = "test-util")]
#[cached(ttl = "10s", stale = "1h")]
fn quote(n: u32) -> Result<u32, String> {
    let run = u32::try_from(QUOTE_RUNS.fetch_add(1, Ordering::SeqCst)).unwrap();
    if QUOTE_FAILS.load(Ordering::SeqCst) {
        return Err(format!("quote {n} failed"));
    }
    Ok(n * 100 + run)
}

/// README: a background refresh is a `memo.compute` span (kind and outcome `refresh`, or
/// outcome `error`), and each that fails is one warning; serving the stale value opens no span.
/// Background refreshes run on threads of their own: the recorder is the process's subscriber
/// (the other tests' threads keep theirs), and only `quote`'s spans are read.
#[cfg(feature = "test-util")]
#[test]
fn background_refreshes_are_spans_and_each_failed_one_a_warning() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    let cache = quote_cache();
    let (clock, mock) = memo::Clock::mock();
    cache.set_clock(clock);
    assert_eq!(quote(1), Ok(100));
    mock.increment(std::time::Duration::from_secs(11));
    QUOTE_FAILS.store(true, Ordering::SeqCst);
    assert_eq!(quote(1), Ok(100), "stale, while it refreshes");
    assert!(calls::eventually(|| cache.stats().refresh_failures == 1));
    QUOTE_FAILS.store(false, Ordering::SeqCst);
    assert_eq!(quote(1), Ok(100), "still stale: the failed refresh kept it");
    assert!(calls::eventually(|| cache.peek(&1) == Some(102)));
    assert!(calls::eventually(|| cache.stats().refreshes == 2));
    assert_eq!(cache.stats().refresh_failures, 1);
    let span = |outcome: &str, kind: &str| (outcome.to_string(), kind.to_string());
    assert_eq!(
        recorder.spans_of("tracing::quote"),
        [
            span("miss", "call"),
            span("error", "refresh"),
            span("refresh", "refresh"),
        ],
        "one span per computation and refresh; none for the stale reads"
    );
    let warnings = recorder.warnings.lock().unwrap().clone();
    let quote_warnings = warnings.iter().filter(|f| *f == "tracing::quote").count();
    assert_eq!(
        quote_warnings, 1,
        "one warning per failed refresh: {warnings:?}"
    );
}

/// Two methods given one cache (`cache = self.names` on both).
struct Names {
    names: memo::Cache<u64, String>,
}

impl Names {
    #[cached(cache = self.names)]
    fn user(&self, id: u64) -> String {
        format!("user-{id}")
    }

    #[cached(cache = self.names)]
    fn team(&self, id: u64) -> String {
        format!("team-{id}")
    }
}

/// The README's `cache = self.lookups` row: a second function given the same cache computes
/// every call, "said once".
#[test]
fn a_second_function_given_the_same_cache_is_told_once() {
    let recorder = Recorder::default();
    let names = Names {
        names: memo::Cache::builder().build(),
    };
    tracing::subscriber::with_default(recorder.clone(), || {
        assert_eq!(names.user(1), "user-1");
        for _ in 0..3 {
            assert_eq!(names.team(1), "team-1");
        }
    });
    let lines = recorder.warning_lines.lock().unwrap().clone();
    let said = lines
        .iter()
        .filter(|line| line.contains("uses the cache") && line.contains("team"))
        .count();
    assert_eq!(said, 1, "{lines:#?}");
}
