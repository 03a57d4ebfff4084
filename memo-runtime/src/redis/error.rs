//! Why a Redis call gave no answer: the caller computes instead, and counts it.

use std::fmt;

/// A failed Redis call. Every one of these means "no answer": the cache computes the value itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The circuit breaker is open: Redis failed repeatedly and is left alone until the back-off
    /// ends, so this call failed without a round trip.
    Open,
    /// No answer within the command timeout.
    Timeout,
    /// Not sent: the call had spent its command timeout on earlier commands (one deadline per
    /// call, however many commands it sends).
    Deadline,
    /// Redis answered with an error, or the connection failed.
    Redis(ServerError),
    /// The configuration cannot be used (a malformed URL, say).
    Config(String),
    /// The client's runtime thread is gone.
    Closed,
    /// A [`Redlock`](super::Redlock) heard from fewer than a majority of its servers.
    NoQuorum {
        /// Servers that answered.
        answered: usize,
        /// The majority needed.
        needed: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("circuit breaker open"),
            Self::Timeout => f.write_str("command timed out"),
            Self::Deadline => f.write_str("not sent: the call's deadline has passed"),
            Self::Redis(err) => write!(f, "{err}"),
            Self::Config(why) => write!(f, "configuration: {why}"),
            Self::Closed => f.write_str("client closed"),
            Self::NoQuorum { answered, needed } => write!(
                f,
                "redlock: {answered} servers answered, a majority needs {needed}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(err) => Some(err),
            _ => None,
        }
    }
}

impl From<::redis::RedisError> for Error {
    /// The connection's own response timeout (set to the command timeout) is a timeout too.
    fn from(err: ::redis::RedisError) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else {
            Self::Redis(ServerError(err))
        }
    }
}

/// What Redis or the connection said when a call failed, as its `Display` (the client library's
/// error type is not part of memo's API, so a new version of that library does not break memo's).
pub struct ServerError(pub(super) ::redis::RedisError);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
