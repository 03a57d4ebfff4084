//! `#[cached(store = redis)]` end to end, against real servers this binary starts: hits across
//! processes (sync and async), one computation for a stampede of processes, a server killed and
//! restarted under load, long keys named by their hash, JSON entries read from Python, and a 3-master cluster.
//!
//! Processes: the test binary runs itself with `MEMO_TEST_ROLE` set (see [`child`]).
#![cfg(feature = "redis")]

#[path = "support/calls.rs"]
mod calls;
#[path = "support/child.rs"]
mod child;
#[path = "../memo-runtime/tests/support/redis_server.rs"]
mod redis_server;
#[path = "support/timed_out.rs"]
mod timed_out;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use child::result;
use memo::redis::{RedisClient, RedisConfig};
use memo::{Cache, Config, RedisOptions, cached};
use redis_server::{RedisCluster, RedisServer};

/// The server of this binary's `#[cached]` functions (a child gets its URL from the parent).
fn init() {
    static SERVER: OnceLock<Option<RedisServer>> = OnceLock::new();
    SERVER.get_or_init(|| {
        if std::env::var_os("MEMO_TEST_ROLE").is_some() {
            return None;
        }
        let server = RedisServer::start();
        // Statics are never dropped: stop the server when the process exits.
        PORT.store(server.port(), Ordering::Relaxed);
        // SAFETY: `stop` is an `extern "C" fn` that only sends one command.
        unsafe { libc::atexit(stop) };
        // A command timeout ten times the default: a loaded machine can stall a process past
        // 100 ms, and these tests count executions across processes. The default's own
        // promises are tested on clients of their own (`memo-runtime/tests/redis.rs`).
        let url = format!("{}?command_timeout=1s", server.url());
        // SAFETY: every test calls `init` first, before any cache is opened, and no foreign
        // code reads the environment meanwhile.
        unsafe { std::env::set_var("MEMO_REDIS_URL", url) };
        Some(server)
    });
}

static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

extern "C" fn stop() {
    redis_server::command(PORT.load(Ordering::Relaxed), "SHUTDOWN NOSAVE");
}

static SQUARES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, ttl = "10m")]
fn square(n: u64) -> u64 {
    SQUARES.fetch_add(1, Ordering::Relaxed);
    n * n
}

static CUBES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, codec = "json")]
async fn cube(n: u64) -> u64 {
    tokio::task::yield_now().await;
    CUBES.fetch_add(1, Ordering::Relaxed);
    n * n * n
}

/// Each execution appends a line to `MEMO_TEST_LOG`: counted across processes.
#[cached(store = redis, ttl = "1m")]
fn slow(key: &str) -> String {
    std::thread::sleep(Duration::from_millis(200));
    if let Some(log) = std::env::var_os("MEMO_TEST_LOG") {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .unwrap();
        writeln!(file, "{}", std::process::id()).unwrap();
    }
    format!("value of {key}")
}

static SHOUTS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 100, ttl = "10m")]
fn shout(word: &str) -> String {
    SHOUTS.fetch_add(1, Ordering::Relaxed);
    word.to_uppercase()
}

static TIERED_SQUARES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_square(n: u64) -> u64 {
    TIERED_SQUARES.fetch_add(1, Ordering::Relaxed);
    n * n
}

#[cached(store = tiered, maxsize = 100, ttl = "10m")]
async fn whisper(word: String) -> String {
    SHOUTS.fetch_add(1, Ordering::Relaxed);
    word.to_lowercase()
}

static TAGS: AtomicUsize = AtomicUsize::new(0);

/// Run by child processes with different `MEMO_REDIS_PREFIX`es.
#[cached(store = redis)]
fn tagged(n: u64) -> String {
    TAGS.fetch_add(1, Ordering::Relaxed);
    format!("tag {n}")
}

/// Calls `shout(word)` until it returns `expected` (its L1 copy dropped by a message).
fn shout_until(word: &str, expected: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shout(word) != expected {
        assert!(std::time::Instant::now() < deadline, "never saw {expected}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What this binary does when run as a child process.
#[test]
fn child() {
    let Ok(role) = std::env::var("MEMO_TEST_ROLE") else {
        return;
    };
    match role.as_str() {
        "hits" => {
            assert_eq!(square(7), 49);
            let runtime = tokio::runtime::Runtime::new().unwrap();
            assert_eq!(runtime.block_on(cube(3)), 27);
            let (squares, cubes) = (
                SQUARES.load(Ordering::Relaxed),
                CUBES.load(Ordering::Relaxed),
            );
            let hits = square_cache().stats().hits + cube_cache().stats().hits;
            println!("RESULT executions={} hits={hits}", squares + cubes);
        }
        "stampede" => {
            for value in calls::at_once(8, || slow("cold")) {
                assert_eq!(value, "value of cold");
            }
            println!("RESULT ok");
        }
        "tiered" => {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            assert_eq!(shout("hi"), "HI");
            assert_eq!(runtime.block_on(whisper("HI".into())), "hi");
            assert_eq!(shout("hi"), "HI"); // from the L1
            // `probe` is the parent's: read from Redis, not computed.
            listen(
                || drop(shout("probe")),
                || shout_cache().get(&"probe".to_string()).is_some(),
            );
            let line = || std::io::stdin().read_line(&mut String::new()).unwrap();
            println!("READY");
            line();
            // The parent stored a new value: this process's copy goes.
            shout_until("hi", "NEW");
            println!("SEEN");
            line();
            // The parent invalidated it: computed here again.
            shout_until("hi", "HI");
            let hits = shout_cache().stats().hits;
            println!(
                "RESULT executions={} hits>=3:{}",
                SHOUTS.load(Ordering::Relaxed),
                hits >= 3
            );
        }
        "stale" => {
            let (redis, tiered) = (stale_shared("s"), tiered_stale_shared("s"));
            let key = "s".to_string();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while stale_shared_cache().get(&key).as_deref() != Some("refreshed")
                || tiered_stale_shared_cache().get(&key).as_deref() != Some("refreshed")
            {
                assert!(std::time::Instant::now() < deadline, "never refreshed");
                std::thread::sleep(Duration::from_millis(5));
            }
            println!("RESULT served={redis},{tiered}");
        }
        "held" => {
            let held = std::env::var("MEMO_TEST_HELD").unwrap();
            let [function, role, key] = held.split(' ').collect::<Vec<_>>()[..] else {
                panic!("{held}");
            };
            println!("RESULT {}", on_held(function, role, key.parse().unwrap()));
        }
        "renewing" => renewing_child(),
        // The same key twice: the second call reads Redis.
        "frozen_read" => frozen_read_child(6, square, &SQUARES, || {
            square_cache().stats().backend_errors
        }),
        // Another key first, which opens the client: `6`, not in this process's copies, is then
        // read from Redis.
        "tiered_frozen_read" => frozen_read_child(5, tiered_square, &TIERED_SQUARES, || {
            tiered_square_cache().stats().backend_errors
        }),
        "passwords" => passwords_child(),
        "invalidate" => {
            let key = std::env::var("MEMO_TEST_KEY").unwrap();
            failing_cache().invalidate(key.as_str());
            maybe_cache().invalidate(key.as_str());
            failing_async_cache().invalidate(key.as_str());
            tiered_failing_cache().invalidate(key.as_str());
            println!("RESULT invalidated");
        }
        "prefixed" => {
            assert_eq!(tagged(1), "tag 1");
            println!("RESULT executions={}", TAGS.load(Ordering::Relaxed));
        }
        other => panic!("unknown role {other}"),
    }
}

/// The bodies of `failing` and `maybe`: the first call waits for the test, then fails
/// (`None`, read as "older"); later calls give "newer".
static OLDER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
static ENTERED: std::sync::Barrier = std::sync::Barrier::new(2);
static GO: std::sync::Barrier = std::sync::Barrier::new(2);

fn older_then_newer() -> Option<String> {
    if OLDER.swap(false, Ordering::SeqCst) {
        ENTERED.wait();
        GO.wait();
        return None;
    }
    Some("newer".to_string())
}

#[cached(store = redis, ttl = "10m")]
fn failing(key: &str) -> Result<String, String> {
    let _ = key;
    older_then_newer().ok_or_else(|| "older".to_string())
}

#[cached(store = redis, ttl = "10m")]
fn maybe(key: &str) -> Option<String> {
    let _ = key;
    older_then_newer()
}

#[cached(store = redis, ttl = "10m")]
async fn failing_async(key: &str) -> Result<String, String> {
    let _ = key;
    older_then_newer().ok_or_else(|| "older".to_string())
}

#[cached(store = tiered, ttl = "10m")]
fn tiered_failing(key: &str) -> Result<String, String> {
    let _ = key;
    older_then_newer().ok_or_else(|| "older".to_string())
}

/// A result that is not stored goes to the callers that joined its computation (an `Err`
/// they take a copy of, a `None`), unless another process changed the key since it began: a
/// call begun after another process's `invalidate` returned computes instead of taking the
/// older result. Sync and async, Redis and tiered.
#[test]
fn a_call_begun_after_an_invalidate_in_another_process_is_not_handed_an_older_error() {
    init();
    let monitor = redis_server::Monitor::start(PORT.load(Ordering::Relaxed));
    for function in ["failing", "maybe", "failing_async", "tiered_failing"] {
        OLDER.store(true, Ordering::SeqCst);
        let key = format!("after-invalidate-{function}");
        let call = || match function {
            "failing" => failing(&key).unwrap_or_else(|older| older),
            "maybe" => maybe(&key).unwrap_or_else(|| "older".to_string()),
            // On a runtime of the caller's thread, which the leader's body blocks.
            "failing_async" => tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(failing_async(&key))
                .unwrap_or_else(|older| older),
            _ => tiered_failing(&key).unwrap_or_else(|older| older),
        };
        std::thread::scope(|scope| {
            let leader = scope.spawn(call);
            ENTERED.wait();
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child", "--nocapture", "--test-threads=1"])
                .env("MEMO_TEST_ROLE", "invalidate")
                .env("MEMO_TEST_KEY", &key)
                .env("MEMO_REDIS_URL", std::env::var("MEMO_REDIS_URL").unwrap())
                .output()
                .unwrap();
            assert_eq!(result(&out), "invalidated");
            let mark = monitor.mark();
            let joiner = scope.spawn(call);
            // The joiner read Redis (and missed): it joins the computation microseconds later.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !monitor.named_since(mark, &key) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the joiner never read"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(100));
            GO.wait();
            assert_eq!(leader.join().unwrap(), "older", "its own caller gets it");
            assert_eq!(
                joiner.join().unwrap(),
                "newer",
                "{function}: a call begun after another process's invalidate returned was \
                 handed the result of a computation begun before it"
            );
        });
    }
}

/// Uses a server that refuses this process's password (through `MEMO_REDIS_URL`) and one
/// that is down, and prints what a user would log of them: each error's `Display` and `Debug`,
/// the configuration's `Debug`, the counts. The stores' own warnings go to standard error.
fn passwords_child() {
    for _ in 0..3 {
        assert_eq!(square(11), 121);
    }
    let down = std::env::var("MEMO_TEST_DOWN_URL").unwrap();
    let config = RedisConfig::from_url(&down).unwrap();
    println!("{config:?}");
    let client = RedisClient::new(config).unwrap();
    let err = client.get(b"k").unwrap_err();
    println!("{err} {err:?}");
    let cache: memo::RedisCache<u64, u64> = Cache::builder()
        .redis_options(RedisOptions::new("passwords").client(client))
        .build();
    for n in 0..3 {
        assert_eq!(cache.get_or_insert_with(n, || n + 1), n + 1);
    }
    let refused = square_cache().stats().backend_errors;
    let unreachable = cache.stats().backend_errors;
    println!("RESULT counted={}", refused > 0 && unreachable > 0);
}

/// Calls `square(first)`, then, when the parent says so, `square(6)`, and prints the executions
/// and backend errors of that second call.
fn frozen_read_child(
    first: u64,
    square: fn(u64) -> u64,
    executions: &AtomicUsize,
    errors: impl Fn() -> u64,
) {
    let line = || std::io::stdin().read_line(&mut String::new()).unwrap();
    assert_eq!(square(first), first * first);
    let (executions_before, errors_before) = (executions.load(Ordering::Relaxed), errors());
    println!("READY");
    line();
    println!("CALLING");
    assert_eq!(square(6), 36);
    println!(
        "RESULT executions={} errors={}",
        executions.load(Ordering::Relaxed) - executions_before,
        errors() - errors_before
    );
}

/// Issue 19: a stale value read by several processes, refreshed by the one that takes its lock;
/// each refresh (run by a child, with `MEMO_TEST_LOG`) appends a line to the log.
#[cached(store = redis, ttl = "1s", stale = "1m")]
fn stale_shared(key: &str) -> String {
    logged_refresh("redis", key)
}

#[cached(store = tiered, maxsize = 10, ttl = "1s", stale = "1m")]
fn tiered_stale_shared(key: &str) -> String {
    logged_refresh("tiered", key)
}

/// The first value (in the parent), or a refresh (in a child) logged as `store`.
fn logged_refresh(store: &str, key: &str) -> String {
    let Some(log) = std::env::var_os("MEMO_TEST_LOG") else {
        return format!("first {key}");
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    // One write of the whole line: `writeln!` writes in pieces, and the two stores' refreshes
    // (in two processes) then interleave within a line.
    let line = format!("{store} {}\n", std::process::id());
    file.write_all(line.as_bytes()).unwrap();
    // Long enough that the other process finds the value due meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    "refreshed".to_string()
}

#[test]
fn processes_reading_a_stale_redis_or_tiered_key_refresh_it_once() {
    init();
    assert_eq!(stale_shared("s"), "first s");
    assert_eq!(tiered_stale_shared("s"), "first s");
    // Past the time to live (Redis keeps wall time), within `stale`.
    std::thread::sleep(Duration::from_millis(1_100));
    let log = std::env::temp_dir().join(format!("memo-redis-stale-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let children: Vec<_> = (0..2).map(|_| spawn("stale", Some(&log))).collect();
    for child in children {
        let served = result(&child.wait_with_output().unwrap());
        for value in served.trim_start_matches("served=").split(',') {
            assert!(value == "first s" || value == "refreshed", "{served}");
        }
    }
    let refreshes = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    for store in ["redis", "tiered"] {
        let runs = refreshes.lines().filter(|line| line.starts_with(store));
        assert_eq!(runs.count(), 1, "one refresh of {store}'s key: {refreshes}");
    }
    assert_eq!(stale_shared("s"), "refreshed");
    assert_eq!(tiered_stale_shared("s"), "refreshed");
}

/// A value that names the process and run that computed it; a background refresh (on a
/// `memo-refresh` thread) takes 4 s, four times the time to live, so that it outlasts the bound
/// on serving the value it replaces.
fn numbered(key: &str, runs: &AtomicUsize) -> String {
    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
    if std::thread::current().name() == Some("memo-refresh") {
        std::thread::sleep(Duration::from_secs(4));
    }
    format!("{key} by {} #{run}", std::process::id())
}

static LASTING: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, ttl = "1s", stale = "1m")]
fn lasting(key: &str) -> String {
    numbered(key, &LASTING)
}

static TIERED_LASTING: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 10, ttl = "1s", stale = "1m")]
fn tiered_lasting(key: &str) -> String {
    numbered(key, &TIERED_LASTING)
}

/// The child of [`a_refresh_running_in_another_process_serves_the_old_value_at_most_a_ttl`]:
/// reads the parent's stale values (starting a 4 s refresh of each), says `READY <values>`,
/// waits for the parent's invalidation, then reads both keys until their refreshes are over
/// (5 s), counting the reads begun a time to live or more after the invalidation that were
/// served the old value (none may be), and the reads made then (some must be).
fn renewing_child() {
    let ttl = Duration::from_secs(1);
    listen(
        || drop(tiered_lasting("probe")),
        || tiered_lasting_cache().get(&"probe".to_string()).is_some(),
    );
    let old = (lasting("r"), tiered_lasting("r"));
    println!("READY {}|{}", old.0, old.1);
    std::io::stdin().read_line(&mut String::new()).unwrap();
    let invalidated = std::time::Instant::now();
    let (mut late_reads, mut late_old) = (0, Vec::new());
    while invalidated.elapsed() < Duration::from_secs(5) {
        let began = invalidated.elapsed();
        let now = (lasting("r"), tiered_lasting("r"));
        if began >= ttl {
            late_reads += 1;
            for (value, old) in [(&now.0, &old.0), (&now.1, &old.1)] {
                if value == old {
                    late_old.push(format!("{value} read {began:?} after"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "RESULT late_reads>0:{} late_old={late_old:?}",
        late_reads > 0
    );
}

/// README (`store = redis`): "with `stale` or early refresh, a process whose background refresh
/// of the key is running serves the old value until that refresh ends, at most a `ttl`". Another
/// process's `invalidate` does not reach that process's old value, but a time to live after the
/// invalidation no process serves it, though the refresh (4 s) still runs: Redis and tiered.
#[test]
fn a_refresh_running_in_another_process_serves_the_old_value_at_most_a_ttl() {
    init();
    let first = (lasting("r"), tiered_lasting("r"));
    // Past the time to live (Redis keeps wall time), within `stale`.
    std::thread::sleep(Duration::from_millis(1_200));
    let mut child = Conversation::start("renewing", &std::env::var("MEMO_REDIS_URL").unwrap());
    until_listening(&mut child, || {
        tiered_lasting_cache().invalidate("probe");
    });
    let ready = child.wait_for("READY ");
    // The child was served the stale values, and refreshes them now.
    assert_eq!(
        ready.split_once("READY ").unwrap().1,
        format!("{}|{}", first.0, first.1)
    );
    assert!(lasting_cache().invalidate("r"));
    assert!(tiered_lasting_cache().invalidate("r"));
    child.go_on();
    // Here, the invalidation is seen at once.
    assert_ne!(lasting("r"), first.0);
    assert_ne!(tiered_lasting("r"), first.1);
    assert_eq!(child.result(), "late_reads>0:true late_old=[]");
}

/// A tiered store hears other processes' changes once its subscription is in place, some time
/// after its first call; a message published before is missed (the `ttl` is the safety net). So
/// before a test's messages the child ([`listen`]) takes a copy of a probe key, and `invalidate`
/// removes that key over and over until the child sees its copy go.
fn until_listening(child: &mut Conversation, invalidate: impl Fn() + Sync) {
    child.wait_for("PROBING");
    let listening = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !listening.load(Ordering::Relaxed) {
                invalidate();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        child.wait_for("LISTENING");
        listening.store(true, Ordering::Relaxed);
    });
}

/// The child's half of [`until_listening`]: `read` takes a copy of the probe key; then waits
/// until `held` says a message from the parent removed it.
fn listen(read: impl FnOnce(), held: impl Fn() -> bool) {
    read();
    println!("PROBING");
    while held() {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("LISTENING");
}

/// Runs this binary as `role`, against this binary's server.
fn spawn(role: &str, log: Option<&std::path::Path>) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("MEMO_TEST_ROLE", role)
        .env("MEMO_REDIS_URL", std::env::var("MEMO_REDIS_URL").unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(log) = log {
        command.env("MEMO_TEST_LOG", log);
    }
    command.spawn().unwrap()
}

#[test]
fn a_second_process_hits_what_the_first_computed() {
    init();
    assert_eq!(square(7), 49);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(cube(3)), 27);
    assert_eq!(square(7), 49);
    assert_eq!(runtime.block_on(cube(3)), 27);
    assert_eq!(SQUARES.load(Ordering::Relaxed), 1);
    assert_eq!(CUBES.load(Ordering::Relaxed), 1);
    let stats = square_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.backend_errors), (1, 1, 0));
    assert_eq!(cube_cache().stats().hits, 1);

    let out = spawn("hits", None).wait_with_output().unwrap();
    assert_eq!(result(&out), "executions=0 hits=2");

    // An invalidation reaches every process: the next call computes again.
    assert!(square_cache().invalidate(&7));
    assert!(!square_cache().invalidate(&7));
    let out = spawn("hits", None).wait_with_output().unwrap();
    assert_eq!(result(&out), "executions=1 hits=1");
    assert_eq!(square(7), 49);
    assert_eq!(SQUARES.load(Ordering::Relaxed), 1);
}

/// A child of `role` that the test talks to: the child waits for a line on its stdin before
/// each step and marks its progress on its stdout.
struct Conversation {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Conversation {
    fn start(role: &str, url: &str) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env("MEMO_TEST_ROLE", role)
            .env("MEMO_REDIS_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Reads the child's output up to the line that contains `marker`, and returns that line.
    fn wait_for(&mut self, marker: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line.contains(marker) {
                return line;
            }
        }
        panic!("the child ended before {marker}");
    }

    /// Lets the child take its next step.
    fn go_on(&mut self) {
        writeln!(self.stdin).unwrap();
    }

    /// What the child printed after `RESULT `, once it has exited successfully.
    fn result(mut self) -> String {
        let line = self.wait_for("RESULT ");
        assert!(self.child.wait().unwrap().success(), "{line}");
        line.split_once("RESULT ").unwrap().1.trim().to_string()
    }
}

#[test]
fn a_new_value_or_an_invalidation_evicts_other_processes_copies() {
    init();
    assert_eq!(shout("hi"), "HI");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(whisper("HI".into())), "hi");
    assert_eq!(SHOUTS.load(Ordering::Relaxed), 2);
    shout_cache().insert("probe".to_string(), "PROBE".to_string());
    let mut child = Conversation::start("tiered", &std::env::var("MEMO_REDIS_URL").unwrap());
    until_listening(&mut child, || {
        shout_cache().invalidate("probe");
    });
    child.wait_for("READY");
    shout_cache().insert("hi".to_string(), "NEW".to_string());
    child.go_on();
    child.wait_for("SEEN");
    assert!(shout_cache().invalidate("hi"));
    child.go_on();
    // The child computed once, after the invalidation; everything else came from the parent.
    assert_eq!(child.result(), "executions=1 hits>=3:true");
    assert_eq!(SHOUTS.load(Ordering::Relaxed), 2);
}

/// `?command_timeout=` in `MEMO_REDIS_URL` is the timeout of `store = redis` functions. A child
/// has `square(6)` in Redis, then reads it again while the server is frozen (`SIGSTOP`) for
/// 600 ms: with a timeout of 10 s the read waits and hits; with the default 100 ms it times
/// out, and the child computes and counts the error.
#[test]
fn the_urls_command_timeout_is_the_functions() {
    let server = RedisServer::start();
    let patient = frozen_read(&server, "frozen_read", "?command_timeout=10s");
    assert_eq!(patient, "executions=0 errors=0");
    assert_eq!(
        frozen_read(&server, "frozen_read", ""),
        "executions=1 errors=1"
    );
}

/// The same for `store = tiered`, whose client the URL configures too: a child that holds no copy
/// of `tiered_square(6)` reads it from the frozen server.
#[test]
fn the_urls_command_timeout_is_the_tiered_functions() {
    let server = RedisServer::start();
    let mut writer = Conversation::start("tiered_frozen_read", &server.url());
    writer.wait_for("READY");
    writer.go_on();
    assert_eq!(writer.result(), "executions=1 errors=0");
    let patient = frozen_read(&server, "tiered_frozen_read", "?command_timeout=10s");
    assert_eq!(patient, "executions=0 errors=0");
    let hasty = frozen_read(&server, "tiered_frozen_read", "");
    assert_eq!(hasty, "executions=1 errors=1");
}

/// Runs a child of `role` over `server`'s URL with `query`, freezing the server (`SIGSTOP`) for
/// 600 ms around the child's second call; returns the child's result.
fn frozen_read(server: &RedisServer, role: &str, query: &str) -> String {
    let mut child = Conversation::start(role, &format!("{}{query}", server.url()));
    child.wait_for("READY");
    server.pause();
    child.go_on();
    child.wait_for("CALLING");
    std::thread::sleep(Duration::from_millis(600));
    server.resume();
    child.result()
}

#[test]
fn a_stampede_of_processes_computes_once() {
    init();
    let log = std::env::temp_dir().join(format!("memo-redis-stampede-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let children: Vec<_> = (0..3).map(|_| spawn("stampede", Some(&log))).collect();
    for child in children {
        assert_eq!(result(&child.wait_with_output().unwrap()), "ok");
    }
    let executions = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(executions.lines().count(), 1, "{executions}");
}

/// A cache over its own client of `url`, with a short command timeout.
fn cache_at(
    url: &str,
    name: &str,
    options: impl FnOnce(RedisOptions) -> RedisOptions,
) -> Cache<String, String, memo::RedisStore<String, String>> {
    let config = RedisConfig::from_url(url)
        .unwrap()
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200));
    let store = options(RedisOptions::new(name).client(RedisClient::new(config).unwrap()))
        .open(&Config::new().ttl(Duration::from_secs(60)));
    Cache::with_store(store)
}

#[test]
fn a_restarted_server_fails_no_call_and_returns_no_wrong_value() {
    let mut server = RedisServer::start();
    let cache = Arc::new(cache_at(&server.url(), "fault", |options| options));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (cache, stop, calls) = (Arc::clone(&cache), Arc::clone(&stop), Arc::clone(&calls));
            std::thread::spawn(move || {
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}", i % 50);
                    // Values carry their key: a value of another key would show.
                    let value = cache.get_or_compute(key.as_str(), |key| format!("value of {key}"));
                    assert_eq!(value, format!("value of {key}"));
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
            })
        })
        .collect();
    // A worker whose call failed has stopped counting: the wait ends (within 60 s) and the
    // joins below show its panic, instead of waiting for ever.
    let wait_for = |at_least: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while calls.load(Ordering::Relaxed) < at_least && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(500);
    server.kill();
    let before = calls.load(Ordering::Relaxed);
    wait_for(before + 500);
    server.restart();
    let restarted = calls.load(Ordering::Relaxed);
    wait_for(restarted + 500);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(
        calls.load(Ordering::Relaxed) >= restarted + 500,
        "the calls went on"
    );
    assert!(cache.stats().backend_errors > 0);
    // Recovered: a value stored now is found again.
    let client = cache.store().client().unwrap().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.get(b"probe").is_err() {
        assert!(std::time::Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(20));
    }
    cache.insert("after".to_string(), "value of after".to_string());
    assert_eq!(cache.get("after").as_deref(), Some("value of after"));
}

static GREETINGS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, idle = "2s")]
fn greeting(n: u64) -> String {
    GREETINGS.fetch_add(1, Ordering::SeqCst);
    format!("hello {n}")
}

