//! Token replacement across instances: two `shop` processes on one PostgreSQL database.
//!
//! A token rolled on instance A must answer 401 on instance B within B's
//! `token_version_ttl` (1 s, the documented delay; the test allows 3 s for scheduling), while
//! the new token works on both at once. And a changed `ADMIN_TOKEN` replaces the bootstrap
//! admin's token rather than adding an admin: the old one answers 401 on both instances.

use e2e::Shop;
use std::process::Command;
use std::time::{Duration, Instant};

/// A fresh database on the test server, dropped at the end.
struct Db {
    server: String,
    name: String,
}

impl Db {
    fn fresh() -> Self {
        let server = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
            .trim_end_matches('/')
            .to_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let name = format!(
            "shop_tokens_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000_000
        );
        psql(
            &format!("{server}/postgres"),
            &format!("CREATE DATABASE {name}"),
        );
        Self { server, name }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        psql(
            &format!("{}/postgres", self.server),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, query: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            query,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_token_rolled_on_one_instance_answers_401_on_the_other_within_the_delay() {
    let db = Db::fresh();
    let url = db.url();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("ADMIN_TOKEN", "first-admin-token"),
    ];
    let a = Shop::start(&env);
    let b = Shop::start(&env);

    let (status, body) = a.request("POST", "/api/v1/users", None, Some(r#"{"name":"kim"}"#));
    assert_eq!(status, 201, "{body}");
    let old = json(&body)["token"].as_str().unwrap().to_owned();
    // B has read (and cached) the current version.
    assert_eq!(
        b.request("GET", "/api/v1/users/me", Some(&old), None).0,
        200
    );

    let (status, body) = a.request("POST", "/api/v1/users/me/token", Some(&old), None);
    assert_eq!(status, 201, "{body}");
    let new = json(&body)["token"].as_str().unwrap().to_owned();
    let rolled = Instant::now();
    assert_eq!(
        a.request("GET", "/api/v1/users/me", Some(&old), None).0,
        401
    );
    // The new token is newer than B's cached version: B reads the store and accepts it.
    assert_eq!(
        b.request("GET", "/api/v1/users/me", Some(&new), None).0,
        200
    );
    loop {
        let (status, _) = b.request("GET", "/api/v1/users/me", Some(&old), None);
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            rolled.elapsed() < Duration::from_secs(3),
            "the old token still works on B {:?} after the roll",
            rolled.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        a.request("GET", "/api/v1/users/me", Some(&new), None).0,
        200
    );

    // A restart of B with another ADMIN_TOKEN replaces the bootstrap admin's token.
    drop(b);
    let b = Shop::start(&[
        ("DATABASE_URL", url.as_str()),
        ("ADMIN_TOKEN", "second-admin-token"),
    ]);
    let (status, body) = b.request("GET", "/api/v1/users/me", Some("second-admin-token"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["id"], 1);
    assert_eq!(
        b.request("GET", "/api/v1/users/me", Some("first-admin-token"), None)
            .0,
        401
    );
    // A, still configured with the old token (never used there, so not cached), refuses it.
    assert_eq!(
        a.request("GET", "/api/v1/users/me", Some("first-admin-token"), None)
            .0,
        401
    );
    assert_eq!(
        psql(&url, "SELECT count(*) FROM users WHERE role = 'ADMIN'"),
        "1",
        "a second admin was created"
    );
}
