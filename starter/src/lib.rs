//! Pages fetched over HTTP, cached on disk by memo for 15 minutes: a second run of the tool (or a
//! second process running at the same time) downloads nothing.

use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the tool keeps of a page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The text of its `<title>`, or `""`.
    pub title: String,
    /// The size of its body, in bytes.
    pub bytes: usize,
}

/// Why a page could not be had. Errors are returned, never cached (only a `Page` is stored): the
/// next call tries again. They need neither `Clone` nor serde.
#[derive(Debug)]
pub enum FetchError {
    /// The server answered with an error status (404, 500, …).
    Status(u16),
    /// No answer: connection refused, timeout, a body that is not text.
    Network(reqwest::Error),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(code) => write!(f, "HTTP {code}"),
            Self::Network(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Status(_) => None,
            Self::Network(err) => Some(err),
        }
    }
}

/// The page at `url`: from the disk cache when it was fetched in the last 15 minutes (by this
/// process or another), else downloaded. The cache lives in `$MEMO_CACHE_DIR/pages`, else the
/// user's cache directory (`~/.cache/memo/pages`).
#[memo::cached(store = disk("pages"), ttl = "15m", maxsize = 10_000)]
pub fn fetch(url: &str) -> Result<Page, FetchError> {
    download(url)
}

/// Downloads `url` without the cache.
pub fn download(url: &str) -> Result<Page, FetchError> {
    static CLIENT: LazyLock<reqwest::blocking::Client> = LazyLock::new(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client")
    });
    let response = CLIENT.get(url).send().map_err(FetchError::Network)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let body = response.text().map_err(FetchError::Network)?;
    Ok(Page {
        title: title(&body).to_string(),
        bytes: body.len(),
    })
}

/// The text between `<title>` and `</title>`, trimmed.
fn title(html: &str) -> &str {
    let Some(start) = html.find("<title>") else {
        return "";
    };
    let rest = &html[start + "<title>".len()..];
    rest.find("</title>").map_or("", |end| rest[..end].trim())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_title_is_the_text_of_the_title_element() {
        assert_eq!(super::title("<head><title> Hello </title></head>"), "Hello");
        assert_eq!(super::title("<p>no title</p>"), "");
    }
}
