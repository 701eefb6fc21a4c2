//! Mechanical checks of the generated document: what the server enforces must be stated, and
//! stated the way the server enforces it.

use super::*;
use serde_json::Value;

fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap()
}

const METHODS: [&str; 5] = ["get", "post", "patch", "put", "delete"];

/// (method, path, operation) of every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                found.push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    found
}

/// The liveness and readiness probes pass no budget check (a probe must never be refused), so
/// they alone cannot answer 429.
fn never_rate_limited(path: &str) -> bool {
    path.starts_with("/health/")
}

#[test]
fn every_api_operation_has_its_errors_and_every_error_entry_an_operation() {
    let doc = document();
    let operations: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/api/v1"))
        .map(|(method, path, _)| (method, path))
        .collect();
    let listed: Vec<_> = ERRORS
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    for op in &operations {
        assert!(listed.contains(op), "{op:?} has no error table entry");
    }
    for op in &listed {
        assert!(operations.contains(op), "{op:?} is not an operation");
    }
    assert_eq!(operations.len(), 28);
}

#[test]
fn the_table_statuses_are_the_servers() {
    use crate::error::ApiError;
    use actix_web::ResponseError;
    use application::ShopError;
    let x = || "x".to_owned();
    let errors = [
        ShopError::validation("f", "bad"),
        ShopError::InvalidAmount(x()),
        ShopError::Unauthenticated,
        ShopError::Forbidden(x()),
        ShopError::NotFound(x()),
        ShopError::BalanceLimitExceeded(x()),
        ShopError::InsufficientBalance(x()),
        ShopError::OutOfStock(x()),
        ShopError::ProductNotOnSale(x()),
        ShopError::CouponSoldOut(x()),
        ShopError::CouponAlreadyIssued(x()),
        ShopError::CouponNotActive(x()),
        ShopError::CouponNotApplicable(x()),
        ShopError::OrderNotPayable(x()),
        ShopError::InvalidOrderState(x()),
        ShopError::OutboxEventNotFailed(x()),
        ShopError::IdempotencyInProgress,
        ShopError::IdempotencyKeyReused,
        ShopError::Unavailable(x()),
        ShopError::Internal(x()),
    ];
    let mut api: Vec<ApiError> = errors.into_iter().map(ApiError::from).collect();
    api.push(ApiError::RateLimited {
        retry_after_secs: 1,
    });
    api.push(ApiError::RequestTimeout);
    for error in &api {
        assert_eq!(
            status_of(error.code()),
            error.status_code().as_u16(),
            "{}",
            error.code()
        );
    }
    // No typo in the table: each code is one the server answers with.
    for (method, path, codes) in ERRORS {
        for code in *codes {
            assert!(
                api.iter().any(|e| e.code() == *code),
                "{method} {path}: {code}"
            );
        }
    }
}

#[test]
fn document_has_bearer_scheme_and_problem_responses() {
    let json = document();
    assert_eq!(
        json["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let charge = &json["paths"]["/api/v1/balance/charge"]["post"];
    let r400 = &charge["responses"]["400"];
    assert!(
        r400["description"]
            .as_str()
            .unwrap()
            .contains("INVALID_AMOUNT")
    );
    assert_eq!(
        r400["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(charge["responses"]["200"].is_object());
    assert!(
        charge["responses"]["429"]["description"]
            .as_str()
            .unwrap()
            .contains("RATE_LIMITED")
    );
    assert!(json["paths"]["/metrics"]["get"]["responses"]["401"].is_object());
    assert!(json["components"]["schemas"]["ChargeRequest"].is_object());
}

#[test]
fn operation_ids_are_present_and_unique() {
    let doc = document();
    let mut seen = std::collections::HashSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(seen.insert(id.to_owned()), "operationId {id} repeats");
    }
}

#[test]
fn every_operation_that_can_be_refused_for_its_budget_declares_429_with_retry_after() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let r429 = &op["responses"]["429"];
        if never_rate_limited(&path) {
            assert!(r429.is_null(), "{method} {path}");
            continue;
        }
        assert!(
            r429["description"]
                .as_str()
                .is_some_and(|d| d.contains("RATE_LIMITED")),
            "{method} {path} does not declare 429 RATE_LIMITED"
        );
        assert_eq!(
            r429["headers"]["Retry-After"]["schema"]["type"], "integer",
            "{method} {path}"
        );
    }
}

#[test]
fn every_path_id_is_a_positive_int64() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        if !path.contains("{id}") {
            continue;
        }
        let params = op["parameters"].as_array().unwrap();
        let id = params
            .iter()
            .find(|p| p["name"] == "id" && p["in"] == "path")
            .unwrap_or_else(|| panic!("{method} {path} does not declare its id"));
        assert_eq!(id["required"], true, "{method} {path}");
        assert_eq!(id["schema"]["minimum"], 1, "{method} {path}");
        assert_eq!(id["schema"]["format"], "int64", "{method} {path}");
    }
}

