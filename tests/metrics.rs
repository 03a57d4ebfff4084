//! The `metrics` feature, end to end: a Prometheus endpoint on loopback, scraped over HTTP, shows
//! exactly the calls made. Its own test binary: it installs the process-wide recorder.

#![cfg(feature = "metrics")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use memo::cached;
use metrics_exporter_prometheus::PrometheusBuilder;

#[cached(maxsize = 100)]
fn square(n: u64) -> u64 {
    n * n
}

#[cached]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

/// A disk cache whose directory cannot be made (see the test): each call is a backend error.
#[cfg(feature = "disk")]
#[cached(store = disk)]
fn stored(n: u64) -> u64 {
    n + 1
}

/// One Prometheus scrape of a loopback endpoint serving `render()`.
fn scrape(render: impl Fn() -> String + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0_u8; 1024];
        let _ = stream.read(&mut request).unwrap();
        let body = render();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    server.join().unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `promtool check metrics` (Debian package `prometheus`) finds nothing to say about `text`:
/// every metric has its HELP and TYPE, names and units follow Prometheus' rules.
fn promtool_accepts(text: &str) {
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: install it with `apt-get install -y prometheus`");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_scrape_shows_the_calls_made() {
    #[cfg(feature = "disk")]
    let file = {
        // A cache directory under a regular file: it cannot be created, not even by root.
        let file = std::env::temp_dir().join(format!("memo-metrics-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        // SAFETY: the only test of this binary, before any cache opens or thread reads it.
        unsafe { std::env::set_var("MEMO_CACHE_DIR", file.join("cache")) };
        assert_eq!(stored(1), 2);
        file
    };
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();

    for n in [1, 2, 3, 1, 2, 3, 1] {
        square(n);
    }
    assert!(parse("42").is_ok());
    assert!(parse("42").is_ok());
    assert!(parse("x").is_err());
    memo::publish_metrics();

    let text = scrape(move || handle.render());
    let square_fn = r#"{fn="metrics::square"}"#;
    let parse_fn = r#"{fn="metrics::parse"}"#;
    assert_eq!(
        value(&text, &format!("memo_hits_total{square_fn}")),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("memo_misses_total{square_fn}")),
        Some(3.0)
    );
    assert_eq!(value(&text, &format!("memo_entries{square_fn}")), Some(3.0));
    assert_eq!(
        value(&text, &format!("memo_hits_total{parse_fn}")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &format!("memo_misses_total{parse_fn}")),
        Some(2.0)
    );
    assert_eq!(
        value(&text, &format!("memo_load_errors_total{parse_fn}")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &format!("memo_load_seconds_count{square_fn}")),
        Some(3.0)
    );
    promtool_accepts(&text);
    #[cfg(feature = "disk")]
    {
        let line = text
            .lines()
            .find(|l| l.starts_with("memo_backend_errors_total{") && l.contains("metrics::stored"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains(r#"backend="disk""#), "{line}");
        assert!(line.ends_with(" 1"), "{line}");
        assert!(!text.contains(r#"memo_backend_errors_total{fn="metrics::square""#));
        std::fs::remove_file(file).unwrap();
    }
}
