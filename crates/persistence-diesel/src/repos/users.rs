use super::corrupt;
use crate::PgTransaction;
use crate::schema::{token_secrets, users, wallets};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::UserId;
use domain::ports::{RepoError, UserRepository};
use domain::user::{NewUser, Role, TokenHash, TokenSecret, TokenVersion, User};
use time::OffsetDateTime;

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: i64,
    name: String,
    role: String,
    created_at: OffsetDateTime,
}

impl UserRow {
    fn into_domain(self) -> Result<User, RepoError> {
        Ok(User {
            id: UserId(self.id),
            role: Role::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?,
            name: self.name,
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl UserRepository for PgTransaction {
    async fn insert(&mut self, user: NewUser) -> Result<User, RepoError> {
        let conn = self.conn()?;
        let inserted = diesel::insert_into(users::table)
            .values((
                users::name.eq(user.name.as_str()),
                users::role.eq(user.role.as_str()),
                users::token_hash.eq(&user.token_hash.0),
                users::created_at.eq(user.created_at),
            ))
            .returning(UserRow::as_returning())
            .get_result(conn)
            .await;
        let row = self.check(inserted)?;
        let conn = self.conn()?;
        let wallet = diesel::insert_into(wallets::table)
            .values((
                wallets::user_id.eq(row.id),
                wallets::balance.eq(0_i64),
                wallets::updated_at.eq(user.created_at),
            ))
            .execute(conn)
            .await;
        self.check(wallet)?;
        row.into_domain()
    }

    async fn get(&mut self, id: UserId) -> Result<Option<User>, RepoError> {
        let conn = self.conn()?;
        let found = users::table
            .find(id.0)
            .select(UserRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(UserRow::into_domain).transpose()
    }

    async fn find_by_token(&mut self, token: &TokenHash) -> Result<Option<User>, RepoError> {
        let conn = self.conn()?;
        let found = users::table
            .filter(users::token_hash.eq(&token.0))
            .select(UserRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(UserRow::into_domain).transpose()
    }

    async fn token_version(&mut self, id: UserId) -> Result<Option<TokenVersion>, RepoError> {
        let conn = self.conn()?;
        let found = users::table
            .find(id.0)
            .select(users::token_version)
            .first::<i64>(conn)
            .await
            .optional();
        Ok(self.check(found)?.map(TokenVersion))
    }

    /// One conditional `UPDATE ... RETURNING`: the row lock it takes serializes concurrent
    /// replacements of one user, and each reads the version its predecessor committed.
    async fn replace_token(
        &mut self,
        id: UserId,
        token_hash: TokenHash,
    ) -> Result<Option<(User, TokenVersion)>, RepoError> {
        let conn = self.conn()?;
        let updated = diesel::update(users::table.find(id.0))
            .set((
                users::token_hash.eq(&token_hash.0),
                users::token_version.eq(users::token_version + 1),
            ))
            .returning((UserRow::as_returning(), users::token_version))
            .get_result::<(UserRow, i64)>(conn)
            .await
            .optional();
        match self.check(updated)? {
            Some((row, version)) => Ok(Some((row.into_domain()?, TokenVersion(version)))),
            None => Ok(None),
        }
    }

    async fn oldest_admin_named(&mut self, name: &str) -> Result<Option<User>, RepoError> {
        let conn = self.conn()?;
        let found = users::table
            .filter(users::role.eq(Role::Admin.as_str()))
            .filter(users::name.eq(name))
            .order(users::id.asc())
            .select(UserRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(UserRow::into_domain).transpose()
    }

    /// `INSERT ... ON CONFLICT DO NOTHING`, then `SELECT`. Under READ COMMITTED a concurrent
    /// first start's insert makes this one wait for its commit and do nothing; the `SELECT`, a
    /// new statement with a new snapshot, then reads the winner's secret.
    async fn token_secret(&mut self, proposed: TokenSecret) -> Result<TokenSecret, RepoError> {
        let conn = self.conn()?;
        let inserted = diesel::insert_into(token_secrets::table)
            .values((
                token_secrets::id.eq(SECRET_ROW),
                token_secrets::secret.eq(proposed.as_bytes().as_slice()),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await;
        self.check(inserted)?;
        let conn = self.conn()?;
        let stored = token_secrets::table
            .find(SECRET_ROW)
            .select(token_secrets::secret)
            .first::<Vec<u8>>(conn)
            .await;
        let stored = self.check(stored)?;
        TokenSecret::from_slice(&stored)
            .ok_or_else(|| corrupt("token secret length", &stored.len().to_string()))
    }
}

/// The id of the only row of `token_secrets` (the table's CHECK allows no other).
const SECRET_ROW: i16 = 1;
