//! `/health/ready` reports the broker as `broker`.

use crate::connection::Connection;
use async_trait::async_trait;
use domain::ports::HealthCheck;
use std::sync::Arc;

/// A metadata request (list topics), bounded by the request timeout.
#[derive(Clone, Debug)]
pub struct KafkaHealth {
    conn: Arc<Connection>,
}

impl KafkaHealth {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self { conn }
    }
}

#[async_trait]
impl HealthCheck for KafkaHealth {
    fn name(&self) -> &'static str {
        "broker"
    }

    async fn check(&self) -> Result<(), String> {
        let client = self.conn.client().await.map_err(|e| e.to_string())?;
        self.conn
            .bounded("list topics", client.list_topics())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
