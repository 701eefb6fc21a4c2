//! What every operation's answers have in common, added in one place: the security schemes,
//! the problem answers of [`super::ERRORS`] and the headers the server sets on its answers
//! (`crate::middleware`, `crate::error`, `crate::idempotency`, `handlers::users`).

use super::{ERRORS, status_of};
use crate::error::PROBLEM_JSON;
use crate::idempotency::{HEADER as IDEMPOTENCY_KEY, REPLAYED_HEADER};
use utoipa::Modify;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem, Ref, RefOr};

pub(super) struct Answers;

impl Modify for Answers {
    fn modify(&self, doc: &mut Document) {
        add_security_schemes(doc);
        for (method, path, codes) in ERRORS {
            if let Some(operation) = doc
                .paths
                .paths
                .get_mut(*path)
                .and_then(|item| operation_mut(item, method))
            {
                add_problems(operation, codes);
            }
        }
        for item in doc.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                add_headers(operation);
                no_authentication_as_empty_list(operation);
            }
        }
    }
}

fn add_security_schemes(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    components.security_schemes.insert(
        "bearer".into(),
        bearer("The token handed out by POST /api/v1/users"),
    );
    components.security_schemes.insert(
        "metrics_token".into(),
        bearer("METRICS_TOKEN, when the operator set one"),
    );
}

pub(super) fn operation_mut<'a>(item: &'a mut PathItem, method: &str) -> Option<&'a mut Operation> {
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "patch" => item.patch.as_mut(),
        "put" => item.put.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.patch.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// `security(())` writes `[{}]`; `[]` is the canonical way to say that an operation takes no
/// credentials at all (the health probes). Operations where a token is optional keep
/// `[{}, {"bearer": []}]`: anonymous or bearer, each answered differently.
fn no_authentication_as_empty_list(operation: &mut Operation) {
    if let Some(requirements) = &mut operation.security
        && requirements
            .iter()
            .all(|r| *r == SecurityRequirement::default())
    {
        requirements.clear();
    }
}

/// One `application/problem+json` answer per status, naming the codes it can carry.
fn add_problems(operation: &mut Operation, codes: &[&str]) {
    let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = Default::default();
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
                PROBLEM_JSON,
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

/// The headers the server sets, on the answers that carry them.
fn add_headers(operation: &mut Operation) {
    let keyed = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.name == IDEMPOTENCY_KEY && matches!(p.parameter_in, ParameterIn::Header));
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        // `(status = 200, body = ...)` leaves the required description empty: say the status.
        if response.description.is_empty() {
            response.description = status
                .parse::<u16>()
                .ok()
                .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason())
                .unwrap_or("Answer")
                .to_owned();
        }
        let problem = is_problem(response);
        let headers = &mut response.headers;
        headers.insert(
            "X-Request-Id".into(),
            header(
                string().min_length(Some(1)).max_length(Some(128)),
                "The request's id: the client's `X-Request-Id` when it is 1..128 printable \
                 ASCII characters, a generated UUID otherwise. Quote it when reporting a problem.",
            ),
        );
        headers.insert(
            "X-Content-Type-Options".into(),
            header(string().enum_values(Some(["nosniff"])), "Always `nosniff`."),
        );
        headers.insert(
            "Cache-Control".into(),
            header(
                string().enum_values(Some(["no-store"])),
                "`no-store` on every answer to a request that carries credentials, and on every \
                 answer that carries a token.",
            ),
        );
        match status.as_str() {
            "401" if problem => {
                headers.insert(
                    "WWW-Authenticate".into(),
                    header(
                        string().enum_values(Some(["Bearer"])),
                        "The scheme to authenticate with.",
                    ),
                );
            }
            "429" => {
                headers.insert(
                    "Retry-After".into(),
                    retry_after("Seconds until the budget has room again."),
                );
            }
            // The readiness probe's 503 is its report, not a refusal: it sends no Retry-After.
            "503" if problem => {
                headers.insert(
                    "Retry-After".into(),
                    retry_after("Seconds to wait before retrying (a dependency is down)."),
                );
            }
            _ => {}
        }
        // What a keyed change stores is replayed with the marker: its success or its business
        // refusal (400s, 5xx and the key's own refusals are not stored).
        let stored = status.starts_with('2') || matches!(status.as_str(), "403" | "404" | "409");
        if keyed && stored {
            headers.insert(
                REPLAYED_HEADER.into(),
                header(
                    string().enum_values(Some(["true"])),
                    "`true` when this is the stored answer of an earlier request with the same \
                     `Idempotency-Key` (absent otherwise).",
                ),
            );
        }
    }
}

fn is_problem(response: &Response) -> bool {
    response.content.contains_key(PROBLEM_JSON)
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn header(schema: ObjectBuilder, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

/// `Retry-After` in whole seconds (the server rounds up, so never 0).
fn retry_after(description: &str) -> Header {
    header(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1)),
        description,
    )
}
