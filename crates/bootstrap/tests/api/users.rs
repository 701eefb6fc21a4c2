use crate::helpers::TestApp;
use serde_json::json;

#[tokio::test]
async fn sign_up_returns_the_user_and_its_token_once() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/v1/users", None, &json!({"name": "Kim"}))
        .await;
    let body = r.ok(201);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["createdAt", "id", "name", "role", "token"]);
    assert_eq!(body["name"], "Kim");
    assert_eq!(body["role"], "BUYER");
    assert!(body["id"].as_i64().unwrap() > 0);
    let created = body["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
    time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();

    let token = body["token"].as_str().unwrap();
    let me = app.get("/api/v1/users/me", Some(token)).await;
    let me = me.ok(200);
    assert_eq!(me["id"], body["id"]);
    assert_eq!(me["name"], "Kim");
    assert_eq!(me["role"], "BUYER");
    assert!(me.get("token").is_none(), "the token is never shown again");
}

#[tokio::test]
async fn only_an_admin_creates_sellers_and_admins() {
    let app = TestApp::spawn().await;
    for role in ["SELLER", "ADMIN"] {
        let r = app
            .post("/api/v1/users", None, &json!({"name": "x", "role": role}))
            .await;
        r.problem(403, "FORBIDDEN");
    }
    let buyer = app.buyer().await;
    let r = app
        .post(
            "/api/v1/users",
            Some(&buyer.token),
            &json!({"name": "x", "role": "SELLER"}),
        )
        .await;
    r.problem(403, "FORBIDDEN");

    let r = app
        .post(
            "/api/v1/users",
            Some(&app.admin_token),
            &json!({"name": "Lee", "role": "SELLER"}),
        )
        .await;
    assert_eq!(r.ok(201)["role"], "SELLER");
    let r = app
        .post(
            "/api/v1/users",
            None,
            &json!({"name": "Park", "role": "BUYER"}),
        )
        .await;
    assert_eq!(r.ok(201)["role"], "BUYER");
}

#[tokio::test]
async fn a_user_is_visible_to_itself_and_admins_only() {
    let app = TestApp::spawn().await;
    let a = app.buyer().await;
    let b = app.buyer().await;
    let own = app
        .get(&format!("/api/v1/users/{}", a.id), Some(&a.token))
        .await;
    assert_eq!(own.ok(200)["id"], a.id);
    let other = app
        .get(&format!("/api/v1/users/{}", a.id), Some(&b.token))
        .await;
    other.problem(404, "NOT_FOUND");
    let missing = app.get("/api/v1/users/999999", Some(&b.token)).await;
    missing.problem(404, "NOT_FOUND");
    let admin = app
        .get(&format!("/api/v1/users/{}", a.id), Some(&app.admin_token))
        .await;
    assert_eq!(admin.ok(200)["id"], a.id);
}

#[tokio::test]
async fn names_are_validated() {
    let app = TestApp::spawn().await;
    for name in [json!(""), json!("   "), json!("x".repeat(101))] {
        let r = app
            .post("/api/v1/users", None, &json!({"name": name}))
            .await;
        r.invalid("name");
    }
    let r = app
        .post("/api/v1/users", None, &json!({"name": "x", "role": "KING"}))
        .await;
    r.invalid("role");
}
