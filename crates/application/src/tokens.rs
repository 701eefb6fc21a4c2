//! Signed bearer tokens: who the caller is and what role they have, checkable without the store.
//!
//! A token handed out at sign-up is `<random>.<user id>.<role>.<mac>`:
//! - `<random>`: 32 random bytes, URL-safe base64 without padding (43 characters). The users
//!   row stores its SHA-256 (the unique `token_hash`); it exists before the insert, the user id
//!   only after, which is why the token is built from both.
//! - `<user id>`: decimal; `<role>`: `ADMIN`, `SELLER` or `BUYER`.
//! - `<mac>`: URL-safe base64 of HMAC-SHA256(store secret, `shop-token-v1:<random>.<id>.<role>`).
//!   The prefix keeps these MACs apart from anything else the secret might sign one day.
//!
//! A token whose MAC verifies is proof of its user and role by itself: no round trip to the
//! store, which is what makes a burst of thousands of distinct users cheap. That is sound only
//! because users are never deleted and roles never change (the API has no such operation); if
//! either becomes possible, tokens must expire or verification must consult the store. Nothing
//! stored grants access: the users table holds a hash of `<random>` only, and the secret cannot
//! be derived from tokens.
//!
//! Anything that does not have this shape is not a signed token: `users` accepts it only if it
//! is the configured `ADMIN_TOKEN` (looked up by its SHA-256), and refuses everything else
//! without a lookup, in particular a token's random part on its own, whose SHA-256 the users
//! row holds.

use crate::{Actor, ShopError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::UserId;
use domain::user::{Role, TokenSecret};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// Domain separation: a MAC over a token is never a valid MAC over anything else.
const MAC_CONTEXT: &[u8] = b"shop-token-v1:";

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
    /// `<random>.<user id>.<role>`: exactly the text the MAC covers.
    claims: &'a str,
    user_id: UserId,
    role: Role,
    mac: Vec<u8>,
}

impl<'a> SignedToken<'a> {
    /// `None` unless `token` is `<43 base64 chars>.<positive decimal id>.<role>.<43 base64 chars>`.
    pub(crate) fn parse(token: &'a str) -> Option<Self> {
        let (claims, mac) = token.rsplit_once('.')?;
        let mut parts = claims.split('.');
        let (random, id, role) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_base64_of_32_bytes(random) {
            return None;
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let user_id = id.parse::<i64>().ok().filter(|&id| id > 0).map(UserId)?;
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
            mac,
        })
    }
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

    /// The token of `user` with the random part `random` (see the module docs for the shape).
    pub(crate) fn sign(&self, random: &str, user: UserId, role: Role) -> String {
        let claims = format!("{random}.{}.{}", user.0, role.as_str());
        let mac = self.mac(&claims).finalize().into_bytes();
        format!("{claims}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The caller the token names, if its MAC is this secret's (compared in constant time).
    pub(crate) fn verify(&self, token: &SignedToken<'_>) -> Option<Actor> {
        self.mac(token.claims).verify_slice(&token.mac).ok()?;
        Some(Actor {
            user_id: token.user_id,
            role: token.role,
        })
    }

    fn mac(&self, claims: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(MAC_CONTEXT);
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
        let token = signer.sign(&random, UserId(42), Role::Seller);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts[..3], [random.as_str(), "42", "SELLER"]);
        assert!(is_base64_of_32_bytes(parts[3]));
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
        let token = signer.sign(&new_random_part(), UserId(1234), Role::Buyer);
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
        assert_eq!(tried, token.len() - 3);
    }

    #[test]
    fn claims_cannot_be_swapped_under_a_valid_mac() {
        let signer = signer(1);
        let random = new_random_part();
        let token = signer.sign(&random, UserId(7), Role::Buyer);
        let mac = token
            .rsplit_once('.')
            .map(|(_, mac)| mac)
            .unwrap_or_default();
        for claims in [
            format!("{random}.7.ADMIN"),
            format!("{random}.8.BUYER"),
            format!("{random}.07.BUYER"),
            format!("{}.7.BUYER", new_random_part()),
        ] {
            assert_eq!(check(&signer, &format!("{claims}.{mac}")), None, "{claims}");
        }
        // Without the context prefix the MAC is a different one.
        let mut bare = signer.keyed.clone();
        bare.update(format!("{random}.7.BUYER").as_bytes());
        let bare = URL_SAFE_NO_PAD.encode(bare.finalize().into_bytes());
        assert_eq!(check(&signer, &format!("{random}.7.BUYER.{bare}")), None);
    }

    #[test]
    fn another_secret_does_not_verify() {
        let token = signer(1).sign(&new_random_part(), UserId(7), Role::Admin);
        assert!(check(&signer(1), &token).is_some());
        assert_eq!(check(&signer(2), &token), None);
    }

    #[test]
    fn only_the_exact_shape_is_a_signed_token() {
        let random = new_random_part();
        let mac = new_random_part();
        assert!(SignedToken::parse(&format!("{random}.7.BUYER.{mac}")).is_some());
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
        ] {
            assert!(SignedToken::parse(&token).is_none(), "{token}");
        }
    }
}
