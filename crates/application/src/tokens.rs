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
//! # Whose secret
//! By default the secret is the store's (`token_secrets`, created on first use): simple, but a
//! copy of the database is then enough to mint any token. With configured keys
//! ([`TokenKeys`], `TOKEN_SIGNING_KEYS`) the database holds nothing that signs: tokens are
//! `<random>.<user id>.<role>.<version>.<key id>.<mac>`, MAC'd under `shop-token-v3:` with the
//! key the id names. The first configured key signs, every configured key verifies, so keys
//! rotate without logging anyone out (add the new key first, drop the old one once its tokens
//! have been replaced). Tokens signed by the store's secret stop verifying then, unless the
//! keys say `store` (a migration window, see [`TokenKeys::accept_store_secret`]).
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
/// Tokens signed by a configured key (their claims end with the key id).
const MAC_CONTEXT_KEYED: &[u8] = b"shop-token-v3:";
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

/// A configured token-signing key: an id that the tokens it signs carry, and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
}

impl SigningKey {
    /// Shortest secret accepted: the MAC's own output size.
    pub const MIN_SECRET_LEN: usize = 32;
    /// Longest key id.
    pub const MAX_ID_LEN: usize = 32;

    /// # Errors
    /// A one-line reason: the id is not a letter followed by up to 31 letters, digits, `-` or
    /// `_` (or is `store`, which names the store's secret), or the secret is shorter than
    /// [`Self::MIN_SECRET_LEN`] bytes.
    pub fn new(id: &str, secret: Vec<u8>) -> Result<Self, String> {
        if !is_key_id(id) {
            return Err(format!(
                "key id {id:?} must be a letter followed by up to {} letters, digits, '-' or '_'",
                Self::MAX_ID_LEN - 1
            ));
        }
        if id == TokenKeys::STORE {
            return Err(format!("key id {id:?} names the store's secret"));
        }
        if secret.len() < Self::MIN_SECRET_LEN {
            return Err(format!(
                "key {id:?} has {} bytes; at least {} are needed",
                secret.len(),
                Self::MIN_SECRET_LEN
            ));
        }
        Ok(Self {
            id: id.to_owned(),
            secret,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, ***)", self.id)
    }
}

/// Which secrets sign and verify bearer tokens (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenKeys {
    /// The configured keys; the first signs, all verify. Empty: the store's secret signs and
    /// verifies.
    pub configured: Vec<SigningKey>,
    /// With configured keys, tokens signed by the store's secret still verify (never sign):
    /// the window in which users of a shop that ran on the store's secret replace their tokens.
    /// Meaningless without configured keys.
    pub accept_store_secret: bool,
}

impl TokenKeys {
    /// The id under which the store's secret is named in a key list.
    pub const STORE: &'static str = "store";

    /// Whether the store's secret is needed (to sign, or to verify during a migration).
    pub fn uses_store_secret(&self) -> bool {
        self.configured.is_empty() || self.accept_store_secret
    }
}

/// A letter, then up to 31 letters, digits, `-` or `_`: never a decimal version, so a token's
/// parts say by their shape which is which.
fn is_key_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && id.len() <= SigningKey::MAX_ID_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A token that has the signed shape; whether its MAC is right is [`TokenSigner::verify`]'s
/// question.
#[derive(Debug)]
pub(crate) struct SignedToken<'a> {
    /// `<random>.<user id>.<role>[.<version>[.<key id>]]`: exactly the text the MAC covers.
    claims: &'a str,
    user_id: UserId,
    role: Role,
    /// `None` for a token of the first shape (read as version 1, MAC'd under its own prefix).
    version: Option<TokenVersion>,
    /// The configured key that signed it; `None` for the store's secret.
    key_id: Option<&'a str>,
    mac: Vec<u8>,
}

