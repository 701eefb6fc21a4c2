//! `POST /users`, `GET /users/me`, `GET /users/{id}`.

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{SignUpRequest, SignedUpDto, UserDto};
use crate::extract::{Authenticated, JsonBody, MaybeAuthenticated, path_id};
use crate::idempotency::change;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, web};
use application::users::SignedUp;
use domain::UserId;

/// Creates a user and hands out its bearer token, once.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = SignUpRequest,
    params(("Idempotency-Key" = Option<String>, Header,
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
    responses((status = 200, body = UserDto)),
    security(("bearer" = [])))]
pub async fn me(state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    ok(UserDto::from(state.shop.me(auth.0).await?))
}

/// A user's profile: the user itself or an admin; anyone else gets 404.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
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
