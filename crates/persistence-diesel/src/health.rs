use crate::error;
use crate::recycle::PgPool;
use async_trait::async_trait;
use diesel_async::SimpleAsyncConnection;
use domain::ports::HealthCheck;
use std::time::Duration;

/// The `database` dependency of `/health/ready`: a pooled connection answers `SELECT 1`.
#[derive(Clone)]
pub struct PgHealthCheck {
    pool: PgPool,
    timeout: Duration,
}

impl PgHealthCheck {
    pub(crate) fn new(pool: PgPool, timeout: Option<Duration>) -> Self {
        Self {
            pool,
            timeout: timeout.unwrap_or(Duration::from_secs(2)),
        }
    }
}

#[async_trait]
impl HealthCheck for PgHealthCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        let probe = async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| error::from_pool(e).to_string())?;
            conn.batch_execute("SELECT 1")
                .await
                .map_err(|e| error::from_session(&conn, e).to_string())
        };
        match tokio::time::timeout(self.timeout, probe).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}
