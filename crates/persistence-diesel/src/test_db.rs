//! Throw-away databases for tests and benchmarks (feature `test-support`): one migrated
//! template per migration set, one fresh clone per test.
//!
//! The template `shop_tmpl_<hash of migrations/>` is built at most once, by whichever process
//! gets there first: a PostgreSQL advisory lock makes concurrent test binaries wait for each
//! other, and a template that is not marked `is_template` (a build that died half way) is
//! rebuilt. Each test then gets `CREATE DATABASE shop_test_<uuid> TEMPLATE ...` (a file-level
//! copy: milliseconds) and drops it when the [`FreshDatabase`] is dropped.
//!
//! The server is `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`, trust
//! auth), without a database name. Failures panic: this is test scaffolding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use std::path::Path;
use tokio::sync::OnceCell;

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

pub fn database_url(name: &str) -> String {
    format!("{}/{name}", server_url())
}

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&database_url("postgres"))
        .await
        .expect("PostgreSQL must be running for these tests (see TEST_DATABASE_URL)")
}

const TEMPLATE_LOCK: i64 = 0x5348_4f50_544d_504c; // "SHOPTMPL"

/// FNV-1a over every migration file, in path order: a new or changed migration gives a new
/// template.
fn migrations_hash() -> String {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("migrations dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        let name = file
            .strip_prefix(&root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let content = std::fs::read(&file).expect("readable migration");
        for byte in name.bytes().chain(content) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The name of the migrated template, built if needed.
pub async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("shop_tmpl_{}", migrations_hash());
            let mut conn = admin().await;
            conn.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
                .await
                .expect("lock");
            let ready = is_template(&mut conn, &name).await;
            if !ready {
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .expect("drop half-built template");
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create template");
                crate::migrate(&database_url(&name))
                    .await
                    .expect("migrate template");
                // No connections from now on: CREATE DATABASE ... TEMPLATE refuses to copy a
                // database somebody is connected to.
                conn.batch_execute(&format!(
                    "ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
                ))
                .await
                .expect("mark template");
            }
            // Templates of older migration sets are of no use any more.
            for stale in stale_templates(&mut conn, &name).await {
                conn.batch_execute(&format!("ALTER DATABASE {stale} WITH IS_TEMPLATE false"))
                    .await
                    .expect("unmark stale template");
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {stale} WITH (FORCE)"))
                    .await
                    .expect("drop stale template");
            }
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
                .await
                .expect("unlock");
            name
        })
        .await
}

async fn stale_templates(conn: &mut AsyncPgConnection, current: &str) -> Vec<String> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'shop\\_tmpl\\_%' AND datname <> $1",
    )
    .bind::<diesel::sql_types::Text, _>(current)
    .load::<Name>(conn)
    .await
    .expect("pg_database")
    .into_iter()
    .map(|n| n.datname)
    .collect()
}

async fn is_template(conn: &mut AsyncPgConnection, name: &str) -> bool {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        datistemplate: bool,
    }
    diesel::sql_query("SELECT datistemplate FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Found>(conn)
        .await
        .optional()
        .expect("pg_database")
        .is_some_and(|f| f.datistemplate)
}

/// A fresh, migrated database, dropped (with every connection to it) when this is dropped.
pub struct FreshDatabase {
    pub name: String,
    pub url: String,
}

impl FreshDatabase {
    pub async fn new() -> Self {
        let template = template().await;
        let name = format!("shop_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin().await;
        conn.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .expect("clone template");
        let url = database_url(&name);
        Self { name, url }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime or not, and on any thread: use a runtime of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut conn = admin().await;
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