#[cached(store = tiered, maxsize = 10, idle = "2s")]
fn farewell(n: u64) -> String {
    GREETINGS.fetch_add(1, Ordering::SeqCst);
    format!("bye {n}")
}

/// `idle` on Redis: each hit renews the key's time to live in its one round trip (a script), and
/// a tiered store's hits from its copy renew the shared key too: read every 300 ms for 3 s, past
/// the 2 s period, an entry is computed once and the Redis key is still there.
#[test]
fn idle_redis_entries_live_while_they_are_used() {
    init();
    let port = PORT.load(Ordering::Relaxed);
    let pttl = |pattern: &str| -> i64 {
        let keys = redis_cli(port, &["--scan", "--pattern", pattern]);
        let key = keys
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no key {pattern}"));
        redis_cli(port, &["PTTL", key]).trim().parse().unwrap()
    };
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(greeting(1), "hello 1");
        assert_eq!(farewell(1), "bye 1");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(GREETINGS.load(Ordering::SeqCst), 2, "one computation each");
    assert!(pttl("memo:redis::greeting:*") > 0);
    assert!(pttl("memo:redis::farewell:*") > 0);
    assert_eq!(greeting_cache().stats().misses, 1);
}

/// `cache = self.field` over a Redis cache: the object's own namespace on the server.
struct Directory {
    people: memo::RedisCache<u64, String>,
    runs: AtomicUsize,
}

impl Directory {
    #[cached(cache = self.people)]
    fn person(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("person {id}")
    }
}

#[test]
fn an_instance_cache_on_redis_is_the_objects_own() {
    init();
    let open = |name: &str| Directory {
        people: memo::Cache::builder().redis(name).build(),
        runs: AtomicUsize::new(0),
    };
    let staff = open("staff");
    assert_eq!(staff.person(1), "person 1");
    assert_eq!(staff.person(1), "person 1");
    assert_eq!(staff.runs.load(Ordering::SeqCst), 1);
    let guests = open("guests");
    assert_eq!(guests.people.get(&1), None, "another object's namespace");
    assert_eq!(guests.person(1), "person 1");
    assert_eq!(guests.runs.load(Ordering::SeqCst), 1);
    assert_eq!(staff.people.stats().hits, 1);
}

/// `cache = self.field` over a tiered cache (`Cache::builder().tiered(..)`): the object's own
/// namespace in Redis and its own copies in memory.
struct Roster {
    people: memo::TieredCache<u64, String>,
    runs: AtomicUsize,
}

impl Roster {
    fn open(name: &str) -> Self {
        Self {
            people: memo::Cache::builder().maxsize(10).tiered(name).build(),
            runs: AtomicUsize::new(0),
        }
    }

    #[cached(cache = self.people)]
    fn person(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("person {id}")
    }
}

#[test]
fn an_instance_cache_on_tiered_is_the_objects_own() {
    use memo::Store as _;
    init();
    let staff = Roster::open("staff-tiered");
    assert_eq!(staff.person(1), "person 1");
    assert_eq!(staff.person(1), "person 1");
    assert_eq!(staff.runs.load(Ordering::SeqCst), 1);
    assert_eq!(staff.people.store().held(), 1, "a copy in this process");
    let guests = Roster::open("guests-tiered");
    assert_eq!(guests.people.get(&1), None, "another object's namespace");
    assert_eq!(guests.person(1), "person 1");
    assert_eq!(guests.runs.load(Ordering::SeqCst), 1);
    // Another object over the first one's namespace finds its value in Redis.
    let again = Roster::open("staff-tiered");
    assert_eq!(again.person(1), "person 1");
    assert_eq!(again.runs.load(Ordering::SeqCst), 0);
}

/// Another process (here another cache object over the same names: its own flights, its own
/// copies, its own client's lock token) invalidates a key while this one computes it: the value
/// computed before is its caller's alone, and neither Redis nor a local copy keeps it.
fn a_value_computed_before_an_invalidation_elsewhere_is_not_stored<S>(
    here: Arc<Cache<String, String, S>>,
    there: &Cache<String, String, S>,
    invalidate: impl Fn(&Cache<String, String, S>),
) where
    S: memo::Store<String, String> + Send + Sync + 'static,
{
    let (started, on_start) = std::sync::mpsc::channel();
    let (go, on_go) = std::sync::mpsc::channel::<()>();
    let leader = std::thread::spawn(move || {
        here.get_or_compute("k", |_| {
            started.send(()).unwrap();
            on_go.recv().unwrap();
            "old".to_string()
        });
        here
    });
    on_start.recv().unwrap();
    invalidate(there);
    go.send(()).unwrap();
    let here = leader.join().unwrap();
    assert_eq!(
        here.get("k"),
        None,
        "stored by a computation begun before the invalidation"
    );
    assert_eq!(there.get("k"), None);
    let runs = AtomicUsize::new(0);
    let computed = there.get_or_compute("k", |_| {
        runs.fetch_add(1, Ordering::SeqCst);
        "new".to_string()
    });
    assert_eq!((computed.as_str(), runs.load(Ordering::SeqCst)), ("new", 1));
    assert_eq!(here.get("k").as_deref(), Some("new"));
}

/// The options of a store called `name` over a client of its own, patient enough (2 s a call)
/// that a loaded machine takes no claim or removal past its budget: a store that then computes
/// without its lock (or keeps the lock) would store, as documented.
fn patient(name: &str) -> RedisOptions {
    let url = std::env::var("MEMO_REDIS_URL").unwrap();
    let config = RedisConfig::from_url(&url)
        .unwrap()
        .command_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2));
    RedisOptions::new(name).client(RedisClient::new(config).unwrap())
}

#[test]
fn a_redis_value_computed_before_another_process_invalidated_it_is_not_stored() {
    init();
    let open = || {
        memo::Cache::builder()
            .redis_options(patient("begun-before"))
            .build()
    };
    let invalidate = |cache: &memo::RedisCache<String, String>| {
        assert!(!cache.invalidate("k"), "nothing stored yet");
    };
    a_value_computed_before_an_invalidation_elsewhere_is_not_stored(
        Arc::new(open()),
        &open(),
        invalidate,
    );
    let open = || {
        memo::Cache::builder()
            .redis_options(patient("begun-before-clear"))
            .build()
    };
    a_value_computed_before_an_invalidation_elsewhere_is_not_stored(
        Arc::new(open()),
        &open(),
        Cache::clear,
    );
}

#[test]
fn a_tiered_value_computed_before_another_process_invalidated_it_is_not_stored() {
    init();
    let open = |name| {
        memo::Cache::builder()
            .maxsize(10)
            .tiered_options(patient(name))
            .build()
    };
    let invalidate = |cache: &memo::TieredCache<String, String>| {
        assert!(!cache.invalidate("k"), "nothing stored yet");
    };
    let name = "begun-before-tiered";
    a_value_computed_before_an_invalidation_elsewhere_is_not_stored(
        Arc::new(open(name)),
        &open(name),
        invalidate,
    );
    let name = "begun-before-tiered-clear";
    a_value_computed_before_an_invalidation_elsewhere_is_not_stored(
        Arc::new(open(name)),
        &open(name),
        Cache::clear,
    );
}

static OUTDATED: calls::Held = calls::Held::new();

#[cached(store = redis, ttl = "10m")]
fn outdated(sensor: u64) -> String {
    format!("{sensor}: run {}", OUTDATED.run())
}

static CLEARED: calls::Held = calls::Held::new();

#[cached(store = redis, ttl = "10m")]
fn cleared(sensor: u64) -> String {
    format!("{sensor}: run {}", CLEARED.run())
}

static OUTDATED_ELSEWHERE: calls::Held = calls::Held::new();

#[cached(store = redis, ttl = "10m")]
fn outdated_elsewhere(sensor: u64) -> String {
    format!("{sensor}: run {}", OUTDATED_ELSEWHERE.run())
}

static CLEARED_ELSEWHERE: calls::Held = calls::Held::new();

#[cached(store = redis, ttl = "10m")]
fn cleared_elsewhere(sensor: u64) -> String {
    format!("{sensor}: run {}", CLEARED_ELSEWHERE.run())
}

static TIERED_OUTDATED: calls::Held = calls::Held::new();

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_outdated(sensor: u64) -> String {
    format!("{sensor}: run {}", TIERED_OUTDATED.run())
}

static TIERED_CLEARED: calls::Held = calls::Held::new();

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_cleared(sensor: u64) -> String {
    format!("{sensor}: run {}", TIERED_CLEARED.run())
}

static TIERED_OUTDATED_ELSEWHERE: calls::Held = calls::Held::new();

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_outdated_elsewhere(sensor: u64) -> String {
    format!("{sensor}: run {}", TIERED_OUTDATED_ELSEWHERE.run())
}

static TIERED_CLEARED_ELSEWHERE: calls::Held = calls::Held::new();

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_cleared_elsewhere(sensor: u64) -> String {
    format!("{sensor}: run {}", TIERED_CLEARED_ELSEWHERE.run())
}

/// What `role` (`peek`, `invalidate`, `clear`) does to `key` of the function of this name, of
/// those above, as text.
fn on_held(function: &str, role: &str, key: u64) -> String {
    fn on<S: memo::Store<u64, String>>(
        cache: &Cache<u64, String, S>,
        role: &str,
        key: u64,
    ) -> String {
        match role {
            "peek" => format!("{:?}", cache.get(&key)),
            "invalidate" => cache.invalidate(&key).to_string(),
            "clear" => {
                cache.clear();
                "cleared".to_string()
            }
            other => panic!("unknown role {other}"),
        }
    }
    match function {
        "outdated" => on(outdated_cache(), role, key),
        "cleared" => on(cleared_cache(), role, key),
        "outdated_elsewhere" => on(outdated_elsewhere_cache(), role, key),
        "cleared_elsewhere" => on(cleared_elsewhere_cache(), role, key),
        "tiered_outdated" => on(tiered_outdated_cache(), role, key),
        "tiered_cleared" => on(tiered_cleared_cache(), role, key),
        "tiered_outdated_elsewhere" => on(tiered_outdated_elsewhere_cache(), role, key),
        "tiered_cleared_elsewhere" => on(tiered_cleared_elsewhere_cache(), role, key),
        other => panic!("unknown function {other}"),
    }
}

/// [`on_held`] in another process (this binary as the child `held`).
fn on_held_elsewhere(function: &str, role: &str, key: u64) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("MEMO_TEST_ROLE", "held")
        .env("MEMO_TEST_HELD", format!("{function} {role} {key}"))
        .env("MEMO_REDIS_URL", std::env::var("MEMO_REDIS_URL").unwrap())
        .output()
        .unwrap();
    result(&out)
}

/// After `outdate(key)` (an `invalidate` or `clear` of `function`'s cache, here or in another
/// process) returns, a computation of `key` begun before it in this process is not stored: its
/// caller gets its value, neither this process (its copy, for tiered) nor another finds it,
/// and the next call computes again (and is stored). Three rounds, keys 1 to 3.
fn begun_before_is_not_stored(
    function: &str,
    held: &'static calls::Held,
    call: fn(u64) -> String,
    outdate: impl Fn(u64),
) {
    init();
    for key in 1..=3 {
        let runs = held.runs();
        let first = calls::begun_before(held, call, key, || outdate(key));
        let run = |n: usize| format!("{key}: run {}", runs + n);
        assert_eq!(first, run(1), "{function}: its own caller's value");
        let here = on_held(function, "peek", key);
        assert_eq!(here, "None", "{function}({key}): not stored");
        let elsewhere = on_held_elsewhere(function, "peek", key);
        assert_eq!(elsewhere, "None", "{function}({key}): elsewhere");
        assert_eq!(call(key), run(2), "{function}({key}): computed again");
        assert_eq!(call(key), run(2));
        assert_eq!(held.runs(), runs + 2);
        let elsewhere = on_held_elsewhere(function, "peek", key);
        assert_eq!(elsewhere, format!("Some({:?})", run(2)));
    }
}

#[test]
fn a_redis_value_computed_before_an_invalidate_is_not_stored() {
    let invalidate = |key| assert_eq!(on_held("outdated", "invalidate", key), "false");
    begun_before_is_not_stored("outdated", &OUTDATED, outdated, invalidate);
    assert_eq!(outdated_cache().stats().backend_errors, 0);
}

#[test]
fn a_redis_value_computed_before_a_clear_is_not_stored() {
    begun_before_is_not_stored("cleared", &CLEARED, cleared, |_| cleared_cache().clear());
    assert_eq!(cleared_cache().stats().backend_errors, 0);
}

/// The invalidation in another process: the lock it deleted is what refuses the value.
#[test]
fn a_redis_value_computed_before_an_invalidate_in_another_process_is_not_stored() {
    let function = "outdated_elsewhere";
    let invalidate = |key| assert_eq!(on_held_elsewhere(function, "invalidate", key), "false");
    begun_before_is_not_stored(
        function,
        &OUTDATED_ELSEWHERE,
        outdated_elsewhere,
        invalidate,
    );
    assert_eq!(outdated_elsewhere_cache().stats().backend_errors, 0);
}

#[test]
fn a_redis_value_computed_before_a_clear_in_another_process_is_not_stored() {
    let function = "cleared_elsewhere";
    let clear = |key| assert_eq!(on_held_elsewhere(function, "clear", key), "cleared");
    begun_before_is_not_stored(function, &CLEARED_ELSEWHERE, cleared_elsewhere, clear);
    assert_eq!(cleared_elsewhere_cache().stats().backend_errors, 0);
}