#[test]
fn every_operation_declares_its_security_and_authenticated_ones_401() {
    let doc = document();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (method, path, op) in operations(&doc) {
        let requirements = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} declares no security"));
        // The probes take no credentials at all: the canonical empty list.
        if never_rate_limited(&path) {
            assert!(requirements.is_empty(), "{method} {path}");
        }
        let mut anonymous = requirements.is_empty();
        for requirement in requirements {
            let requirement = requirement.as_object().unwrap();
            anonymous |= requirement.is_empty();
            for scheme in requirement.keys() {
                assert!(schemes.contains_key(scheme), "{method} {path}: {scheme}");
            }
        }
        // Every operation that takes a token answers 401 to a bad one (optional ones too: a
        // client that thinks it is signed in must learn that it is not).
        let takes_token = requirements
            .iter()
            .any(|r| r.as_object().is_some_and(|r| !r.is_empty()));
        if takes_token {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} takes a token but declares no 401"
            );
        }
        if !anonymous {
            assert!(
                op["responses"]["401"]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("UNAUTHENTICATED")),
                "{method} {path}"
            );
        }
    }
}

#[test]
fn every_answer_has_a_named_schema_and_the_request_id() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} {status} has no content"));
            for (media, body) in content {
                let schema = &body["schema"];
                if media.contains("json") {
                    assert!(
                        schema["$ref"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("#/components/schemas/")),
                        "{method} {path} {status} {media}: {schema}"
                    );
                } else {
                    assert!(schema.is_object(), "{method} {path} {status} {media}");
                }
            }
            assert!(
                response["headers"]["X-Request-Id"].is_object(),
                "{method} {path} {status}"
            );
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description"
            );
        }
    }
}

