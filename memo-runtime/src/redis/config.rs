//! Where the Redis server is and how long to wait for it.
//!
//! One URL names the server: `MEMO_REDIS_URL`, else `REDIS_URL`, else `redis://127.0.0.1:6379`.
//! `rediss://` turns TLS on, and `redis://user:password@host` authenticates (ACL user, or only a
//! password with `redis://:password@host`). A cluster is named by its own scheme,
//! `redis+cluster://host:port,host:port` (`rediss+cluster://` with TLS), listing seed nodes: one
//! string in one environment variable says everything, and a plain `redis://` URL can never be
//! mistaken for a cluster (a flag beside the URL would be one more thing to forget). For the same
//! reason the URL's query may set the timeouts, as redis-py's `socket_timeout` does:
//! `redis://cache:6379/0?command_timeout=250ms&connect_timeout=1s` (`ms` or `s`); redis-py's
//! own `socket_timeout=0.25` and `socket_connect_timeout=1` (seconds) are read too.

use std::time::Duration;

use ::redis::IntoConnectionInfo;

use super::breaker::BreakerConfig;
use super::error::Error;

/// The URL used when neither `MEMO_REDIS_URL` nor `REDIS_URL` is set.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The URL the environment names: `MEMO_REDIS_URL`, else `REDIS_URL`, else [`DEFAULT_URL`].
pub(crate) fn env_url() -> String {
    url_of(
        std::env::var("MEMO_REDIS_URL").ok(),
        std::env::var("REDIS_URL").ok(),
    )
}

/// [`env_url`] from the values of `MEMO_REDIS_URL` and `REDIS_URL` (`None`: unset, or not
/// Unicode); a blank one counts as unset.
fn url_of(memo_redis_url: Option<String>, redis_url: Option<String>) -> String {
    [memo_redis_url, redis_url]
        .into_iter()
        .flatten()
        .find(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// How to reach Redis and how long to wait for it.
///
/// # Examples
///
/// ```
/// use memo::redis::RedisConfig;
/// use std::time::Duration;
///
/// let config = RedisConfig::from_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")?
///     .command_timeout(Duration::from_millis(50));
/// assert!(config.is_cluster());
/// assert_eq!(config.nodes().len(), 2);
/// # Ok::<(), memo::redis::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    nodes: Vec<String>,
    cluster: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) bulk_timeout: Duration,
    pub(crate) breaker: BreakerConfig,
    pub(crate) root_cert: Option<Vec<u8>>,
}

