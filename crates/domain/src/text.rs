//! Text and instants that come from outside and are stored and shown back: the checks every
//! value constructor shares.
//!
//! Invariants they give the rest of the shop:
//! - stored text holds no control character (Unicode category Cc: NUL, line breaks, tabs,
//!   escapes, C1 controls), so PostgreSQL never refuses it (it refuses NUL in `text`), logs
//!   cannot be forged through it and answers render the same in every client;
//! - stored instants lie in years 1..=9999 once converted to UTC, the range RFC 3339 can
//!   write in UTC and every adapter (the `time` crate, PostgreSQL through diesel) represents,
//!   so formatting a stored instant can never fail.

use crate::product::FieldError;
use time::{OffsetDateTime, UtcOffset};

/// The message of a text field that holds a control character.
pub const CONTROL_CHARACTER_MESSAGE: &str =
    "must not contain control characters (NUL, line breaks, tabs, escapes)";

/// The message of an instant outside years 1..=9999 in UTC.
pub const INSTANT_RANGE_MESSAGE: &str =
    "must be an RFC 3339 timestamp between years 1 and 9999 once converted to UTC";

/// Whether `text` holds a control character (see the module docs).
pub fn has_control_character(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// `Ok` when `text` holds no control character; otherwise the error names `field`.
pub fn check_printable(field: &str, text: &str) -> Result<(), FieldError> {
    if has_control_character(text) {
        Err(FieldError::new(field, CONTROL_CHARACTER_MESSAGE))
    } else {
        Ok(())
    }
}

/// `at` converted to UTC, if it lies in years 1..=9999 there. Checked arithmetic throughout:
/// an offset of up to ±25:59:59 moves an instant across a year boundary, and the unchecked
/// conversion panics past the `time` crate's own range.
pub fn to_utc_in_range(at: OffsetDateTime) -> Option<OffsetDateTime> {
    let utc = at.checked_to_offset(UtcOffset::UTC)?;
    (1..=9999).contains(&utc.year()).then_some(utc)
}

/// Like [`to_utc_in_range`], with the error naming `field`.
pub fn check_instant(field: &str, at: OffsetDateTime) -> Result<OffsetDateTime, FieldError> {
    to_utc_in_range(at).ok_or_else(|| FieldError::new(field, INSTANT_RANGE_MESSAGE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn control_characters_are_found_anywhere() {
        for bad in [
            "\0",
            "a\0",
            "a\u{7}b",
            "\t",
            "x\n",
            "\r",
            "\u{1b}[0m",
            "\u{7f}",
            "\u{85}",
        ] {
            assert!(has_control_character(bad), "{bad:?}");
            assert_eq!(check_printable("f", bad).unwrap_err().field, "f");
        }
        for good in ["", "kim", "김민수", "a b", "☕ ü", "\u{200b}"] {
            assert!(check_printable("f", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn instants_must_fit_years_1_to_9999_in_utc() {
        let late = datetime!(9999-12-31 23:59:59 -23:59);
        assert_eq!(to_utc_in_range(late), None);
        let early = datetime!(0001-01-01 00:00 +23:59);
        assert_eq!(to_utc_in_range(early), None);
        assert_eq!(
            check_instant("expiresAt", late).unwrap_err().field,
            "expiresAt"
        );
        let edge = datetime!(9999-12-31 23:59:59 +23:59);
        assert_eq!(
            to_utc_in_range(edge),
            Some(datetime!(9999-12-31 00:00:59 UTC))
        );
        assert_eq!(
            to_utc_in_range(datetime!(2026-11-21 18:30 +09:00)),
            Some(datetime!(2026-11-21 09:30 UTC))
        );
    }
}
