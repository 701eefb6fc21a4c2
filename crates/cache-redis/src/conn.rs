//! The pool shared by the adapters, the per-command options that make them fail fast, and
//! script execution (EVALSHA, falling back to EVAL after a Redis restart emptied its script
//! cache).

use fred::clients::WithOptions;
use fred::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A Lua script shipped with this crate, identified by its SHA-1 for EVALSHA.
pub(crate) struct LuaScript {
    pub(crate) name: &'static str,
    lua: &'static str,
    sha: String,
}

impl LuaScript {
    pub(crate) fn new(name: &'static str, lua: &'static str) -> Self {
        Self {
            name,
            lua,
            sha: fred::util::sha1_hash(lua),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Conn {
    pool: Pool,
    options: Options,
    /// A hard bound on top of fred's own command timeout: whatever happens inside the client,
    /// a caller never waits longer than this.
    deadline: Duration,
    prefix: Arc<str>,
}

impl Conn {
    pub(crate) fn new(pool: Pool, prefix: String, command_timeout: Duration) -> Self {
        let options = Options {
            // Never resend: a script whose answer was lost may have run already.
            max_attempts: Some(1),
            timeout: Some(command_timeout),
            // Fail at once while the connection is down instead of queueing until reconnect.
            fail_fast: true,
            ..Options::default()
        };
        Self {
            pool,
            options,
            deadline: command_timeout * 2,
            prefix: prefix.into(),
        }
    }

    /// The same pool with another command timeout (and hard deadline).
    pub(crate) fn with_timeout(&self, command_timeout: Duration) -> Self {
        let mut conn = self.clone();
        conn.options.timeout = Some(command_timeout);
        conn.deadline = command_timeout * 2;
        conn
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connected client with the fail-fast options (round-robin over the pool's connected
    /// clients). While the pool is reconnecting the command would only wait in a queue for
    /// its timeout, so the caller is refused at once instead.
    pub(crate) fn client(&self) -> Result<WithOptions<Client>, String> {
        let client = self.pool.next_connected();
        if client.state() != ClientState::Connected {
            return Err("Redis connection is down (reconnecting in the background)".into());
        }
        Ok(client.with_options(&self.options))
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.pool
            .clients()
            .iter()
            .all(|c| c.state() == ClientState::Connected)
    }

    pub(crate) async fn wait_for_connect(&self) -> Result<(), Error> {
        self.pool.wait_for_connect().await
    }

    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.pool.quit().await {
            tracing::debug!(error = %e, "closing the Redis pool");
        }
    }

    /// Runs `fut` under the hard deadline.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.deadline, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer within {:?}", self.deadline)),
        }
    }

    /// Runs a script. The error is a human-readable reason, for the ports' `Unavailable`.
    pub(crate) async fn eval(
        &self,
        script: &LuaScript,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, String> {
        let client = self.client()?;
        let run = async {
            match client
                .evalsha::<Value, _, _, _>(script.sha.as_str(), keys.clone(), args.clone())
                .await
            {
                // Redis restarted (or SCRIPT FLUSH): EVAL runs it and caches it again.
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    client.eval(script.lua, keys, args).await
                }
                other => other,
            }
        };
        self.bounded(script.name, run).await
    }
}
