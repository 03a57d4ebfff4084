//! A web scraper whose second run downloads nothing: `fetch(url)` is memoized on disk for as
//! long as the page's `Cache-Control: max-age` says (`ttl_from`), 15 minutes for a page that
//! does not say, and past that a page that sent `ETag` or `Last-Modified` is asked for again
//! conditionally, so an unchanged page (`304 Not Modified`) costs no body.
//!
//! ```sh
//! cargo run --example scraper -- http://127.0.0.1:8000/
//! ```
//!
//! Without a URL it serves a page of its own on `127.0.0.1` and scrapes it twice. Entries live in
//! `$MEMO_CACHE_DIR/scraper` (or the OS cache directory's `memo/scraper`); run it twice to see
//! the second run answered from disk, and `-- --clear` to empty it.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use memo::{Config, DiskOptions, DiskStore, Store, cached};
use reqwest::header::{CACHE_CONTROL, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde::{Deserialize, Serialize};

/// A downloaded page and the validators to ask for it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Page {
    /// The HTML.
    pub(crate) body: String,
    /// The `ETag` header, for `If-None-Match`.
    pub(crate) etag: Option<String>,
    /// The `Last-Modified` header, for `If-Modified-Since`.
    pub(crate) last_modified: Option<String>,
    /// How long the page may be kept, in seconds: `Cache-Control: max-age`, as the server sent
    /// it with the page (or with the `304` that renewed it).
    pub(crate) max_age: Option<u64>,
}

impl Page {
    /// How long the cache keeps this page: its `max-age`, if it gave one.
    fn fresh_for(&self) -> Option<Duration> {
        self.max_age.map(Duration::from_secs)
    }
}

/// The `max-age` of a `Cache-Control` header (`public, max-age=60`).
fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .find_map(|directive| directive.trim().strip_prefix("max-age="))
        .and_then(|seconds| seconds.trim().parse().ok())
}

/// How long a page that gives no `max-age` is fresh: 15 minutes, unless the program set another
/// time first.
pub(crate) static TTL: OnceLock<Duration> = OnceLock::new();

fn ttl() -> Duration {
    *TTL.get_or_init(|| Duration::from_secs(15 * 60))
}

/// The last version of every page, kept past its freshness for conditional requests.
static VALIDATED: LazyLock<DiskStore<String, Page>> = LazyLock::new(|| {
    DiskOptions::new("scraper")
        .function(concat!(module_path!(), "::VALIDATED"), 1)
        .open(&Config::new().maxsize(10_000))
});

fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: LazyLock<reqwest::blocking::Client> = LazyLock::new(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client without TLS")
    });
    &CLIENT
}

/// Downloads `url`; when `previous` has validators, conditionally, and a `304` returns it.
/// HTTP errors are errors (`raise_for_status`), so they are never cached.
pub(crate) fn download(url: &str, previous: Option<Page>) -> Result<Page, String> {
    let mut request = client().get(url);
    if let Some(page) = &previous {
        if let Some(etag) = &page.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(date) = &page.last_modified {
            request = request.header(IF_MODIFIED_SINCE, date);
        }
    }
    let response = request.send().map_err(|err| err.to_string())?;
    let header = |response: &reqwest::blocking::Response, name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let max_age = header(&response, CACHE_CONTROL).and_then(|value| max_age(&value));
    if response.status() == reqwest::StatusCode::NOT_MODIFIED
        && let Some(page) = previous
    {
        return Ok(Page { max_age, ..page });
    }
    let response = response.error_for_status().map_err(|err| err.to_string())?;
    let (etag, last_modified) = (header(&response, ETAG), header(&response, LAST_MODIFIED));
    let body = response.text().map_err(|err| err.to_string())?;
    Ok(Page {
        body,
        etag,
        last_modified,
        max_age,
    })
}

/// `url`'s page: from disk while fresh (for its `max-age`, else the `ttl`), else downloaded
/// (conditionally when it can be).
#[cached(store = disk("scraper"), ttl = ttl(), ttl_from = Page::fresh_for)]
pub(crate) fn fetch(url: &str) -> Result<Page, String> {
    let page = download(url, VALIDATED.get(&url))?;
    if page.etag.is_some() || page.last_modified.is_some() {
        VALIDATED.insert(url.to_string(), page.clone());
    }
    Ok(page)
}

/// Forgets every page, fresh or kept for conditional requests.
pub(crate) fn clear() {
    fetch_cache().clear();
    VALIDATED.clear();
}

/// The text of the `h1`, `h2` and `h3` headings of `html`, in document order.
pub(crate) fn headings(html: &str) -> Vec<String> {
    static SELECTOR: LazyLock<scraper::Selector> =
        LazyLock::new(|| scraper::Selector::parse("h1, h2, h3").expect("a valid selector"));
    scraper::Html::parse_document(html)
        .select(&SELECTOR)
        .map(|h| h.text().collect::<String>().trim().to_string())
        .collect()
}

/// The headings of `url`'s page.
pub(crate) fn titles(url: &str) -> Result<Vec<String>, String> {
    fetch(url).map(|page| headings(&page.body))
}

/// Serves one page on `127.0.0.1` for the demo; returns its URL.
fn serve_demo_page() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}/", listener.local_addr().expect("an address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request);
            let body = "<h1>memo</h1><h2>Disk store</h2><p>text</p><h3>Scraper</h3>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn main() {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.iter().any(|arg| arg == "--clear") {
        clear();
        println!("cache cleared");
        return;
    }
    if urls.is_empty() {
        let url = serve_demo_page();
        urls = vec![url.clone(), url];
    }
    for url in &urls {
        match titles(url) {
            Ok(titles) => println!("{url}: {}", titles.join(" | ")),
            Err(err) => eprintln!("{url}: {err}"),
        }
    }
    let stats = fetch_cache().stats();
    println!(
        "downloads: {}, from disk: {}, cache: {}",
        stats.misses,
        stats.hits,
        fetch_cache().store().dir().display()
    );
}
