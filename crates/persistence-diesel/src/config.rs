use std::fmt;
use std::time::Duration;

/// How the adapter talks to PostgreSQL. Built by the bootstrap from its configuration; every
/// field has a default suited to one service instance on a small machine.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`. Never logged as is (see [`PgConfig::redacted_url`]).
    pub url: String,
    /// Connections in the pool (default 16).
    pub pool_size: usize,
    /// How long a request waits for a free connection before it gets
    /// `RepoError::Unavailable` (default 2 s).
    pub wait_timeout: Duration,
    /// How long opening one connection may take (default 3 s). Also bounds how long
    /// [`connect`](crate::connect) takes to report an unreachable database.
    pub connect_timeout: Duration,
    /// `statement_timeout` of every connection (default 5 s): a statement running longer is
    /// canceled and the request answers 503 rather than holding its locks.
    pub statement_timeout: Duration,
    /// `idle_in_transaction_session_timeout` of every connection (default 60 s): the server
    /// ends a session that sits in an open transaction that long. A backstop only; the adapter
    /// itself never leaves a transaction open (see [`crate::transaction`]).
    pub idle_in_transaction_timeout: Duration,
}

impl PgConfig {
    pub const DEFAULT_POOL_SIZE: usize = 16;
    pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

    /// The defaults, for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: Self::DEFAULT_POOL_SIZE,
            wait_timeout: Self::DEFAULT_WAIT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
            idle_in_transaction_timeout: Self::DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
        }
    }

    /// The URL with its password replaced by `***`, for logs and error messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("wait_timeout", &self.wait_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .finish()
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`; anything else unchanged.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _secret)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgres://shop:s3cr@t@db:5432/shop"),
            "postgres://shop:***@db:5432/shop"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact("not a url"), "not a url");
        let debug = format!("{:?}", PgConfig::new("postgres://u:pw@h/d"));
        assert!(!debug.contains("pw"), "{debug}");
    }
}
