//! The scraper and CLI recipes (`examples/scraper.rs`, `examples/cli.rs`) run as real processes
//! against a real HTTP server on `127.0.0.1`, each test with a cache directory of its own.
//!
//! `cargo test` builds the examples before it runs the tests; they are found beside the test
//! binary (`target/<profile>/examples/`).
#![cfg(feature = "disk")]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A request the server answered: its path, and whether it was conditional (`If-None-Match`).
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    path: String,
    conditional: bool,
    status: u16,
}

/// A page server on a loopback port: `/missing` is a 404; every other path is a page with two
/// headings and an `ETag`, answered `304` to a request that carries that tag. Paths under
/// `/short/` say `Cache-Control: max-age=1`.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        // Ends with the test process; each connection carries one request.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || answer(stream, &log));
            }
        });
        Self { base, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests for `path` had each status.
    fn count(&self, path: &str, status: u16) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path == path && s.status == status)
            .count()
    }
}

fn answer(mut stream: std::net::TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut request = Vec::new();
    let mut buf = [0_u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let tag = format!("\"v1{path}\"");
    let conditional = text
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("if-none-match:") && l.contains(&tag));
    let (status, body) = if path == "/missing" {
        (404, String::new())
    } else if conditional {
        (304, String::new())
    } else {
        (
            200,
            format!("<h1>Title {path}</h1><p>x</p><h2>Part {path}</h2>"),
        )
    };
    let cache_control = if path.starts_with("/short/") {
        "Cache-Control: max-age=1\r\n"
    } else {
        ""
    };
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Seen {
            path,
            conditional,
            status,
        });
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        _ => "Not Found",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nETag: {tag}\r\n{cache_control}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A cache directory of its own for each test, removed at the end.
struct CacheDir(PathBuf);

impl CacheDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "memo-recipes-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example `name`, built by `cargo test` beside this test binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is built by `cargo test --features disk`",
        path.display()
    );
    path
}

fn command(name: &str, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(example(name));
    command.args(args).env("MEMO_CACHE_DIR", dir);
    command
}

