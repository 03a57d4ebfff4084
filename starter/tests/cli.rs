//! The tool run as a user runs it, against a real HTTP server on `127.0.0.1`, each test with a
//! cache directory of its own.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A page server on a free loopback port: `/missing` is a 404, every other path a page titled
/// after its path. Counts the requests it answered.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request_line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // The rest of the request head.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
                let (status, body) = if path == "/missing" {
                    ("404 Not Found", "<title>gone</title>".to_string())
                } else {
                    ("200 OK", format!("<html><title>Page {path}</title></html>"))
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { base, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Runs the tool with `args` and the cache in `dir`.
fn run(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memo-starter"))
        .args(args)
        .env("MEMO_CACHE_DIR", dir.path())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_second_run_downloads_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (server.url("/a"), server.url("/b"));
    let first = run(&dir, &["titles", &a, &b]);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(server.requests(), 2);
    let second = run(&dir, &["titles", &a, &b]);
    assert!(second.status.success(), "{second:?}");
    assert_eq!(server.requests(), 2, "the second run is answered from disk");
    assert_eq!(stdout(&first), stdout(&second));
    assert!(stdout(&second).contains("Page /a"), "{}", stdout(&second));
}

#[test]
fn http_errors_are_not_cached() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let missing = server.url("/missing");
    for run_number in 1..=2 {
        let out = run(&dir, &["titles", &missing]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 404"));
        assert_eq!(server.requests(), run_number, "each run asks again");
    }
    assert!(stdout(&run(&dir, &["cache", "stats"])).contains("pages: 0"));
}

#[test]
fn no_cache_downloads_and_clear_forgets() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let page = server.url("/p");
    run(&dir, &["titles", &page]);
    run(&dir, &["titles", "--no-cache", &page]);
    assert_eq!(server.requests(), 2, "--no-cache always downloads");
    assert!(stdout(&run(&dir, &["cache", "stats"])).contains("pages: 1"));
    assert!(stdout(&run(&dir, &["cache", "clear"])).contains("removed 1 pages"));
    run(&dir, &["titles", &page]);
    assert_eq!(server.requests(), 3, "a cleared page is downloaded again");
}
