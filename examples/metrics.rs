//! Prometheus metrics of memoized functions, served on a local HTTP endpoint.
//!
//! Run: `cargo run --features metrics --example metrics`: it scrapes itself once and prints the
//! `memo_` lines. With `-- --serve` it then serves them until interrupted (Ctrl-C): point a Prometheus server or
//! `curl http://127.0.0.1:<port>/metrics` at the address it prints.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use memo::cached;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

#[cached(maxsize = 100)]
fn square(n: u64) -> u64 {
    n * n
}

#[cached]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

/// Serves `GET /metrics` with the Prometheus text format, on a loopback port of its own.
fn serve(handle: PrometheusHandle) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0_u8; 1024];
            let _ = stream.read(&mut request);
            let body = handle.render();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// What a Prometheus server would read.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("the endpoint answers");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn main() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let addr = serve(recorder.handle());
    metrics::set_global_recorder(recorder).expect("the only recorder");

    for n in [1, 2, 3, 1, 2, 3, 1] {
        square(n);
    }
    let _ = parse("42");
    let _ = parse("42");
    let _ = parse("x");

    // Counters are published once a second off the hit path; publish now for this scrape.
    memo::publish_metrics();
    for line in scrape(addr).lines().filter(|l| l.starts_with("memo_")) {
        println!("{line}");
    }
    if std::env::args().any(|a| a == "--serve") {
        println!("serving http://{addr}/metrics until interrupted (Ctrl-C)");
        loop {
            std::thread::park();
        }
    }
}