fn run(name: &str, dir: &Path, args: &[&str]) -> Output {
    let out = command(name, dir, args).output().unwrap();
    assert!(
        out.status.success() || args.iter().any(|a| a.ends_with("/missing")),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_scrapers_second_run_downloads_nothing() {
    let server = Server::start();
    let dir = CacheDir::new();
    let (a, b) = (server.url("/a"), server.url("/b"));
    let first = stdout(&run("scraper", &dir.0, &[&a, &b]));
    assert!(first.contains("Title /a | Part /a"), "{first}");
    let second = stdout(&run("scraper", &dir.0, &[&a, &b]));
    assert!(second.contains("Title /b | Part /b"), "{second}");
    assert_eq!(server.seen().len(), 2, "{:?}", server.seen());
    assert!(second.contains("downloads: 0, from disk: 2"), "{second}");
}

/// Issue 21: a page is kept as long as its `Cache-Control: max-age` says (`ttl_from`), and a
/// page that says nothing for the recipe's 15 minutes.
#[test]
fn a_page_is_fetched_again_after_its_max_age_and_one_without_keeps_the_ttl() {
    let server = Server::start();
    let dir = CacheDir::new();
    let (short, plain) = (server.url("/short/news"), server.url("/plain"));
    run("scraper", &dir.0, &[&short, &plain]);
    assert_eq!(server.count("/short/news", 200), 1);
    assert_eq!(server.count("/plain", 200), 1);
    // Past the page's 1 s, the next run asks for it again (conditionally: it has an ETag);
    // runs are repeated for at most 10 s, so a slow machine only takes longer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.count("/short/news", 304) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(300));
        run("scraper", &dir.0, &[&short, &plain]);
    }
    assert_eq!(server.count("/short/news", 304), 1, "{:?}", server.seen());
    // The page without a max-age was never asked for again.
    assert_eq!(
        server.seen().iter().filter(|s| s.path == "/plain").count(),
        1
    );
}

#[test]
fn a_stale_page_is_asked_for_conditionally_and_a_304_keeps_its_body() {
    let server = Server::start();
    let dir = CacheDir::new();
    let page = server.url("/page");
    // Fresh for no time at all: the next run finds the entry stale.
    let first = stdout(&run("cli", &dir.0, &["--ttl", "0", "titles", &page]));
    let second = stdout(&run("cli", &dir.0, &["titles", &page]));
    assert_eq!(first, second);
    assert!(second.contains("Title /page | Part /page"), "{second}");
    assert_eq!(server.count("/page", 200), 1);
    assert_eq!(server.count("/page", 304), 1);
    assert!(server.seen().iter().filter(|s| s.conditional).count() == 1);
    // Fresh again (for the default 15 minutes): a third run asks nothing.
    run("cli", &dir.0, &["titles", &page]);
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn http_errors_are_not_cached() {
    let server = Server::start();
    let dir = CacheDir::new();
    let missing = server.url("/missing");
    for _ in 0..2 {
        let out = run("cli", &dir.0, &["titles", &missing]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    }
    assert_eq!(server.count("/missing", 404), 2);
}

#[test]
fn no_cache_always_downloads_and_cache_clear_forgets() {
    let server = Server::start();
    let dir = CacheDir::new();
    let page = server.url("/p");
    run("cli", &dir.0, &["--no-cache", "titles", &page]);
    run("cli", &dir.0, &["--no-cache", "titles", &page]);
    assert_eq!(server.count("/p", 200), 2);
    run("cli", &dir.0, &["titles", &page]);
    let stats = stdout(&run("cli", &dir.0, &["cache", "stats"]));
    assert!(stats.contains("pages: 1"), "{stats}");
    let cleared = stdout(&run("cli", &dir.0, &["cache", "clear"]));
    assert!(cleared.contains("removed 1 pages"), "{cleared}");
    run("cli", &dir.0, &["titles", &page]);
    // Cleared, validators included: a full download again, not a conditional one.
    assert_eq!(server.count("/p", 200), 4);
    assert_eq!(server.count("/p", 304), 0);
}

#[test]
fn two_cli_processes_at_once_download_each_url_once() {
    let server = Server::start();
    let dir = CacheDir::new();
    let paths: Vec<String> = (0..12).map(|i| format!("/many/{i}")).collect();
    let list = dir.0.with_extension("urls.txt");
    let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
    std::fs::write(&list, urls.join("\n")).unwrap();
    let list_arg = list.display().to_string();
    let children: Vec<_> = (0..2)
        .map(|_| {
            command("cli", &dir.0, &["titles", "--from", &list_arg])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 12, "{text}");
        assert!(text.contains("Title /many/11"), "{text}");
    }
    let _ = std::fs::remove_file(&list);
    for path in &paths {
        assert_eq!(server.count(path, 200), 1, "{path}: {:?}", server.seen());
    }
    assert_eq!(server.seen().len(), 12);
}

/// The README's first command shows every store without flags: the disk section runs a second
/// process that hits, and the Redis section starts its own server.
#[test]
fn the_tour_shows_the_disk_and_redis_stores() {
    let out = Command::new(example("tour"))
        .env_remove("MEMO_REDIS_URL")
        .env_remove("MEMO_CACHE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("second process: geocode(\"Lisbon\") = (75.0, 75.0)")
            && text.contains("(misses 0, hits 1)"),
        "{text}"
    );
    assert!(text.contains("from Redis"), "{text}");
    assert!(text.contains("hits 1, misses 1"), "{text}");
}

/// The metrics recipe scraped by a real Prometheus server (Debian package `prometheus`), which
/// then answers a query for one of its counters.
#[cfg(feature = "metrics")]
#[test]
fn prometheus_scrapes_the_metrics_recipe_and_answers_a_query() {
    use std::io::BufRead;
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut recipe = Killed(
        Command::new(example("metrics"))
            .arg("--serve")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let target = std::io::BufReader::new(recipe.0.stdout.take().unwrap())
        .lines()
        .find_map(|line| {
            let line = line.ok()?;
            let rest = line.strip_prefix("serving http://")?;
            Some(rest.split('/').next()?.to_string())
        })
        .expect("the recipe says where it serves");
    let dir = CacheDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: memo\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    // Prometheus's log goes to a file so that a failure shows why; a port taken between our
    // probe and Prometheus's bind is tried again with another.
    let log_path = dir.0.join("prometheus.log");
    let mut started = None;
    for attempt in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(&log_path).unwrap();
        let mut prometheus = Killed(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.0.join(format!("data{attempt}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("prometheus not found: install it with `apt-get install -y prometheus`"),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline
            && prometheus.0.try_wait().unwrap().is_none()
            && !http_get(port, "/-/ready").contains("Ready")
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        if http_get(port, "/-/ready").contains("Ready") {
            started = Some((prometheus, port));
            break;
        }
    }
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let (_prometheus, port) =
        started.unwrap_or_else(|| panic!("Prometheus did not become ready; its log:\n{}", log()));
    // memo_hits_total{fn="metrics::square"}: the recipe calls square 7 times on 3 numbers.
    let query = "/api/v1/query?query=memo_hits_total%7Bfn%3D%22metrics%3A%3Asquare%22%7D";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let answer = loop {
        let answer = http_get(port, query);
        if answer.contains("\"value\":[") || std::time::Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let targets = http_get(port, "/api/v1/targets");
    let why = format!("query: {answer}\ntargets: {targets}\nlog:\n{}", log());
    assert!(answer.contains(r#""job":"memo""#), "{why}");
    assert!(answer.ends_with(r#","4"]}]}}"#), "{why}");
}

/// The body of `GET path` from `127.0.0.1:port` ("" when nothing answers).
#[cfg(feature = "metrics")]
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .unwrap_or_default()
}

/// The async recipe over real HTTP: 32 concurrent callers of a cold key cost the API one
/// request, and the early-refreshed key read every 100 ms makes no caller wait after its first
/// miss.
#[test]
fn the_async_recipe_fetches_a_cold_key_once_and_refreshes_early() {
    let out = Command::new(example("async_api")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("the API served /quote/INIT 1 times"),
        "{text}"
    );
}
