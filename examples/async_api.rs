//! An async API client, cached, over real HTTP: a `ttl`, stale-while-revalidate with `stale`,
//! early refresh, and one request for many concurrent callers of a cold key. The API is a small
//! server this example starts on `127.0.0.1`, answering each request after 150 ms; the client is
//! async `reqwest`.
//!
//! Run: `cargo run --release --example async_api`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use memo::cached;

/// The quote API's address, set when its server starts.
static API: OnceLock<String> = OnceLock::new();

/// Requests the API answered, by path.
type Served = Arc<Mutex<BTreeMap<String, u32>>>;

/// Starts the quote API: `GET /quote/<symbol>` answers `<symbol> @ 101.<n>` after 150 ms, `n`
/// counting that symbol's requests.
fn start_api() -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let _ = API.set(format!(
        "http://{}",
        listener.local_addr().expect("its address")
    ));
    let served = Served::default();
    let counts = Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counts = Arc::clone(&counts);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let n = {
                    let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                    let n = counts.entry(path.clone()).or_default();
                    *n += 1;
                    *n
                };
                std::thread::sleep(Duration::from_millis(150));
                let symbol = path.trim_start_matches("/quote/");
                let body = format!("{symbol} @ 101.{n:02}");
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    served
}

/// One request to the quote API; errors as text (they are returned, never cached).
async fn fetch_quote(symbol: &str) -> Result<String, String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    let url = format!("{}/quote/{symbol}", API.get().expect("the API is started"));
    let response = CLIENT
        .get_or_init(reqwest::Client::new)
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|err| err.to_string())?;
    response.text().await.map_err(|err| err.to_string())
}

/// Entries live 1 s; for 5 s more an expired entry is still served while one task refreshes it.
#[cached(ttl = "1s", stale = "5s")]
async fn quote(symbol: &str) -> Result<String, String> {
    fetch_quote(symbol).await
}

/// Refreshed in the background before it expires, so callers do not wait after the first.
#[cached(ttl = "1s", refresh = "early")]
async fn index(name: &str) -> Result<String, String> {
    fetch_quote(name).await
}

async fn timed<F: Future<Output = Result<String, String>>>(label: &str, call: F) {
    let start = Instant::now();
    let result = call.await;
    println!(
        "{label:<44} {:<14} {:>9.1?}",
        result.unwrap_or_else(|e| e),
        start.elapsed()
    );
}

#[tokio::main]
async fn main() {
    let served = start_api();

    println!("-- stale = \"5s\"");
    timed("first call (miss):", quote("ACME")).await;
    timed("again (hit):", quote("ACME")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    timed("after the ttl: stale value, refresh starts:", quote("ACME")).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    timed("after the refresh (hit, new value):", quote("ACME")).await;

    println!("-- refresh = \"early\"");
    timed("first call (miss):", index("DOW")).await;
    // Read every 100 ms for three ttls: the refreshes happen in the background.
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now();
        index("DOW").await.expect("a quote");
        slowest = slowest.max(start.elapsed());
    }
    timed("30 reads over 3 s, then one more:", index("DOW")).await;
    println!("the slowest of the 30 reads took {slowest:?}");

    println!("-- 32 tasks, one cold key");
    let start = Instant::now();
    let tasks: Vec<_> = (0..32).map(|_| tokio::spawn(quote("INIT"))).collect();
    for task in tasks {
        task.await.expect("task").expect("quote");
    }
    println!("32 callers served in {:?}", start.elapsed());

    let q = quote_cache().stats();
    let i = index_cache().stats();
    println!(
        "quote: {} misses, {} refreshes; index: {} misses, {} coalesced, {} refreshes",
        q.misses, q.refreshes, i.misses, i.coalesced, i.refreshes
    );
    let served = served.lock().unwrap_or_else(PoisonError::into_inner);
    for (path, count) in served.iter() {
        println!("the API served {path} {count} times");
    }
}