#[test]
fn keyed_operations_state_the_key_rule_and_the_replay_marker() {
    let doc = document();
    let mut keyed = 0;
    for (method, path, op) in operations(&doc) {
        let Some(key) = op["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "Idempotency-Key"))
        else {
            continue;
        };
        keyed += 1;
        assert_eq!(key["in"], "header");
        assert_eq!(
            key["schema"]["type"], "string",
            "{method} {path}: never null"
        );
        assert_eq!(key["schema"]["minLength"], 1, "{method} {path}");
        assert_eq!(key["schema"]["maxLength"], 255, "{method} {path}");
        assert_eq!(key["schema"]["pattern"], "^[ -~]+$", "{method} {path}");
        let responses = op["responses"].as_object().unwrap();
        for code in ["IDEMPOTENCY_IN_PROGRESS", "IDEMPOTENCY_KEY_REUSED"] {
            assert!(
                responses
                    .values()
                    .any(|r| r["description"].as_str().unwrap_or("").contains(code)),
                "{method} {path} lacks {code}"
            );
        }
        let success = responses
            .iter()
            .find(|(status, _)| status.starts_with('2'))
            .unwrap()
            .1;
        assert!(
            success["headers"]["Idempotent-Replayed"].is_object(),
            "{method} {path}"
        );
    }
    // Every state-changing POST takes a key.
    let posts = operations(&doc)
        .iter()
        .filter(|(m, p, _)| m == "post" && p.starts_with("/api/v1"))
        .count();
    assert_eq!(keyed, posts);
}

/// Response bodies write every field, `null` when absent (no `skip_serializing_if`): each is
/// required, and the `Option` ones nullable. The one exception is `Problem.errors`, which is
/// left out when empty.
#[test]
fn every_response_field_is_required_and_absent_values_are_null() {
    let doc = document();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        if name.ends_with("Request") {
            continue;
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for property in properties.keys() {
            let optional = name == "Problem" && property == "errors";
            assert_eq!(
                required.contains(&property.as_str()),
                !optional,
                "{name}.{property}"
            );
        }
    }
    let order = &doc["components"]["schemas"]["OrderDto"]["properties"];
    assert!(
        order["paidAt"]["type"]
            .as_array()
            .is_some_and(|t| t.contains(&"null".into()))
    );
    assert!(
        order["couponIssueId"]["type"]
            .as_array()
            .is_some_and(|t| t.contains(&"null".into()))
    );
}

/// The literals of the document are the constants the server validates with.
#[test]
fn stated_bounds_are_the_servers_constants() {
    use domain::coupon::{MAX_DISCOUNT_AMOUNT, MAX_PER_USER_LIMIT, MAX_TOTAL_QUANTITY};
    use domain::order::{MAX_ITEM_QUANTITY, MAX_ORDER_ITEMS};
    use domain::page::CursorPage;
    use domain::product::{MAX_PRICE, MAX_STOCK};
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let param = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    for (path, method) in [
        ("/api/v1/balance/transactions", "get"),
        ("/api/v1/orders", "get"),
        ("/api/v1/admin/outbox", "get"),
        ("/api/v1/products/{id}/stock-ledger", "get"),
    ] {
        let limit = param(path, method, "limit");
        assert_eq!(limit["minimum"], 1, "{path}");
        assert_eq!(limit["maximum"], CursorPage::MAX_LIMIT, "{path}");
        assert_eq!(limit["default"], CursorPage::DEFAULT_LIMIT, "{path}");
    }
    // Request bodies refuse unknown fields (`deny_unknown_fields`).
    for (name, schema) in schemas.as_object().unwrap() {
        if name.ends_with("Request") {
            assert_eq!(schema["additionalProperties"], false, "{name}");
        }
    }
    let amount = &schemas["ChargeRequest"]["properties"]["amount"];
    assert_eq!(
        (amount["type"].as_str(), amount["minimum"].as_i64()),
        (Some("integer"), Some(1))
    );
    let line = &schemas["OrderLineRequest"]["properties"];
    assert_eq!(line["quantity"]["maximum"], MAX_ITEM_QUANTITY);
    let order = &schemas["PlaceOrderRequest"]["properties"]["items"];
    assert_eq!(order["maxItems"], MAX_ORDER_ITEMS);
    assert_eq!(order["minItems"], 1);
    let product = &schemas["CreateProductRequest"]["properties"];
    assert_eq!(product["price"]["maximum"], MAX_PRICE);
    assert_eq!(product["stock"]["maximum"], MAX_STOCK);
    assert_eq!(
        schemas["UpdateProductRequest"]["properties"]["price"]["maximum"],
        MAX_PRICE
    );
    let delta = &schemas["StockAdjustmentRequest"]["properties"]["delta"];
    assert_eq!(delta["maximum"], MAX_STOCK);
    assert_eq!(delta["minimum"], -MAX_STOCK);
    let coupon = &schemas["CreateCouponRequest"]["properties"];
    assert_eq!(coupon["amount"]["maximum"], MAX_DISCOUNT_AMOUNT);
    assert_eq!(coupon["maxDiscount"]["maximum"], MAX_DISCOUNT_AMOUNT);
    assert_eq!(
        coupon["minOrderAmount"]["maximum"],
        MAX_DISCOUNT_AMOUNT * 1_000
    );
    assert_eq!(coupon["totalQuantity"]["maximum"], MAX_TOTAL_QUANTITY);
    assert_eq!(coupon["perUserLimit"]["maximum"], MAX_PER_USER_LIMIT);
}

/// The text patterns of the document accept exactly what the server's validators accept.
mod patterns {
    use super::document;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::LazyLock;

    /// Every pattern of the request schemas, compiled once (by schema and field).
    static PATTERNS: LazyLock<HashMap<(String, String), regex::Regex>> = LazyLock::new(|| {
        let doc = document();
        let mut patterns = HashMap::new();
        for (schema, body) in doc["components"]["schemas"].as_object().unwrap() {
            for (field, property) in body["properties"].as_object().into_iter().flatten() {
                if let Some(raw) = property["pattern"].as_str() {
                    let compiled = regex::Regex::new(raw).unwrap();
                    patterns.insert((schema.clone(), field.clone()), compiled);
                }
            }
        }
        patterns
    });

    fn pattern(schema: &str, field: &str) -> &'static regex::Regex {
        PATTERNS
            .get(&(schema.to_owned(), field.to_owned()))
            .unwrap_or_else(|| panic!("{schema}.{field} has no pattern"))
    }

    /// Text mixing what the rules care about: every kind of whitespace `str::trim` removes,
    /// control characters (C0, DEL, C1), characters outside the BMP and ordinary text.
    fn text(max: usize) -> impl Strategy<Value = String> {
        let interesting = prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
            '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}', '\u{feff}',
            '\u{200b}', '\0', '\u{1b}', '\u{7f}', '\u{9f}', 'a', 'Z', '김', '☕', '🦀', '~', '-',
        ]);
        let char = prop_oneof![3 => interesting, 1 => any::<char>()];
        prop_oneof![
            prop::collection::vec(char.clone(), 0..8),
            prop::collection::vec(char, max.saturating_sub(4)..max + 4),
        ]
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn user_names(name in text(100)) {
            let accepted = domain::user::UserName::new(&name).is_ok();
            prop_assert_eq!(pattern("SignUpRequest", "name").is_match(&name), accepted);
        }

        #[test]
        fn product_names(name in text(200)) {
            let accepted = domain::product::validate_product_name(&name).is_ok();
            prop_assert_eq!(pattern("CreateProductRequest", "name").is_match(&name), accepted);
            prop_assert_eq!(pattern("UpdateProductRequest", "name").is_match(&name), accepted);
        }

        #[test]
        fn stock_notes(note in text(500)) {
            let accepted = domain::product::validate_note(Some(&note)).is_ok();
            prop_assert_eq!(pattern("StockAdjustmentRequest", "note").is_match(&note), accepted);
        }

        #[test]
        fn coupon_names(name in text(100)) {
            let trimmed = name.trim();
            let accepted = (1..=100).contains(&trimmed.chars().count())
                && domain::text::check_printable("name", trimmed).is_ok();
            prop_assert_eq!(pattern("CreateCouponRequest", "name").is_match(&name), accepted);
        }

        #[test]
        fn idempotency_keys(key in text(255)) {
            static RULE: LazyLock<regex::Regex> =
                LazyLock::new(|| regex::Regex::new("^[ -~]+$").unwrap());
            let stated = RULE.is_match(&key) && key.chars().count() <= 255;
            let accepted = domain::idempotency::IdempotencyKey::new(&key).is_ok();
            prop_assert_eq!(stated, accepted);
        }
    }
}
