//! Signed bearer tokens: who the caller is, what role they have and which generation of their
//! token this is, checkable without a store round trip in the steady state.
//!
//! A token handed out at sign-up (or when a token is replaced) is
//! `<random>.<user id>.<role>.<version>.<mac>`:
//! - `<random>`: 32 random bytes, URL-safe base64 without padding (43 characters). The users
//!   row stores its SHA-256 (the unique `token_hash`); it exists before the insert, the user id
//!   only after, which is why the token is built from both.
//! - `<user id>`: decimal; `<role>`: `ADMIN`, `SELLER` or `BUYER`.
//! - `<version>`: decimal, the user's token version when it was issued ([`TokenVersion`]).
//! - `<mac>`: URL-safe base64 of HMAC-SHA256(store secret,
//!   `shop-token-v2:<random>.<id>.<role>.<version>`). The prefix keeps these MACs apart from
//!   anything else the secret might sign one day, and from tokens of the first shape.
//!
//! Tokens of the first shape, `<random>.<id>.<role>.<mac>` with the prefix `shop-token-v1:`,
//! were issued before tokens could be replaced; they are read as version 1 (every user's
//! version until its first replacement), so they keep working until then.
//!
//! A token whose MAC verifies proves its user, role and version. It authenticates while that
//! version is the user's current one (`users::authenticate`, through a short-lived cache): a
//! replaced token stops working. That is sound because users are never deleted and roles never
//! change (the API has no such operation); if either becomes possible, the version check is the
//! place to add it. Nothing stored grants access: the users table holds a hash of `<random>`
//! only, and the secret cannot be derived from tokens.
//!
//! Anything that does not have this shape is not a signed token: `users` accepts it only if it
//! is the configured `ADMIN_TOKEN` (looked up by its SHA-256), and refuses everything else
//! without a lookup, in particular a token's random part on its own, whose SHA-256 the users
//! row holds.

use crate::{Actor, ShopError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::UserId;
use domain::user::{Role, TokenSecret, TokenVersion};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// Domain separation: a MAC over a token is never a valid MAC over anything else, and a MAC
/// over a versioned token never one over a token of the first shape (or the reverse).
const MAC_CONTEXT: &[u8] = b"shop-token-v2:";
/// The prefix of tokens of the first shape (no version), still verified as version 1.
const MAC_CONTEXT_UNVERSIONED: &[u8] = b"shop-token-v1:";

/// Length of 32 bytes in URL-safe base64 without padding.
const ENCODED_32_BYTES: usize = 43;

/// 256 bits from the OS-seeded thread RNG, URL-safe base64: unguessable, and short enough for
/// a header. The random part of a signed token.
pub(crate) fn new_random_part() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh secret to propose to the store; the store keeps the first one it was given.
pub(crate) fn new_secret() -> TokenSecret {
    let mut bytes = [0u8; TokenSecret::LEN];
    rand::rng().fill_bytes(&mut bytes);
    TokenSecret::new(bytes)
}

/// A token that has the signed shape; whether its MAC is right is [`TokenSigner::verify`]'s
/// question.
#[derive(Debug)]
pub(crate) struct SignedToken<'a> {
    /// `<random>.<user id>.<role>[.<version>]`: exactly the text the MAC covers.
    claims: &'a str,
    user_id: UserId,
    role: Role,
    /// `None` for a token of the first shape (read as version 1, MAC'd under its own prefix).
    version: Option<TokenVersion>,
    mac: Vec<u8>,
}

impl<'a> SignedToken<'a> {
    /// `None` unless `token` is `<43 base64 chars>.<positive decimal id>.<role>[.<positive
    /// decimal version>].<43 base64 chars>`.
    pub(crate) fn parse(token: &'a str) -> Option<Self> {
        let (claims, mac) = token.rsplit_once('.')?;
        let mut parts = claims.split('.');
        let (random, id, role) = (parts.next()?, parts.next()?, parts.next()?);
        let version = match parts.next() {
            None => None,
            Some(version) => Some(positive_decimal(version).map(TokenVersion)?),
        };
        if parts.next().is_some() || !is_base64_of_32_bytes(random) {
            return None;
        }
        let user_id = positive_decimal(id).map(UserId)?;
        let role = Role::parse(role)?;
        if !is_base64_of_32_bytes(mac) {
            return None;
        }
        // Strict decoding: a last character with stray low bits is refused, so each MAC has
        // exactly one spelling.
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        Some(Self {
            claims,
            user_id,
            role,
            version,
            mac,
        })
    }

