//! Every state-changing POST runs through [`change`]: the use case runs on a task of its own,
//! so that a client going away (or a request timeout) can never interrupt a commit half-way,
//! and under the request's `Idempotency-Key` when it has one.
//!
//! With a key (semantics in `application::idempotency`): the key is claimed for the caller and
//! the *matched route with its parameters* (`/balance/%63harge` and `/balance/charge` are one
//! scope, so are `/orders/017/cancel` and `/orders/17/cancel`) and the raw request body. A
//! finished earlier request is replayed byte for byte (status, content type, body) with
//! `Idempotent-Replayed: true`. Otherwise the use case stores its answer in the transaction of
//! its change; every other outcome is stored (a refusal) or releases the key (a 400, a 5xx)
//! after the use case has finished, on the same task.

use crate::error::{ApiError, PROBLEM_JSON};
use crate::extract::state;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use application::idempotency::{Keyed, Render};
use application::{Actor, ShopError};
use domain::idempotency::{IdempotencyStart, StoredResponse};
use serde::Serialize;
use std::future::Future;
use tracing::Instrument;

pub const HEADER: &str = "Idempotency-Key";
/// Set on a replayed answer.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// What the task of a change ends with.
enum Outcome {
    /// The use case's answer (its success, rendered).
    Fresh(StoredResponse),
    /// The use case's refusal, or a refusal of the key itself.
    Refused(ApiError),
    /// The stored answer of an earlier request with the same key.
    Replay(StoredResponse),
}

/// The answer to a successful change: `dto` as JSON with `status`.
///
/// A body that cannot be written (which the domain's range checks should make impossible) is
/// answered as an internal error, never as a made-up body.
pub fn json_answer<D: Serialize>(status: StatusCode, dto: &D) -> StoredResponse {
    match serde_json::to_vec(dto) {
        Ok(body) => StoredResponse {
            status: status.as_u16(),
            content_type: "application/json".to_owned(),
            body,
        },
        Err(e) => problem_answer(&ApiError::from(ShopError::Internal(format!(
            "response body not serializable: {e}"
        )))),
    }
}

/// Runs the change `work` (given the request's key, if any) on a task of its own and answers
/// with `render` of its result, or its refusal as problem+json.
///
/// `actor` is `None` for an anonymous caller (sign-up): such a request cannot be keyed, because
/// its answer carries the new user's token and anyone who knew the key would get it replayed.
pub async fn change<T, F, Fut>(
    req: &HttpRequest,
    actor: Option<Actor>,
    body: &[u8],
    render: Render<T>,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Option<Keyed<T>>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ShopError>> + Send + 'static,
{
    let key = request_key(req)?;
    let task = match key {
        None => tokio::spawn(
            async move {
                match work(None).await {
                    Ok(value) => Outcome::Fresh(render(&value)),
                    Err(refusal) => Outcome::Refused(refusal.into()),
                }
            }
            .in_current_span(),
        ),
        Some(key) => {
            let Some(actor) = actor else {
                return Err(ApiError::field(
                    HEADER,
                    "needs an authenticated caller on this endpoint (the answer carries a token)",
                ));
            };
            let shop = state(req)?.shop.clone();
            let method = req.method().as_str().to_owned();
            let route = route_scope(req);
            let body = body.to_vec();
            tokio::spawn(
                async move {
                    let claim = match shop
                        .begin_idempotent(actor, &method, &route, &key, &body)
                        .await
                    {
                        Ok(IdempotencyStart::Started(claim)) => claim,
                        Ok(IdempotencyStart::Replay(stored)) => return Outcome::Replay(stored),
                        Ok(_) => return Outcome::Refused(ShopError::IdempotencyInProgress.into()),
                        Err(refusal) => return Outcome::Refused(refusal.into()),
                    };
                    let keyed = Keyed::new(claim.clone(), render.clone());
                    let outcome = match work(Some(keyed)).await {
                        Ok(value) => Outcome::Fresh(render(&value)),
                        Err(refusal) => Outcome::Refused(refusal.into()),
                    };
                    let answer = match &outcome {
                        Outcome::Fresh(answer) | Outcome::Replay(answer) => answer.clone(),
                        Outcome::Refused(refusal) => problem_answer(refusal),
                    };
                    shop.finish_idempotent(&claim, &answer).await;
                    outcome
                }
                .in_current_span(),
            )
        }
    };
    // The task goes on if this request is dropped; a panic in it is answered as a bug.
    let outcome = task.await.map_err(|e| {
        ApiError::from(ShopError::Internal(format!(
            "a change task ended abnormally: {e}"
        )))
    })?;
    Ok(match outcome {
        Outcome::Fresh(answer) => respond(answer, false),
        Outcome::Replay(answer) => respond(answer, true),
        Outcome::Refused(refusal) => refusal.error_response(),
    })
}

/// The request's key: at most one `Idempotency-Key` header, of printable ASCII (the length and
/// character rules are checked by the application when the key is claimed).
fn request_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all(HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::field(HEADER, "must be sent once"));
    }
    value
        .to_str()
        .map(|key| Some(key.to_owned()))
        .map_err(|_| ApiError::field(HEADER, "must be 1 to 255 printable ASCII characters"))
}

/// The key's scope: the matched route pattern with its parameters filled in, numeric ones in
/// canonical form, so that every spelling of one resource's path is one scope.
fn route_scope(req: &HttpRequest) -> String {
    let Some(pattern) = req.match_pattern() else {
        return req.path().to_owned();
    };
    let mut scope = String::with_capacity(pattern.len());
    let mut rest = pattern.as_str();
    while let Some(open) = rest.find('{') {
        scope.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        let value = req.match_info().get(name).unwrap_or_default();
        match value.parse::<i64>() {
            Ok(number) => scope.push_str(&number.to_string()),
            Err(_) => scope.push_str(value),
        }
        rest = &rest[open + close + 1..];
    }
    scope.push_str(rest);
    scope
}

/// A refusal as it is stored for replay (the problem document; headers such as `Retry-After`
/// belong to the moment and are not replayed).
fn problem_answer(refusal: &ApiError) -> StoredResponse {
    StoredResponse {
        status: refusal.status_code().as_u16(),
        content_type: PROBLEM_JSON.to_owned(),
        body: serde_json::to_vec(&refusal.problem()).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

fn respond(answer: StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    if let Ok(content_type) = HeaderValue::from_str(&answer.content_type) {
        response.insert_header((header::CONTENT_TYPE, content_type));
    }
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    response.body(answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn a_route_scope_is_the_pattern_with_canonical_parameters() {
        let req = TestRequest::default()
            .uri("/api/v1/orders/017/cancel")
            .param("id", "017")
            .to_http_request();
        // Without a matched pattern the raw path is the scope.
        assert_eq!(route_scope(&req), "/api/v1/orders/017/cancel");
    }

    #[test]
    fn a_problem_answer_keeps_status_and_code() {
        let answer = problem_answer(&ShopError::OutOfStock("2 left".into()).into());
        assert_eq!(answer.status, 409);
        assert_eq!(answer.content_type, PROBLEM_JSON);
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["code"], "OUT_OF_STOCK");
    }
}