impl RedisConfig {
    /// The server named by `MEMO_REDIS_URL`, else `REDIS_URL`, else [`DEFAULT_URL`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::redis::RedisConfig;
    ///
    /// let config = RedisConfig::from_env()?;
    /// assert_eq!(config.nodes().len(), 1);
    /// # Ok::<(), memo::redis::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        Self::from_url(&env_url())
    }

    /// One server (`redis://`, `rediss://`, `unix://`) or a cluster's seed nodes
    /// (`redis+cluster://host:port,host:port`, `rediss+cluster://…`); user and password apply
    /// to every node of a cluster. The query may set [`connect_timeout`](Self::connect_timeout),
    /// [`command_timeout`](Self::command_timeout) and [`bulk_timeout`](Self::bulk_timeout), in
    /// whole `ms` or `s`; redis-py's `socket_connect_timeout` and `socket_timeout` set the first
    /// two, in its seconds as well (`socket_timeout=0.25`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo::redis::RedisConfig;
    /// use std::time::Duration;
    ///
    /// let config = RedisConfig::from_url("rediss://app:secret@cache.internal:6380/2")?;
    /// assert!(!config.is_cluster());
    /// assert!(RedisConfig::from_url("http://nope").is_err());
    ///
    /// let slow_network = RedisConfig::from_url("redis://cache:6379/0?command_timeout=250ms")?;
    /// assert_eq!(slow_network.timeouts().command, Duration::from_millis(250));
    /// let from_redis_py = RedisConfig::from_url("redis://cache:6379/0?socket_timeout=0.25")?;
    /// assert_eq!(from_redis_py.timeouts().command, Duration::from_millis(250));
    /// assert_eq!(slow_network.nodes(), ["redis://cache:6379/0"]);
    /// assert!(RedisConfig::from_url("redis://cache?command_timeout=250").is_err());
    /// assert!(RedisConfig::from_url("redis://cache?comand_timeout=250ms").is_err());
    /// # Ok::<(), memo::redis::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let (url, timeouts) = take_timeouts(url.trim())?;
        let url = url.as_str();
        let (nodes, cluster) = match url.split_once("+cluster://") {
            Some((scheme, rest)) => (cluster_nodes(scheme, rest)?, true),
            None => (vec![url.to_string()], false),
        };
        for node in &nodes {
            node.as_str()
                .into_connection_info()
                .map_err(|err| Error::Config(format!("{}: {err}", redact(node))))?;
        }
        Ok(Self {
            nodes,
            cluster,
            connect_timeout: timeouts.connect,
            command_timeout: timeouts.command,
            bulk_timeout: timeouts.bulk,
            breaker: BreakerConfig::default(),
            root_cert: None,
        })
    }

    /// The timeouts in force.
    #[must_use]
    pub const fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            command: self.command_timeout,
            bulk: self.bulk_timeout,
        }
    }

    /// How long a connection attempt may take (default 250 ms).
    #[must_use]
    pub const fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most one command waits, connection included (default 100 ms): past it the command
    /// reports [`Error::Timeout`] and the cache computes. The commands of one memoized call
    /// share it: together they add at most this much ([`Error::Deadline`] for one that would
    /// start past it).
    #[must_use]
    pub const fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The bound on multi-round-trip work such as [`scan_del`](super::RedisClient::scan_del)
    /// (default 5 s).
    #[must_use]
    pub const fn bulk_timeout(mut self, timeout: Duration) -> Self {
        self.bulk_timeout = timeout;
        self
    }

    /// When to stop trying a failing server, and for how long.
    #[must_use]
    pub const fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Trusts this CA (PEM) for `rediss://` instead of the system's roots: a server whose
    /// certificate comes from a private CA.
    #[must_use]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert = Some(pem.into());
        self
    }

    /// The node URLs: one server, or a cluster's seeds.
    #[must_use]
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// `host:port` of the first node, without scheme or credentials: for log lines.
    #[must_use]
    pub fn host(&self) -> &str {
        let url = self.nodes.first().map_or("", String::as_str);
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        rest.split('/').next().unwrap_or(rest)
    }

    /// Whether the URL named a cluster (`redis+cluster://`).
    #[must_use]
    pub const fn is_cluster(&self) -> bool {
        self.cluster
    }
}

/// Passwords stay out of logs and `Debug` output.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| redact(n)).collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("bulk_timeout", &self.bulk_timeout)
            .field("breaker", &self.breaker)
            .field("tls_root_cert", &self.root_cert.is_some())
            .finish()
    }
}

/// The timeouts of a [`RedisConfig`] (see its methods of the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// How long a connection attempt may take (default 250 ms).
    pub connect: Duration,
    /// The most one command, or one memoized call's commands together, may wait (default 100 ms).
    pub command: Duration,
    /// The bound on multi-round-trip work (default 5 s).
    pub bulk: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_millis(250),
            command: Duration::from_millis(100),
            bulk: Duration::from_secs(5),
        }
    }
}

