//! `POST /users`, `GET /users/me`, `GET /users/{id}`, `POST /users/me/token`,
//! `POST /users/{id}/token`.

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{IssuedTokenDto, SignUpRequest, SignedUpDto, UserDto};
use crate::extract::{Authenticated, JsonBody, MaybeAuthenticated, path_id};
use crate::idempotency::change;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, web};
use application::Actor;
use application::users::{IssuedToken, SignedUp};
use domain::UserId;

/// Creates a user and hands out its bearer token, once.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    operation_id = "signUp",
    request_body = SignUpRequest,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1,
        max_length = 255,
        pattern = "^[ -~]+$",
        description = "authenticated callers only (an admin creating users): the answer \
            carries the new user's token; 1..255 printable ASCII; replays the first answer \
            for the same body")),
    responses((status = 201, description = "The new user with its token", body = SignedUpDto)),
    security((), ("bearer" = [])))]
pub async fn sign_up(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: MaybeAuthenticated,
    body: JsonBody<SignUpRequest>,
) -> ApiResult {
    let (body, raw) = body.into_parts()?;
    if caller.0.is_none() {
        // After the body is read: a body that is malformed (400) or never arrives (408)
        // creates nothing and answers as such; every well-formed anonymous attempt counts,
        // whether or not it then succeeds.
        crate::rate_limit::check_sign_up(&req, &state).await?;
    }
    let shop = state.shop.clone();
    let render = answer(StatusCode::CREATED, |signed: &SignedUp| {
        let user = UserDto::from(signed.user.clone());
        SignedUpDto {
            id: user.id,
            name: user.name,
            role: user.role,
            created_at: user.created_at,
            token: signed.token.clone(),
        }
    });
    let caller = caller.0;
    let mut response = change(&req, caller, &raw, render, move |keyed| async move {
        shop.sign_up(
            caller,
            &body.name,
            body.role.map(Into::into),
            keyed.as_ref(),
        )
        .await
    })
    .await?;
    // The only copy of a credential: no cache may keep it, whether or not the request was
    // authenticated (the envelope marks only those). A replay carries it too.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    operation_id = "getMe",
    responses((status = 200, body = UserDto)),
    security(("bearer" = [])))]
pub async fn me(state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    ok(UserDto::from(state.shop.me(auth.0).await?))
}

/// A user's profile: the user itself or an admin; anyone else gets 404.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    operation_id = "getUser",
    params(("id" = i64, Path, minimum = 1, description = "User id")),
    responses((status = 200, body = UserDto)),
    security(("bearer" = [])))]
pub async fn get_user(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
) -> ApiResult {
    let id: UserId = path_id(&req)?;
    ok(UserDto::from(state.shop.get_user(auth.0, id).await?))
}

/// Rolls the caller's bearer token: answers a new one, once, and the token used for this
/// request stops working (on this instance at once, on every other within about a second).
#[utoipa::path(post, path = "/api/v1/users/me/token", tag = "users",
    operation_id = "rollMyToken",
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1,
        max_length = 255,
        pattern = "^[ -~]+$",
        description = "1..255 printable ASCII; replays the first answer (which carries the \
            new token) for 24 hours. After the roll the old token no longer authenticates, so \
            a retry must come from a client that still holds a working token of this user")),
    responses((status = 201, description = "The new token; the old one is retired",
        body = IssuedTokenDto)),
    security(("bearer" = [])))]
pub async fn roll_token(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
) -> ApiResult {
    let actor = auth.0;
    let shop = state.shop.clone();
    issue(&req, actor, move |keyed| async move {
        shop.roll_token(actor, keyed.as_ref()).await
    })
    .await
}

/// An admin issues a new bearer token for a user who lost theirs; the user's earlier token
/// stops working as with `POST /users/me/token`.
#[utoipa::path(post, path = "/api/v1/users/{id}/token", tag = "users",
    operation_id = "reissueUserToken",
    params(
        ("id" = i64, Path, minimum = 1, description = "User id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1,
        max_length = 255,
        pattern = "^[ -~]+$",
            description = "1..255 printable ASCII; replays the first answer (which carries the \
                new token) to the same admin for 24 hours")),
    responses((status = 201, description = "The user's new token; the old one is retired",
        body = IssuedTokenDto)),
    security(("bearer" = [])))]
pub async fn reissue_token(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
) -> ApiResult {
    let actor = auth.0;
    let id: UserId = path_id(&req)?;
    let shop = state.shop.clone();
    issue(&req, actor, move |keyed| async move {
        shop.reissue_token(actor, id, keyed.as_ref()).await
    })
    .await
}

/// Runs a token replacement as a keyed change (the requests have no body: the key, the caller
/// and the path identify them) and answers 201 with the new token, never cached.
async fn issue<F, Fut>(req: &HttpRequest, actor: Actor, work: F) -> ApiResult
where
    F: FnOnce(Option<application::idempotency::Keyed<IssuedToken>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<IssuedToken, application::ShopError>> + Send + 'static,
{
    let render = answer(StatusCode::CREATED, |issued: &IssuedToken| {
        IssuedTokenDto::from(issued)
    });
    let mut response = change(req, Some(actor), &[], render, work).await?;
    // The only copy of a credential, replays included.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
