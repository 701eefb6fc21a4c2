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

#[tokio::test]
async fn a_user_rolls_their_token_and_the_old_one_answers_401() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let r = app
        .post_raw("/api/v1/users/me/token", Some(&buyer.token), "", &[])
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.ok(201);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["createdAt", "token", "userId"]);
    assert_eq!(body["userId"].as_i64(), Some(buyer.id));
    let new = body["token"].as_str().unwrap().to_owned();
    assert_ne!(new, buyer.token);
    app.get("/api/v1/users/me", Some(&buyer.token))
        .await
        .problem(401, "UNAUTHENTICATED");
    assert_eq!(
        app.get("/api/v1/users/me", Some(&new)).await.ok(200)["id"],
        buyer.id
    );
    // Without a token: 401.
    app.post_raw("/api/v1/users/me/token", None, "", &[])
        .await
        .problem(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_keyed_roll_is_replayed_with_the_same_token() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("admin-two", "ADMIN").await;
    let buyer = app.buyer().await;
    let path = format!("/api/v1/users/{}/token", buyer.id);
    let first = app
        .post_key(&path, &admin.token, "reissue-1", &json!({}))
        .await;
    let token = first.ok(201)["token"].as_str().unwrap().to_owned();
    let again = app
        .post_key(&path, &admin.token, "reissue-1", &json!({}))
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.ok(201)["token"].as_str(), Some(token.as_str()));
    // One replacement only: the replayed token is the working one.
    assert_eq!(
        app.get("/api/v1/users/me", Some(&token)).await.ok(200)["id"],
        buyer.id
    );

    let me = app
        .post_key("/api/v1/users/me/token", &token, "roll-1", &json!({}))
        .await;
    let rolled = me.ok(201)["token"].as_str().unwrap().to_owned();
    app.get("/api/v1/users/me", Some(&token))
        .await
        .problem(401, "UNAUTHENTICATED");
    let replay = app
        .post_key("/api/v1/users/me/token", &rolled, "roll-1", &json!({}))
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.ok(201)["token"].as_str(), Some(rolled.as_str()));
}

#[tokio::test]
async fn only_an_admin_reissues_tokens_and_unknown_users_are_404() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let seller = app.seller().await;
    let path = format!("/api/v1/users/{}/token", buyer.id);
    for token in [&buyer.token, &seller.token] {
        app.post_raw(&path, Some(token), "", &[])
            .await
            .problem(403, "FORBIDDEN");
    }
    app.post_raw(&path, None, "", &[])
        .await
        .problem(401, "UNAUTHENTICATED");
    app.post_raw(
        "/api/v1/users/999999/token",
        Some(&app.admin_token),
        "",
        &[],
    )
    .await
    .problem(404, "NOT_FOUND");
    app.post_raw("/api/v1/users/abc/token", Some(&app.admin_token), "", &[])
        .await
        .problem(400, "VALIDATION_FAILED");
    // The buyer's token still works after the refusals; the admin's re-issue retires it.
    app.get("/api/v1/users/me", Some(&buyer.token))
        .await
        .ok(200);
    let issued = app.post_raw(&path, Some(&app.admin_token), "", &[]).await;
    let new = issued.ok(201)["token"].as_str().unwrap().to_owned();
    app.get("/api/v1/users/me", Some(&buyer.token))
        .await
        .problem(401, "UNAUTHENTICATED");
    assert_eq!(
        app.get("/api/v1/users/me", Some(&new)).await.ok(200)["id"],
        buyer.id
    );
    // The bootstrap admin's token is ADMIN_TOKEN: not replaced through the API.
    app.post_raw("/api/v1/users/me/token", Some(&app.admin_token), "", &[])
        .await
        .problem(403, "FORBIDDEN");
}
