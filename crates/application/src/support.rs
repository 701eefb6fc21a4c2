//! Plumbing shared by the use cases: conflict retries, hashing, list-window checks.

use crate::ShopError;
use domain::page::{CursorPage, OffsetPage};
use domain::ports::{GateError, RepoError};
use sha2::{Digest, Sha256};
use std::future::Future;

/// How often a use case is run from scratch when the store reports `Conflict` (one try plus
/// three retries).
const MAX_ATTEMPTS: u32 = 4;

/// The error of one attempt of a use case. It keeps `RepoError::Conflict` apart from the
/// business outcome so that [`retry_on_conflict`] can tell "a concurrent transaction won,
/// nothing happened, run again" from every other failure; `ShopError` folds conflicts into
/// `Unavailable`, which is right for the client but too late for a retry decision.
#[derive(Debug)]
pub(crate) enum AttemptError {
    Fail(ShopError),
    Conflict(String),
}

impl From<ShopError> for AttemptError {
    fn from(e: ShopError) -> Self {
        Self::Fail(e)
    }
}

impl From<RepoError> for AttemptError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict(m) => Self::Conflict(m),
            other => Self::Fail(other.into()),
        }
    }
}

impl From<GateError> for AttemptError {
    fn from(e: GateError) -> Self {
        Self::Fail(e.into())
    }
}

impl From<AttemptError> for ShopError {
    fn from(e: AttemptError) -> Self {
        match e {
            AttemptError::Fail(e) => e,
            AttemptError::Conflict(m) => RepoError::Conflict(m).into(),
        }
    }
}

/// Runs `attempt` until it does not end in a store conflict, at most [`MAX_ATTEMPTS`] times.
///
/// Only for attempts that are safe to re-run from scratch: each one opens its own transaction,
/// and a conflict (from any step or from the commit) means that transaction changed nothing.
pub(crate) async fn retry_on_conflict<T, F, Fut>(
    operation: &'static str,
    mut attempt: F,
) -> Result<T, ShopError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(AttemptError::Conflict(reason)) if tries < MAX_ATTEMPTS => {
                tracing::debug!(operation, tries, %reason, "store conflict, running again");
                // A short, growing pause lets the winner of the race commit first.
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(tries) * 2)).await;
            }
            Err(AttemptError::Conflict(reason)) => {
                tracing::warn!(operation, tries, %reason, "store stayed contended, giving up");
                return Err(RepoError::Conflict(reason).into());
            }
            Err(AttemptError::Fail(e)) => return Err(e),
        }
    }
}

/// SHA-256 of `bytes`, lower-case hex (token hashes, request fingerprints).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Cursor windows hold 1..=100 rows (API.md); the HTTP layer checks too, this keeps the store
/// safe from other callers.
pub(crate) fn check_cursor(page: CursorPage) -> Result<CursorPage, ShopError> {
    if (1..=CursorPage::MAX_LIMIT).contains(&page.limit) {
        Ok(page)
    } else {
        Err(ShopError::validation(
            "limit",
            &format!("must be between 1 and {}", CursorPage::MAX_LIMIT),
        ))
    }
}

/// Offset pages: `page` from 1, `size` 1..=100.
pub(crate) fn check_offset(page: OffsetPage) -> Result<OffsetPage, ShopError> {
    let mut errors = Vec::new();
    if page.page == 0 {
        errors.push(domain::product::FieldError::new(
            "page",
            "must be at least 1",
        ));
    }
    if !(1..=100).contains(&page.size) {
        errors.push(domain::product::FieldError::new(
            "size",
            "must be between 1 and 100",
        ));
    }
    if errors.is_empty() {
        Ok(page)
    } else {
        Err(ShopError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn conflicts_are_retried_three_times_then_reported_unavailable() {
        let calls = AtomicU32::new(0);
        let result: Result<(), ShopError> = retry_on_conflict("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(AttemptError::Conflict("busy".into()))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), MAX_ATTEMPTS);
        assert!(matches!(result, Err(ShopError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_conflict_then_success_succeeds_and_business_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result = retry_on_conflict("test", || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(AttemptError::Conflict("busy".into()))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result, Ok(7));

        let calls = AtomicU32::new(0);
        let result: Result<(), ShopError> = retry_on_conflict("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ShopError::NotFound("x".into()).into())
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(result, Err(ShopError::NotFound(_))));
    }

    #[test]
    fn pages_are_bounded() {
        assert!(
            check_cursor(CursorPage {
                before: None,
                limit: 0
            })
            .is_err()
        );
        assert!(
            check_cursor(CursorPage {
                before: None,
                limit: 100
            })
            .is_ok()
        );
        assert!(check_offset(OffsetPage { page: 0, size: 20 }).is_err());
        assert!(check_offset(OffsetPage { page: 1, size: 101 }).is_err());
    }
}