#[test]
fn a_tiered_value_computed_before_an_invalidate_is_not_stored() {
    let function = "tiered_outdated";
    let invalidate = |key| assert_eq!(on_held(function, "invalidate", key), "false");
    begun_before_is_not_stored(function, &TIERED_OUTDATED, tiered_outdated, invalidate);
    assert_eq!(tiered_outdated_cache().stats().backend_errors, 0);
}

#[test]
fn a_tiered_value_computed_before_a_clear_is_not_stored() {
    let clear = |_| tiered_cleared_cache().clear();
    begun_before_is_not_stored("tiered_cleared", &TIERED_CLEARED, tiered_cleared, clear);
    assert_eq!(tiered_cleared_cache().stats().backend_errors, 0);
}

#[test]
fn a_tiered_value_computed_before_an_invalidate_in_another_process_is_not_stored() {
    let function = "tiered_outdated_elsewhere";
    let invalidate = |key| assert_eq!(on_held_elsewhere(function, "invalidate", key), "false");
    let (held, call) = (&TIERED_OUTDATED_ELSEWHERE, tiered_outdated_elsewhere);
    begun_before_is_not_stored(function, held, call, invalidate);
    assert_eq!(tiered_outdated_elsewhere_cache().stats().backend_errors, 0);
}

#[test]
fn a_tiered_value_computed_before_a_clear_in_another_process_is_not_stored() {
    let function = "tiered_cleared_elsewhere";
    let clear = |key| assert_eq!(on_held_elsewhere(function, "clear", key), "cleared");
    let (held, call) = (&TIERED_CLEARED_ELSEWHERE, tiered_cleared_elsewhere);
    begun_before_is_not_stored(function, held, call, clear);
    assert_eq!(tiered_cleared_elsewhere_cache().stats().backend_errors, 0);
}

static REDIS_FAILURES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, ttl = "10m")]
fn redis_failure(n: u64) -> Result<u64, String> {
    std::thread::sleep(Duration::from_millis(200));
    REDIS_FAILURES.fetch_add(1, Ordering::SeqCst);
    Err(format!("{n} failed"))
}

/// Callers waiting on a `store = redis` leader that fails get a clone of its error (a `Clone`
/// error); nothing is stored.
#[test]
fn waiters_of_a_failed_redis_leader_get_its_error() {
    init();
    for result in calls::at_once(8, || redis_failure(9)) {
        assert_eq!(result.unwrap_err(), "9 failed");
    }
    assert_eq!(REDIS_FAILURES.load(Ordering::SeqCst), 1);
    let stats = redis_failure_cache().stats();
    assert_eq!((stats.misses, stats.coalesced), (1, 7));
    assert_eq!(redis_failure_cache().len(), 0, "no value in Redis");
}

/// Long keys are named by their SHA-256: two of them never share a value.
#[test]
fn long_keys_keep_values_of_their_own() {
    let server = RedisServer::start();
    let cache = cache_at(&server.url(), "long", |options| options);
    let (a, b) = ("a".repeat(300), "b".repeat(300));
    let runs = AtomicUsize::new(0);
    let compute = |key: &str| {
        runs.fetch_add(1, Ordering::Relaxed);
        format!("value of {}", &key[..1])
    };
    for _ in 0..3 {
        assert_eq!(cache.get_or_compute(a.as_str(), compute), "value of a");
        assert_eq!(cache.get_or_compute(b.as_str(), compute), "value of b");
    }
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    assert_eq!(cache.stats().backend_errors, 0);
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Profile {
    name: String,
    visits: u32,
}

#[cached(store = redis, codec = "json")]
fn profile(name: &str, region: u32) -> std::io::Result<Profile> {
    Ok(Profile {
        name: name.to_uppercase(),
        visits: region * 10,
    })
}

/// Runs `redis-cli -p port args…` and returns what it printed.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8(output.stdout).unwrap()
}

/// `codec = "json"` keeps the README's "readable by any language": the key names the function
/// and the arguments in clear, and Python's `json.loads` reads the value as it is (a `Result`'s
/// `Ok` value alone).
#[test]
fn json_entries_read_plainly_from_another_language() {
    init();
    profile("ada", 7).unwrap();
    let port = PORT.load(Ordering::Relaxed);
    let keys = redis_cli(port, &["--scan", "--pattern", "memo:redis::profile:json:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let fingerprint = keys[0]
        .strip_prefix("memo:redis::profile:json:")
        .and_then(|rest| rest.strip_suffix(r#":{["ada",7]}"#))
        .unwrap_or_else(|| panic!("{}", keys[0]));
    assert_eq!(fingerprint.len(), 16, "{fingerprint}");
    let value = redis_cli(port, &["--raw", "GET", keys[0]]);
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json, sys; v = json.loads(sys.stdin.read()); print(v['name'], v['visits'])",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let printed = python.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(printed.stdout).unwrap(), "ADA 70\n");
}

#[test]
fn the_same_cache_works_against_a_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    assert!(url.starts_with("redis+cluster://"), "{url}");
    let cache = Arc::new(cache_at(&url, "cluster", |options| options));
    let runs = Arc::new(AtomicUsize::new(0));
    // Keys spread over the masters' slots; each computed once by 4 threads.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, runs) = (Arc::clone(&cache), Arc::clone(&runs));
            std::thread::spawn(move || {
                for i in 0..40 {
                    let key = format!("user:{i}");
                    let value = cache.get_or_compute(key.as_str(), |key| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        format!("value of {key}")
                    });
                    assert_eq!(value, format!("value of {key}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(runs.load(Ordering::Relaxed), 40);
    // Keys whose text holds braces: a value and its lock stay in one slot (a miss claims both).
    for key in ["}{odd", "{odd}", "a}b"] {
        let compute = |key: &str| format!("value of {key}");
        assert_eq!(cache.get_or_compute(key, compute), compute(key));
        assert_eq!(cache.get(key), Some(compute(key)));
        // An invalidation deletes the value and its lock in one script: one slot too.
        assert!(cache.invalidate(key));
        assert_eq!(cache.get(key), None);
        // An insert writes the value and deletes its lock in one script: one slot too.
        cache.insert(key.to_string(), format!("inserted {key}"));
        assert_eq!(cache.get(key), Some(format!("inserted {key}")));
        cache.insert_with_ttl(
            key.to_string(),
            format!("for a while {key}"),
            Duration::from_secs(60),
        );
        assert_eq!(cache.get(key), Some(format!("for a while {key}")));
        assert!(cache.invalidate(key));
    }
    assert_eq!(cache.stats().backend_errors, 0);
    // Async hits too, on a bare executor thread.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hash = memo::Store::hash_of(cache.store(), &"user:3");
    let found = runtime.block_on(memo::Store::get_async(cache.store(), hash, &"user:3"));
    assert_eq!(found.as_deref(), Some("value of user:3"));
    cache.clear();
    assert_eq!(cache.get("user:3"), None);
}

/// Two programs on one server with prefixes of their own (`RedisOptions::prefix`) never see
/// each other's entries, nor the default prefix's, and clearing one leaves the others.
#[test]
fn two_prefixes_never_see_each_others_entries() {
    let server = RedisServer::start();
    let billing = cache_at(&server.url(), "shared", |options| options.prefix("billing"));
    let search = cache_at(&server.url(), "shared", |options| options.prefix("search"));
    let plain = cache_at(&server.url(), "shared", |options| options);
    billing.insert("k".to_string(), "billing's".to_string());
    assert_eq!(search.get("k"), None);
    assert_eq!(plain.get("k"), None);
    search.insert("k".to_string(), "search's".to_string());
    plain.insert("k".to_string(), "plain".to_string());
    assert_eq!(billing.get("k").as_deref(), Some("billing's"));
    assert_eq!(search.get("k").as_deref(), Some("search's"));
    search.clear();
    assert_eq!(search.get("k"), None);
    assert_eq!(billing.get("k").as_deref(), Some("billing's"));
    assert_eq!(plain.get("k").as_deref(), Some("plain"));
    // The prefix starts the key, as `redis-cli` shows it.
    let keys = redis_server::command(server.port(), "KEYS billing:*");
    assert!(keys.starts_with("*1\r\n"), "{keys}");
    let keys = redis_server::command(server.port(), "KEYS memo:*");
    assert!(keys.starts_with("*1\r\n"), "{keys}");
}

/// `MEMO_REDIS_PREFIX` moves a program's `#[cached(store = redis)]` entries: a process with
/// another prefix computes again, one with the same prefix hits.
#[test]
fn the_prefix_variable_separates_programs_on_one_server() {
    init();
    assert_eq!(tagged(1), "tag 1");
    let run = |prefix: Option<&str>| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env("MEMO_TEST_ROLE", "prefixed")
            .env("MEMO_REDIS_URL", std::env::var("MEMO_REDIS_URL").unwrap())
            .env_remove("MEMO_REDIS_PREFIX");
        if let Some(prefix) = prefix {
            command.env("MEMO_REDIS_PREFIX", prefix);
        }
        result(&command.output().unwrap())
    };
    assert_eq!(run(Some("other-program")), "executions=1");
    assert_eq!(run(Some("other-program")), "executions=0");
    assert_eq!(
        run(None),
        "executions=0",
        "the default prefix is this process's"
    );
    assert_eq!(run(Some("a-third")), "executions=1");
}

static RATES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, ttl = "10m")]
fn rate(n: u64) -> usize {
    assert!(n > 0);
    RATES.fetch_add(1, Ordering::SeqCst) + 1
}

static TIERED_RATES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_rate(n: u64) -> usize {
    assert!(n > 0);
    TIERED_RATES.fetch_add(1, Ordering::SeqCst) + 1
}

/// a forced refresh recomputes past the stored value, stores the
/// new one and counts a refresh, on `store = redis` and `tiered`.
#[test]
fn forced_refresh_recomputes_on_redis_and_tiered() {
    init();
    assert_eq!(rate(1), 1);
    assert_eq!(rate(1), 1, "a hit");
    assert_eq!(rate_cache().refresh(|| rate(1)), 2, "computed again");
    assert_eq!(rate(1), 2, "and stored");
    assert_eq!(rate_cache().stats().refreshes, 1);
    assert_eq!(tiered_rate(1), 1);
    assert_eq!(tiered_rate(1), 1, "a hit");
    assert_eq!(tiered_rate_cache().refresh(|| tiered_rate(1)), 2);
    assert_eq!(tiered_rate(1), 2, "and stored");
    assert_eq!(tiered_rate_cache().stats().refreshes, 1);
}

static QUOTES: AtomicUsize = AtomicUsize::new(0);

/// Set by `quote`'s body: its forced refresh has computed and is storing.
static QUOTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `quote`'s body holds the server's writes for a while: the write that follows it
/// is then surely not answered before the executor's thread has run another task.
static QUOTE_PAUSES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cached(store = redis, ttl = "10m")]
async fn quote(n: usize) -> usize {
    if QUOTE_PAUSES.load(Ordering::SeqCst) {
        redis_cli(
            PORT.load(Ordering::Relaxed),
            &["CLIENT", "PAUSE", "100", "WRITE"],
        );
    }
    QUOTED.store(true, Ordering::SeqCst);
    QUOTES.fetch_add(1, Ordering::SeqCst) + n
}

/// A forced refresh of an `async fn` on Redis awaits its write: on a runtime of one thread,
/// another task runs while the value travels to Redis (a write that blocked the thread would
/// let it run only once the refresh returned). The body pauses the server's writes: the
/// forced refresh's mark (before the body) left one round trip after it, whose reply could
/// come before the other task's turn, and the test failed 2 runs in 6 without the pause.
#[test]
fn a_forced_async_refresh_leaves_the_executor_thread_free_while_it_writes() {
    init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert_eq!(quote(1).await, 1);
        QUOTED.store(false, Ordering::SeqCst);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ran_while_writing = Arc::new(AtomicUsize::new(0));
        let other = tokio::spawn({
            let (done, ran) = (Arc::clone(&done), Arc::clone(&ran_while_writing));
            async move {
                while !done.load(Ordering::SeqCst) {
                    if QUOTED.load(Ordering::SeqCst) {
                        ran.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                }
            }
        });
        tokio::task::yield_now().await;
        QUOTE_PAUSES.store(true, Ordering::SeqCst);
        assert_eq!(quote_cache().refresh_async(quote(1)).await, 2);
        QUOTE_PAUSES.store(false, Ordering::SeqCst);
        done.store(true, Ordering::SeqCst);
        other.await.expect("the other task");
        assert_eq!(quote(1).await, 2, "stored");
        assert!(
            ran_while_writing.load(Ordering::SeqCst) > 0,
            "the other task ran while the refresh wrote"
        );
    });
}

static CANCELLED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, ttl = "10m")]
async fn cancelled(n: u64) -> u64 {
    CANCELLED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    n * 2
}

static TIERED_CANCELLED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 1000, ttl = "10m")]
async fn tiered_cancelled(n: u64) -> u64 {
    TIERED_CANCELLED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    n * 2
}

/// A caller dropped at any of its await points (the lock's round trip, the body's, the
/// write's) leaves no flight and no lock behind that holds the next caller: the caller that
/// joined it computes the key (once), and the next one hits; on `store = redis` and `tiered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_cancelled_at_any_await_point_leaves_nothing_behind() {
    init();
    let pause = Duration::from_micros(300);
    // The read, the lock, the body and the write: 4 here, unless a reply beats a poll.
    let runs = || CANCELLED_RUNS.load(Ordering::SeqCst);
    let cancelled = most_cancelled(cancelled, runs, pause).await;
    assert!(cancelled >= 3, "only {cancelled} cancelled");
    let runs = || TIERED_CANCELLED_RUNS.load(Ordering::SeqCst);
    let tiered = most_cancelled(tiered_cancelled, runs, pause).await;
    assert!(tiered >= 3, "only {tiered} cancelled");
}

static RENEWING_CANCELLED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = redis, ttl = "10m", refresh = "early")]
async fn renewing_cancelled(n: u64) -> u64 {
    RENEWING_CANCELLED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    n * 2
}

static TIERED_RENEWING_CANCELLED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 1000, ttl = "10m", stale = "1m")]
async fn tiered_renewing_cancelled(n: u64) -> u64 {
    TIERED_RENEWING_CANCELLED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    n * 2
}

/// [`a_caller_cancelled_at_any_await_point_leaves_nothing_behind`] for functions that renew
/// (`refresh = "early"`, `stale`), whose hit reads the value with its `PTTL` and may read the
/// store again after a refresh ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewing_caller_cancelled_at_any_await_point_leaves_nothing_behind() {
    init();
    let pause = Duration::from_micros(300);
    let runs = || RENEWING_CANCELLED_RUNS.load(Ordering::SeqCst);
    let cancelled = most_cancelled(renewing_cancelled, runs, pause).await;
    assert!(cancelled >= 3, "only {cancelled} cancelled");
    let runs = || TIERED_RENEWING_CANCELLED_RUNS.load(Ordering::SeqCst);
    let tiered = most_cancelled(tiered_renewing_cancelled, runs, pause).await;
    assert!(tiered >= 3, "only {tiered} cancelled");
}

/// [`calls::cancel_at_every_await`] of `call` (whose value is twice its key) over up to three
/// passes, each over keys of its own, until one cancels at 3 await points or more: the most any
/// pass cancelled. A reply that beats a poll, as on a loaded machine, leaves fewer to cancel;
/// every pass checks that nothing is left behind.
async fn most_cancelled<F: Future<Output = u64>>(
    call: impl Fn(u64) -> F,
    runs: impl Fn() -> usize,
    pause: Duration,
) -> u64 {
    let mut most = 0;
    for pass in 0..3_u64 {
        let base = pass * 1_000;
        let cancelled =
            calls::cancel_at_every_await(|n| call(base + n), |n| (base + n) * 2, &runs, pause)
                .await;
        most = most.max(cancelled);
        if most >= 3 {
            break;
        }
    }
    most
}

static GATHERS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn gather(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    GATHERS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

/// concurrent callers of one cold key of `store = tiered` in one
/// process run it once.
#[test]
fn concurrent_callers_of_a_cold_tiered_key_run_it_once() {
    init();
    for value in calls::at_once(8, || gather(21)) {
        assert_eq!(value, 42);
    }
    assert_eq!(GATHERS.load(Ordering::SeqCst), 1);
    assert_eq!(gather_cache().stats().misses, 1);
}

static BRIEFS: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 10, ttl = "300ms")]
fn brief(n: u64) -> usize {
    assert!(n > 0);
    BRIEFS.fetch_add(1, Ordering::SeqCst) + 1
}

/// `ttl` on `store = tiered` expires the local copy and the Redis
/// entry (Redis keeps wall time, so this test waits past it).
#[test]
fn ttl_expires_tiered_entries() {
    init();
    assert_eq!(brief(1), 1);
    assert_eq!(brief(1), 1, "a hit");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(brief(1), 2, "expired in both tiers: computed again");
}

/// The handle tells its settings, as `functools`' `cache_parameters()` does.
#[test]
fn the_handle_tells_its_settings() {
    init();
    let config = square_cache().config();
    assert_eq!(config.ttl, Some(Duration::from_secs(600)));
    assert_eq!(config.maxsize, None);
    assert_eq!(square_cache().backend(), "redis");
}

/// An error that is neither `Clone` nor serde.
#[derive(Debug)]
struct Opaque(u64);

fn checked_half(n: u64) -> Result<u64, Opaque> {
    if n.is_multiple_of(2) {
        Ok(n / 2)
    } else {
        Err(Opaque(n))
    }
}

static HALVES: AtomicUsize = AtomicUsize::new(0);

/// A `Result` spelled `…Result<…>` stores its `Ok` values alone: its error needs no serde.
#[cached(store = redis, ttl = "10m")]
fn redis_half(n: u64) -> Result<u64, Opaque> {
    HALVES.fetch_add(1, Ordering::SeqCst);
    checked_half(n)
}

#[cached(store = redis, ttl = "10m")]
async fn redis_half_async(n: u64) -> std::io::Result<u64> {
    HALVES.fetch_add(1, Ordering::SeqCst);
    checked_half(n).map_err(|Opaque(n)| std::io::Error::other(format!("{n} is odd")))
}

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_half(n: u64) -> Result<u64, std::io::Error> {
    HALVES.fetch_add(1, Ordering::SeqCst);
    checked_half(n).map_err(|Opaque(n)| std::io::Error::other(format!("{n} is odd")))
}

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
async fn tiered_half_async(n: u64) -> Result<u64, Opaque> {
    HALVES.fetch_add(1, Ordering::SeqCst);
    checked_half(n)
}

#[test]
fn errors_that_are_neither_clone_nor_serde_are_returned_and_never_stored_on_redis_or_tiered() {
    init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for round in 0..2 {
        assert_eq!(redis_half(4).unwrap(), 2);
        assert_eq!(redis_half(3).unwrap_err().0, 3);
        assert_eq!(runtime.block_on(redis_half_async(4)).unwrap(), 2);
        assert!(runtime.block_on(redis_half_async(3)).is_err());
        assert_eq!(tiered_half(4).unwrap(), 2);
        assert_eq!(tiered_half(3).unwrap_err().to_string(), "3 is odd");
        assert_eq!(runtime.block_on(tiered_half_async(4)).unwrap(), 2);
        assert_eq!(runtime.block_on(tiered_half_async(3)).unwrap_err().0, 3);
        // Each function ran once for its `Ok` and once a round for its `Err`.
        assert_eq!(HALVES.load(Ordering::SeqCst), 4 * (round + 2));
    }
    let misses = [
        redis_half_cache().stats(),
        redis_half_async_cache().stats(),
        tiered_half_cache().stats(),
        tiered_half_async_cache().stats(),
    ]
    .map(|stats| (stats.hits, stats.misses, stats.load_errors));
    assert_eq!(misses, [(1, 3, 2); 4]);
    let local: &Cache<u64, u64, memo::TieredStore<u64, u64>> = tiered_half_cache();
    assert_eq!(local.len(), 1, "only the Ok value");
}

static FAILURES: AtomicUsize = AtomicUsize::new(0);

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
fn tiered_failure(n: u64) -> Result<u64, String> {
    std::thread::sleep(Duration::from_millis(200));
    FAILURES.fetch_add(1, Ordering::SeqCst);
    Err(format!("{n} failed"))
}

