//! Sign-up, authentication and profiles.
//!
//! Tokens are 32 random bytes, URL-safe base64, handed out once; only their SHA-256 is stored.

use crate::{Actor, Shop, ShopError};
use domain::UserId;
use domain::user::{Role, User};

/// A freshly created user with the only copy of its bearer token.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user: User,
    pub token: String,
}

impl Shop {
    /// Without a caller (or a non-admin caller) only BUYER may be created; an ADMIN may create
    /// any role. Errors: `Validation` (name), `Forbidden` (role not allowed).
    pub async fn sign_up(
        &self,
        caller: Option<Actor>,
        name: &str,
        role: Option<Role>,
    ) -> Result<SignedUp, ShopError> {
        todo!("{caller:?} {name} {role:?}")
    }

    /// Resolves a bearer token. Errors: `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, ShopError> {
        todo!("{token}")
    }

    /// Makes `token` the bearer token of the bootstrap administrator (`ADMIN_TOKEN`), creating
    /// that admin on first start. Idempotent across restarts.
    pub async fn ensure_admin(&self, token: &str) -> Result<User, ShopError> {
        todo!("{token}")
    }

    pub async fn me(&self, actor: Actor) -> Result<User, ShopError> {
        todo!("{actor:?}")
    }

    /// The user itself or an admin; anyone else gets `NotFound`.
    pub async fn get_user(&self, actor: Actor, id: UserId) -> Result<User, ShopError> {
        todo!("{actor:?} {id}")
    }
}
