//! Users and roles (seed 000: one users table, the role as a column).

use crate::UserId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What a user may do. Sellers publish products and coupons and may also buy; admins may do
/// everything and read everyone's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    Seller,
    Buyer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Seller => "SELLER",
            Role::Buyer => "BUYER",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ADMIN" => Some(Role::Admin),
            "SELLER" => Some(Role::Seller),
            "BUYER" => Some(Role::Buyer),
            _ => None,
        }
    }

    /// May publish products and coupons.
    pub fn can_sell(self) -> bool {
        matches!(self, Role::Admin | Role::Seller)
    }

    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
}

/// A display name: 1..=100 characters after trimming, none of them a control character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUserName {
    #[error("must be 1 to 100 characters")]
    Length,
    /// NUL, a line break, a tab, an escape... (see [`crate::text`]).
    #[error("must not contain control characters (NUL, line breaks, tabs, escapes)")]
    ControlCharacter,
}

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn new(raw: &str) -> Result<Self, InvalidUserName> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(InvalidUserName::Length);
        }
        if crate::text::has_control_character(trimmed) {
            return Err(InvalidUserName::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The SHA-256 of a bearer token, hex encoded. Tokens themselves are never stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub String);

/// The generation of a user's bearer token: 1 at sign-up, incremented each time the token is
/// replaced (rolled by the user, re-issued by an admin, or a changed `ADMIN_TOKEN`). A signed
/// token carries the version it was issued at and is valid only while that is the user's
/// current version, which is how a replaced token stops working although it is checked by its
/// MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenVersion(pub i64);

impl TokenVersion {
    /// Every user's version before any replacement (and that of tokens without a version).
    pub const FIRST: Self = Self(1);

    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// The key that signs bearer tokens (HMAC-SHA256): 32 random bytes, one per store, shared by
/// every instance on that store and kept across restarts.
///
/// Whoever holds it can mint a token for any user and role, so `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret([u8; TokenSecret::LEN]);

impl TokenSecret {
    pub const LEN: usize = 32;

    pub fn new(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// `None` unless `bytes` is exactly [`Self::LEN`] long (a store reading its column back).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
}

/// What the store needs to create a user (and the user's empty wallet, in the same transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: UserName,
    pub role: Role,
    pub token_hash: TokenHash,
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::new("  kim ").unwrap().as_str(), "kim");
        assert_eq!(UserName::new("   "), Err(InvalidUserName::Length));
        assert!(UserName::new(&"가".repeat(100)).is_ok());
        assert_eq!(
            UserName::new(&"가".repeat(101)),
            Err(InvalidUserName::Length)
        );
        // Surrounding whitespace is trimmed; a control character inside is refused.
        assert_eq!(UserName::new("\tkim\n").unwrap().as_str(), "kim");
        for bad in ["k\0im", "k\tim", "kim\u{1b}", "a\nb"] {
            assert_eq!(UserName::new(bad), Err(InvalidUserName::ControlCharacter));
        }
    }

    #[test]
    fn roles_round_trip_and_only_sellers_and_admins_sell() {
        for role in [Role::Admin, Role::Seller, Role::Buyer] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("buyer"), None);
        assert!(Role::Seller.can_sell() && Role::Admin.can_sell() && !Role::Buyer.can_sell());
    }

    #[test]
    fn token_secrets_are_32_bytes_and_never_printed() {
        let secret = TokenSecret::new([0xAB; 32]);
        assert_eq!(format!("{secret:?}"), "TokenSecret(..)");
        assert_eq!(TokenSecret::from_slice(&[0xAB; 32]), Some(secret));
        assert_eq!(TokenSecret::from_slice(&[0xAB; 31]), None);
        assert_eq!(TokenSecret::from_slice(&[0xAB; 33]), None);
    }
}