/// Callers waiting on a leader that fails get a clone of its error (a `Clone` error).
#[test]
fn waiters_of_a_failed_tiered_leader_get_its_error() {
    init();
    for result in calls::at_once(8, || tiered_failure(9)) {
        assert_eq!(result.unwrap_err(), "9 failed");
    }
    assert_eq!(FAILURES.load(Ordering::SeqCst), 1);
    let stats = tiered_failure_cache().stats();
    assert_eq!((stats.misses, stats.coalesced, stats.len), (1, 7, 0));
}

/// An error that is not even `Send`.
#[derive(Debug)]
struct Local(std::rc::Rc<u64>);

#[cached(store = tiered, maxsize = 10, ttl = "10m")]
async fn tiered_local(n: u64) -> Result<u64, Local> {
    if n == 0 {
        return Err(Local(std::rc::Rc::new(n)));
    }
    Ok(n)
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[test]
fn an_async_tiered_future_is_send_whatever_the_error() {
    init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(assert_send(tiered_local(2))).unwrap(), 2);
    assert_eq!(
        *runtime
            .block_on(assert_send(tiered_local(0)))
            .unwrap_err()
            .0,
        0
    );
}
/// Issue 21: `ttl_from` on `store = redis` and `tiered` sets each value's own time to live as
/// the `PX` of its `SET`; `ttl` where it answers `None`. Read back with `PTTL`, as `redis-cli`
/// would.
mod issue21 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use memo::cached;

    use super::{PORT, init, redis_server};

    /// Calls of `redis_page`'s body.
    static FETCHES: AtomicUsize = AtomicUsize::new(0);

    /// `(body, max-age in seconds)`: `…-news` pages say 5 s.
    fn page_of(url: &str) -> (String, Option<u64>) {
        (format!("<{url}>"), url.ends_with("-news").then_some(5))
    }

    #[cached(store = redis, ttl = "10m", ttl_from = |page: &(String, Option<u64>)| page.1.map(Duration::from_secs))]
    fn redis_page(url: &str) -> (String, Option<u64>) {
        FETCHES.fetch_add(1, Ordering::SeqCst);
        page_of(url)
    }

    #[cached(store = tiered, maxsize = 10, ttl = "10m", ttl_from = |page: &(String, Option<u64>)| page.1.map(Duration::from_secs))]
    fn tiered_page(url: &str) -> (String, Option<u64>) {
        page_of(url)
    }

    /// The `PTTL` of the one value stored under the `String` key `key` (in clear between
    /// braces, the end of its name).
    fn pttl(key: &str) -> i64 {
        let port = PORT.load(Ordering::Relaxed);
        let reply = redis_server::command(port, &format!("KEYS *{{{key}}}"));
        let lines: Vec<&str> = reply.split("\r\n").collect();
        assert_eq!(lines[0], "*1", "one value named {key}: {reply:?}");
        let reply = redis_server::command(port, &format!("PTTL {}", lines[2]));
        reply.trim_start_matches(':').trim().parse().unwrap()
    }

    #[test]
    fn each_value_is_set_with_its_own_time_to_live() {
        init();
        redis_page("issue21-redis-news");
        redis_page("issue21-redis-about");
        assert_eq!(redis_page("issue21-redis-news").1, Some(5), "a hit");
        let news = pttl("issue21-redis-news");
        assert!(
            0 < news && news <= 5_000,
            "PX from the value's max-age: {news}"
        );
        let about = pttl("issue21-redis-about");
        assert!(
            5_000 < about && about <= 600_000,
            "PX from the ttl: {about}"
        );
        assert_eq!(FETCHES.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_tiered_store_sets_it_in_redis_too() {
        init();
        tiered_page("issue21-tiered-news");
        tiered_page("issue21-tiered-about");
        let news = pttl("issue21-tiered-news");
        assert!(
            0 < news && news <= 5_000,
            "PX from the value's max-age: {news}"
        );
        let about = pttl("issue21-tiered-about");
        assert!(
            5_000 < about && about <= 600_000,
            "PX from the ttl: {about}"
        );
    }

    #[cfg(feature = "test-util")]
    #[test]
    fn a_tiered_stores_local_copy_follows_the_value_too() {
        init();
        let cache = tiered_page_cache();
        let (clock, mock) = memo::Clock::mock();
        cache.store().set_clock(clock);
        tiered_page("issue21-local-news");
        tiered_page("issue21-local-about");
        let local = |key: &str| cache.keys().contains(&key.to_string());
        assert!(local("issue21-local-news") && local("issue21-local-about"));
        mock.increment(Duration::from_secs(5));
        assert!(
            !local("issue21-local-news"),
            "the local copy expired at the max-age"
        );
        assert!(local("issue21-local-about"), "the ttl");
    }

    #[test]
    fn an_explicit_ttl_wins_in_redis() {
        init();
        let cache = redis_page_cache();
        let value = ("pinned".to_string(), Some(5));
        cache.insert_with_ttl(
            "issue21-pinned".to_string(),
            value,
            Duration::from_secs(300),
        );
        let pinned = pttl("issue21-pinned");
        assert!(
            5_000 < pinned && pinned <= 300_000,
            "PX from insert_with_ttl: {pinned}"
        );
    }
}

/// Issue 19: `stale` and `refresh = "early"` on `store = redis` and `tiered`, sync and async:
/// a key read continuously makes no caller wait for a computation after the first, a value past
/// `ttl + stale` is computed again, `invalidate` drops a stale value, and `jitter` spreads a
/// tiered store's Redis entries.
///
/// Redis keeps wall time, so these tests read for ten time-to-live periods of 300 ms, a read
/// every 2 ms, with bodies of 30 ms (10 % of the time to live); what is counted: `misses` and
/// `coalesced` stay at their warm-up values.
///
/// A key is refreshed with nobody waiting when a read lands in its window before it expires:
/// the early refresh's lead (at least the body's 30 ms), or the `stale` period. A loaded machine
/// can pause the reader for longer; only a read after such a pause may wait.
mod issue19 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use memo::{Stats, cached};

    use super::{PORT, init, redis_server};
    use crate::calls::{self, Reads, eventually};

    const READS: usize = 1_500;
    const PAUSE: Duration = Duration::from_millis(2);
    const BODY: Duration = Duration::from_millis(30);
    /// The `stale` period of the tests' stale functions.
    const STALE: Duration = Duration::from_millis(300);

    /// What a reader saw: the statistics after its first read, and how many later reads came
    /// more than `window` after the one before.
    struct Reading {
        warm: Stats,
        late: u64,
    }

    /// Counts the calls more than `window` after the call before.
    struct Gaps {
        window: Duration,
        last: Cell<Option<Instant>>,
        late: Cell<u64>,
    }

    impl Gaps {
        fn new(window: Duration) -> Self {
            Self {
                window,
                last: Cell::new(None),
                late: Cell::new(0),
            }
        }

        /// What the reader saw, whose first read left `warm`.
        fn reading(&self, warm: Stats) -> Reading {
            Reading {
                warm,
                late: self.late.get(),
            }
        }

        /// Called before each read but the first (the one that computes): a read is late when
        /// the pause since the last read ended passed the window. The reads' own time does not
        /// count: a read that waited for a body is no reason for the next to.
        fn tick(&self) {
            let now = Instant::now();
            if self
                .last
                .get()
                .is_some_and(|last| now.duration_since(last) > self.window)
            {
                self.late.set(self.late.get() + 1);
            }
        }

        /// Called after each read.
        fn read_ended(&self) {
            self.last.set(Some(Instant::now()));
        }
    }

    fn read_continuously(
        window: Duration,
        reads: &Reads,
        stats: impl Fn() -> Stats,
        read: impl Fn(),
    ) -> Reading {
        init();
        let gaps = Gaps::new(window);
        let read = || {
            read();
            gaps.read_ended();
        };
        gaps.reading(calls::read_continuously(
            reads,
            READS,
            PAUSE,
            || gaps.tick(),
            stats,
            read,
        ))
    }

    /// No caller computed or waited after the first but (on a loaded machine) late ones.
    fn assert_nobody_waited(reading: &Reading, stats: &Stats, reads: &Reads) {
        calls::assert_none_but_late_waited(&reading.warm, stats, reads, reading.late);
    }

    static REDIS_GAUGE_READS: Reads = Reads::new();

    #[cached(store = redis, ttl = "300ms", refresh = "early")]
    fn redis_gauge(sensor: u32) -> usize {
        REDIS_GAUGE_READS.body_runs();
        std::thread::sleep(BODY);
        sensor as usize
    }

    #[test]
    fn early_refresh_keeps_every_caller_of_a_hot_redis_key_from_waiting() {
        let stats = || redis_gauge_cache().stats();
        let read = || assert_eq!(redis_gauge(1), 1);
        let reading = read_continuously(BODY, &REDIS_GAUGE_READS, stats, read);
        assert_nobody_waited(&reading, &stats(), &REDIS_GAUGE_READS);
    }

    static REDIS_METER_READS: Reads = Reads::new();

    #[cached(store = redis, ttl = "300ms", stale = "300ms")]
    fn redis_meter(sensor: u32) -> usize {
        REDIS_METER_READS.body_runs();
        std::thread::sleep(BODY);
        sensor as usize
    }

    #[test]
    fn stale_keeps_every_caller_of_a_hot_redis_key_from_waiting() {
        let stats = || redis_meter_cache().stats();
        let read = || assert_eq!(redis_meter(1), 1);
        let reading = read_continuously(STALE, &REDIS_METER_READS, stats, read);
        assert_nobody_waited(&reading, &stats(), &REDIS_METER_READS);
    }

    static TIERED_GAUGE_READS: Reads = Reads::new();

    #[cached(store = tiered, maxsize = 10, ttl = "300ms", refresh = "early")]
    fn tiered_gauge(sensor: u32) -> usize {
        TIERED_GAUGE_READS.body_runs();
        std::thread::sleep(BODY);
        sensor as usize
    }

    #[test]
    fn early_refresh_keeps_every_caller_of_a_hot_tiered_key_from_waiting() {
        let stats = || tiered_gauge_cache().stats();
        let read = || assert_eq!(tiered_gauge(1), 1);
        let reading = read_continuously(BODY, &TIERED_GAUGE_READS, stats, read);
        assert_nobody_waited(&reading, &stats(), &TIERED_GAUGE_READS);
    }

    static TIERED_METER_READS: Reads = Reads::new();

    #[cached(store = tiered, maxsize = 10, ttl = "300ms", stale = "300ms")]
    fn tiered_meter(sensor: u32) -> usize {
        TIERED_METER_READS.body_runs();
        std::thread::sleep(BODY);
        sensor as usize
    }

    #[test]
    fn stale_keeps_every_caller_of_a_hot_tiered_key_from_waiting() {
        let stats = || tiered_meter_cache().stats();
        let read = || assert_eq!(tiered_meter(1), 1);
        let reading = read_continuously(STALE, &TIERED_METER_READS, stats, read);
        assert_nobody_waited(&reading, &stats(), &TIERED_METER_READS);
    }

    async fn read_continuously_async<F: Future<Output = usize>>(
        window: Duration,
        reads: &Reads,
        stats: impl Fn() -> Stats,
        read: impl Fn() -> F,
    ) -> Reading {
        init();
        let gaps = Gaps::new(window);
        let tick = || gaps.tick();
        let read = || {
            let reading = read();
            async {
                let value = reading.await;
                gaps.read_ended();
                value
            }
        };
        let warm = calls::read_continuously_async(reads, READS, PAUSE, tick, stats, read).await;
        gaps.reading(warm)
    }

    static REDIS_TIDE_READS: Reads = Reads::new();

    #[cached(store = redis, ttl = "300ms", refresh = "early")]
    async fn redis_tide(port: u32) -> usize {
        REDIS_TIDE_READS.body_runs_async().await;
        tokio::time::sleep(BODY).await;
        port as usize
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn early_refresh_keeps_every_async_caller_of_a_hot_redis_key_from_waiting() {
        let stats = || redis_tide_cache().stats();
        let read = || super::assert_send(redis_tide(1));
        let reading = read_continuously_async(BODY, &REDIS_TIDE_READS, stats, read).await;
        assert_nobody_waited(&reading, &stats(), &REDIS_TIDE_READS);
    }

    static REDIS_SWELL_READS: Reads = Reads::new();

    #[cached(store = redis, ttl = "300ms", stale = "300ms")]
    async fn redis_swell(port: u32) -> usize {
        REDIS_SWELL_READS.body_runs_async().await;
        tokio::time::sleep(BODY).await;
        port as usize
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_keeps_every_async_caller_of_a_hot_redis_key_from_waiting() {
        let stats = || redis_swell_cache().stats();
        let read = || super::assert_send(redis_swell(1));
        let reading = read_continuously_async(STALE, &REDIS_SWELL_READS, stats, read).await;
        assert_nobody_waited(&reading, &stats(), &REDIS_SWELL_READS);
    }

    static TIERED_TIDE_READS: Reads = Reads::new();

    #[cached(store = tiered, maxsize = 10, ttl = "300ms", refresh = "early")]
    async fn tiered_tide(port: u32) -> usize {
        TIERED_TIDE_READS.body_runs_async().await;
        tokio::time::sleep(BODY).await;
        port as usize
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn early_refresh_keeps_every_async_caller_of_a_hot_tiered_key_from_waiting() {
        let stats = || tiered_tide_cache().stats();
        let read = || super::assert_send(tiered_tide(1));
        let reading = read_continuously_async(BODY, &TIERED_TIDE_READS, stats, read).await;
        assert_nobody_waited(&reading, &stats(), &TIERED_TIDE_READS);
    }

    static TIERED_SWELL_READS: Reads = Reads::new();

    #[cached(store = tiered, maxsize = 10, ttl = "300ms", stale = "300ms")]
    async fn tiered_swell(port: u32) -> usize {
        TIERED_SWELL_READS.body_runs_async().await;
        tokio::time::sleep(BODY).await;
        port as usize
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_keeps_every_async_caller_of_a_hot_tiered_key_from_waiting() {
        let stats = || tiered_swell_cache().stats();
        let read = || super::assert_send(tiered_swell(1));
        let reading = read_continuously_async(STALE, &TIERED_SWELL_READS, stats, read).await;
        assert_nobody_waited(&reading, &stats(), &TIERED_SWELL_READS);
    }

    static DIALS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = redis, ttl = "300ms", stale = "300ms")]
    fn redis_dial(n: u32) -> usize {
        assert!(n > 0);
        DIALS.fetch_add(1, Ordering::SeqCst) + 1
    }

    static TIERED_DIALS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = tiered, maxsize = 10, ttl = "300ms", stale = "300ms")]
    fn tiered_dial(n: u32) -> usize {
        assert!(n > 0);
        TIERED_DIALS.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Unread past `ttl + stale` (Redis's wall time: the test waits past it), a value is gone.
    #[test]
    fn past_ttl_and_stale_a_redis_or_tiered_value_is_computed_again() {
        init();
        assert_eq!((redis_dial(1), tiered_dial(1)), (1, 1));
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!((redis_dial(1), tiered_dial(1)), (2, 2), "misses");
        for stats in [redis_dial_cache().stats(), tiered_dial_cache().stats()] {
            assert_eq!((stats.misses, stats.refreshes), (2, 0), "{stats:?}");
        }
    }

    static KNOBS: AtomicUsize = AtomicUsize::new(0);

    /// Run 2 (the first background refresh) fails.
    #[cached(store = redis, ttl = "300ms", stale = "1m")]
    fn redis_knob(n: u32) -> Result<usize, String> {
        assert!(n > 0);
        match KNOBS.fetch_add(1, Ordering::SeqCst) + 1 {
            2 => Err("down".to_string()),
            run => Ok(run),
        }
    }

    static TIERED_KNOBS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = tiered, maxsize = 10, ttl = "300ms", stale = "1m")]
    fn tiered_knob(n: u32) -> Result<usize, String> {
        assert!(n > 0);
        match TIERED_KNOBS.fetch_add(1, Ordering::SeqCst) + 1 {
            2 => Err("down".to_string()),
            run => Ok(run),
        }
    }

    /// A stale value is served while one background refresh replaces it; a refresh that fails
    /// keeps it (counted) and a later read tries again; a forced refresh and `invalidate` work
    /// as without `stale`.
    #[test]
    fn a_stale_redis_or_tiered_value_is_refreshed_once_kept_on_failure_and_invalidated() {
        type Knob = (
            fn(u32) -> Result<usize, String>,
            fn() -> Stats,
            fn() -> Result<usize, String>,
            fn() -> bool,
            &'static AtomicUsize,
        );
        init();
        let stores: [Knob; 2] = [
            (
                redis_knob,
                || redis_knob_cache().stats(),
                || redis_knob_cache().refresh(|| redis_knob(1)),
                || redis_knob_cache().invalidate(&1),
                &KNOBS,
            ),
            (
                tiered_knob,
                || tiered_knob_cache().stats(),
                || tiered_knob_cache().refresh(|| tiered_knob(1)),
                || tiered_knob_cache().invalidate(&1),
                &TIERED_KNOBS,
            ),
        ];
        for (knob, stats, refresh, invalidate, runs) in stores {
            assert_eq!(knob(1), Ok(1));
            std::thread::sleep(Duration::from_millis(400));
            assert_eq!(knob(1), Ok(1), "stale: refresh 2 starts, and fails");
            assert!(
                eventually(|| stats().refresh_failures == 1),
                "{:?}",
                stats()
            );
            assert_eq!(knob(1), Ok(1), "the old value kept; refresh 3 starts");
            let read = std::cell::Cell::new(0);
            let replaced = eventually(|| {
                read.set(knob(1).unwrap_or(0));
                read.get() != 1
            });
            assert!(replaced && read.get() >= 3, "{:?}", stats());
            assert_eq!((stats().misses, stats().refresh_failures), (1, 1));
            assert!(eventually(|| settled(stats(), runs)), "{:?}", stats());
            let before = runs.load(Ordering::SeqCst);
            assert_eq!(refresh(), Ok(before + 1), "forced");
            // Stale again, then invalidated: computed, not served stale.
            std::thread::sleep(Duration::from_millis(400));
            assert!(invalidate());
            assert_eq!(knob(1), Ok(before + 2), "computed anew");
            assert_eq!((stats().misses, stats().refresh_failures), (2, 1));
        }
    }

    /// Whether every background refresh started has run its body (the one call that computed
    /// ran it too): a read then starts no other.
    fn settled(stats: Stats, runs: &AtomicUsize) -> bool {
        u64::try_from(runs.load(Ordering::SeqCst)).ok() == Some(stats.refreshes + 1)
    }

    static ASYNC_KNOBS: AtomicUsize = AtomicUsize::new(0);

    /// Run 2 (the first background refresh) fails.
    #[cached(store = redis, ttl = "300ms", stale = "1m")]
    async fn redis_async_knob(n: u32) -> Result<usize, String> {
        assert!(n > 0);
        tokio::task::yield_now().await;
        match ASYNC_KNOBS.fetch_add(1, Ordering::SeqCst) + 1 {
            2 => Err("down".to_string()),
            run => Ok(run),
        }
    }

    static ASYNC_TIERED_KNOBS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = tiered, maxsize = 10, ttl = "300ms", stale = "1m")]
    async fn tiered_async_knob(n: u32) -> Result<usize, String> {
        assert!(n > 0);
        tokio::task::yield_now().await;
        match ASYNC_TIERED_KNOBS.fetch_add(1, Ordering::SeqCst) + 1 {
            2 => Err("down".to_string()),
            run => Ok(run),
        }
    }

    /// [`a_stale_redis_or_tiered_value_is_refreshed_once_kept_on_failure_and_invalidated`] for
    /// an `async fn`: the refresh is a task; its `Err` keeps the old value. One store at a time,
    /// as there: each refreshes on its own clock, so the two need not read 3 at the same moment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_stale_value_is_kept_when_its_refresh_fails_and_invalidated() {
        type Read = std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send>>;
        type Knob = (
            fn(u32) -> Read,
            fn() -> Stats,
            fn() -> bool,
            &'static AtomicUsize,
        );
        init();
        let stores: [Knob; 2] = [
            (
                |n| Box::pin(redis_async_knob(n)),
                || redis_async_knob_cache().stats(),
                || redis_async_knob_cache().invalidate(&1),
                &ASYNC_KNOBS,
            ),
            (
                |n| Box::pin(tiered_async_knob(n)),
                || tiered_async_knob_cache().stats(),
                || tiered_async_knob_cache().invalidate(&1),
                &ASYNC_TIERED_KNOBS,
            ),
        ];
        for (knob, stats, invalidate, runs) in stores {
            assert_eq!(knob(1).await, Ok(1));
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(knob(1).await, Ok(1), "stale: refresh 2 starts, and fails");
            let failed = move || stats().refresh_failures == 1;
            let waited = tokio::task::spawn_blocking(move || eventually(failed));
            assert!(waited.await.unwrap(), "{:?}", stats());
            assert_eq!(knob(1).await, Ok(1), "the old value kept; refresh 3 starts");
            let mut read = knob(1).await;
            for _ in 0..2_000 {
                if read != Ok(1) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                read = knob(1).await;
            }
            assert!(
                read.as_ref().is_ok_and(|run| *run >= 3),
                "{read:?} {:?}",
                stats()
            );
            assert_eq!((stats().misses, stats().refresh_failures), (1, 1));
            // Stale again, and no refresh running: invalidated, it is computed, not served.
            tokio::time::sleep(Duration::from_millis(400)).await;
            let waited = tokio::task::spawn_blocking(move || eventually(|| settled(stats(), runs)));
            assert!(waited.await.unwrap(), "{:?}", stats());
            assert!(invalidate());
            let before = runs.load(Ordering::SeqCst);
            assert_eq!(knob(1).await, Ok(before + 1), "computed anew");
            assert_eq!((stats().misses, stats().refresh_failures), (2, 1));
        }
    }

    /// Values stay plain codec bytes (here JSON) with `stale`: the `PTTL` tells their age.
    #[cached(store = redis, codec = "json", ttl = "10m", stale = "5m")]
    fn plain(n: u32) -> Vec<u32> {
        vec![n; 2]
    }

    /// The `PTTL`s of the values whose names contain `function`.
    fn pttls(function: &str) -> Vec<i64> {
        let port = PORT.load(Ordering::Relaxed);
        let reply = redis_server::command(port, &format!("KEYS *{function}*"));
        reply
            .split("\r\n")
            .filter(|line| line.starts_with("memo:") && !line.ends_with(":lock"))
            .map(|name| {
                let reply = redis_server::command(port, &format!("PTTL {name}"));
                reply.trim_start_matches(':').trim().parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn a_stale_redis_value_is_its_plain_bytes_kept_ttl_and_stale() {
        init();
        assert_eq!(plain(7), [7, 7]);
        let port = PORT.load(Ordering::Relaxed);
        let reply = redis_server::command(port, "KEYS *issue19::plain*");
        let name = reply
            .split("\r\n")
            .find(|line| line.starts_with("memo:"))
            .unwrap();
        let value = redis_server::command(port, &format!("GET {name}"));
        assert!(value.ends_with("[7,7]\r\n"), "{value:?}");
        let [pttl] = pttls("issue19::plain")[..] else {
            panic!("one value")
        };
        assert!(
            (600_000..=900_000).contains(&pttl),
            "PX = ttl + stale: {pttl}"
        );
    }

    /// `jitter` on `store = tiered` spreads each Redis entry's time to live.
    #[cached(store = tiered, maxsize = 100, ttl = "100s", jitter = 0.5)]
    fn tiered_spread(n: u64) -> u64 {
        n + 1
    }

    #[test]
    fn jitter_spreads_each_tiered_entrys_time_to_live_in_redis() {
        init();
        for n in 0..32 {
            assert_eq!(tiered_spread(n), n + 1);
        }
        let ttls = pttls("issue19::tiered_spread");
        assert_eq!(ttls.len(), 32, "{ttls:?}");
        assert!(
            ttls.iter().all(|ttl| (49_000..150_000).contains(ttl)),
            "{ttls:?}"
        );
        // Below 90 s and above 110 s, as a spread of ±10 % could not be; by chance, none of
        // 32 below (or above) is 0.6^32, about 1 in 12 million (it was 1 in 5,000 at 75 s and
        // 125 s).
        let (low, high) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
        assert!(*low < 90_000 && *high > 110_000, "spread: {low}..{high} ms");
    }
}

/// Attacks of session attack2 on the Redis, tiered and renewal paths.
/// A tiered cache named `name` over its own client of `url` (a process of its own, as far as
/// connections and subscriptions go).
fn tiered_at(url: &str, name: &str) -> memo::TieredCache<String, String> {
    let config = RedisConfig::from_url(url)
        .unwrap()
        .command_timeout(Duration::from_secs(1));
    Cache::builder()
        .maxsize(100)
        .ttl(Duration::from_secs(600))
        .tiered_options(RedisOptions::new(name).client(RedisClient::new(config).unwrap()))
        .build()
}

/// Runs `elsewhere`'s miss of "k", computing "old", held from its start until `meanwhile` has
/// run; asserts its own callers got "old".
fn miss_held_across<S: memo::Store<String, String>>(
    elsewhere: &Cache<String, String, S>,
    meanwhile: impl FnOnce(),
) {
    let entered = std::sync::atomic::AtomicBool::new(false);
    let go = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let old = scope.spawn(|| {
            elsewhere.get_or_compute("k", |_| {
                entered.store(true, Ordering::SeqCst);
                while !go.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                "old".to_string()
            })
        });
        while !entered.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        meanwhile();
        go.store(true, Ordering::SeqCst);
        assert_eq!(old.join().unwrap(), "old", "its own callers get it");
    });
}

