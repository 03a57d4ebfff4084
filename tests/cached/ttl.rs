//! Expiry on the mock clock: no sleeping to expire entries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memo::{Clock, cached};

static RATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "10s")]
fn rate(pair: &str) -> usize {
    RATE_RUNS.fetch_add(1, Ordering::SeqCst) + pair.len()
}

#[test]
fn entries_expire_after_their_ttl() {
    let (clock, mock) = Clock::mock();
    rate_cache().set_clock(clock);
    let first = rate("EURUSD");
    mock.increment(Duration::from_millis(9_999));
    assert_eq!(rate("EURUSD"), first, "still fresh");
    mock.increment(Duration::from_millis(1));
    assert_ne!(rate("EURUSD"), first, "expired: recomputed");
    assert_eq!(RATE_RUNS.load(Ordering::SeqCst), 2);
}

#[cached(ttl = Duration::from_secs(60), maxsize = 10_000)]
fn token(user: u32) -> String {
    format!("token-{user}")
}

#[test]
fn expired_entries_are_freed_without_being_read() {
    let (clock, mock) = Clock::mock();
    let cache = token_cache();
    cache.set_clock(clock);
    for user in 0..1_000 {
        token(user);
    }
    assert_eq!(cache.len(), 1_000);
    mock.increment(Duration::from_secs(61));
    // Nobody reads these keys again: the background sweep frees them (it runs every second).
    // Only `stats()` is read while waiting, as `len()` and `is_empty()` free expired entries
    // themselves.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cache.stats().expired < 1_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.expired, stats.len),
        (1_000, 0),
        "expired entries must not pile up"
    );
}

#[cached(ttl = "1m")]
fn session(id: u32) -> u32 {
    id
}

#[test]
fn writes_sweep_expired_entries_and_purge_frees_the_rest() {
    let (clock, mock) = Clock::mock();
    let cache = session_cache();
    cache.set_clock(clock);
    for id in 0..500 {
        session(id);
    }
    mock.increment(Duration::from_secs(120));
    // New writes remove expired entries as they go (every shard sees several of them).
    for id in 1_000..2_000 {
        session(id);
    }
    assert!(cache.stats().expired > 0, "{:?}", cache.stats());
    assert!(cache.len() < 1_500);
    cache.purge_expired();
    assert_eq!(cache.len(), 1_000);
    assert_eq!(
        cache.stats().expired,
        500,
        "each expired entry is counted once, whoever removed it"
    );
}

#[cached(ttl = "100s", jitter = 0.2)]
fn quote_of(id: u32) -> u32 {
    id
}

#[test]
fn jitter_spreads_the_expiry_of_entries_stored_together() {
    let (clock, mock) = Clock::mock();
    let cache = quote_of_cache();
    cache.set_clock(clock);
    for id in 0..1_000 {
        quote_of(id);
    }
    let live = || (0..1_000).filter(|id| cache.contains_key(id)).count();
    mock.increment(Duration::from_secs(79));
    assert_eq!(live(), 1_000);
    mock.increment(Duration::from_secs(21));
    let at_ttl = live();
    assert!(
        (300..700).contains(&at_ttl),
        "about half expire by the ttl, got {at_ttl}"
    );
    mock.increment(Duration::from_secs(20));
    assert_eq!(live(), 0);
}