/// `url` without the timeouts its query sets, and the timeouts (the defaults where unset); the
/// rest of the query stays for the `redis` crate (`protocol=resp3`).
fn take_timeouts(url: &str) -> Result<(String, Timeouts), Error> {
    let mut timeouts = Timeouts::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), timeouts));
    };
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // redis-py's names take its seconds (`socket_timeout=0.25`) as well.
        let (slot, seconds) = match name {
            "connect_timeout" => (&mut timeouts.connect, false),
            "command_timeout" => (&mut timeouts.command, false),
            "bulk_timeout" => (&mut timeouts.bulk, false),
            "socket_connect_timeout" => (&mut timeouts.connect, true),
            "socket_timeout" => (&mut timeouts.command, true),
            // redis-py's too, with nothing to set here: whether a command that timed out is
            // sent again (never: the call computes), and how long its blocking pool waits for a
            // connection. Dropped, not refused as a misspelled timeout.
            "retry_on_timeout" | "timeout" => continue,
            // The redis crate ignores what it does not know: a misspelled timeout would leave
            // the default in force without a word.
            _ if name.contains("timeout") => {
                return Err(Error::Config(format!(
                    "`{name}`: expected `connect_timeout`, `command_timeout` or `bulk_timeout` \
                     (or redis-py's `socket_connect_timeout`, `socket_timeout`)"
                )));
            }
            _ => {
                rest.push(pair);
                continue;
            }
        };
        let parsed = parse_timeout(value).or_else(|| seconds.then(|| parse_seconds(value))?);
        *slot = parsed.ok_or_else(|| {
            let or_seconds = if seconds {
                " or of seconds (`0.25`)"
            } else {
                ""
            };
            Error::Config(format!(
                "`{name}={value}`: expected a whole number of `ms` or `s` above 0{or_seconds}, \
                 e.g. `{name}=250ms`"
            ))
        })?;
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, timeouts))
}

/// `250ms` or `2s`; `None` for anything else, zero included.
fn parse_timeout(value: &str) -> Option<Duration> {
    let (number, unit) = match value.strip_suffix("ms") {
        Some(number) => (number, Duration::from_millis(1)),
        None => (value.strip_suffix('s')?, Duration::from_secs(1)),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let duration = unit.checked_mul(number.parse().ok()?)?;
    (!duration.is_zero()).then_some(duration)
}

/// Seconds as redis-py reads them (`0.25`, `5`); `None` for anything else, zero included.
fn parse_seconds(value: &str) -> Option<Duration> {
    if !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let duration = Duration::try_from_secs_f64(value.parse().ok()?).ok()?;
    (!duration.is_zero()).then_some(duration)
}

/// `redis+cluster://user:pw@a:1,b:2/` → `["redis://user:pw@a:1", "redis://user:pw@b:2"]`.
fn cluster_nodes(scheme: &str, rest: &str) -> Result<Vec<String>, Error> {
    if scheme != "redis" && scheme != "rediss" {
        return Err(Error::Config(format!(
            "unknown scheme `{scheme}+cluster`; expected `redis+cluster` or `rediss+cluster`"
        )));
    }
    let rest = rest.split(['/', '?']).next().unwrap_or_default();
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("{scheme}://{auth}{host}"))
        .collect();
    if nodes.is_empty() {
        return Err(Error::Config("a cluster URL names no node".to_string()));
    }
    Ok(nodes)
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((auth, host)) => {
            let user = auth.split(':').next().unwrap_or_default();
            let masked = if auth.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}")
        }
        None => url.to_string(),
    }
}

