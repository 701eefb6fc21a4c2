//! Users, with an index from token hash to user (authentication is one map lookup).
//!
//! Invariants: every user has exactly one wallet, created in the same write; `by_token` maps
//! each stored token hash to its user and nothing else (token hashes are unique, like a UNIQUE
//! index: a second user with the same hash is refused with `Conflict`); `tokens` holds each
//! user's current hash and version, the hash being the one `by_token` maps to that user. The
//! token-signing secret is set at most once and never changes afterwards.

use super::{MemoryTx, Sequences};
use async_trait::async_trait;
use domain::UserId;
use domain::ports::{RepoError, UserRepository};
use domain::user::{NewUser, Role, TokenHash, TokenSecret, TokenVersion, User};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct UsersTable {
    rows: BTreeMap<UserId, User>,
    by_token: HashMap<TokenHash, UserId>,
    tokens: HashMap<UserId, (TokenHash, TokenVersion)>,
    token_secret: Option<TokenSecret>,
}

#[async_trait]
impl UserRepository for MemoryTx {
    async fn insert(&mut self, user: NewUser) -> Result<User, RepoError> {
        let state = self.state_mut()?;
        if state.users.by_token.contains_key(&user.token_hash) {
            return Err(RepoError::Conflict(
                "a user with this token already exists".into(),
            ));
        }
        let id = UserId(Sequences::next(&mut state.seq.users));
        let row = User {
            id,
            name: user.name.into_inner(),
            role: user.role,
            created_at: user.created_at,
        };
        state.users.rows.insert(id, row.clone());
        state.users.by_token.insert(user.token_hash.clone(), id);
        state
            .users
            .tokens
            .insert(id, (user.token_hash.clone(), TokenVersion::FIRST));
        state.wallets.open(id, user.created_at);
        let token = user.token_hash;
        self.on_rollback(move |s| {
            s.users.rows.remove(&id);
            s.users.by_token.remove(&token);
            s.users.tokens.remove(&id);
            s.wallets.close(id);
        });
        Ok(row)
    }

    async fn get(&mut self, id: UserId) -> Result<Option<User>, RepoError> {
        Ok(self.state().users.rows.get(&id).cloned())
    }

    async fn find_by_token(&mut self, token: &TokenHash) -> Result<Option<User>, RepoError> {
        let users = &self.state().users;
        Ok(users
            .by_token
            .get(token)
            .and_then(|id| users.rows.get(id))
            .cloned())
    }

    async fn token_secret(&mut self, proposed: TokenSecret) -> Result<TokenSecret, RepoError> {
        if let Some(stored) = &self.state().users.token_secret {
            return Ok(stored.clone());
        }
        self.state_mut()?.users.token_secret = Some(proposed.clone());
        self.on_rollback(|s| s.users.token_secret = None);
        Ok(proposed)
    }

    async fn token_version(&mut self, id: UserId) -> Result<Option<TokenVersion>, RepoError> {
        Ok(self.state().users.tokens.get(&id).map(|(_, v)| *v))
    }

    async fn replace_token(
        &mut self,
        id: UserId,
        token_hash: TokenHash,
    ) -> Result<Option<(User, TokenVersion)>, RepoError> {
        let users = &self.state().users;
        let (Some(user), Some((old_hash, old_version))) =
            (users.rows.get(&id).cloned(), users.tokens.get(&id).cloned())
        else {
            return Ok(None);
        };
        if users
            .by_token
            .get(&token_hash)
            .is_some_and(|owner| *owner != id)
        {
            return Err(RepoError::Conflict(
                "a user with this token already exists".into(),
            ));
        }
        let version = old_version.next();
        let users = &mut self.state_mut()?.users;
        users.by_token.remove(&old_hash);
        users.by_token.insert(token_hash.clone(), id);
        users.tokens.insert(id, (token_hash.clone(), version));
        self.on_rollback(move |s| {
            s.users.by_token.remove(&token_hash);
            s.users.by_token.insert(old_hash.clone(), id);
            s.users.tokens.insert(id, (old_hash, old_version));
        });
        Ok(Some((user, version)))
    }

    async fn oldest_admin_named(&mut self, name: &str) -> Result<Option<User>, RepoError> {
        // Rows are ordered by id: the first match is the oldest.
        Ok(self
            .state()
            .users
            .rows
            .values()
            .find(|u| u.role == Role::Admin && u.name == name)
            .cloned())
    }
}