/// Issue 21: a time to live per entry, read from the value (`ttl_from`), with `ttl` as the
/// fallback where it answers `None`.
mod issue21 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use memo::{Clock, cached};

    #[derive(Clone, Debug, PartialEq)]
    struct Response {
        body: String,
        max_age: Option<Duration>,
    }

    static FETCHES: AtomicUsize = AtomicUsize::new(0);

    /// `/news` says `max-age=5`; `/about` says nothing, and lives the `ttl`.
    #[cached(ttl = "60s", ttl_from = |response: &Response| response.max_age)]
    fn fetch(url: &str) -> Response {
        FETCHES.fetch_add(1, Ordering::SeqCst);
        Response {
            body: format!("<{url}>"),
            max_age: (url == "/news").then_some(Duration::from_secs(5)),
        }
    }

    #[test]
    fn each_value_lives_as_long_as_it_says_and_the_others_the_ttl() {
        let (clock, mock) = Clock::mock();
        fetch_cache().set_clock(clock);
        fetch("/news");
        fetch("/about");
        mock.increment(Duration::from_millis(4_999));
        fetch("/news");
        fetch("/about");
        assert_eq!(FETCHES.load(Ordering::SeqCst), 2, "both still fresh");
        mock.increment(Duration::from_millis(1));
        fetch("/news");
        assert_eq!(
            FETCHES.load(Ordering::SeqCst),
            3,
            "/news expired at its max-age"
        );
        fetch("/about");
        assert_eq!(FETCHES.load(Ordering::SeqCst), 3, "/about lives the ttl");
        mock.increment(Duration::from_secs(55));
        fetch("/about");
        assert_eq!(
            FETCHES.load(Ordering::SeqCst),
            4,
            "/about expired at the ttl"
        );
    }

    /// The same, for the cache's own methods (its own cache: tests run in parallel).
    #[cached(ttl = "60s", ttl_from = |response: &Response| response.max_age)]
    fn page(url: &str) -> Response {
        fetch_uncached(url)
    }

    #[test]
    fn an_explicit_ttl_wins() {
        let (clock, mock) = Clock::mock();
        let cache = page_cache();
        cache.set_clock(clock);
        let stored = Response {
            body: "pinned".to_string(),
            max_age: Some(Duration::from_secs(1)),
        };
        cache.insert_with_ttl(
            "/pinned".to_string(),
            stored.clone(),
            Duration::from_secs(30),
        );
        mock.increment(Duration::from_secs(10));
        assert_eq!(
            cache.get("/pinned"),
            Some(stored),
            "30 s, not the value's 1 s"
        );
        cache.insert("/plain".to_string(), fetch_uncached("/news"));
        mock.increment(Duration::from_secs(6));
        assert_eq!(
            cache.get("/plain"),
            None,
            "a plain insert follows the value's 5 s"
        );
    }

    fn fetch_uncached(url: &str) -> Response {
        Response {
            body: format!("<{url}>"),
            max_age: (url == "/news").then_some(Duration::from_secs(5)),
        }
    }

    #[derive(Clone, Debug)]
    struct Token {
        expires_in: u64,
    }

    static LOGINS: AtomicUsize = AtomicUsize::new(0);

    /// A token that does not say lives the `ttl`.
    fn token_ttl(token: &Token) -> Option<Duration> {
        (token.expires_in > 0).then(|| Duration::from_secs(token.expires_in))
    }

    /// Logs `user` in, counted in `runs`: user 0 does not exist, user `n` gets an `n` s token.
    fn issue(user: u32, runs: &AtomicUsize) -> Result<Token, String> {
        runs.fetch_add(1, Ordering::SeqCst);
        if user == 0 {
            return Err("no such user".to_string());
        }
        Ok(Token {
            expires_in: u64::from(user),
        })
    }

    /// A `fn` path, over the `Ok` value of a `Result`; errors are not stored.
    #[cached(ttl = "1h", ttl_from = token_ttl)]
    fn login(user: u32) -> Result<Token, String> {
        issue(user, &LOGINS)
    }

    #[test]
    fn a_result_gives_its_ok_value() {
        let (clock, mock) = Clock::mock();
        login_cache().set_clock(clock);
        login(10).unwrap();
        login(100).unwrap();
        mock.increment(Duration::from_secs(10));
        login(10).unwrap();
        login(100).unwrap();
        assert_eq!(
            LOGINS.load(Ordering::SeqCst),
            3,
            "the 10 s token expired, not the 100 s one"
        );
        assert!(login(0).is_err());
        assert!(login(0).is_err());
        assert_eq!(LOGINS.load(Ordering::SeqCst), 5, "errors are not stored");
    }

    static KEPT_LOGINS: AtomicUsize = AtomicUsize::new(0);

    /// `login` with its errors kept, as the whole `Result`.
    #[cached(ttl = "1h", ttl_from = token_ttl, cache_err = true)]
    fn kept_login(user: u32) -> Result<Token, String> {
        issue(user, &KEPT_LOGINS)
    }

    /// README: "an `Err` kept by `cache_err` gets the `ttl`": an error lives the function's
    /// hour, neither for ever nor the time `ttl_from` gives the `Ok` values.
    #[test]
    fn an_error_kept_by_cache_err_lives_the_ttl() {
        let (clock, mock) = Clock::mock();
        kept_login_cache().set_clock(clock);
        assert!(kept_login(0).is_err());
        kept_login(10).unwrap();
        mock.increment(Duration::from_secs(10));
        assert!(kept_login(0).is_err());
        kept_login(10).unwrap();
        assert_eq!(
            KEPT_LOGINS.load(Ordering::SeqCst),
            3,
            "the error is kept; the 10 s token expired"
        );
        mock.increment(Duration::from_millis(3_600_000 - 10_001));
        assert!(kept_login(0).is_err());
        assert_eq!(
            KEPT_LOGINS.load(Ordering::SeqCst),
            3,
            "the error is kept until the hour is up"
        );
        mock.increment(Duration::from_millis(1));
        assert!(kept_login(0).is_err());
        assert_eq!(
            KEPT_LOGINS.load(Ordering::SeqCst),
            4,
            "the error expired at the ttl"
        );
    }
}
