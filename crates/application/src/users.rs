//! Sign-up, authentication, token replacement and profiles.
//!
//! Exactly two kinds of bearer token authenticate:
//! - a complete signed token handed out at sign-up or on a replacement
//!   (`<random>.<user id>.<role>.<version>.<mac>`, see [`crate::tokens`]): `authenticate`
//!   checks its HMAC with the store's secret, and that its version is the user's current one,
//!   read through a cache of `token_version_ttl` (one store read per active user per period,
//!   none per request);
//! - the bootstrap `ADMIN_TOKEN` this shop was started with ([`Shop::ensure_admin`]): looked up
//!   by its SHA-256, hits cached briefly.
//!
//! Any other string is refused without a lookup. That matters: a signed user's row holds the
//! SHA-256 of the token's random part, so looking up arbitrary strings by hash would let the
//! random part alone (the first 43 characters of the token) authenticate, and the MAC would
//! add nothing. Tokens of earlier versions (a bare random part) therefore no longer
//! authenticate; their users sign up again.

use crate::idempotency::{Keyed, record_answer};
use crate::support::{retry_on_conflict, sha256_hex};
use crate::tokens::{self, SignedToken, TokenSigner};
use crate::{Actor, Shop, ShopError};
use domain::UserId;
use domain::user::{NewUser, Role, TokenHash, TokenVersion, User, UserName};
use time::OffsetDateTime;

/// A freshly created user with the only copy of its bearer token.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user: User,
    pub token: String,
}

/// A replacement bearer token, with the only copy of it. The user's earlier token no longer
/// authenticates.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub user: User,
    pub token: String,
    pub version: TokenVersion,
    pub created_at: OffsetDateTime,
}

/// The name of the bootstrap administrator created by [`Shop::ensure_admin`].
const BOOTSTRAP_ADMIN_NAME: &str = "admin";

