//! `Idempotency-Key` records: the first response to a (user, method, path, key) is replayed for
//! later requests with the same body; a different body is refused.

use crate::UserId;
use time::OffsetDateTime;

/// 1..=255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub fn new(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a key is valid: the same key on another path or for another user is another key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub user_id: UserId,
    pub method: String,
    pub path: String,
    pub key: IdempotencyKey,
}

/// Who holds a claimed key: a random number drawn by the request that claimed it. Completing
/// or releasing a key is conditional on the token, so a request whose claim was taken over
/// (its lease ran out) can neither store its answer nor give the key back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(pub i64);

/// A key claimed by one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub token: ClaimToken,
}

/// The response kept for replay, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What the store answers when a request with a key starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// First time (or a lease takeover): the caller runs the request under this claim. A
    /// change is answered by storing the response in the change's own transaction
    /// ([`crate::ports::IdempotencyRecords`]); a refusal by [`crate::ports::IdempotencyStore::complete`];
    /// an answer not worth keeping releases the key.
    Started(IdempotencyClaim),
    /// Same key and body, finished before: replay this.
    Replay(StoredResponse),
    /// Same key, the first request is still running.
    InProgress,
    /// Same key, a different request body.
    Mismatch,
}

/// Records are kept at least this long (API.md: 24 hours).
pub const RETENTION: time::Duration = time::Duration::hours(24);

/// A started key that was never completed (the process died mid-request, or its transaction
/// rolled back and the release was lost) stops blocking retries after this long. Taking it over
/// is safe whatever the first request is still doing: the first request's transaction stores
/// its answer only while its token still holds the key, so of the two at most one commits.
pub const IN_PROGRESS_LEASE: time::Duration = time::Duration::seconds(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRequest {
    pub scope: IdempotencyScope,
    /// The token this request claims the key with.
    pub token: ClaimToken,
    /// SHA-256 of the request body, hex.
    pub fingerprint: String,
    pub now: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        assert!(IdempotencyKey::new("order-1").is_ok());
        assert!(IdempotencyKey::new(&"a".repeat(255)).is_ok());
        assert!(IdempotencyKey::new(&"a".repeat(256)).is_err());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("tab\there").is_err());
        assert!(IdempotencyKey::new("키").is_err());
    }
}
