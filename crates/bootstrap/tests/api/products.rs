use crate::helpers::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn a_seller_lists_a_product_and_everyone_reads_it() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let r = app
        .post(
            "/api/v1/products",
            Some(&seller.token),
            &json!({"name": "Keyboard", "price": 45_000, "stock": 7}),
        )
        .await;
    let p = r.ok(201).clone();
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "createdAt",
            "id",
            "name",
            "price",
            "sellerId",
            "status",
            "stock",
            "updatedAt"
        ]
    );
    assert_eq!(p["sellerId"], seller.id);
    assert_eq!(p["status"], "ON_SALE");
    assert_eq!(
        (p["price"].as_i64(), p["stock"].as_i64()),
        (Some(45_000), Some(7))
    );

    let id = p["id"].as_i64().unwrap();
    let anonymous = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!(anonymous.ok(200), &p);
    let buyer = app.buyer().await;
    let as_buyer = app
        .get(&format!("/api/v1/products/{id}"), Some(&buyer.token))
        .await;
    assert_eq!(as_buyer.ok(200)["name"], "Keyboard");
}

#[tokio::test]
async fn buyers_cannot_list_products_and_sellers_only_edit_their_own() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let r = app
        .post(
            "/api/v1/products",
            Some(&buyer.token),
            &json!({"name": "x", "price": 1, "stock": 1}),
        )
        .await;
    r.problem(403, "FORBIDDEN");

    let owner = app.seller().await;
    let other = app.seller().await;
    let id = app.product(&owner, 1_000, 5).await;
    let path = format!("/api/v1/products/{id}");
    app.patch(&path, Some(&other.token), &json!({"price": 1}))
        .await
        .problem(403, "FORBIDDEN");
    app.post(
        &format!("{path}/stock-adjustments"),
        Some(&other.token),
        &json!({"delta": 5}),
    )
    .await
    .problem(403, "FORBIDDEN");
    assert_eq!(app.stock(id).await, 5);

    let r = app
        .patch(
            &path,
            Some(&owner.token),
            &json!({"name": "Renamed", "price": 1_500}),
        )
        .await;
    let p = r.ok(200);
    assert_eq!(
        (p["name"].as_str(), p["price"].as_i64()),
        (Some("Renamed"), Some(1_500))
    );
    let r = app
        .patch(&path, Some(&app.admin_token), &json!({"status": "PAUSED"}))
        .await;
    assert_eq!(r.ok(200)["status"], "PAUSED");
    app.patch(
        "/api/v1/products/999999",
        Some(&owner.token),
        &json!({"price": 5}),
    )
    .await
    .problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn product_fields_are_validated() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    for (body, field) in [
        (json!({"name": "x", "price": 0, "stock": 1}), "price"),
        (json!({"name": "x", "price": 1, "stock": -1}), "stock"),
        (json!({"name": "", "price": 1, "stock": 1}), "name"),
        (
            json!({"name": "x", "price": 1, "stock": 1, "status": "GONE"}),
            "status",
        ),
        (json!({"name": "x", "price": 1.5, "stock": 1}), "price"),
        (
            json!({"name": "x", "price": 1, "stock": 1, "sellerId": 1}),
            "sellerId",
        ),
    ] {
        app.post("/api/v1/products", Some(&seller.token), &body)
            .await
            .invalid(field);
    }
    let list = app
        .get("/api/v1/products?status=ON_SALE", Some(&seller.token))
        .await;
    assert_eq!(list.ok(200)["totalItems"], 0, "nothing was created");
}

#[tokio::test]
async fn the_catalog_pages_by_id_and_hides_unsold_products_from_buyers() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.product(&seller, 100, 1).await);
    }
    app.patch(
        &format!("/api/v1/products/{}", ids[4]),
        Some(&seller.token),
        &json!({"status": "OFF"}),
    )
    .await
    .ok(200);

    let r = app.get("/api/v1/products?page=2&size=2", None).await;
    let page = r.ok(200);
    assert_eq!(page["page"], 2);
    assert_eq!(page["size"], 2);
    assert_eq!(page["totalItems"], 4, "buyers see ON_SALE only");
    assert_eq!(page["totalPages"], 2);
    let got: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, &ids[2..4]);

    let off = app
        .get("/api/v1/products?status=OFF", Some(&seller.token))
        .await;
    assert_eq!(off.ok(200)["items"][0]["id"], ids[4]);

    let buyer = app.buyer().await;
    app.get(&format!("/api/v1/products/{}", ids[4]), Some(&buyer.token))
        .await
        .problem(404, "NOT_FOUND");
    app.get(&format!("/api/v1/products/{}", ids[4]), Some(&seller.token))
        .await
        .ok(200);
}