    /// The token version it was issued at.
    pub(crate) fn version(&self) -> TokenVersion {
        self.version.unwrap_or(TokenVersion::FIRST)
    }
}

/// Digits only (no sign, no spaces), fitting an `i64`, above 0: one spelling per number.
fn positive_decimal(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') {
        return None;
    }
    text.parse::<i64>().ok().filter(|&n| n > 0)
}

fn is_base64_of_32_bytes(part: &str) -> bool {
    part.len() == ENCODED_32_BYTES
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Signs and verifies tokens with one store's secret.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    /// Keyed once; each use works on a clone (no re-keying per request).
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    /// # Errors
    /// `Internal` if the key is refused, which HMAC never does (it takes keys of any length;
    /// the error exists for other MACs).
    pub(crate) fn new(secret: &TokenSecret) -> Result<Self, ShopError> {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .map_err(|e| ShopError::Internal(format!("token secret refused by HMAC: {e}")))?;
        Ok(Self { keyed })
    }

    /// The token of `user` at `version` with the random part `random` (see the module docs
    /// for the shape).
    pub(crate) fn sign(
        &self,
        random: &str,
        user: UserId,
        role: Role,
        version: TokenVersion,
    ) -> String {
        let claims = format!("{random}.{}.{}.{}", user.0, role.as_str(), version.0);
        let mac = self.mac(MAC_CONTEXT, &claims).finalize().into_bytes();
        format!("{claims}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The caller the token names, if its MAC is this secret's (compared in constant time).
    /// Whether its version is still the user's is the caller's question.
    pub(crate) fn verify(&self, token: &SignedToken<'_>) -> Option<Actor> {
        let context = if token.version.is_some() {
            MAC_CONTEXT
        } else {
            MAC_CONTEXT_UNVERSIONED
        };
        self.mac(context, token.claims)
            .verify_slice(&token.mac)
            .ok()?;
        Some(Actor {
            user_id: token.user_id,
            role: token.role,
        })
    }

    fn mac(&self, context: &[u8], claims: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(context);
        mac.update(claims.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(byte: u8) -> TokenSigner {
        TokenSigner::new(&TokenSecret::new([byte; 32])).unwrap()
    }

    fn check(signer: &TokenSigner, token: &str) -> Option<Actor> {
        SignedToken::parse(token).and_then(|t| signer.verify(&t))
    }

    /// A different character of the same class (digit for digit, base64 for base64).
    fn flip(c: char) -> char {
        match c {
            '0'..='8' => ((c as u8) + 1) as char,
            '9' => '0',
            'A' => 'B',
            _ => 'A',
        }
    }

    #[test]
    fn random_parts_are_43_url_safe_characters_and_unique() {
        let a = new_random_part();
        assert!(is_base64_of_32_bytes(&a));
        assert_ne!(a, new_random_part());
        assert_ne!(new_secret(), new_secret());
    }

    #[test]
    fn a_signed_token_names_its_user_and_role() {
        let signer = signer(1);
        let random = new_random_part();
        let token = signer.sign(&random, UserId(42), Role::Seller, TokenVersion(3));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts[..4], [random.as_str(), "42", "SELLER", "3"]);
        assert!(is_base64_of_32_bytes(parts[4]));
        assert_eq!(
            SignedToken::parse(&token).map(|t| t.version()),
            Some(TokenVersion(3))
        );
        assert_eq!(
            check(&signer, &token),
            Some(Actor {
                user_id: UserId(42),
                role: Role::Seller
            })
        );
    }

    #[test]
    fn one_changed_character_anywhere_breaks_the_token() {
        let signer = signer(1);
        let token = signer.sign(
            &new_random_part(),
            UserId(1234),
            Role::Buyer,
            TokenVersion(12),
        );
        let mut tried = 0;
        for (i, c) in token.char_indices() {
            if c == '.' {
                continue;
            }
            let mut forged = token.clone();
            forged.replace_range(i..=i, &flip(c).to_string());
            assert_ne!(forged, token);
            assert_eq!(check(&signer, &forged), None, "accepted {forged}");
            tried += 1;
        }
        assert_eq!(tried, token.len() - 4);
    }

    #[test]
    fn claims_cannot_be_swapped_under_a_valid_mac() {
        let signer = signer(1);
        let random = new_random_part();
        let token = signer.sign(&random, UserId(7), Role::Buyer, TokenVersion(2));
        let mac = token
            .rsplit_once('.')
            .map(|(_, mac)| mac)
            .unwrap_or_default();
        for claims in [
            format!("{random}.7.ADMIN.2"),
            format!("{random}.8.BUYER.2"),
            format!("{random}.7.BUYER.3"),
            format!("{random}.7.BUYER.1"),
            format!("{random}.7.BUYER"),
            format!("{}.7.BUYER.2", new_random_part()),
        ] {
            assert_eq!(check(&signer, &format!("{claims}.{mac}")), None, "{claims}");
        }
        // Without the context prefix the MAC is a different one.
        let mut bare = signer.keyed.clone();
        bare.update(format!("{random}.7.BUYER.2").as_bytes());
        let bare = URL_SAFE_NO_PAD.encode(bare.finalize().into_bytes());
        assert_eq!(check(&signer, &format!("{random}.7.BUYER.2.{bare}")), None);
    }

    /// Tokens issued before versions existed: `<random>.<id>.<role>.<mac>` under the first
    /// prefix. They verify as version 1, and a version cannot be added to them.
    #[test]
    fn tokens_of_the_first_shape_verify_as_version_one() {
        let signer = signer(1);
        let random = new_random_part();
        let claims = format!("{random}.7.BUYER");
        let mut legacy = signer.keyed.clone();
        legacy.update(MAC_CONTEXT_UNVERSIONED);
        legacy.update(claims.as_bytes());
        let mac = URL_SAFE_NO_PAD.encode(legacy.finalize().into_bytes());
        let token = format!("{claims}.{mac}");
        assert_eq!(
            check(&signer, &token),
            Some(Actor {
                user_id: UserId(7),
                role: Role::Buyer
            })
        );
        assert_eq!(
            SignedToken::parse(&token).map(|t| t.version()),
            Some(TokenVersion::FIRST)
        );
        assert_eq!(check(&signer, &format!("{claims}.1.{mac}")), None);
        // A versioned token's MAC is not valid for its claims without the version, either.
        let versioned = signer.sign(&random, UserId(7), Role::Buyer, TokenVersion::FIRST);
        let versioned_mac = versioned
            .rsplit_once('.')
            .map(|(_, m)| m)
            .unwrap_or_default();
        assert_eq!(check(&signer, &format!("{claims}.{versioned_mac}")), None);
    }

    #[test]
    fn another_secret_does_not_verify() {
        let token = signer(1).sign(
            &new_random_part(),
            UserId(7),
            Role::Admin,
            TokenVersion::FIRST,
        );
        assert!(check(&signer(1), &token).is_some());
        assert_eq!(check(&signer(2), &token), None);
    }

    #[test]
    fn only_the_exact_shape_is_a_signed_token() {
        let random = new_random_part();
        let mac = new_random_part();
        assert!(SignedToken::parse(&format!("{random}.7.BUYER.{mac}")).is_some());
        assert!(SignedToken::parse(&format!("{random}.7.BUYER.2.{mac}")).is_some());
        for token in [
            random.clone(), // a token of an earlier version
            "bootstrap-token".to_owned(),
            String::new(),
            format!("{random}.7.BUYER"),
            format!("{random}.7.BUYER.{mac}.x"),
            format!("x.{random}.7.BUYER.{mac}"),
            format!("{random}.0.BUYER.{mac}"),
            format!("{random}.-7.BUYER.{mac}"),
            format!("{random}.+7.BUYER.{mac}"),
            format!("{random}..BUYER.{mac}"),
            format!("{random}.99999999999999999999.BUYER.{mac}"),
            format!("{random}.7.buyer.{mac}"),
            format!("{random}.7.BUYER.{}", &mac[1..]),
            format!("{random}x.7.BUYER.{mac}"),
            format!("{random}.7.BUYER.{}=", &mac[1..]),
            format!("{random}.07.BUYER.{mac}"),
            format!("{random}.7.BUYER.0.{mac}"),
            format!("{random}.7.BUYER.02.{mac}"),
            format!("{random}.7.BUYER.-2.{mac}"),
            format!("{random}.7.BUYER..{mac}"),
            format!("{random}.7.BUYER.2.2.{mac}"),
            format!("{random}.7.BUYER.99999999999999999999.{mac}"),
        ] {
            assert!(SignedToken::parse(&token).is_none(), "{token}");
        }
    }
}
