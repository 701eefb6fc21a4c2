//! Sign-up, authentication and profiles.
//!
//! Tokens are 32 random bytes, URL-safe base64, handed out once; only their SHA-256 is stored.

use crate::support::{retry_on_conflict, sha256_hex};
use crate::{Actor, Shop, ShopError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::UserId;
use domain::user::{NewUser, Role, TokenHash, User, UserName};
use rand::RngCore as _;

/// A freshly created user with the only copy of its bearer token.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user: User,
    pub token: String,
}

/// The name of the bootstrap administrator created by [`Shop::ensure_admin`].
const BOOTSTRAP_ADMIN_NAME: &str = "admin";

/// 256 bits from the OS-seeded thread RNG: unguessable, and short enough for a header.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Tokens are stored only as their SHA-256: a leaked users table grants no access.
fn hash_token(token: &str) -> TokenHash {
    TokenHash(sha256_hex(token.as_bytes()))
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
        let role = role.unwrap_or(Role::Buyer);
        let caller_is_admin = caller.is_some_and(|c| c.is_admin());
        if role != Role::Buyer && !caller_is_admin {
            return Err(ShopError::Forbidden(format!(
                "only an admin may create {} users",
                role.as_str()
            )));
        }
        let name =
            UserName::new(name).map_err(|e| ShopError::validation("name", &e.to_string()))?;
        let token = new_token();
        let new_user = NewUser {
            name,
            role,
            token_hash: hash_token(&token),
            created_at: self.now(),
        };
        let user = retry_on_conflict("sign_up", || async {
            let mut tx = self.ports.store.begin().await?;
            let user = tx.users().insert(new_user.clone()).await?;
            tx.commit().await?;
            Ok(user)
        })
        .await?;
        tracing::info!(user = %user.id, role = role.as_str(), "user signed up");
        Ok(SignedUp { user, token })
    }

    /// Resolves a bearer token. Errors: `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, ShopError> {
        if token.is_empty() {
            return Err(ShopError::Unauthenticated);
        }
        let hash = hash_token(token);
        if let Some(actor) = self.caches.actors.get(&hash.0) {
            return Ok(actor);
        }
        let mut tx = self.ports.store.read().await?;
        let user = tx.users().find_by_token(&hash).await?;
        // Only hits are cached: a token that does not exist yet costs a lookup every time,
        // which keeps sign-up → first request trivially correct.
        let actor = user
            .map(|u| Actor {
                user_id: u.id,
                role: u.role,
            })
            .ok_or(ShopError::Unauthenticated)?;
        self.caches.actors.put(hash.0, actor);
        Ok(actor)
    }

    /// Makes `token` the bearer token of the bootstrap administrator (`ADMIN_TOKEN`), creating
    /// that admin on first start. Idempotent across restarts.
    ///
    /// The store has no "change token" operation, so a *different* `ADMIN_TOKEN` on a later
    /// start creates another admin; the earlier one keeps its token.
    pub async fn ensure_admin(&self, token: &str) -> Result<User, ShopError> {
        if token.trim().is_empty() {
            return Err(ShopError::validation("ADMIN_TOKEN", "must not be empty"));
        }
        let hash = hash_token(token);
        let now = self.now();
        retry_on_conflict("ensure_admin", || async {
            let mut tx = self.ports.store.begin().await?;
            if let Some(user) = tx.users().find_by_token(&hash).await? {
                if user.role != Role::Admin {
                    // 256-bit tokens do not collide: this is an operator mistake worth stopping for.
                    return Err(ShopError::Internal(format!(
                        "ADMIN_TOKEN belongs to user {} who is not an admin",
                        user.id
                    ))
                    .into());
                }
                return Ok(user);
            }
            let name = UserName::new(BOOTSTRAP_ADMIN_NAME)
                .map_err(|e| ShopError::Internal(e.to_string()))?;
            let user = tx
                .users()
                .insert(NewUser {
                    name,
                    role: Role::Admin,
                    token_hash: hash.clone(),
                    created_at: now,
                })
                .await?;
            tx.commit().await?;
            tracing::info!(user = %user.id, "bootstrap administrator created");
            Ok(user)
        })
        .await
    }

    pub async fn me(&self, actor: Actor) -> Result<User, ShopError> {
        self.find_user(actor.user_id).await
    }

    /// The user itself or an admin; anyone else gets `NotFound`.
    pub async fn get_user(&self, actor: Actor, id: UserId) -> Result<User, ShopError> {
        if !actor.can_see(id) {
            return Err(ShopError::not_found("user", id));
        }
        self.find_user(id).await
    }

    async fn find_user(&self, id: UserId) -> Result<User, ShopError> {
        let mut tx = self.ports.store.read().await?;
        tx.users()
            .get(id)
            .await?
            .ok_or_else(|| ShopError::not_found("user", id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_unique() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, new_token());
        assert_eq!(hash_token(&a).0.len(), 64);
        assert_ne!(hash_token(&a).0, a);
    }
}
