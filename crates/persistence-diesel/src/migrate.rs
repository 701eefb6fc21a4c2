//! The embedded migrations of the top-level `migrations/` directory.

use crate::config::redact;
use diesel::Connection;
use diesel::RunQueryDsl;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// Every migration, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Serializes migrations of several instances starting at once (any fixed number will do; it
/// only has to be the same for every instance).
const MIGRATION_LOCK: i64 = 0x5348_4f50_4d49_4752; // "SHOPMIGR"

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot reach PostgreSQL at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("database migration failed: {0}")]
    Failed(String),
}

/// Applies the pending migrations and returns their versions, oldest first. Safe to run from
/// several processes at once (an advisory lock makes them take turns); a no-op when the schema
/// is current.
///
/// diesel's migration harness is synchronous, so it runs on a blocking thread through
/// diesel-async's `AsyncConnectionWrapper` (no libpq needed).
///
/// # Errors
/// `Unreachable` when no connection can be opened; `Failed` when a migration fails (that
/// migration's transaction is rolled back).
pub async fn migrate(url: &str) -> Result<Vec<String>, MigrateError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || run(&url))
        .await
        .map_err(|e| MigrateError::Failed(format!("migration task died: {e}")))?
}

fn run(url: &str) -> Result<Vec<String>, MigrateError> {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url).map_err(|e| {
        MigrateError::Unreachable {
            url: redact(url),
            reason: e.to_string(),
        }
    })?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .map_err(|e| MigrateError::Failed(e.to_string()))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        .map_err(|e| MigrateError::Failed(e.to_string()));
    // Released with the session anyway; unlocking explicitly keeps the next instance from
    // waiting for the connection to close.
    let unlocked = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .map_err(|e| MigrateError::Failed(e.to_string()));
    let applied = applied?;
    unlocked?;
    Ok(applied)
}
