use async_trait::async_trait;

/// A dependency that `/health/ready` reports on (database, cache, broker).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// `database`, `cache` or `broker`.
    fn name(&self) -> &'static str;
    /// `Err(reason)` when the dependency cannot serve a correct answer right now.
    async fn check(&self) -> Result<(), String>;
}
