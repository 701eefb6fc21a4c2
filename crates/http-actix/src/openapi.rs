//! The OpenAPI 3 document of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the DTOs' schemas.
//!
//! Error responses are added in one place, [`ERRORS`]: for every operation, the stable codes it
//! can answer with (grouped by status, each as `application/problem+json` with the `Problem`
//! schema). A unit test keeps that table and the registered operations in step.

use crate::error::Problem;
use crate::handlers::{admin, coupons, ops, orders, payments, products, users, wallet};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem, Ref};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shop API",
        description = "Wallet, catalog, first-come coupons, orders and payments. Errors are RFC 9457 \
            problem details (`application/problem+json`) with a stable `code`.",
    ),
    paths(
        users::sign_up, users::me, users::get_user, users::roll_token, users::reissue_token,
        wallet::balance, wallet::charge, wallet::transactions,
        products::list, products::create, products::popular, products::get, products::update,
        products::adjust_stock, products::stock_ledger,
        coupons::create, coupons::list, coupons::mine, coupons::get, coupons::issue,
        orders::place, orders::list, orders::get, orders::cancel,
        payments::pay, payments::get,
        admin::outbox, admin::retry,
        ops::live, ops::ready, ops::metrics,
    ),
    components(schemas(Problem, crate::error::ProblemField)),
    modifiers(&Errors),
    tags(
        (name = "users"), (name = "balance"), (name = "products"), (name = "coupons"),
        (name = "orders"), (name = "payments"), (name = "admin"), (name = "operations"),
    ),
)]
pub struct ApiDoc;

/// (method, path, codes) of every operation under `/api/v1`. 429 `RATE_LIMITED`, 500
/// `INTERNAL` and 503 `UNAVAILABLE` apply to all of them and are added without being listed;
/// 408 `REQUEST_TIMEOUT` is listed on the operations that read a JSON body.
pub(crate) const ERRORS: &[(&str, &str, &[&str])] = &[
    (
        "post",
        "/api/v1/users",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "REQUEST_TIMEOUT",
        ],
    ),
    ("get", "/api/v1/users/me", &["UNAUTHENTICATED"]),
    (
        "get",
        "/api/v1/users/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "post",
        "/api/v1/users/me/token",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "post",
        "/api/v1/users/{id}/token",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    ("get", "/api/v1/balance", &["UNAUTHENTICATED"]),
    (
        "post",
        "/api/v1/balance/charge",
        &[
            "VALIDATION_FAILED",
            "INVALID_AMOUNT",
            "UNAUTHENTICATED",
            "BALANCE_LIMIT_EXCEEDED",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/balance/transactions",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/products",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "post",
        "/api/v1/products",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/products/popular",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/products/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "patch",
        "/api/v1/products/{id}",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "post",
        "/api/v1/products/{id}/stock-adjustments",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "OUT_OF_STOCK",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/products/{id}/stock-ledger",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
        ],
    ),
    (
        "post",
        "/api/v1/coupons",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/coupons",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/coupons/my",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/coupons/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "post",
        "/api/v1/coupons/{id}/issue",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "COUPON_SOLD_OUT",
            "COUPON_ALREADY_ISSUED",
            "COUPON_NOT_ACTIVE",
        ],
    ),
    (
        "post",
        "/api/v1/orders",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "OUT_OF_STOCK",
            "PRODUCT_NOT_ON_SALE",
            "COUPON_NOT_APPLICABLE",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/orders",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/orders/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "post",
        "/api/v1/orders/{id}/cancel",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "INVALID_ORDER_STATE",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "post",
        "/api/v1/payments",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "INSUFFICIENT_BALANCE",
            "ORDER_NOT_PAYABLE",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/payments/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "get",
        "/api/v1/admin/outbox",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "FORBIDDEN"],
    ),
    (
        "post",
        "/api/v1/admin/outbox/{id}/retry",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "OUTBOX_EVENT_NOT_FAILED",
        ],
    ),
];

/// The HTTP status of a stable code (mirrors `ApiError`'s mapping).
fn status_of(code: &str) -> u16 {
    match code {
        "VALIDATION_FAILED" | "INVALID_AMOUNT" => 400,
        "UNAUTHENTICATED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "REQUEST_TIMEOUT" => 408,
        "IDEMPOTENCY_KEY_REUSED" => 422,
        "RATE_LIMITED" => 429,
        "INTERNAL" => 500,
        "UNAVAILABLE" => 503,
        _ => 409,
    }
}

fn operation_mut<'a>(
    item: &'a mut PathItem,
    method: &str,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "patch" => item.patch.as_mut(),
        "put" => item.put.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

struct Errors;

impl Modify for Errors {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "bearer".into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The token handed out by POST /api/v1/users"))
                    .build(),
            ),
        );
        components.security_schemes.insert(
            "metrics_token".into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("METRICS_TOKEN, when the operator set one"))
                    .build(),
            ),
        );
        for (method, path, codes) in ERRORS {
            let Some(operation) = doc
                .paths
                .paths
                .get_mut(*path)
                .and_then(|item| operation_mut(item, method))
            else {
                continue;
            };
            let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = Default::default();
            // Every operation reads a token when one is sent, and an invalid one counts
            // against the client's failed-authentication budget: each can answer 429.
            for code in codes
                .iter()
                .copied()
                .chain(["RATE_LIMITED", "INTERNAL", "UNAVAILABLE"])
            {
                by_status.entry(status_of(code)).or_default().push(code);
            }
            for (status, codes) in by_status {
                let response = ResponseBuilder::new()
                    .description(format!("Problem: {}", codes.join(", ")))
                    .content(
                        crate::error::PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build();
                operation
                    .responses
                    .responses
                    .insert(status.to_string(), response.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_operation_has_its_errors_and_every_error_entry_an_operation() {
        let doc = ApiDoc::openapi();
        let mut operations = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("get", &item.get),
                ("post", &item.post),
                ("patch", &item.patch),
            ] {
                if op.is_some() && path.starts_with("/api/v1") {
                    operations.push((method.to_owned(), path.clone()));
                }
            }
        }
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
    fn document_has_bearer_scheme_and_problem_responses() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
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
}