/// A cluster node's URL for `host:port`, with the scheme and credentials of the seeds.
pub(crate) fn node_url(seed: &str, host_port: &str) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let auth = rest.rsplit_once('@').map(|(auth, _)| format!("{auth}@"));
    format!("{scheme}://{}{host_port}", auth.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README: the server is `MEMO_REDIS_URL`'s, then `REDIS_URL`'s, then
    /// `redis://127.0.0.1:6379`; a blank variable counts as unset.
    #[test]
    fn memo_redis_url_then_redis_url_then_the_default() {
        let some = |url: &str| Some(url.to_string());
        let memo = "redis://memo:1";
        let redis = "redis://redis:2";
        assert_eq!(url_of(some(memo), some(redis)), memo);
        assert_eq!(url_of(some(memo), None), memo);
        assert_eq!(url_of(None, some(redis)), redis);
        assert_eq!(url_of(some(" "), some(redis)), redis);
        assert_eq!(url_of(None, None), "redis://127.0.0.1:6379");
        assert_eq!(url_of(some(""), some(" \t")), DEFAULT_URL);
    }

    #[test]
    fn cluster_urls_split_into_nodes_with_credentials() {
        let config = RedisConfig::from_url("rediss+cluster://u:p@a:1, b:2/0").unwrap();
        assert!(config.is_cluster());
        assert_eq!(config.nodes(), ["rediss://u:p@a:1", "rediss://u:p@b:2"]);
        assert!(RedisConfig::from_url("redis+cluster://").is_err());
        assert!(RedisConfig::from_url("mongo+cluster://a:1").is_err());
        assert!(RedisConfig::from_url("not a url").is_err());
    }

    #[test]
    fn the_query_sets_the_timeouts_and_keeps_the_rest() {
        let config = RedisConfig::from_url(
            "redis://h:1/2?connect_timeout=2s&protocol=resp3&command_timeout=250ms&bulk_timeout=30s",
        )
        .unwrap();
        assert_eq!(
            config.timeouts(),
            Timeouts {
                connect: Duration::from_secs(2),
                command: Duration::from_millis(250),
                bulk: Duration::from_secs(30),
            }
        );
        assert_eq!(config.nodes(), ["redis://h:1/2?protocol=resp3"]);
        assert_eq!(config.host(), "h:1");
        let cluster = RedisConfig::from_url("redis+cluster://a:1,b:2?command_timeout=1s").unwrap();
        assert_eq!(cluster.nodes(), ["redis://a:1", "redis://b:2"]);
        assert_eq!(cluster.timeouts().command, Duration::from_secs(1));
        let plain = RedisConfig::from_url("redis://h:1?").unwrap();
        assert_eq!(plain.nodes(), ["redis://h:1"]);
        // The defaults the README and the docs state.
        assert_eq!(
            plain.timeouts(),
            Timeouts {
                connect: Duration::from_millis(250),
                command: Duration::from_millis(100),
                bulk: Duration::from_secs(5),
            }
        );
        // redis-py's names and seconds.
        let py = RedisConfig::from_url("redis://h:1?socket_timeout=0.25&socket_connect_timeout=2")
            .unwrap();
        assert_eq!(py.timeouts().command, Duration::from_millis(250));
        assert_eq!(py.timeouts().connect, Duration::from_secs(2));
        assert_eq!(py.nodes(), ["redis://h:1"]);
        for wrong in [
            "socket_timeout=0",
            "socket_timeout=-1",
            "socket_timeout=x",
            "socket_timeout=1e3",
        ] {
            assert!(
                RedisConfig::from_url(&format!("redis://h:1?{wrong}")).is_err(),
                "{wrong}"
            );
        }
        // Attack 3: redis-py's other query names with "timeout" in them (`retry_on_timeout`, its
        // pool's `timeout`) were refused as misspelled timeouts, so a redis-py URL did not work
        // as it is.
        let py = RedisConfig::from_url(
            "redis://h:1/0?socket_timeout=5&retry_on_timeout=true&timeout=20&health_check_interval=30",
        )
        .unwrap();
        assert_eq!(py.timeouts().command, Duration::from_secs(5));
        assert_eq!(py.nodes(), ["redis://h:1/0?health_check_interval=30"]);
        // A builder method called after the URL wins.
        let set = RedisConfig::from_url("redis://h:1?command_timeout=1s")
            .unwrap()
            .command_timeout(Duration::from_millis(20));
        assert_eq!(set.timeouts().command, Duration::from_millis(20));
    }

    #[test]
    fn a_timeout_without_a_unit_is_an_error_naming_the_form() {
        for value in [
            "250",
            "0ms",
            "0s",
            "1.5s",
            "-1s",
            "ms",
            "2m",
            "",
            "99999999999999999999s",
        ] {
            let url = format!("redis://h:1?command_timeout={value}");
            let Err(Error::Config(why)) = RedisConfig::from_url(&url) else {
                panic!("{url} was accepted");
            };
            assert!(why.contains("`ms` or `s`"), "{why}");
        }
        assert!(RedisConfig::from_url("redis://h:1?connect_timeout").is_err());
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        let config = RedisConfig::from_url("redis://app:hunter2@h:6379").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app:***@h:6379"), "{shown}");
        assert_eq!(config.host(), "h:6379");
        assert_eq!(
            RedisConfig::from_url("rediss://h2:1/0").unwrap().host(),
            "h2:1"
        );
        assert_eq!(
            node_url("redis://app:pw@h:1", "10.0.0.9:7001"),
            "redis://app:pw@10.0.0.9:7001"
        );
    }
}