impl<'a> SignedToken<'a> {
    /// `None` unless `token` is `<43 base64 chars>.<positive decimal id>.<role>[.<positive
    /// decimal version>[.<key id>]].<43 base64 chars>`.
    pub(crate) fn parse(token: &'a str) -> Option<Self> {
        let (claims, mac) = token.rsplit_once('.')?;
        let mut parts = claims.split('.');
        let (random, id, role) = (parts.next()?, parts.next()?, parts.next()?);
        let version = match parts.next() {
            None => None,
            Some(version) => Some(positive_decimal(version).map(TokenVersion)?),
        };
        let key_id = match parts.next() {
            None => None,
            Some(key_id) if is_key_id(key_id) => Some(key_id),
            Some(_) => return None,
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
            key_id,
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

/// Signs tokens with one key and verifies them with every key it knows.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    /// Index into `keys` of the key that signs.
    signing: usize,
    keys: Vec<Key>,
}

/// One secret, keyed once: each use works on a clone (no re-keying per request).
#[derive(Clone)]
struct Key {
    /// The configured key's id; `None` for the store's secret.
    id: Option<String>,
    keyed: Hmac<Sha256>,
}

impl Key {
    fn new(id: Option<String>, secret: &[u8]) -> Result<Self, ShopError> {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .map_err(|e| ShopError::Internal(format!("token secret refused by HMAC: {e}")))?;
        Ok(Self { id, keyed })
    }
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    /// The signer of `keys`, with the store's secret where the keys use it.
    ///
    /// # Errors
    /// `Internal` when the keys need the store's secret and none is given, or if a key is
    /// refused, which HMAC never does (it takes keys of any length).
    pub(crate) fn new(keys: &TokenKeys, store: Option<&TokenSecret>) -> Result<Self, ShopError> {
        let mut all = keys
            .configured
            .iter()
            .map(|key| Key::new(Some(key.id.clone()), &key.secret))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.uses_store_secret() {
            let secret = store.ok_or_else(|| {
                ShopError::Internal("the token keys need the store's secret".into())
            })?;
            all.push(Key::new(None, secret.as_bytes())?);
        }
        // The first configured key signs; without any, the store's secret (the only key).
        Ok(Self {
            signing: 0,
            keys: all,
        })
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
        let key = &self.keys[self.signing];
        let (context, claims) = match &key.id {
            Some(id) => (
                MAC_CONTEXT_KEYED,
                format!("{random}.{}.{}.{}.{id}", user.0, role.as_str(), version.0),
            ),
            None => (
                MAC_CONTEXT,
                format!("{random}.{}.{}.{}", user.0, role.as_str(), version.0),
            ),
        };
        let mac = key.mac(context, &claims).finalize().into_bytes();
        format!("{claims}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The caller the token names, if its MAC is that of the key it names (compared in
    /// constant time). Whether its version is still the user's is the caller's question.
    pub(crate) fn verify(&self, token: &SignedToken<'_>) -> Option<Actor> {
        let key = self
            .keys
            .iter()
            .find(|key| key.id.as_deref() == token.key_id)?;
        let context = match (token.key_id, token.version) {
            (Some(_), _) => MAC_CONTEXT_KEYED,
            (None, Some(_)) => MAC_CONTEXT,
            (None, None) => MAC_CONTEXT_UNVERSIONED,
        };
        key.mac(context, token.claims)
            .verify_slice(&token.mac)
            .ok()?;
        Some(Actor {
            user_id: token.user_id,
            role: token.role,
        })
    }
}

impl Key {
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
        TokenSigner::new(&TokenKeys::default(), Some(&TokenSecret::new([byte; 32]))).unwrap()
    }

    fn key(id: &str, byte: u8) -> SigningKey {
        SigningKey::new(id, vec![byte; 32]).unwrap()
    }

    fn keyring(keys: &[SigningKey], store: Option<u8>) -> TokenSigner {
        let keys = TokenKeys {
            configured: keys.to_vec(),
            accept_store_secret: store.is_some(),
        };
        let secret = store.map(|byte| TokenSecret::new([byte; 32]));
        TokenSigner::new(&keys, secret.as_ref()).unwrap()
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
        let mut bare = signer.keys[0].keyed.clone();
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
        let mut legacy = signer.keys[0].keyed.clone();
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

    #[test]
    fn a_configured_key_signs_with_its_id_and_every_configured_key_verifies() {
        let (old, new) = (key("k2025", 1), key("k2026", 2));
        let before = keyring(std::slice::from_ref(&old), None);
        let token = before.sign(&new_random_part(), UserId(7), Role::Buyer, TokenVersion(2));
        assert_eq!(token.split('.').nth(4), Some("k2025"));
        // Rotation: the new key signs, the old one still verifies.
        let rotating = keyring(&[new.clone(), old.clone()], None);
        assert!(check(&rotating, &token).is_some());
        let fresh = rotating.sign(&new_random_part(), UserId(7), Role::Buyer, TokenVersion(3));
        assert_eq!(fresh.split('.').nth(4), Some("k2026"));
        assert!(check(&rotating, &fresh).is_some());
        assert_eq!(check(&before, &fresh), None, "k2026 is unknown there");
        // Retired: the old key's tokens stop verifying.
        let after = keyring(std::slice::from_ref(&new), None);
        assert_eq!(check(&after, &token), None);
        // A key id swapped for another known id does not carry the MAC over.
        let swapped = token.replace(".k2025.", ".k2026.");
        assert_eq!(check(&rotating, &swapped), None);
        // Nor does dropping the key id (the store's secret is not even known here).
        let (claims, mac) = token.rsplit_once('.').unwrap();
        let unkeyed = format!("{}.{mac}", claims.rsplit_once('.').unwrap().0);
        assert_eq!(check(&rotating, &unkeyed), None);
    }

    /// The point of configured keys: whoever holds the store's secret (a database dump)
    /// cannot mint a token, unless the operator opened the migration window.
    #[test]
    fn with_configured_keys_the_store_secret_mints_nothing() {
        let store_signed =
            signer(9).sign(&new_random_part(), UserId(1), Role::Admin, TokenVersion(1));
        assert_eq!(check(&keyring(&[key("k1", 1)], None), &store_signed), None);
        let migrating = keyring(&[key("k1", 1)], Some(9));
        assert!(check(&migrating, &store_signed).is_some());
        // During the window, new tokens are signed by the configured key only.
        let fresh = migrating.sign(&new_random_part(), UserId(1), Role::Admin, TokenVersion(2));
        assert_eq!(fresh.split('.').nth(4), Some("k1"));
        assert!(check(&keyring(&[key("k1", 1)], None), &fresh).is_some());
        // The store's secret never verifies a token that names a key.
        let mut forged = signer(9).keys[0].keyed.clone();
        let claims = format!("{}.1.ADMIN.2.k1", new_random_part());
        forged.update(MAC_CONTEXT_KEYED);
        forged.update(claims.as_bytes());
        let forged = format!(
            "{claims}.{}",
            URL_SAFE_NO_PAD.encode(forged.finalize().into_bytes())
        );
        assert_eq!(check(&migrating, &forged), None);
    }

    #[test]
    fn keys_need_a_proper_id_and_32_bytes() {
        assert!(SigningKey::new("k-2026_a", vec![0; 32]).is_ok());
        assert!(SigningKey::new(&"k".repeat(32), vec![0; 64]).is_ok());
        for id in ["", "1k", "k.1", "k 1", "store", &"k".repeat(33), "ké"] {
            assert!(SigningKey::new(id, vec![0; 32]).is_err(), "{id:?}");
        }
        assert!(SigningKey::new("k", vec![0; 31]).is_err());
        assert!(!format!("{:?}", key("k", 7)).contains('7'));
        // A key-id part that could be a version (digits) or is malformed is no signed token.
        let (random, mac) = (new_random_part(), new_random_part());
        for kid in ["1", "-k", "k.k", ""] {
            let token = format!("{random}.7.BUYER.2.{kid}.{mac}");
            assert!(SignedToken::parse(&token).is_none(), "{token}");
        }
        assert!(SignedToken::parse(&format!("{random}.7.BUYER.2.k1.{mac}")).is_some());
    }
}
