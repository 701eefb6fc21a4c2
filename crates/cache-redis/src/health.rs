//! `/health/ready` reports Redis as `cache`.

use crate::conn::Conn;
use async_trait::async_trait;
use domain::ports::HealthCheck;
use fred::prelude::*;

/// PING with the adapters' short timeout.
#[derive(Clone)]
pub struct RedisHealth {
    conn: Conn,
}

impl std::fmt::Debug for RedisHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHealth").finish_non_exhaustive()
    }
}

impl RedisHealth {
    pub(crate) fn new(conn: Conn) -> Self {
        Self { conn }
    }
}

#[async_trait]
impl HealthCheck for RedisHealth {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn check(&self) -> Result<(), String> {
        let client = self.conn.client()?;
        let pong: String = self.conn.bounded("PING", client.ping(None)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(format!("PING answered {pong:?}"))
        }
    }
}