mod attack2 {
    use super::*;

    static PARTINGS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = tiered, maxsize = 10, idle = "2s")]
    async fn parting(n: u64) -> String {
        PARTINGS.fetch_add(1, Ordering::SeqCst);
        format!("bye {n}")
    }

    /// The `PTTL` of the one Redis key matching `pattern`; `None` when there is none.
    fn pttl_of(pattern: &str) -> Option<i64> {
        let port = PORT.load(Ordering::Relaxed);
        let keys = redis_cli(port, &["--scan", "--pattern", pattern]);
        let key = keys.lines().next()?;
        redis_cli(port, &["PTTL", key]).trim().parse().ok()
    }

    /// `idle` on an `async fn` over `store = tiered`: the README's "a tiered copy's renewal
    /// renews the shared key" holds for async callers too. Read every 300 ms for 3 s, past the
    /// 2 s period, from this process's copy: the shared key in Redis must still be there, or
    /// every other process computes the key again although it is in use.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_tiered_copys_renewal_renews_the_shared_key() {
        init();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            assert_eq!(parting(1).await, "bye 1");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(PARTINGS.load(Ordering::SeqCst), 1, "one computation");
        let stats = parting_cache().stats();
        assert_eq!(stats.misses, 1, "{stats:?}");
        assert!(stats.hits >= 8, "{stats:?}");
        let pttl = pttl_of("memo:redis::attack2::parting:*");
        assert!(
            pttl.is_some_and(|pttl| pttl > 0),
            "the shared key expired while its copy was used: PTTL {pttl:?}"
        );
    }

    static SIGNS: AtomicUsize = AtomicUsize::new(0);

    /// A store's name, its function, and an `insert_with_ttl` on its handle.
    type SignCall<'a> = (&'a str, &'a dyn Fn(u64) -> String, &'a dyn Fn(u64, String));

    #[cached(store = redis, ttl = "10m", stale = "10m")]
    fn redis_sign(n: u64) -> String {
        SIGNS.fetch_add(1, Ordering::SeqCst);
        format!("computed {n}")
    }

    #[cached(store = tiered, maxsize = 10, ttl = "10m", stale = "10m")]
    fn tiered_sign(n: u64) -> String {
        SIGNS.fetch_add(1, Ordering::SeqCst);
        format!("computed {n}")
    }

    #[cached(ttl = "10m", stale = "10m")]
    fn memory_sign(n: u64) -> String {
        SIGNS.fetch_add(1, Ordering::SeqCst);
        format!("computed {n}")
    }

    /// `insert_with_ttl` on the handle of a function with `stale`: the value lives the time to
    /// live it was given (here 5 minutes), as in memory, and is served without a refresh
    /// meanwhile. Before, Redis held it `PX` = that ttl with no `stale` margin, so a hit read
    /// its `PTTL` as already past its time to live (5 min left of a 10 min `stale`) and
    /// refreshed it at once: the value inserted was replaced by a computed one on the first
    /// call; on tiered too (its copy times itself by that `PTTL`).
    #[test]
    fn a_value_inserted_with_its_own_ttl_is_not_refreshed_before_it() {
        init();
        let calls: [SignCall<'_>; 3] = [
            ("memory", &memory_sign, &|n, v| {
                memory_sign_cache().insert_with_ttl(n, v, Duration::from_secs(300));
            }),
            ("redis", &redis_sign, &|n, v| {
                redis_sign_cache().insert_with_ttl(n, v, Duration::from_secs(300));
            }),
            ("tiered", &tiered_sign, &|n, v| {
                tiered_sign_cache().insert_with_ttl(n, v, Duration::from_secs(300));
            }),
        ];
        let mut served = Vec::new();
        for (store, call, insert) in calls {
            insert(1, "inserted".to_string());
            for _ in 0..5 {
                served.push(format!("{store}: {}", call(1)));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            SIGNS.load(Ordering::SeqCst),
            0,
            "computations (refreshes) of an inserted value; served: {served:?}"
        );
        assert_eq!(redis_sign(1), "inserted");
        assert_eq!(tiered_sign(1), "inserted");
    }

    static HOLD_REFRESH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static REFRESH_HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static END_REFRESH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Key 1's refresh, once held, waits for the test and fails.
    #[cached(store = redis, ttl = "1s", stale = "10m")]
    fn frozen_dial(n: u64) -> Result<String, String> {
        if n == 1 && HOLD_REFRESH.load(Ordering::SeqCst) {
            REFRESH_HELD.store(true, Ordering::SeqCst);
            while !END_REFRESH.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            return Err("the refresh failed".into());
        }
        Ok(format!("dial {n}"))
    }

    /// A frozen server adds at most the command timeout **in total** to a call: one command
    /// of the call times out, the rest are not sent. Here a hit of a `stale` function reads a
    /// frozen server (its `GET` times out) while a background refresh of another key ends (it
    /// fails): before, the hit path, seeing a refresh end during its read, read again with a
    /// budget of its own, and the call paid two timeouts (two backend errors counted, where the
    /// second command should have been skipped).
    #[cfg(feature = "test-util")]
    #[test]
    fn a_read_that_timed_out_is_not_sent_again_when_a_refresh_ends_meanwhile() {
        let server = memo::testing::RedisServer::start();
        let url = format!("{}?command_timeout=400ms", server.url());
        let _scope = memo::testing::isolate().redis_url(&url);
        assert_eq!(frozen_dial(1).as_deref(), Ok("dial 1"));
        assert_eq!(frozen_dial(2).as_deref(), Ok("dial 2"));
        std::thread::sleep(Duration::from_millis(1200));
        HOLD_REFRESH.store(true, Ordering::SeqCst);
        // Stale: served, and its refresh starts (and waits).
        assert_eq!(frozen_dial(1).as_deref(), Ok("dial 1"));
        let start = std::time::Instant::now();
        while !REFRESH_HELD.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10), "no refresh");
            std::thread::sleep(Duration::from_millis(1));
        }
        let before = frozen_dial_cache().stats();
        server.pause();
        let ender = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(150));
            END_REFRESH.store(true, Ordering::SeqCst);
        });
        let started = std::time::Instant::now();
        let got = frozen_dial(2);
        let took = started.elapsed();
        ender.join().unwrap();
        server.resume();
        let after = frozen_dial_cache().stats();
        assert_eq!(got.as_deref(), Ok("dial 2"), "computed");
        assert_eq!(
            after.backend_errors - before.backend_errors,
            1,
            "commands of one call that timed out (took {took:?}; before {before:?}, after {after:?})"
        );
    }

    /// Waits (up to 10 s) until `cache` serves `expected` for `key`.
    fn serves(cache: &memo::TieredCache<String, String>, key: &str, expected: Option<&str>) {
        let start = std::time::Instant::now();
        while cache.get(key).as_deref() != expected {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{key}: served {:?}, never {expected:?}",
                cache.get(key)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `store = tiered` against Redis Cluster (the README's `redis+cluster://`): a new value
    /// or an invalidation in one process drops the other processes' copies, with keys spread
    /// over every master's slots (announcements are published from scripts that run on the
    /// key's master).
    #[test]
    fn tiered_copies_follow_new_values_and_invalidations_on_a_cluster() {
        let cluster = RedisCluster::start();
        let url = cluster.url();
        let (writer, reader) = (
            tiered_at(&url, "tiered-cluster"),
            tiered_at(&url, "tiered-cluster"),
        );
        let keys: Vec<String> = (0..12).map(|i| format!("user:{i}")).collect();
        // The reader hears the writer once a probe's invalidation reaches it.
        writer.insert("probe".into(), "0".into());
        serves(&reader, "probe", Some("0"));
        let start = std::time::Instant::now();
        while reader.get("probe").is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "never subscribed"
            );
            writer.invalidate("probe");
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in &keys {
            writer.insert(key.clone(), "old".into());
            serves(&reader, key, Some("old"));
        }
        for key in &keys {
            writer.insert(key.clone(), "new".into());
        }
        for key in &keys {
            serves(&reader, key, Some("new"));
        }
        for key in &keys {
            assert!(writer.invalidate(key), "{key}");
        }
        for key in &keys {
            serves(&reader, key, None);
        }
        assert_eq!(writer.stats().backend_errors, 0);
        assert_eq!(reader.stats().backend_errors, 0);
    }

    static LEFT_ENTERED: AtomicUsize = AtomicUsize::new(0);
    static LEFT_GO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static RIGHT_ENTERED: AtomicUsize = AtomicUsize::new(0);

    /// Its first run waits for the test.
    #[cached(store = redis, ttl = "10m")]
    async fn left_hand(n: u64) -> String {
        if LEFT_ENTERED.fetch_add(1, Ordering::SeqCst) == 0 {
            while !LEFT_GO.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        format!("left {n}")
    }

    /// Its first run waits until it is cancelled.
    #[cached(store = redis, ttl = "10m")]
    async fn right_hand(n: u64) -> String {
        if RIGHT_ENTERED.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        format!("right {n}")
    }

    /// Waits (up to 10 s, yielding to the runtime) until `done`.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Two functions of one key type on one executor thread: a caller of `right_hand(1)` that
    /// waits for the leader of its key in this process, and whose leader is cancelled, leads
    /// in its place; its claim must be of its own function's key. Before, the claim took the
    /// names its thread's last read had parked, and a caller of `left_hand(1)` that missed on
    /// the same thread meanwhile (and waits for its own leader) had parked those of
    /// `left_hand`'s key: `right_hand(1)` claimed `left_hand`'s key, waited for its value and
    /// returned it ("left 1").
    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_that_leads_after_its_leader_is_cancelled_claims_its_own_key() {
        init();
        let right_leader = tokio::spawn(right_hand(1));
        until("right's leader computes", || {
            RIGHT_ENTERED.load(Ordering::SeqCst) == 1
        })
        .await;
        let right_waiter = tokio::spawn(right_hand(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left_leader = tokio::spawn(left_hand(1));
        until("left's leader computes", || {
            LEFT_ENTERED.load(Ordering::SeqCst) == 1
        })
        .await;
        let left_waiter = tokio::spawn(left_hand(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        right_leader.abort();
        tokio::time::sleep(Duration::from_millis(100)).await;
        LEFT_GO.store(true, Ordering::SeqCst);
        assert_eq!(left_leader.await.unwrap(), "left 1");
        assert_eq!(left_waiter.await.unwrap(), "left 1");
        assert_eq!(
            right_waiter.await.unwrap(),
            "right 1",
            "another function's value"
        );
        assert_eq!(right_hand(1).await, "right 1");
        assert_eq!(left_hand(1).await, "left 1");
    }

    /// A frozen server adds at most the command timeout in total to a call, whatever its lock:
    /// under `lock = "redlock"` (the lock on three healthy servers of its own, the values on
    /// a frozen one), a miss's read times out, and the claim that follows must not wait a
    /// second timeout for its own read of the frozen store. Before, the Redlock's claim read
    /// the value from the store's server without the call's budget: two timeouts, two backend
    /// errors counted for one call.
    #[cfg(feature = "test-util")]
    #[test]
    fn a_redlock_claim_after_a_read_that_timed_out_adds_no_second_timeout() {
        use memo::redis::RedlockConfig;
        let store_server = memo::testing::RedisServer::start();
        let lock_servers: Vec<memo::testing::RedisServer> = (0..3)
            .map(|_| memo::testing::RedisServer::start())
            .collect();
        let urls: Vec<String> = lock_servers
            .iter()
            .map(memo::testing::RedisServer::url)
            .collect();
        let config = RedisConfig::from_url(&store_server.url())
            .unwrap()
            .command_timeout(Duration::from_millis(300));
        let store: memo::RedisStore<String, String> = RedisOptions::new("redlock-frozen")
            .client(RedisClient::new(config).unwrap())
            .redlock_with(RedlockConfig::from_urls(&urls).unwrap())
            .open(&Config::new().ttl(Duration::from_secs(60)));
        let cache = Cache::with_store(store);
        let compute = |key: &str| format!("value of {key}");
        assert_eq!(cache.get_or_compute("warm", compute), compute("warm"));
        assert_eq!(cache.get_or_compute("warm", compute), compute("warm"));
        let before = cache.stats();
        assert_eq!(before.backend_errors, 0, "{before:?}");
        store_server.pause();
        let started = std::time::Instant::now();
        let got = cache.get_or_compute("cold", compute);
        let took = started.elapsed();
        store_server.resume();
        let after = cache.stats();
        assert_eq!(got, compute("cold"));
        assert_eq!(
            after.backend_errors - before.backend_errors,
            1,
            "commands of one call that timed out (took {took:?}; {after:?})"
        );
    }

    /// `refresh` (a forced refresh) promises that a computation of the key begun before it,
    /// "another caller's miss", is not stored over the new value. Across processes (two
    /// caches over clients of their own, one namespace) on Redis: a miss in one, begun before
    /// the other's forced refresh and holding the key's lock, stores its older value after
    /// the refresh stored its new one, and every later call got the older value. The forced
    /// refresh's write now deletes the key's lock first, as an invalidation does.
    #[test]
    fn a_miss_begun_elsewhere_before_a_forced_refresh_does_not_replace_its_value() {
        let server = RedisServer::start();
        let open = || cache_at(&server.url(), "forced-elsewhere", |options| options);
        let (here, elsewhere) = (open(), open());
        miss_held_across(&elsewhere, || {
            let new = here.refresh(|| here.get_or_compute("k", |_| "new".to_string()));
            assert_eq!(new, "new");
            assert_eq!(here.get("k").as_deref(), Some("new"));
        });
        assert_eq!(
            here.get("k").as_deref(),
            Some("new"),
            "the older value stored over"
        );
        assert_eq!(elsewhere.get("k").as_deref(), Some("new"));
    }
}

mod attack4 {
    use super::*;

    /// The forced refresh of `eae2095` under `lock = "redlock"`: the key's lock lives on the
    /// lock servers, not on the store's server, so the `DEL` of the lock name on the store's
    /// server refuses nothing. A miss in another process, begun before the refresh and holding
    /// the Redlock, must still not store its older value over the refreshed one.
    #[test]
    fn a_redlock_miss_begun_elsewhere_before_a_forced_refresh_does_not_replace_its_value() {
        use memo::redis::RedlockConfig;
        let server = RedisServer::start();
        let lock_servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let urls: Vec<String> = lock_servers.iter().map(RedisServer::url).collect();
        let open = || {
            cache_at(&server.url(), "forced-redlock", |options| {
                options.redlock_with(RedlockConfig::from_urls(&urls).unwrap())
            })
        };
        let (here, elsewhere) = (open(), open());
        miss_held_across(&elsewhere, || {
            let new = here.refresh(|| here.get_or_compute("k", |_| "new".to_string()));
            assert_eq!(new, "new");
        });
        assert_eq!(
            here.get("k").as_deref(),
            Some("new"),
            "the older value stored over the refreshed one"
        );
    }

    /// The README: "an `invalidate` anywhere is seen by the next call everywhere, and a
    /// computation begun before it, in any process, stores nothing", under `lock = "redlock"`
    /// too: the invalidation deletes the value and the lock name on the store's server, which a
    /// Redlock holder's write did not look at.
    #[test]
    fn a_redlock_miss_begun_elsewhere_before_an_invalidate_stores_nothing() {
        use memo::redis::RedlockConfig;
        let server = RedisServer::start();
        let lock_servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let urls: Vec<String> = lock_servers.iter().map(RedisServer::url).collect();
        let open = || {
            cache_at(&server.url(), "invalidated-redlock", |options| {
                options.redlock_with(RedlockConfig::from_urls(&urls).unwrap())
            })
        };
        let (here, elsewhere) = (open(), open());
        miss_held_across(&elsewhere, || {
            here.invalidate("k");
        });
        assert_eq!(
            here.get("k"),
            None,
            "computed before the invalidate, stored after it"
        );
    }

    type Redlocked = Cache<String, String, memo::RedisStore<String, String>>;

    /// Two caches of one namespace on `server` (two processes, as far as Redis goes), their
    /// lock a Redlock over three servers of their own (returned, to be kept alive).
    fn redlocked_pair(
        server: &RedisServer,
        name: &str,
    ) -> (Vec<RedisServer>, Redlocked, Redlocked) {
        use memo::redis::RedlockConfig;
        let lock_servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let urls: Vec<String> = lock_servers.iter().map(RedisServer::url).collect();
        let open = || {
            cache_at(&server.url(), name, |options| {
                options.redlock_with(RedlockConfig::from_urls(&urls).unwrap())
            })
        };
        let (here, elsewhere) = (open(), open());
        (lock_servers, here, elsewhere)
    }

    /// Runs a forced refresh of "k" in `here`, its body ("new") held until `meanwhile` has run,
    /// and, begun while the refresh holds its mark, a miss of "k" in `elsewhere` (body "old"),
    /// held until the refresh ended; `meanwhile` runs once the miss holds the Redlock (and has
    /// fenced, or tried to: its body started, or 500 ms passed) and is told whether the miss's
    /// body had started. Returns what the miss's callers got.
    fn a_miss_during_a_forced_refresh(
        lock_server: &RedisServer,
        here: &Redlocked,
        elsewhere: &Redlocked,
        meanwhile: impl FnOnce(bool),
    ) -> String {
        use std::sync::atomic::AtomicBool;
        let (refreshing, refresh_go) = (AtomicBool::new(false), AtomicBool::new(false));
        let (missing, miss_go) = (AtomicBool::new(false), AtomicBool::new(false));
        let hold = |entered: &AtomicBool, go: &AtomicBool, value: &str| {
            entered.store(true, Ordering::SeqCst);
            while !go.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            value.to_string()
        };
        let until = |what: &str, done: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            while !done() {
                assert!(start.elapsed() < Duration::from_secs(10), "{what}");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        std::thread::scope(|scope| {
            let refresh = scope.spawn(|| {
                here.refresh(|| here.get_or_compute("k", |_| hold(&refreshing, &refresh_go, "new")))
            });
            until("no refresh", &|| refreshing.load(Ordering::SeqCst));
            let miss =
                scope.spawn(|| elsewhere.get_or_compute("k", |_| hold(&missing, &miss_go, "old")));
            until("the miss never held the Redlock", &|| {
                redis_cli(lock_server.port(), &["--scan", "--pattern", "*:lock"])
                    .lines()
                    .count()
                    == 1
            });
            let start = std::time::Instant::now();
            while !missing.load(Ordering::SeqCst) && start.elapsed() < Duration::from_millis(500) {
                std::thread::sleep(Duration::from_millis(1));
            }
            meanwhile(missing.load(Ordering::SeqCst));
            refresh_go.store(true, Ordering::SeqCst);
            assert_eq!(
                refresh.join().unwrap(),
                "new",
                "the refresh's callers get its value"
            );
            miss_go.store(true, Ordering::SeqCst);
            miss.join().unwrap()
        })
    }

    /// A forced refresh marks its key by taking the lock name on the store's server (`SET PX`).
    /// A Redlock miss in another process that wins the majority meanwhile fences the key there
    /// with `SET NX`, which the mark refuses: the miss computed unfenced, and its write, a plain
    /// `SET`, stored its value ("old", begun before the refresh ended) over the refresh's: every
    /// later call got "old". A Redlock holder whose fence is held now waits for that holder's
    /// value, as a waiter of the single-server lock does, and computes only fenced.
    #[test]
    fn a_redlock_miss_that_finds_a_forced_refresh_s_mark_does_not_store_over_its_value() {
        let server = RedisServer::start();
        let (locks, here, elsewhere) = redlocked_pair(&server, "marked-redlock");
        let got = a_miss_during_a_forced_refresh(&locks[0], &here, &elsewhere, |_| {});
        assert_eq!(
            here.get("k").as_deref(),
            Some("new"),
            "the miss's value stored over the refresh's"
        );
        assert_eq!(got, "new", "the miss's callers get the refresh's value");
        assert_eq!(elsewhere.get("k").as_deref(), Some("new"));
    }

    /// The same miss, unfenced behind a forced refresh's mark, with an invalidate landing
    /// while both compute: the invalidate deletes the value and the mark (the refresh's write
    /// is refused), and the miss's plain `SET` stored a value whose computation began before
    /// the invalidate, after it. Now a miss computes only once it holds the fence, so any
    /// value it stores was computed after the invalidate.
    #[test]
    fn a_redlock_miss_behind_a_forced_refresh_s_mark_stores_nothing_begun_before_an_invalidate() {
        let server = RedisServer::start();
        let (locks, here, elsewhere) = redlocked_pair(&server, "marked-invalidated");
        let mut begun_before = false;
        let got = a_miss_during_a_forced_refresh(&locks[0], &here, &elsewhere, |started| {
            begun_before = started;
            here.invalidate("k");
        });
        if begun_before {
            assert_eq!(
                here.get("k"),
                None,
                "computed before the invalidate, stored after it ({got})"
            );
        } else {
            assert_eq!(got, "old", "computed after the invalidate");
            assert_eq!(here.get("k").as_deref(), Some("old"));
        }
    }

    /// Runs `elsewhere`'s miss of "k" (computing "old") until `meanwhile` has run in `here`.
    fn begun_before(
        here: &memo::TieredCache<String, String>,
        elsewhere: &memo::TieredCache<String, String>,
        meanwhile: impl FnOnce(&memo::TieredCache<String, String>),
    ) {
        miss_held_across(elsewhere, || {
            meanwhile(here);
            // The announcement of `meanwhile` reaches `elsewhere` before its value is done.
            std::thread::sleep(Duration::from_millis(300));
        });
        std::thread::sleep(Duration::from_millis(300));
    }

    /// eae2095 on `store = tiered`: the miss begun elsewhere before the forced refresh stores
    /// nothing in Redis, nor in its own process's copy.
    #[test]
    fn a_tiered_miss_begun_elsewhere_before_a_forced_refresh_keeps_no_copy_of_its_value() {
        let server = RedisServer::start();
        let here = tiered_at(&server.url(), "forced-tiered");
        let elsewhere = tiered_at(&server.url(), "forced-tiered");
        begun_before(&here, &elsewhere, |here| {
            let new = here.refresh(|| here.get_or_compute("k", |_| "new".to_string()));
            assert_eq!(new, "new");
        });
        assert_eq!(here.get("k").as_deref(), Some("new"));
        assert_eq!(
            elsewhere.get("k").as_deref(),
            Some("new"),
            "the older value kept in the copy of the process that computed it"
        );
    }

    /// The README's invalidate on `store = tiered`: a computation begun before it, in any
    /// process, stores nothing, not even in its own process's copy.
    #[test]
    fn a_tiered_miss_begun_elsewhere_before_an_invalidate_keeps_no_copy_of_its_value() {
        let server = RedisServer::start();
        let here = tiered_at(&server.url(), "invalidated-tiered");
        let elsewhere = tiered_at(&server.url(), "invalidated-tiered");
        begun_before(&here, &elsewhere, |here| {
            here.invalidate("k");
        });
        assert_eq!(here.get("k"), None);
        assert_eq!(
            elsewhere.get("k"),
            None,
            "the older value kept in the copy of the process that computed it"
        );
    }

    /// Two forced refreshes of one key: the one begun first ends last. In memory (one process)
    /// and across processes on Redis, the value of the refresh begun later must stay.
    fn overlapping_refreshes<S: memo::Store<String, String> + Send + Sync>(
        first: &Cache<String, String, S>,
        second: &Cache<String, String, S>,
    ) -> Option<String> {
        let entered = std::sync::atomic::AtomicBool::new(false);
        let go = std::sync::atomic::AtomicBool::new(false);
        assert_eq!(first.get_or_compute("k", |_| "start".to_string()), "start");
        std::thread::scope(|scope| {
            let older = scope.spawn(|| {
                first.refresh(|| {
                    first.get_or_compute("k", |_| {
                        entered.store(true, Ordering::SeqCst);
                        while !go.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        "older".to_string()
                    })
                })
            });
            while !entered.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let newer = second.refresh(|| second.get_or_compute("k", |_| "newer".to_string()));
            assert_eq!(newer, "newer");
            go.store(true, Ordering::SeqCst);
            assert_eq!(older.join().unwrap(), "older");
        });
        second.get("k")
    }

    #[test]
    fn of_two_forced_refreshes_in_memory_the_later_begun_stays() {
        let cache: Cache<String, String> = Cache::new(Config::new());
        assert_eq!(
            overlapping_refreshes(&cache, &cache).as_deref(),
            Some("newer")
        );
    }

    /// eae2095 deleted the key's lock when a forced refresh wrote, which refused a miss holding
    /// the lock, but the refresh took no lock and wrote unconditionally, so the refresh begun
    /// first and ended last stored its value over the later one's (Some("older") here,
    /// Some("newer") in memory). A forced refresh now takes the key's lock name when it begins
    /// (`Store::mark_refresh_async`), and its write goes through only while it holds it.
    #[test]
    fn of_two_forced_refreshes_across_processes_the_later_begun_stays() {
        let server = RedisServer::start();
        let open = || cache_at(&server.url(), "two-refreshes", |options| options);
        let (first, second) = (open(), open());
        assert_eq!(
            overlapping_refreshes(&first, &second).as_deref(),
            Some("newer")
        );
    }

    /// [`of_two_forced_refreshes_across_processes_the_later_begun_stays`] under
    /// `lock = "redlock"`: the mark is the key's lock name on the store's server, where a
    /// Redlock holder keeps its fence, so the refresh path is the same there.
    #[test]
    fn of_two_forced_refreshes_under_redlock_the_later_begun_stays() {
        use memo::redis::RedlockConfig;
        let server = RedisServer::start();
        let lock_servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let urls: Vec<String> = lock_servers.iter().map(RedisServer::url).collect();
        let open = || {
            cache_at(&server.url(), "two-refreshes-redlock", |options| {
                options.redlock_with(RedlockConfig::from_urls(&urls).unwrap())
            })
        };
        let (first, second) = (open(), open());
        assert_eq!(
            overlapping_refreshes(&first, &second).as_deref(),
            Some("newer")
        );
    }

    /// [`of_two_forced_refreshes_across_processes_the_later_begun_stays`] on `store = tiered`:
    /// the refused write keeps no copy in its own process either.
    #[test]
    fn of_two_tiered_forced_refreshes_the_later_begun_stays_in_both_processes() {
        let server = RedisServer::start();
        let first = tiered_at(&server.url(), "two-refreshes-tiered");
        let second = tiered_at(&server.url(), "two-refreshes-tiered");
        assert_eq!(
            overlapping_refreshes(&first, &second).as_deref(),
            Some("newer")
        );
        assert_eq!(
            first.get("k").as_deref(),
            Some("newer"),
            "the older refresh's copy kept in its own process"
        );
    }

    /// An invalidate in another process while a forced refresh computes wins, as in one
    /// process: the refresh's caller gets its value, and nothing is stored. Before, the
    /// refresh wrote unconditionally, after the invalidate.
    #[test]
    fn an_invalidate_elsewhere_during_a_forced_refresh_wins() {
        let server = RedisServer::start();
        let open = || cache_at(&server.url(), "invalidated-refresh", |options| options);
        let (here, elsewhere) = (open(), open());
        assert_eq!(here.get_or_compute("k", |_| "start".to_string()), "start");
        let entered = std::sync::atomic::AtomicBool::new(false);
        let go = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let refresh = scope.spawn(|| {
                here.refresh(|| {
                    here.get_or_compute("k", |_| {
                        entered.store(true, Ordering::SeqCst);
                        while !go.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        "refreshed".to_string()
                    })
                })
            });
            while !entered.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(elsewhere.invalidate("k"));
            go.store(true, Ordering::SeqCst);
            assert_eq!(refresh.join().unwrap(), "refreshed", "its caller gets it");
        });
        assert_eq!(elsewhere.get("k"), None, "stored after the invalidate");
        assert_eq!(here.get("k"), None);
    }

    /// The lock names on the server at `port` whose key matches `pattern`.
    fn locks_at(port: u16, pattern: &str) -> usize {
        redis_cli(port, &["--scan", "--pattern", pattern])
            .lines()
            .count()
    }

    /// Whether the lock names matching `pattern` are gone within 2 s: a mark left behind
    /// would hold for its lease (10 s), and another process's miss would wait for it (5 s).
    fn locks_gone(port: u16, pattern: &str) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if locks_at(port, pattern) == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// A forced refresh whose body panics gives its mark back: another process's miss of the
    /// key then leads at once (its claim takes the lock) and stores its value.
    #[test]
    fn a_forced_refresh_whose_body_panics_leaves_no_mark() {
        let server = RedisServer::start();
        let open = || cache_at(&server.url(), "panicked-refresh", |options| options);
        let (here, elsewhere) = (open(), open());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            here.refresh(|| here.get_or_compute("k", |_| panic!("the body failed")))
        }));
        assert!(panicked.is_err());
        assert!(
            locks_gone(server.port(), "*:lock"),
            "the mark outlived its refresh"
        );
        assert_eq!(elsewhere.get_or_compute("k", |_| "b".to_string()), "b");
        assert_eq!(here.get("k").as_deref(), Some("b"));
    }

    static STALLS: AtomicUsize = AtomicUsize::new(0);
    /// Whether `stalled`'s body never ends (as a refresh that is cancelled).
    static STALLING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    #[cached(store = redis, ttl = "10m")]
    async fn stalled(n: u64) -> u64 {
        STALLS.fetch_add(1, Ordering::SeqCst);
        if STALLING.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        n * 2
    }

    /// An async forced refresh cancelled at any await point (its mark's round trip, its body)
    /// gives its mark back at once: the next miss of the key (the one caller of this process
    /// that claims it in Redis, as another process's would) finds no lock to wait for, computes
    /// once and stores. A mark left behind would hold the key for its lease (10 s), as an
    /// earlier bug held a miss's lock for 5 s. Checked with the mark's release disarmed
    /// (`take_async` not releasing when dropped before its reply): the first pass fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_async_forced_refresh_leaves_no_mark() {
        use std::task::{Context, Waker};
        init();
        let port = PORT.load(Ordering::Relaxed);
        for polls in 1..=4_u64 {
            let key = 100 + polls;
            let pattern = format!("memo:redis::attack4::stalled:*{{{key}}}:lock");
            STALLING.store(true, Ordering::SeqCst);
            let mut refresh = Box::pin(stalled_cache().refresh_async(stalled(key)));
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..polls {
                assert!(refresh.as_mut().poll(&mut cx).is_pending());
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            drop(refresh);
            STALLING.store(false, Ordering::SeqCst);
            let gone = tokio::task::spawn_blocking(move || locks_gone(port, &pattern));
            assert!(
                gone.await.unwrap(),
                "{polls} polls: the mark outlived its refresh"
            );
            let before = STALLS.load(Ordering::SeqCst);
            assert_eq!(stalled(key).await, key * 2);
            assert_eq!(stalled(key).await, key * 2, "stored");
            assert_eq!(STALLS.load(Ordering::SeqCst) - before, 1, "{polls} polls");
        }
    }

    /// How many times the server at `port` ran `command` (at top level or from a script).
    fn runs_of(port: u16, command: &str) -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        redis_cli(port, &["INFO", "commandstats"])
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// The round trips of a forced refresh of a cached key, counted by `INFO commandstats`:
    /// two, as before the mark (then a `DEL` of the lock name and the value's `SET`): the
    /// mark's `SET PX` and one script that writes the value only while the mark holds it
    /// (its `GET`, `SET`, `DEL` and `PUBLISH` run inside it).
    #[test]
    fn a_forced_refresh_takes_two_round_trips() {
        let server = RedisServer::start();
        let cache = cache_at(&server.url(), "refresh-trips", |options| options);
        assert_eq!(cache.get_or_compute("k", |_| "old".to_string()), "old");
        let port = server.port();
        let runs = || {
            ["set", "get", "del", "publish"]
                .map(|name| (name, runs_of(port, name)))
                .to_vec()
                .into_iter()
                .chain([("script", runs_of(port, "eval") + runs_of(port, "evalsha"))])
                .collect::<Vec<_>>()
        };
        let before = runs();
        let new = cache.refresh(|| cache.get_or_compute("k", |_| "new".to_string()));
        assert_eq!(new, "new");
        let ran: Vec<(&str, u64)> = before
            .iter()
            .zip(runs())
            .map(|((name, before), (_, after))| (*name, after - before))
            .collect();
        assert_eq!(
            ran,
            [
                ("set", 2),
                ("get", 1),
                ("del", 1),
                ("publish", 1),
                ("script", 1)
            ],
            "the mark's SET, then one script"
        );
        assert_eq!(cache.get("k").as_deref(), Some("new"));
    }

    static GREETINGS: AtomicUsize = AtomicUsize::new(0);

    #[cached(store = tiered, maxsize = 10, idle = "4s")]
    async fn greeting(n: u64) -> String {
        GREETINGS.fetch_add(1, Ordering::SeqCst);
        format!("hi {n}")
    }

    /// How many renewals (`PEXPIRE`, in the script of an idle read) the server has answered.
    fn getex_calls() -> u64 {
        let port = PORT.load(Ordering::Relaxed);
        redis_cli(port, &["INFO", "commandstats"])
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_pexpire:calls="))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// b0d6800: an async hit on a tiered copy under `idle` renews the shared key, but at most
    /// once per sixteenth of the period (the README: "no write on every hit"): 200 hits in a
    /// burst send at most one renewal or two, not one each.
    #[tokio::test(flavor = "current_thread")]
    async fn async_tiered_hits_under_idle_renew_the_shared_key_once_per_sixteenth() {
        init();
        assert_eq!(greeting(1).await, "hi 1");
        let before = getex_calls();
        for _ in 0..200 {
            assert_eq!(greeting(1).await, "hi 1");
        }
        let sent = getex_calls() - before;
        assert_eq!(GREETINGS.load(Ordering::SeqCst), 1);
        assert!(sent <= 2, "{sent} renewals for 200 hits");
    }

    #[cached(store = redis, ttl = "10m")]
    async fn north(n: u64) -> String {
        tokio::time::sleep(Duration::from_millis(15)).await;
        format!("north {n}")
    }

    #[cached(store = redis, ttl = "10m")]
    async fn south(n: u64) -> String {
        tokio::time::sleep(Duration::from_millis(15)).await;
        format!("south {n}")
    }

    /// d8672a8 under cancellation at every point of the async miss path: on one executor
    /// thread, callers of two functions of one key type, leaders cancelled after 0..40 ms
    /// (before their read, during it, during the claim, the body, the write): every answer,
    /// and every value left in Redis, is its own function's.
    #[tokio::test(flavor = "current_thread")]
    async fn cancelled_leaders_of_two_functions_on_one_thread_leave_each_its_own_values() {
        init();
        for delay in 0..40u64 {
            let key = 10_000 + delay;
            let mut tasks = Vec::new();
            for round in 0..3 {
                let cancelled_north = tokio::spawn(tokio::time::timeout(
                    Duration::from_millis(delay),
                    north(key),
                ));
                let north_waiter = tokio::spawn(north(key));
                let cancelled_south = tokio::spawn(tokio::time::timeout(
                    Duration::from_millis(delay / 2 + round),
                    south(key),
                ));
                let south_waiter = tokio::spawn(south(key));
                tasks.push((cancelled_north, north_waiter, cancelled_south, south_waiter));
            }
            for (cancelled_north, north_waiter, cancelled_south, south_waiter) in tasks {
                if let Ok(got) = cancelled_north.await.unwrap() {
                    assert_eq!(got, format!("north {key}"));
                }
                if let Ok(got) = cancelled_south.await.unwrap() {
                    assert_eq!(got, format!("south {key}"));
                }
                assert_eq!(north_waiter.await.unwrap(), format!("north {key}"));
                assert_eq!(south_waiter.await.unwrap(), format!("south {key}"));
            }
            assert_eq!(north(key).await, format!("north {key}"), "delay {delay}");
            assert_eq!(south(key).await, format!("south {key}"), "delay {delay}");
        }
    }

    /// The Redlock fence where the store's server is one of the lock servers (the lock name
    /// there already holds the holder's token): an invalidate still refuses the holder's write,
    /// and an undisturbed miss stores its value, once.
    #[test]
    fn a_redlock_over_the_store_s_own_server_is_fenced_too() {
        use memo::redis::RedlockConfig;
        let server = RedisServer::start();
        let others: Vec<RedisServer> = (0..2).map(|_| RedisServer::start()).collect();
        let mut urls: Vec<String> = others.iter().map(RedisServer::url).collect();
        urls.push(server.url());
        let open = || {
            cache_at(&server.url(), "redlock-on-store", |options| {
                options.redlock_with(RedlockConfig::from_urls(&urls).unwrap())
            })
        };
        let (here, elsewhere) = (open(), open());
        assert_eq!(here.get_or_compute("plain", |_| "one".to_string()), "one");
        assert_eq!(elsewhere.get("plain").as_deref(), Some("one"));
        miss_held_across(&elsewhere, || {
            here.invalidate("k");
        });
        assert_eq!(
            here.get("k"),
            None,
            "computed before the invalidate, stored after it"
        );
        assert_eq!(here.get_or_compute("k", |_| "new".to_string()), "new");
        assert_eq!(elsewhere.get("k").as_deref(), Some("new"));
        let stats = here.stats();
        assert_eq!(stats.backend_errors, 0, "{stats:?}");
    }

    static VANE_HOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static VANE_HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static VANE_END: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static VANE_RUNS: AtomicUsize = AtomicUsize::new(0);

    /// Its refresh, once held, waits for the test.
    #[cached(store = redis, lock = "redlock", ttl = "1s", stale = "10m")]
    fn vane(n: u64) -> String {
        let run = VANE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
        if VANE_HOLD.load(Ordering::SeqCst) {
            VANE_HELD.store(true, Ordering::SeqCst);
            while !VANE_END.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        format!("vane {n} run {run}")
    }

    /// The README's invalidate ("a computation begun before it, in any process, stores
    /// nothing") against a background refresh under `lock = "redlock"`: refreshes took no lock
    /// there (the Redlock's rounds are for misses), so the `DEL` of the value and its lock name
    /// that another process's invalidate sends refused nothing, and the refresh begun before it
    /// stored its value after it ("vane 1 run 2"). As under the single-server lock, the refresh
    /// now holds the lock name on the store's server (`SET NX`) and its write is refused.
    #[test]
    fn a_background_refresh_under_redlock_begun_before_an_invalidate_elsewhere_stores_nothing() {
        init();
        let lock_servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
        let urls: Vec<String> = lock_servers.iter().map(RedisServer::url).collect();
        // SAFETY: no other function of this binary takes `lock = "redlock"` from the environment.
        unsafe { std::env::set_var("MEMO_REDLOCK_URLS", urls.join(",")) };
        assert_eq!(vane(1), "vane 1 run 1");
        VANE_HOLD.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1_100));
        assert_eq!(
            vane(1),
            "vane 1 run 1",
            "served stale while its refresh runs"
        );
        let start = std::time::Instant::now();
        while !VANE_HELD.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10), "no refresh");
            std::thread::sleep(Duration::from_millis(1));
        }
        let port = PORT.load(Ordering::Relaxed);
        let keys = redis_cli(
            port,
            &["--scan", "--pattern", "memo:redis::attack4::vane:*"],
        );
        let key = keys
            .lines()
            .find(|key| !key.ends_with(":lock"))
            .unwrap()
            .to_string();
        // Another process's invalidate: the value and its lock name, in one DEL.
        redis_cli(port, &["DEL", &key, &format!("{key}:lock")]);
        VANE_END.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(VANE_RUNS.load(Ordering::SeqCst), 2, "one refresh");
        assert_eq!(
            redis_cli(port, &["GET", &key]).trim(),
            "",
            "the refresh begun before the invalidate stored its value after it"
        );
    }
}

