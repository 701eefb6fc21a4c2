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
    /// First time: the caller runs the request and then completes or abandons the key.
    Started,
    /// Same key and body, finished before: replay this.
    Replay(StoredResponse),
    /// Same key, the first request is still running.
    InProgress,
    /// Same key, a different request body.
    Mismatch,
}

/// Records are kept at least this long (API.md: 24 hours).
pub const RETENTION: time::Duration = time::Duration::hours(24);

/// A started key that was never completed (the process died mid-request) stops blocking
/// retries after this long.
pub const IN_PROGRESS_LEASE: time::Duration = time::Duration::seconds(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRequest {
    pub scope: IdempotencyScope,
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