/// Tokens (or their random parts) are stored only as their SHA-256: a leaked users table grants
/// no access.
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
        keyed: Option<&Keyed<SignedUp>>,
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
        // Before the insert's transaction: loading the secret may need a transaction of its own.
        let signer = self.token_signer().await?;
        let random = tokens::new_random_part();
        let new_user = NewUser {
            name,
            role,
            token_hash: hash_token(&random),
            created_at: self.now(),
        };
        let signed_up = retry_on_conflict("sign_up", || async {
            let mut tx = self.ports.store.begin().await?;
            let user = tx.users().insert(new_user.clone()).await?;
            let token = signer.sign(&random, user.id, user.role, TokenVersion::FIRST);
            let signed_up = SignedUp { user, token };
            record_answer(tx.as_mut(), keyed, &signed_up, new_user.created_at).await?;
            tx.commit().await?;
            Ok(signed_up)
        })
        .await?;
        tracing::info!(user = %signed_up.user.id, role = role.as_str(), "user signed up");
        Ok(signed_up)
    }

    /// Resolves a bearer token: a signed one by its MAC alone, the `ADMIN_TOKEN` by a lookup,
    /// anything else is `Unauthenticated` at once (see the module docs).
    /// Errors: `Unauthenticated`; `Unavailable` when the store is needed and down.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, ShopError> {
        if token.is_empty() {
            return Err(ShopError::Unauthenticated);
        }
        if let Some(signed) = SignedToken::parse(token) {
            let actor = self
                .token_signer()
                .await?
                .verify(&signed)
                .ok_or(ShopError::Unauthenticated)?;
            let presented = signed.version();
            return if self.token_version(actor.user_id, presented).await? == Some(presented) {
                Ok(actor)
            } else {
                Err(ShopError::Unauthenticated)
            };
        }
        let hash = hash_token(token);
        // Comparing hashes (not tokens) leaks nothing through timing: learning a prefix of the
        // admin token's SHA-256 does not help find the token.
        if !self.is_admin_token(&hash) {
            return Err(ShopError::Unauthenticated);
        }
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
    /// that admin on first start. Idempotent across restarts. From then on this shop (and its
    /// clones) accepts `token`; a later call replaces it.
    ///
    /// A *different* `ADMIN_TOKEN` on a later start replaces the bootstrap administrator's
    /// token (the oldest ADMIN named `admin`: the first user a shop creates) instead of
    /// creating another admin: its stored hash becomes the new token's and its token version
    /// moves on, so the earlier token no longer authenticates anywhere (instances still
    /// configured with it refuse it once their `auth_cache_ttl` has passed).
    pub async fn ensure_admin(&self, token: &str) -> Result<User, ShopError> {
        if token.trim().is_empty() {
            return Err(ShopError::validation("ADMIN_TOKEN", "must not be empty"));
        }
        if SignedToken::parse(token).is_some() {
            // It would be judged by its MAC, never looked up, so it could never authenticate.
            return Err(ShopError::validation(
                "ADMIN_TOKEN",
                "must not have the shape of a signed user token (<random>.<id>.<role>.<mac>)",
            ));
        }
        let hash = hash_token(token);
        let now = self.now();
        let admin = retry_on_conflict("ensure_admin", || async {
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
            if let Some(admin) = tx.users().oldest_admin_named(BOOTSTRAP_ADMIN_NAME).await? {
                // Concurrent starts with the same new token: the row lock serializes them, the
                // second one's hash is then its own (no conflict) and it bumps the version once
                // more, which only retires signed tokens nobody holds.
                let (user, version) = tx
                    .users()
                    .replace_token(admin.id, hash.clone())
                    .await?
                    .ok_or_else(|| ShopError::Internal("bootstrap admin vanished".into()))?;
                tx.commit().await?;
                self.caches
                    .token_versions
                    .put_unless(user.id, version, |v| *v >= version);
                tracing::info!(user = %user.id, "bootstrap administrator's token replaced");
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
        .await?;
        *self
            .admin_token_hash
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((hash, admin.id));
        Ok(admin)
    }

    /// Rolls the caller's own token: a new one is issued (201, shown once) and the one the
    /// caller holds stops working, on this instance at once and on the others within
    /// `token_version_ttl`.
    /// Errors: `Forbidden` for the bootstrap administrator (its token is `ADMIN_TOKEN`, changed
    /// in the configuration); `IdempotencyInProgress` as for every keyed change.
    pub async fn roll_token(
        &self,
        caller: Actor,
        keyed: Option<&Keyed<IssuedToken>>,
    ) -> Result<IssuedToken, ShopError> {
        self.replace_token(caller.user_id, keyed).await
    }

    /// An admin issues a new token for a user who lost theirs; the user's earlier token stops
    /// working as with [`Shop::roll_token`].
    /// Errors: `Forbidden` unless the caller is an admin (or for the bootstrap administrator);
    /// `NotFound` for an unknown user.
    pub async fn reissue_token(
        &self,
        caller: Actor,
        user: UserId,
        keyed: Option<&Keyed<IssuedToken>>,
    ) -> Result<IssuedToken, ShopError> {
        if !caller.is_admin() {
            return Err(ShopError::Forbidden(
                "only an admin may issue tokens for other users".into(),
            ));
        }
        self.replace_token(user, keyed).await
    }

    async fn replace_token(
        &self,
        user: UserId,
        keyed: Option<&Keyed<IssuedToken>>,
    ) -> Result<IssuedToken, ShopError> {
        if self.bootstrap_admin() == Some(user) {
            return Err(ShopError::Forbidden(
                "the bootstrap administrator's token is ADMIN_TOKEN: change it in the \
                 configuration"
                    .into(),
            ));
        }
        let signer = self.token_signer().await?;
        let now = self.now();
        let issued = retry_on_conflict("replace_token", || async {
            let random = tokens::new_random_part();
            let mut tx = self.ports.store.begin().await?;
            let (user, version) = tx
                .users()
                .replace_token(user, hash_token(&random))
                .await?
                .ok_or_else(|| ShopError::not_found("user", user))?;
            let issued = IssuedToken {
                token: signer.sign(&random, user.id, user.role, version),
                user,
                version,
                created_at: now,
            };
            record_answer(tx.as_mut(), keyed, &issued, now).await?;
            tx.commit().await?;
            Ok(issued)
        })
        .await?;
        // After the commit: from now on this instance refuses every earlier version. A reader
        // that fetched an older version before the commit cannot overwrite this entry.
        let version = issued.version;
        self.caches
            .token_versions
            .put_unless(user, version, |cached| *cached >= version);
        tracing::info!(user = %user, version = version.0, "bearer token replaced");
        Ok(issued)
    }

    /// The user's current token version, from the cache when it holds one at least as new as
    /// the `presented` token's (a token newer than the cached version was issued meanwhile,
    /// perhaps elsewhere: the store knows). `None` for an unknown user.
    async fn token_version(
        &self,
        user: UserId,
        presented: TokenVersion,
    ) -> Result<Option<TokenVersion>, ShopError> {
        if let Some(cached) = self
            .caches
            .token_versions
            .get_if(&user, |cached| *cached >= presented)
        {
            return Ok(Some(cached));
        }
        let mut tx = self.ports.store.read().await?;
        let current = tx.users().token_version(user).await?;
        if let Some(current) = current {
            self.caches
                .token_versions
                .put_unless(user, current, |cached| *cached >= current);
        }
        Ok(current)
    }

    /// Whether `hash` is the SHA-256 of the configured `ADMIN_TOKEN`.
    fn is_admin_token(&self, hash: &TokenHash) -> bool {
        self.admin_token_hash
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(configured, _)| configured == hash)
    }

    /// The user the configured `ADMIN_TOKEN` belongs to.
    fn bootstrap_admin(&self) -> Option<UserId> {
        self.admin_token_hash
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(_, admin)| *admin)
    }

    /// The signer of the configured keys (and the store's secret where they use it), built on
    /// first use and kept for the life of this `Shop` (and its clones). The store's secret
    /// never changes once stored, so there is nothing to refresh. A failure is not remembered:
    /// the next call tries again.
    async fn token_signer(&self) -> Result<&TokenSigner, ShopError> {
        self.token_signer
            .get_or_try_init(|| async {
                let keys = &self.config.token_keys;
                let store_secret = if keys.uses_store_secret() {
                    Some(self.store_token_secret().await?)
                } else {
                    None
                };
                TokenSigner::new(keys, store_secret.as_ref())
            })
            .await
    }

    /// The store's token secret, created on first use (the store keeps the first one
    /// proposed, so concurrent instances agree).
    async fn store_token_secret(&self) -> Result<domain::user::TokenSecret, ShopError> {
        let proposed = tokens::new_secret();
        let secret = retry_on_conflict("token_secret", || async {
            let mut tx = self.ports.store.begin().await?;
            let secret = tx.users().token_secret(proposed.clone()).await?;
            tx.commit().await?;
            Ok(secret)
        })
        .await?;
        if secret == proposed {
            tracing::info!("token-signing secret created in the store");
        }
        Ok(secret)
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
    use crate::{Ports, ShopConfig};
    use async_trait::async_trait;
    use domain::ports::{RepoError, Transaction, UnitOfWork};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A memory store that counts every `begin`/`read` and can be switched off.
    #[derive(Default)]
    struct WatchedStore {
        inner: memory::MemoryStore,
        opened: AtomicUsize,
        down: AtomicBool,
    }

    impl WatchedStore {
        fn open(&self) -> Result<(), RepoError> {
            self.opened.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(RepoError::Unavailable("switched off by the test".into()));
            }
            Ok(())
        }

        fn opened(&self) -> usize {
            self.opened.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl UnitOfWork for WatchedStore {
        async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
            self.open()?;
            self.inner.begin().await
        }

        async fn read(&self) -> Result<Box<dyn Transaction>, RepoError> {
            self.open()?;
            self.inner.read().await
        }
    }

    fn shop_over(store: Arc<WatchedStore>) -> Shop {
        let ports = Ports {
            store,
            gate: Arc::new(memory::MemoryCouponGate::new()),
            ranking: Arc::new(memory::MemoryRankingStore::new()),
            publisher: Arc::new(memory::InProcessBus::new()),
            idempotency: Arc::new(memory::MemoryStore::new()),
            clock: Arc::new(memory::SystemClock),
        };
        Shop::new(ports, ShopConfig::default())
    }

    /// A shop on a fresh store, its admin (by `ADMIN_TOKEN`) and a few signed-up users.
    async fn shop_with_users() -> (Arc<WatchedStore>, Shop, Actor, Vec<SignedUp>) {
        let store = Arc::new(WatchedStore::default());
        let shop = shop_over(store.clone());
        let admin = shop.ensure_admin("an arbitrary admin token").await.unwrap();
        let admin = Actor {
            user_id: admin.id,
            role: Role::Admin,
        };
        let mut users = Vec::new();
        for role in [Role::Buyer, Role::Seller, Role::Admin] {
            users.push(
                shop.sign_up(Some(admin), "kim", Some(role), None)
                    .await
                    .unwrap(),
            );
        }
        (store, shop, admin, users)
    }

    /// `text` with its `i`-th (ASCII) character replaced by another base64 character.
    fn changed(text: &str, i: usize) -> String {
        let mut text = text.to_owned();
        let other = if &text[i..=i] == "A" { "B" } else { "A" };
        text.replace_range(i..=i, other);
        text
    }

    fn actor_of(signed: &SignedUp) -> Actor {
        Actor {
            user_id: signed.user.id,
            role: signed.user.role,
        }
    }

    #[tokio::test]
    async fn signed_tokens_authenticate_without_the_store_while_the_version_is_cached() {
        let (store, shop, _, users) = shop_with_users().await;
        // One version read per user, then none within `token_version_ttl`.
        let before = store.opened();
        for signed in &users {
            assert_eq!(shop.authenticate(&signed.token).await, Ok(actor_of(signed)));
        }
        assert_eq!(store.opened(), before + users.len());
        let before = store.opened();
        store.down.store(true, Ordering::SeqCst);
        for signed in &users {
            assert_eq!(shop.authenticate(&signed.token).await, Ok(actor_of(signed)));
            // Clones share the loaded secret.
            assert_eq!(
                shop.clone().authenticate(&signed.token).await,
                Ok(actor_of(signed))
            );
        }
        assert_eq!(store.opened(), before, "a signed token reached the store");
        // A token that is not signed still goes to the store (which is down here).
        assert!(matches!(
            shop.authenticate("an arbitrary admin token").await,
            Err(ShopError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn the_stored_hash_is_of_the_random_part_only() {
        let (store, _, _, users) = shop_with_users().await;
        let mut tx = store.inner.read().await.unwrap();
        for signed in &users {
            let random = signed.token.split('.').next().unwrap();
            assert_eq!(hash_token(random).0.len(), 64);
            let by_random = tx.users().find_by_token(&hash_token(random)).await.unwrap();
            assert_eq!(by_random, Some(signed.user.clone()));
            let by_token = tx.users().find_by_token(&hash_token(&signed.token)).await;
            assert_eq!(by_token.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn a_changed_character_in_any_part_is_unauthenticated_without_a_lookup() {
        let (store, shop, _, users) = shop_with_users().await;
        let token = &users[0].token; // BUYER
        let parts: Vec<&str> = token.split('.').collect();
        let other = tokens::new_random_part();
        // One character of the random part, of the id, of the version and of the MAC (a MAC's
        // last character carries stray bits, so its second-to-last is changed).
        let id = format!("{}", (parts[1].parse::<i64>().unwrap() + 1) % 10);
        let forged = [
            [
                &changed(parts[0], 0),
                parts[1],
                parts[2],
                parts[3],
                parts[4],
            ]
            .join("."),
            [parts[0], &id, parts[2], parts[3], parts[4]].join("."),
            [parts[0], parts[1], parts[2], "2", parts[4]].join("."),
            [
                parts[0],
                parts[1],
                parts[2],
                parts[3],
                &changed(parts[4], 41),
            ]
            .join("."),
            // A role, a user, a random part or a version chosen by the caller.
            [parts[0], parts[1], "ADMIN", parts[3], parts[4]].join("."),
            [parts[0], "1", parts[2], parts[3], parts[4]].join("."),
            [other.as_str(), parts[1], parts[2], parts[3], parts[4]].join("."),
            // Without the version: the first shape, whose MAC is another one.
            [parts[0], parts[1], parts[2], parts[4]].join("."),
        ];
        let before = store.opened();
        for token in &forged {
            assert!(SignedToken::parse(token).is_some(), "{token}");
            assert_eq!(
                shop.authenticate(token).await,
                Err(ShopError::Unauthenticated),
                "{token}"
            );
        }
        assert_eq!(
            store.opened(),
            before,
            "a forged signed token was looked up"
        );
        // A role spelled wrong is not the signed shape: looked up, and unknown.
        let misspelt = [parts[0], parts[1], "BUYEr", parts[3], parts[4]].join(".");
        assert_eq!(
            shop.authenticate(&misspelt).await,
            Err(ShopError::Unauthenticated)
        );
    }

    #[tokio::test]
    async fn tokens_signed_for_another_store_are_unauthenticated() {
        let (_, shop, _, _) = shop_with_users().await;
        let (_, elsewhere, _, theirs) = shop_with_users().await;
        // Same ids and roles on both stores: only the secret differs.
        assert_eq!(actor_of(&theirs[0]).user_id, UserId(2));
        assert!(elsewhere.authenticate(&theirs[0].token).await.is_ok());
        for signed in &theirs {
            assert_eq!(
                shop.authenticate(&signed.token).await,
                Err(ShopError::Unauthenticated)
            );
        }
    }

    #[tokio::test]
    async fn the_admin_token_is_looked_up_and_no_other_unsigned_token() {
        let (store, shop, admin, users) = shop_with_users().await;
        let before = store.opened();
        assert_eq!(
            shop.authenticate("an arbitrary admin token").await,
            Ok(admin)
        );
        assert_eq!(store.opened(), before + 1);
        // Hits are cached.
        assert_eq!(
            shop.authenticate("an arbitrary admin token").await,
            Ok(admin)
        );
        assert_eq!(store.opened(), before + 1);

        // A signed token's random part (its row holds that hash), a token of an earlier
        // version (a bare random part whose SHA-256 is in its users row) and arbitrary strings
        // are refused without a lookup.
        let legacy = tokens::new_random_part();
        let mut tx = store.inner.begin().await.unwrap();
        tx.users()
            .insert(NewUser {
                name: UserName::new("old").unwrap(),
                role: Role::Seller,
                token_hash: hash_token(&legacy),
                created_at: shop.now(),
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let before = store.opened();
        let signed = &users[2].token; // ADMIN
        let random = signed.split('.').next().unwrap();
        let claims = signed.rsplit_once('.').unwrap().0;
        for token in [
            random,
            claims,
            legacy.as_str(),
            "x",
            "an arbitrary admin token ",
        ] {
            assert_eq!(
                shop.authenticate(token).await,
                Err(ShopError::Unauthenticated),
                "{token}"
            );
        }
        assert_eq!(store.opened(), before, "an unsigned token was looked up");
    }

    #[tokio::test]
    async fn a_shop_accepts_only_the_admin_token_it_was_last_given() {
        let store = Arc::new(WatchedStore::default());
        let shop = shop_over(store.clone());
        assert_eq!(
            shop.authenticate("first").await,
            Err(ShopError::Unauthenticated)
        );
        let first = shop.ensure_admin("first").await.unwrap();
        assert_eq!(shop.authenticate("first").await.unwrap().user_id, first.id);
        // A restart with another ADMIN_TOKEN: the same admin, with the new token only.
        let restarted = shop_over(store);
        let second = restarted.ensure_admin("second").await.unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(
            restarted.authenticate("second").await.unwrap().user_id,
            second.id
        );
        assert_eq!(
            restarted.authenticate("first").await,
            Err(ShopError::Unauthenticated)
        );
    }

    #[tokio::test]
    async fn shops_over_one_store_accept_each_others_tokens() {
        let store = Arc::new(WatchedStore::default());
        let first = shop_over(store.clone());
        let second = shop_over(store.clone());
        let a = first.sign_up(None, "a", None, None).await.unwrap();
        let b = second.sign_up(None, "b", None, None).await.unwrap();
        assert_eq!(second.authenticate(&a.token).await, Ok(actor_of(&a)));
        assert_eq!(first.authenticate(&b.token).await, Ok(actor_of(&b)));
        // A shop started later (a restart) loads the same secret.
        let restarted = shop_over(store);
        assert_eq!(restarted.authenticate(&a.token).await, Ok(actor_of(&a)));
    }

    #[tokio::test]
    async fn the_secret_is_loaded_once_and_a_failed_load_is_retried() {
        let store = Arc::new(WatchedStore::default());
        let shop = shop_over(store.clone());
        store.down.store(true, Ordering::SeqCst);
        assert!(matches!(
            shop.sign_up(None, "a", None, None).await,
            Err(ShopError::Unavailable(_))
        ));
        store.down.store(false, Ordering::SeqCst);
        let a = shop.sign_up(None, "a", None, None).await.unwrap();
        let loaded = store.opened();
        shop.sign_up(None, "b", None, None).await.unwrap();
        // One transaction for the insert, none to load the secret again.
        assert_eq!(store.opened(), loaded + 1);
        assert_eq!(shop.authenticate(&a.token).await, Ok(actor_of(&a)));
    }

    #[tokio::test]
    async fn a_rolled_token_is_refused_at_once_without_waiting_for_the_cache() {
        let (store, shop, _, users) = shop_with_users().await;
        let buyer = &users[0];
        assert!(shop.authenticate(&buyer.token).await.is_ok()); // cached: version 1
        let rolled = shop.roll_token(actor_of(buyer), None).await.unwrap();
        let before = store.opened();
        assert_eq!(
            shop.authenticate(&buyer.token).await,
            Err(ShopError::Unauthenticated)
        );
        assert_eq!(shop.authenticate(&rolled.token).await, Ok(actor_of(buyer)));
        assert_eq!(store.opened(), before, "the roll did not update the cache");
    }

    #[tokio::test]
    async fn another_shop_refuses_a_rolled_token_once_its_cached_version_expires() {
        let store = Arc::new(WatchedStore::default());
        let config = ShopConfig {
            token_version_ttl: std::time::Duration::from_millis(100),
            ..ShopConfig::default()
        };
        let here = Shop::new(shop_over(store.clone()).ports().clone(), config.clone());
        let there = Shop::new(shop_over(store).ports().clone(), config);
        let user = here.sign_up(None, "a", None, None).await.unwrap();
        assert!(there.authenticate(&user.token).await.is_ok());
        let rolled = here.roll_token(actor_of(&user), None).await.unwrap();
        assert_eq!(
            here.authenticate(&user.token).await,
            Err(ShopError::Unauthenticated)
        );
        // There, the cached version still admits the old token for at most the TTL...
        assert!(there.authenticate(&user.token).await.is_ok());
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        // ...and no longer after it.
        assert_eq!(
            there.authenticate(&user.token).await,
            Err(ShopError::Unauthenticated)
        );
        assert_eq!(there.authenticate(&rolled.token).await, Ok(actor_of(&user)));
    }

    #[tokio::test]
    async fn a_new_token_works_at_once_on_a_shop_with_an_older_cached_version() {
        let store = Arc::new(WatchedStore::default());
        let here = shop_over(store.clone());
        let there = shop_over(store);
        let user = here.sign_up(None, "a", None, None).await.unwrap();
        assert!(there.authenticate(&user.token).await.is_ok()); // caches version 1 there
        let rolled = here.roll_token(actor_of(&user), None).await.unwrap();
        assert_eq!(there.authenticate(&rolled.token).await, Ok(actor_of(&user)));
        // Reading the newer version retired the old token there too.
        assert_eq!(
            there.authenticate(&user.token).await,
            Err(ShopError::Unauthenticated)
        );
    }

    #[tokio::test]
    async fn the_bootstrap_admin_token_is_not_rolled_through_the_api() {
        let (_, shop, admin, _) = shop_with_users().await;
        assert!(matches!(
            shop.roll_token(admin, None).await,
            Err(ShopError::Forbidden(_))
        ));
        assert!(matches!(
            shop.reissue_token(admin, admin.user_id, None).await,
            Err(ShopError::Forbidden(_))
        ));
        assert_eq!(
            shop.authenticate("an arbitrary admin token").await,
            Ok(admin)
        );
    }

    #[tokio::test]
    async fn an_admin_token_with_the_signed_shape_is_refused() {
        let (_, shop, _, users) = shop_with_users().await;
        assert!(matches!(
            shop.ensure_admin(&users[0].token).await,
            Err(ShopError::Validation(_))
        ));
    }
}