/// `tests/disk.rs`'s one-key attack on a tiered cache (and a Redis one): threads compute,
/// insert and invalidate one key by turns; a read begun after an insert or invalidate returned
/// must not return a version older than it (the local copies included).
fn one_key_after_inserts<S: memo::Store<String, u64>>(cache: &Cache<String, u64, S>) {
    let source = std::sync::atomic::AtomicU64::new(0);
    let floor = std::sync::atomic::AtomicU64::new(0);
    let turn = std::sync::Mutex::new(());
    std::thread::scope(|s| {
        for t in 0..3 {
            let (source, floor, turn) = (&source, &floor, &turn);
            s.spawn(move || {
                for i in 0..3_000 {
                    if (i + t) % 3 == 0 {
                        let _turn = turn.lock().unwrap();
                        let version = source.fetch_add(1, Ordering::SeqCst) + 1;
                        if i % 2 == 0 {
                            cache.insert("k".to_string(), version);
                        } else {
                            cache.invalidate("k");
                        }
                        floor.fetch_max(version, Ordering::SeqCst);
                        continue;
                    }
                    let least = floor.load(Ordering::SeqCst);
                    let read =
                        cache.get_or_insert_with("k".to_string(), || source.load(Ordering::SeqCst));
                    assert!(
                        read >= least,
                        "read {read} after the insert of {least} returned"
                    );
                }
            });
        }
    });
}