fn ledger(body: &Value) -> Vec<(i64, String)> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["delta"].as_i64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn stock_adjustments_are_recorded_and_never_go_below_zero() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let id = app.product(&seller, 100, 5).await;
    let path = format!("/api/v1/products/{id}/stock-adjustments");
    let r = app
        .post(
            &path,
            Some(&seller.token),
            &json!({"delta": 3, "note": "restock"}),
        )
        .await;
    assert_eq!(r.ok(200)["stock"], 8);
    let r = app
        .post(&path, Some(&seller.token), &json!({"delta": -9}))
        .await;
    r.problem(409, "OUT_OF_STOCK");
    assert_eq!(app.stock(id).await, 8);
    app.post(&path, Some(&seller.token), &json!({"delta": -8}))
        .await
        .ok(200);

    let r = app
        .get(
            &format!("/api/v1/products/{id}/stock-ledger"),
            Some(&seller.token),
        )
        .await;
    let body = r.ok(200);
    assert_eq!(
        ledger(body),
        [
            (-8, "ADJUST".to_owned()),
            (3, "ADJUST".to_owned()),
            (5, "INITIAL".to_owned())
        ]
    );
    let entry = &body["items"][1];
    let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "createdAt",
            "delta",
            "id",
            "note",
            "orderId",
            "productId",
            "reason"
        ]
    );
    assert_eq!(entry["note"], "restock");
    assert_eq!(entry["productId"], id);
    assert_eq!(body["nextCursor"], Value::Null);

    let paged = app
        .get(
            &format!("/api/v1/products/{id}/stock-ledger?limit=1"),
            Some(&seller.token),
        )
        .await;
    let next = paged.ok(200)["nextCursor"].as_str().unwrap().to_owned();
    let rest = app
        .get(
            &format!("/api/v1/products/{id}/stock-ledger?limit=5&cursor={next}"),
            Some(&seller.token),
        )
        .await;
    assert_eq!(ledger(rest.ok(200)).len(), 2);

    let buyer = app.buyer().await;
    app.get(
        &format!("/api/v1/products/{id}/stock-ledger"),
        Some(&buyer.token),
    )
    .await
    .problem(403, "FORBIDDEN");
}

#[tokio::test]
async fn popular_products_rank_paid_quantities() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let a = app.product(&seller, 100, 50).await;
    let b = app.product(&seller, 200, 50).await;
    let buyer = app.funded_buyer(100_000).await;
    let first = app.order_id(&buyer.token, &[(a, 2), (b, 5)]).await;
    app.pay(&buyer.token, first).await.ok(201);
    let second = app.order_id(&buyer.token, &[(a, 1)]).await;
    app.pay(&buyer.token, second).await.ok(201);

    app.eventually("the ranking shows the payments", || async {
        let r = app
            .get("/api/v1/products/popular?days=3&limit=5", None)
            .await;
        let items = r.ok(200)["items"].as_array().unwrap().clone();
        items.len() == 2 && items[0]["soldQuantity"] == 5 && items[1]["soldQuantity"] == 3
    })
    .await;
    let r = app.get("/api/v1/products/popular", None).await;
    let body = r.ok(200);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["from", "items", "to"]);
    let item = &body["items"][0];
    assert_eq!(item["rank"], 1);
    assert_eq!(item["productId"], b);
    assert_eq!(item["price"], 200);
    assert_eq!(item["name"], "Widget");
    assert_eq!(body["items"][1]["productId"], a);
    let (from, to) = (body["from"].as_str().unwrap(), body["to"].as_str().unwrap());
    assert_eq!((from.len(), to.len()), (10, 10), "{from} {to}: YYYY-MM-DD");
    assert!(from < to);

    app.get("/api/v1/products/popular?days=0", None)
        .await
        .invalid("days");
    app.get("/api/v1/products/popular?days=31", None)
        .await
        .invalid("days");
    app.get("/api/v1/products/popular?limit=51", None)
        .await
        .invalid("limit");
}
