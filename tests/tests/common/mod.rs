//! Fixtures shared by the end-to-end tests that check invariants in SQL.

// Each test file uses a part of these.
#![allow(dead_code)]

use tokio_postgres::{Client, NoTls};

/// A PostgreSQL database of the test's own, created fresh and dropped at the end (also when the
/// test fails), with one client session for the test's checks.
pub struct Database {
    server: String,
    name: String,
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Database {
    /// A new database named `shop_<tag>_<process>_<nanos>` on `TEST_DATABASE_URL`.
    pub fn create(tag: &str) -> Self {
        let server = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
            .trim_end_matches('/')
            .to_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("shop_{tag}_{}_{nanos}", std::process::id());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let admin = runtime.block_on(connect(&format!("{server}/postgres")));
        runtime
            .block_on(admin.batch_execute(&format!("CREATE DATABASE {name}")))
            .expect("CREATE DATABASE");
        let client = runtime.block_on(connect(&format!("{server}/{name}")));
        Self {
            server,
            name,
            runtime,
            client,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    pub fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.runtime
            .block_on(self.client.query(sql, &[]))
            .unwrap_or_else(|e| panic!("{e}: {sql}"))
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0].get(0)
    }

    /// Runs a query that lists violations (one text column); returns them.
    pub fn violations(&self, sql: &str) -> Vec<String> {
        self.rows(sql).iter().map(|row| row.get(0)).collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = format!("{}/postgres", self.server);
        self.runtime.block_on(async move {
            let admin = connect(&url).await;
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}

/// A client session on `url`, its connection driven on the current runtime.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}