#[test]
fn a_tiered_read_after_an_insert_never_returns_a_computation_begun_before() {
    init();
    let cache: memo::TieredCache<String, u64> = memo::Cache::builder()
        .maxsize(10)
        .tiered_options(patient("one-key-inserts-tiered"))
        .build();
    one_key_after_inserts(&cache);
    let cache: memo::RedisCache<String, u64> = memo::Cache::builder()
        .redis_options(patient("one-key-inserts-redis"))
        .build();
    one_key_after_inserts(&cache);
}

/// An insert made while a forced refresh of its key computes: the insert began later, so it
/// stays (in Redis, and in the tiered copy of this process and of another); the refresh's
/// caller gets its own value.
#[test]
fn an_insert_during_a_forced_refresh_on_tiered_stays() {
    init();
    let open = || -> memo::TieredCache<String, u64> {
        memo::Cache::builder()
            .maxsize(10)
            .tiered_options(patient("insert-during-refresh"))
            .build()
    };
    let (cache, elsewhere) = (open(), open());
    for round in 0..10_u64 {
        cache.insert("k".to_string(), round * 10 + 1);
        // Another process's copy goes when the insert's message arrives.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while elsewhere.get("k") != Some(round * 10 + 1) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (entered, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            let refreshing = s.spawn(|| {
                cache.refresh(|| {
                    cache.get_or_insert_with("k".to_string(), || {
                        entered.wait();
                        go.wait();
                        round * 10 + 2
                    })
                })
            });
            entered.wait();
            cache.insert("k".to_string(), round * 10 + 3);
            go.wait();
            assert_eq!(refreshing.join().unwrap(), round * 10 + 2);
        });
        assert_eq!(cache.get("k"), Some(round * 10 + 3), "round {round}: here");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while elsewhere.get("k") != Some(round * 10 + 3) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            elsewhere.get("k"),
            Some(round * 10 + 3),
            "round {round}: elsewhere"
        );
    }
}

/// Promises of the docs that no other test held, each asserted by counts and values.
mod promises {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use memo::redis::{RedisClient, RedisConfig};
    use memo::testing::{RedisServer, redis_command};
    use memo::{Cache, RedisCache, RedisOptions, Store};

    /// `RedisConfig`'s docs: "Passwords stay out of logs and `Debug` output". A server that
    /// refuses the password and one that is down: the warnings the stores log, the errors and
    /// the configuration a user would print never carry the password.
    #[test]
    fn passwords_stay_out_of_logs_errors_and_debug_output() {
        let server = RedisServer::start();
        let port = server.port();
        assert!(redis_command(port, "ACL SETUSER app on >s3cret-right ~* &* +@all").contains("OK"));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down = closed.local_addr().unwrap().port();
        drop(closed);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env("MEMO_TEST_ROLE", "passwords")
            .env(
                "MEMO_REDIS_URL",
                format!("redis://app:s3cret-wrong@127.0.0.1:{port}"),
            )
            .env(
                "MEMO_TEST_DOWN_URL",
                format!("redis://app:s3cret-down@127.0.0.1:{down}"),
            )
            .output()
            .unwrap();
        assert_eq!(super::result(&out), "counted=true");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stderr
                .lines()
                .filter(|line| line.starts_with("memo: "))
                .count()
                >= 2,
            "each store warned: {stderr}"
        );
        assert!(stdout.contains("app:***@127.0.0.1"), "{stdout}");
        assert!(
            !stdout.contains("s3cret") && !stderr.contains("s3cret"),
            "{stdout}\n{stderr}"
        );
    }

    /// `memo::testing::RedisServer`'s docs (and the README's `redis` feature): a server "without
    /// persistence on `127.0.0.1` and a free port, killed on drop"; `restart` "starts it again on
    /// the same port (empty: nothing is persisted)"; each test's own server sees no other's keys.
    #[test]
    fn a_private_server_keeps_nothing_across_a_restart_and_stops_on_drop() {
        let mut server = RedisServer::start();
        let other = RedisServer::start();
        let port = server.port();
        assert_ne!(port, other.port());
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        assert!(redis_command(port, "SET promised 1").contains("OK"));
        assert!(redis_command(port, "GET promised").contains('1'));
        assert!(
            redis_command(other.port(), "EXISTS promised").contains(":0"),
            "another test's server does not see it"
        );
        assert!(
            redis_command(port, "CONFIG GET bind").contains("127.0.0.1"),
            "loopback"
        );
        server.restart();
        assert_eq!(server.port(), port, "the same port");
        assert!(
            redis_command(port, "EXISTS promised").contains(":0"),
            "nothing persisted across the restart"
        );
        assert!(redis_command(port, "PING").contains("PONG"));
        drop(server);
        assert_eq!(
            redis_command(port, "PING"),
            "",
            "nothing answers on its port once dropped"
        );
        assert!(redis_command(other.port(), "PING").contains("PONG"));
    }

    /// docs/cache-object.md: "Building never fails: … a Redis server that is down makes the cache
    /// compute as if uncached, with the failure counted in `stats().backend_errors`". Built
    /// through the builder against a server killed before the first call: every call computes
    /// and returns its value, nothing is served from anywhere, and the failure is counted.
    #[test]
    fn a_redis_cache_whose_server_is_down_computes_every_call_and_counts_it() {
        let mut server = RedisServer::start();
        let client = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        server.kill();
        let cache: RedisCache<u32, u32> = Cache::builder()
            .redis_options(RedisOptions::new("promises-down").client(client))
            .build();
        let runs = AtomicUsize::new(0);
        for round in 1..=3 {
            let value = cache.get_or_insert_with(1, || {
                runs.fetch_add(1, Ordering::SeqCst);
                10
            });
            assert_eq!(value, 10);
            assert_eq!(runs.load(Ordering::SeqCst), round, "computed each call");
        }
        assert_eq!(cache.get(&1), None, "nothing kept");
        let stats = cache.stats();
        assert!(stats.backend_errors >= 1, "{stats:?}");
        assert_eq!(stats.hits, 0, "{stats:?}");
    }

    /// A Redis that is down still leaves one computation per key in a process: callers of the
    /// key released together share it (a write not sent tells of no change elsewhere, so the
    /// callers that joined are handed its value), and, with `store = tiered` as with `redis`,
    /// nothing is kept (README: "Redis down or failing a claim: calls compute and keep no
    /// copy"): the next call computes again.
    #[test]
    fn with_redis_down_callers_of_one_key_share_one_computation_and_nothing_is_kept() {
        use memo::TieredCache;
        let mut server = RedisServer::start();
        let client = || RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let redis: RedisCache<u32, u32> = Cache::builder()
            .redis_options(RedisOptions::new("promises-down-shared").client(client()))
            .build();
        let tiered: TieredCache<u32, u32> = Cache::builder()
            .maxsize(10)
            .tiered_options(RedisOptions::new("promises-down-shared-tiered").client(client()))
            .build();
        server.kill();
        let shared = |name: &str, call: &(dyn Fn(&dyn Fn() -> u32) -> u32 + Sync)| {
            let runs = AtomicUsize::new(0);
            let body = || {
                runs.fetch_add(1, Ordering::SeqCst);
                // Long enough for the other callers to join this computation.
                std::thread::sleep(std::time::Duration::from_secs(1));
                10
            };
            let barrier = std::sync::Barrier::new(4);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        barrier.wait();
                        assert_eq!(call(&body), 10);
                    });
                }
            });
            assert_eq!(runs.load(Ordering::SeqCst), 1, "{name}: one computation");
            assert_eq!(call(&|| 11), 11, "{name}: nothing kept");
        };
        shared("redis", &|body| redis.get_or_insert_with(1, body));
        shared("tiered", &|body| tiered.get_or_insert_with(1, body));
        assert_eq!(tiered.store().held(), 0, "no copy");
    }

    /// `Stats::len`'s docs: "with `store = redis`, 0 and with `tiered` the local copies:
    /// `Cache::len` counts Redis's with a `SCAN`".
    #[test]
    fn stats_len_is_zero_on_redis_and_the_copies_on_tiered() {
        let server = RedisServer::start();
        let client = || RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let shared: RedisCache<u32, u32> = Cache::builder()
            .redis_options(RedisOptions::new("promises-len").client(client()))
            .build();
        for n in 0..3 {
            shared.insert(n, n);
        }
        assert_eq!((shared.stats().len, shared.len()), (0, 3));
        let tiered: memo::TieredCache<u32, u32> = Cache::builder()
            .maxsize(2)
            .tiered_options(RedisOptions::new("promises-len-tiered").client(client()))
            .build();
        for n in 0..5 {
            tiered.insert(n, n);
        }
        let copies = tiered.store().held();
        assert!(copies <= 2, "{copies} copies");
        assert_eq!((tiered.stats().len, tiered.len()), (copies, 5));
    }

    /// docs/cache-object.md: "the tuple of borrowed parts on a key of several …: `get(("tea",
    /// &2))` or `invalidate(("tea", &2))` on a `(String, u32)` key, on every store". In Redis
    /// and tiered (a second tiered cache, which holds no copy yet, reads what the first stored).
    #[test]
    fn a_key_of_several_parts_is_looked_up_by_its_borrowed_parts_in_redis() {
        let server = RedisServer::start();
        let client = || RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let shared: RedisCache<(String, u32), u32> = Cache::builder()
            .redis_options(RedisOptions::new("promises-pairs").client(client()))
            .build();
        let tiered = || -> memo::TieredCache<(String, u32), u32> {
            Cache::builder()
                .maxsize(10)
                .tiered_options(RedisOptions::new("promises-pairs-tiered").client(client()))
                .build()
        };
        let (local, other) = (tiered(), tiered());
        for (cache, reader) in [
            (&shared as &dyn Pairs, &shared as &dyn Pairs),
            (&local, &other),
        ] {
            cache.put(("tea".to_string(), 2), 6);
            assert_eq!(cache.find(("tea", &2)), Some(6));
            assert_eq!(cache.find(("tea", &3)), None);
            assert!(cache.drop_key(("tea", &2)));
            assert!(!cache.drop_key(("tea", &2)));
            assert_eq!(cache.find(("tea", &2)), None);
            assert_eq!(cache.compute(("tea", &2)), 8);
            // Read first here (a tiered cache of its own holds no copy yet): from Redis.
            assert_eq!(reader.find(("tea", &2)), Some(8));
        }
    }

    /// The lookups the test above makes, over either store.
    trait Pairs {
        fn put(&self, key: (String, u32), value: u32);
        fn find(&self, key: (&str, &u32)) -> Option<u32>;
        fn drop_key(&self, key: (&str, &u32)) -> bool;
        fn compute(&self, key: (&str, &u32)) -> u32;
    }

    impl<S: Store<(String, u32), u32>> Pairs for Cache<(String, u32), u32, S> {
        fn put(&self, key: (String, u32), value: u32) {
            self.insert(key, value);
        }
        fn find(&self, key: (&str, &u32)) -> Option<u32> {
            self.get(key)
        }
        fn drop_key(&self, key: (&str, &u32)) -> bool {
            self.invalidate(key)
        }
        fn compute(&self, key: (&str, &u32)) -> u32 {
            self.get_or_compute(key, |(_, n)| n * 4)
        }
    }

    /// `LockConfig::wait`: "How long a waiter waits for the holder's value before computing it
    /// itself"; `Claimed::TimedOut`: "The holder did not finish within the wait timeout: compute
    /// without the lock". A holder that keeps the lock: a second claimant gets `TimedOut`, not
    /// the lock, and the holder's lock stays; once the holder releases it, the next claimant
    /// gets it.
    #[test]
    fn a_waiter_whose_holder_outlasts_the_wait_computes_without_the_lock() {
        use memo::redis::{Claimed, LockConfig, Locks};
        use std::time::Duration;
        let server = RedisServer::start();
        let client = || RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let config = LockConfig {
            wait: Duration::from_millis(300),
            ..LockConfig::default()
        };
        let (holder, waiter) = (
            Locks::new(client(), config.clone()),
            Locks::new(client(), config),
        );
        let Claimed::Compute(guard) = holder.claim(b"{promised}:v", b"{promised}:lock") else {
            panic!("the first claimant holds the lock");
        };
        let claimed = waiter.claim(b"{promised}:v", b"{promised}:lock");
        assert!(matches!(claimed, Claimed::TimedOut), "{claimed:?}");
        assert!(
            redis_command(server.port(), "EXISTS {promised}:lock").contains(":1"),
            "the holder's lock stays"
        );
        drop(guard);
        let claimed = waiter.claim(b"{promised}:v", b"{promised}:lock");
        assert!(matches!(claimed, Claimed::Compute(_)), "{claimed:?}");
    }

    /// The defaults the docs state: `BreakerConfig::default` "5 failures; 250 ms back-off
    /// doubling to 1 s; a log line at most every 10 s" (the README's "probes at least once a
    /// second"); `LockConfig::default` "A 10 s lease …, a 5 s wait, polls from 5 ms to 100 ms,
    /// channel `memo:released`" (the README's "the lock's 5 s"); a `RedlockConfig` takes the
    /// same lock, warns at most once per 10 s, and needs `N / 2 + 1` servers.
    #[test]
    fn the_documented_defaults_of_the_breaker_the_lock_and_redlock() {
        use memo::redis::{BreakerConfig, LockConfig, RedlockConfig};
        use std::time::Duration;
        let breaker = BreakerConfig::default();
        assert_eq!(
            (
                breaker.threshold,
                breaker.base,
                breaker.cap,
                breaker.log_interval
            ),
            (
                5,
                Duration::from_millis(250),
                Duration::from_secs(1),
                Duration::from_secs(10)
            )
        );
        let lock = LockConfig::default();
        assert_eq!(
            (lock.lease, lock.wait, lock.poll_min, lock.poll_max),
            (
                Duration::from_secs(10),
                Duration::from_secs(5),
                Duration::from_millis(5),
                Duration::from_millis(100)
            )
        );
        assert_eq!(lock.channel, b"memo:released");
        let urls = |n: u16| (1..=n).map(|port| format!("redis://127.0.0.1:{port}"));
        let redlock = RedlockConfig::from_urls(urls(5)).unwrap();
        assert_eq!(redlock.lock, LockConfig::default());
        assert_eq!(redlock.log_interval, Duration::from_secs(10));
        let quorums: Vec<usize> = (1..=6)
            .map(|n| RedlockConfig::from_urls(urls(n)).unwrap().quorum())
            .collect();
        assert_eq!(quorums, [1, 2, 2, 3, 3, 4]);
    }

    /// `lock = "redlock"` and a background refresh: docs/redlock.md ("background refreshes take
    /// that name with `SET NX`") and `RedisStore`'s lock ("for background and forced refreshes,
    /// which take no Redlock round, the lock on its own server"). Two stores of one namespace
    /// under Redlock: the first refresh of a key takes its lock name on the store's server, the
    /// second finds it held (so one process refreshes a key), and the value's write releases it.
    #[test]
    fn under_redlock_a_background_refresh_takes_the_keys_lock_on_the_stores_server() {
        use memo::redis::RedlockConfig;
        use std::time::Duration;
        let server = RedisServer::start();
        let lock_server = RedisServer::start();
        let client = || RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let config = memo::Config::new()
            .ttl(Duration::from_secs(60))
            .stale(Duration::from_secs(60));
        let open = || {
            RedisOptions::new("promises-redlock-refresh")
                .client(client())
                .redlock_with(RedlockConfig::from_urls([lock_server.url()]).unwrap())
                .open::<u64, u64>(&config)
        };
        let (a, b) = (open(), open());
        a.insert(1, 10);
        let locks = |port: u16| {
            let reply = redis_command(port, "KEYS *:lock");
            reply
                .strip_prefix('*')
                .and_then(|rest| rest.split("\r\n").next())
                .and_then(|count| count.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
        };
        assert_eq!(locks(server.port()), 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lease = runtime
            .block_on(a.claim_refresh_async(&1))
            .expect("the key's lock is free");
        assert_eq!(locks(server.port()), 1, "taken on the store's server");
        assert_eq!(locks(lock_server.port()), 0, "no Redlock round");
        assert!(
            runtime.block_on(b.claim_refresh_async(&1)).is_none(),
            "held by a's refresh: b goes on serving its value"
        );
        runtime.block_on(a.insert_claimed_async(a.hash_of(&&1), 1, 11, Duration::ZERO, lease));
        assert_eq!(b.get(&&1), Some(11));
        assert_eq!(locks(server.port()), 0, "released with the value");
        drop(
            runtime
                .block_on(b.claim_refresh_async(&1))
                .expect("free again"),
        );
    }

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Lossy {
        user: String,
        #[serde(skip)]
        token: Option<String>,
    }

    static LOSSY_RUNS: AtomicUsize = AtomicUsize::new(0);

    #[memo::cached(store = tiered, maxsize = 10)]
    fn lossy_tiered(user: String) -> Lossy {
        LOSSY_RUNS.fetch_add(1, Ordering::SeqCst);
        Lossy {
            token: Some(format!("token of {user}")),
            user,
        }
    }

    /// The README: a value that does not decode back to itself "is not stored (Redis: computed
    /// each call; disk, tiered: kept in memory only), counted in `backend_errors`" (Redis:
    /// `tests/trust.rs`). Tiered: computed once, served from the copy after, nothing in Redis.
    #[test]
    fn a_value_that_does_not_decode_back_is_kept_in_memory_only_on_tiered() {
        let server = RedisServer::start();
        let _scope = memo::testing::isolate().redis_url(&server.url());
        for _ in 0..3 {
            assert_eq!(
                lossy_tiered("ada".into()).token.as_deref(),
                Some("token of ada")
            );
        }
        assert_eq!(LOSSY_RUNS.load(Ordering::SeqCst), 1, "kept in memory");
        assert_eq!(lossy_tiered_cache().len(), 0, "nothing in Redis");
        assert_eq!(lossy_tiered_cache().stats().backend_errors, 1);
    }
}

/// Attacks of session attack6 on the Redis and tiered paths.
mod attack6 {
    use super::*;

    /// `timed_out::timed_out_waiter` over three handles `open` gives.
    fn timed_out_waiter<S>(open: &(impl Fn() -> Cache<String, String, S> + Sync), invalidate: bool)
    where
        S: memo::Store<String, String> + Send + Sync + 'static,
    {
        let (holder, waiter, other) = (open(), open(), open());
        timed_out::timed_out_waiter([&holder, &waiter, &other], invalidate, "in Redis");
    }

    /// [`timed_out_waiter`] with and without the invalidation, at once (each waits 5 s).
    fn timed_out_waiter_begun_before<S>(open: impl Fn(&str) -> Cache<String, String, S> + Sync)
    where
        S: memo::Store<String, String> + Send + Sync + 'static,
    {
        std::thread::scope(|s| {
            let kept = s.spawn(|| timed_out_waiter(&|| open("kept"), false));
            timed_out_waiter(&|| open("invalidated"), true);
            kept.join().unwrap();
        });
    }

    #[test]
    fn a_timed_out_waiters_redis_value_computed_before_an_invalidation_is_not_stored() {
        init();
        timed_out_waiter_begun_before(|name| -> memo::RedisCache<String, String> {
            memo::Cache::builder()
                .redis_options(patient(&format!("timed-out-waiter-redis-{name}")))
                .build()
        });
    }

    #[test]
    fn a_timed_out_waiters_tiered_value_computed_before_an_invalidation_is_not_stored() {
        init();
        timed_out_waiter_begun_before(|name| -> memo::TieredCache<String, String> {
            memo::Cache::builder()
                .maxsize(10)
                .tiered_options(patient(&format!("timed-out-waiter-tiered-{name}")))
                .build()
        });
    }
}

mod attack6_idle {
    use super::*;

    /// The options of a store called `name` on `server`, over a client of its own (a server
    /// of these tests' own: their renewals are not counted by another test's).
    pub(super) fn own(server: &RedisServer, name: &str) -> RedisOptions {
        let config = RedisConfig::from_url(&server.url())
            .unwrap()
            .command_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2));
        RedisOptions::new(name).client(RedisClient::new(config).unwrap())
    }

    /// An entry given a time to live of its own keeps it under `idle` (docs/cache-object.md:
    /// "except an entry given a time to live of its own (`insert_with_ttl`, `ttl_from`), which
    /// keeps it"), on Redis as in memory: a hit must not renew it to a full `idle`, or a token
    /// inserted to expire in 1 s is served for the next ten minutes.
    fn own_ttl_kept<S: memo::Store<String, String>>(cache: &Cache<String, String, S>) {
        cache.insert_with_ttl(
            "token".to_string(),
            "t".to_string(),
            Duration::from_millis(600),
        );
        assert_eq!(cache.get("token").as_deref(), Some("t"));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(cache.get("token").as_deref(), Some("t"));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            cache.get("token"),
            None,
            "served past the time to live it was given"
        );
    }

    /// Another process's read of a value inserted with a time to live of its own (`elsewhere`,
    /// a cache over the same names) neither renews it nor keeps a copy past it; a plain insert
    /// after it is renewed by hits again (its mark went with it).
    fn own_ttl_kept_elsewhere<S: memo::Store<String, String>>(
        cache: &Cache<String, String, S>,
        elsewhere: &Cache<String, String, S>,
    ) {
        cache.insert_with_ttl(
            "other".to_string(),
            "o".to_string(),
            Duration::from_millis(600),
        );
        assert_eq!(elsewhere.get("other").as_deref(), Some("o"));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(elsewhere.get("other").as_deref(), Some("o"));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            elsewhere.get("other"),
            None,
            "served elsewhere past its time to live"
        );
        assert_eq!(cache.get("other"), None);

        cache.insert_with_ttl(
            "plain".to_string(),
            "1".to_string(),
            Duration::from_secs(60),
        );
        cache.insert("plain".to_string(), "2".to_string());
        // The `idle` of 1 s, renewed by a read every 300 ms (of Redis: no copy is kept here).
        for _ in 0..8 {
            assert_eq!(elsewhere.store().peek(&"plain").as_deref(), Some("2"));
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Under `idle` a tiered copy has no time to live to end it: a message missed (the
    /// subscription reconnecting) would leave it served for as long as it is read. Its
    /// renewals (one each sixteenth of `idle`) read the shared value: one that finds it gone
    /// or replaced drops the copy, so the next read takes Redis's. Before, the copy of a value
    /// deleted (or replaced) without a message was served on forever.
    #[test]
    fn an_idle_tiered_copy_goes_when_its_renewal_finds_the_value_gone_or_replaced() {
        let server = RedisServer::start();
        let cache: memo::TieredCache<String, String> = memo::Cache::builder()
            .maxsize(10)
            .idle(Duration::from_millis(1600))
            .tiered_options(own(&server, "idle-copy-missed").codec(memo::Codec::Json))
            .build();
        let raw = RedisClient::new(RedisConfig::from_url(&server.url()).unwrap()).unwrap();
        let name_of = |key: &str| {
            let names = redis_cli(server.port(), &["--scan", "--pattern", "memo:*"]);
            names
                .lines()
                .find(|name| name.ends_with(&format!("{{{key}}}")))
                .unwrap_or_else(|| panic!("no value of {key} in {names}"))
                .to_string()
        };
        // Read until the copy gives way to `expected` (up to 3 s: a renewal comes each 100 ms).
        let served_after = |key: &str, expected: &str| {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            loop {
                let value = cache.get_or_compute(key, |_| "recomputed".to_string());
                if value == expected {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{key}: the copy {value:?} is still served in place of {expected:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        assert_eq!(cache.get_or_compute("gone", |_| "old".to_string()), "old");
        // Deleted without a message (as if the invalidation's message were missed).
        assert!(raw.del(name_of("gone").as_bytes()).unwrap());
        served_after("gone", "recomputed");
        assert_eq!(
            cache.get_or_compute("replaced", |_| "old".to_string()),
            "old"
        );
        raw.set_px(name_of("replaced").as_bytes(), br#""new""#, 60_000)
            .unwrap();
        served_after("replaced", "new");
    }

    #[test]
    fn an_entry_with_its_own_ttl_is_not_renewed_by_a_redis_hit_in_another_process() {
        let server = RedisServer::start();
        let open = || -> memo::RedisCache<String, String> {
            memo::Cache::builder()
                .idle(Duration::from_secs(1))
                .redis_options(own(&server, "own-ttl-idle-redis-elsewhere"))
                .build()
        };
        own_ttl_kept_elsewhere(&open(), &open());
        let open = || -> memo::TieredCache<String, String> {
            memo::Cache::builder()
                .maxsize(10)
                .idle(Duration::from_secs(1))
                .tiered_options(own(&server, "own-ttl-idle-tiered-elsewhere"))
                .build()
        };
        own_ttl_kept_elsewhere(&open(), &open());
    }

    #[test]
    fn an_entry_with_its_own_ttl_is_not_renewed_by_a_redis_hit_under_idle() {
        let server = RedisServer::start();
        let cache: memo::RedisCache<String, String> = memo::Cache::builder()
            .idle(Duration::from_secs(600))
            .redis_options(own(&server, "own-ttl-idle-redis"))
            .build();
        own_ttl_kept(&cache);
        let cache: memo::TieredCache<String, String> = memo::Cache::builder()
            .maxsize(10)
            .idle(Duration::from_secs(600))
            .tiered_options(own(&server, "own-ttl-idle-tiered"))
            .build();
        own_ttl_kept(&cache);
    }
}

mod attack7 {
    use super::attack6_idle::own;
    use super::*;

    /// The `PTTL` of the only value of the store called `name` (its name ends with the key's
    /// hash tag).
    fn pttl_of(server: &RedisServer, name: &str) -> i64 {
        let names = redis_cli(
            server.port(),
            &["--scan", "--pattern", &format!("*{name}*")],
        );
        let value = names
            .lines()
            .find(|line| line.ends_with('}'))
            .unwrap_or_else(|| panic!("no value in {names}"));
        redis_cli(server.port(), &["PTTL", value])
            .trim()
            .parse()
            .unwrap()
    }

    /// Two builds of one function (the code hash, hence the namespace, leaves out the
    /// attribute's options), one with `ttl` and one with `idle`: a value the first gives a time
    /// to live of its own (`insert_with_ttl`, `ttl_from`: a token that expires in 2 s) must not
    /// be renewed by the second's hits to a full `idle`, or it is served for ten minutes.
    #[test]
    fn an_own_ttl_written_by_a_build_without_idle_is_not_renewed_by_one_with_idle() {
        let server = RedisServer::start();
        let name = "own-ttl-across-builds";
        let plain: memo::RedisCache<String, String> = memo::Cache::builder()
            .ttl(Duration::from_secs(600))
            .redis_options(own(&server, name))
            .build();
        let idle: memo::RedisCache<String, String> = memo::Cache::builder()
            .idle(Duration::from_secs(600))
            .redis_options(own(&server, name))
            .build();
        plain.insert_with_ttl("token".to_string(), "t".to_string(), Duration::from_secs(2));
        assert_eq!(idle.get("token").as_deref(), Some("t"));
        let left = pttl_of(&server, name);
        assert!(
            (1..=2000).contains(&left),
            "the idle build's hit renewed a value of its own time to live (2 s) to {left} ms"
        );
        // A plain insert after it by the build without idle: renewed by the idle build's hits.
        plain.insert("token".to_string(), "u".to_string());
        plain.insert_with_ttl("other".to_string(), "o".to_string(), Duration::from_secs(2));
        plain.insert("other".to_string(), "p".to_string());
        assert_eq!(idle.get("other").as_deref(), Some("p"));
    }

    /// The name of the value of `key` in the store called `name`.
    fn value_name(server: &RedisServer, name: &str, key: &str) -> String {
        let names = redis_cli(
            server.port(),
            &["--scan", "--pattern", &format!("*{name}*")],
        );
        names
            .lines()
            .find(|line| line.ends_with(&format!("{{{key}}}")))
            .unwrap_or_else(|| panic!("no value of {key} in {names}"))
            .to_string()
    }

    /// A value in Redis that does not decode (written by a build whose `Serialize` changed
    /// with no change of the types' shapes, or damaged) is a miss, counted; but the claim that
    /// found it took no lock, and the value computed in its place was written unfenced (a
    /// plain `SET`): an `invalidate` made elsewhere during the computation was overwritten by
    /// the value computed before it (read by the next call), and a second handle (another
    /// process) that missed meanwhile computed too, where the lock would have made it wait.
    #[test]
    fn a_value_that_does_not_decode_is_replaced_under_the_keys_lock() {
        let server = RedisServer::start();
        let name = "undecodable-claim";
        let open = || -> memo::RedisCache<String, String> {
            memo::Cache::builder()
                .ttl(Duration::from_secs(600))
                .redis_options(own(&server, name).codec(memo::Codec::Json))
                .build()
        };
        let (here, elsewhere) = (open(), open());
        let damage = |key: &str| {
            let value = value_name(&server, name, key);
            redis_cli(server.port(), &["SET", &value, "{not json"]);
        };

        assert_eq!(here.get_or_compute("k", |_| "first".to_string()), "first");
        damage("k");
        let computed = here.get_or_compute("k", |_| {
            elsewhere.invalidate("k");
            "before the invalidate".to_string()
        });
        assert_eq!(computed, "before the invalidate");
        assert_eq!(
            elsewhere.get("k"),
            None,
            "a value computed before another handle's invalidate was stored over it"
        );

        assert_eq!(here.get_or_compute("s", |_| "first".to_string()), "first");
        damage("s");
        let runs = AtomicUsize::new(0);
        let (started, begun) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                here.get_or_compute("s", |_| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    started.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(500));
                    "computed once".to_string()
                })
            });
            begun.recv().unwrap();
            let got = elsewhere.get_or_compute("s", |_| {
                runs.fetch_add(1, Ordering::SeqCst);
                "computed twice".to_string()
            });
            assert_eq!(got, "computed once");
        });
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "both handles computed the key"
        );
    }

    /// A leader's fenced write whose reply never came (a server slow for a moment: the write
    /// was sent, and Redis refused it, the lock having been deleted by another process's
    /// `invalidate` during the computation) was taken as stored: the callers that joined the
    /// computation, one of them begun after that `invalidate` returned, were handed its value,
    /// computed before it (and a tiered store kept a copy of it). A fenced write whose outcome
    /// is unknown counts as a change seen, as a refused one does (`Store::changes_seen`): they
    /// look again, and no copy is kept.
    #[test]
    fn a_joiner_is_not_handed_a_value_whose_fenced_write_timed_out() {
        let server = RedisServer::start();
        let proxy = redis_server::SlowProxy::start(server.port(), Duration::ZERO);
        let slow = |name: &str| {
            let config = RedisConfig::from_url(&proxy.url())
                .unwrap()
                .command_timeout(Duration::from_millis(100))
                .connect_timeout(Duration::from_secs(2));
            RedisOptions::new(name).client(RedisClient::new(config).unwrap())
        };
        let name = "timed-out-fenced-write";
        let here: memo::RedisCache<String, String> = memo::Cache::builder()
            .ttl(Duration::from_secs(600))
            .redis_options(slow(name))
            .build();
        let elsewhere: memo::RedisCache<String, String> = memo::Cache::builder()
            .ttl(Duration::from_secs(600))
            .redis_options(own(&server, name))
            .build();
        joiner_after_a_timed_out_write(&here, &elsewhere, &proxy);
        let name = "timed-out-fenced-write-tiered";
        let here: memo::TieredCache<String, String> = memo::Cache::builder()
            .maxsize(10)
            .ttl(Duration::from_secs(600))
            .tiered_options(slow(name))
            .build();
        let elsewhere: memo::TieredCache<String, String> = memo::Cache::builder()
            .maxsize(10)
            .ttl(Duration::from_secs(600))
            .tiered_options(own(&server, name))
            .build();
        joiner_after_a_timed_out_write(&here, &elsewhere, &proxy);
        assert_eq!(
            memo::Store::held(here.store()),
            0,
            "a copy of the refused value kept"
        );
    }

    /// `here` (over `proxy`) computes a key; meanwhile `elsewhere` invalidates it and a call on
    /// `here` joins the computation; the computation's write goes out slow.
    fn joiner_after_a_timed_out_write<S: memo::Store<String, String>>(
        here: &Cache<String, String, S>,
        elsewhere: &Cache<String, String, S>,
        proxy: &redis_server::SlowProxy,
    ) {
        let (started, begun) = std::sync::mpsc::channel();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let joined = std::thread::scope(|scope| {
            let leader = scope.spawn(move || {
                here.get_or_compute("k", |_| {
                    started.send(()).unwrap();
                    finished.recv().unwrap();
                    "before the invalidate".to_string()
                })
            });
            begun.recv().unwrap();
            elsewhere.invalidate("k");
            // Begun after the invalidate returned: joins the leader's computation.
            let joiner = scope.spawn(|| here.get_or_compute("k", |_| "after".to_string()));
            std::thread::sleep(Duration::from_millis(300));
            // The leader's write goes out, and its reply comes past the call's deadline.
            proxy.set_delay(Duration::from_millis(250));
            finish.send(()).unwrap();
            assert_eq!(leader.join().unwrap(), "before the invalidate");
            joiner.join().unwrap()
        });
        proxy.set_delay(Duration::ZERO);
        assert_eq!(
            joined, "after",
            "a call begun after another process's invalidate got the value computed before it"
        );
        assert_eq!(elsewhere.get("k"), None, "Redis stored the refused write");
    }
}
