//! The business calendar and the daily sales roll-up behind "popular products".
//!
//! A day is a calendar date in the business time zone (`BUSINESS_TZ_OFFSET`, default +09:00),
//! not in UTC: an order paid at 2026-11-21T16:00Z counts for 2026-11-22 in Seoul.

use crate::ProductId;
use time::{Date, OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessCalendar {
    pub offset: UtcOffset,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self {
            // +09:00 is always a valid offset.
            offset: UtcOffset::from_hms(9, 0, 0).unwrap_or(UtcOffset::UTC),
        }
    }
}

impl BusinessCalendar {
    pub fn new(offset: UtcOffset) -> Self {
        Self { offset }
    }

    /// Parses `+09:00`, `-05:30`, `Z`.
    pub fn parse_offset(raw: &str) -> Option<UtcOffset> {
        if raw == "Z" || raw == "z" {
            return Some(UtcOffset::UTC);
        }
        let format =
            time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
        UtcOffset::parse(raw, &format).ok()
    }

    pub fn day_of(&self, at: OffsetDateTime) -> Date {
        at.to_offset(self.offset).date()
    }

    /// The `days` business days ending today, oldest first.
    pub fn last_days(&self, now: OffsetDateTime, days: u32) -> Vec<Date> {
        let today = self.day_of(now);
        (0..days)
            .rev()
            .filter_map(|back| today.checked_sub(time::Duration::days(i64::from(back))))
            .collect()
    }
}

/// Net paid quantity of one product over a window (refunds subtracted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductSales {
    pub product_id: ProductId,
    pub quantity: i64,
}

/// Orders by quantity descending, ties to the lower product id; drops non-positive totals.
pub fn rank(mut sales: Vec<ProductSales>) -> Vec<ProductSales> {
    sales.retain(|s| s.quantity > 0);
    sales.sort_by(|a, b| {
        b.quantity
            .cmp(&a.quantity)
            .then(a.product_id.cmp(&b.product_id))
    });
    sales
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn days_follow_the_business_offset() {
        let cal = BusinessCalendar::default();
        assert_eq!(
            cal.day_of(datetime!(2026-11-21 16:00 UTC)),
            date!(2026 - 11 - 22)
        );
        assert_eq!(
            cal.day_of(datetime!(2026-11-21 14:59 UTC)),
            date!(2026 - 11 - 21)
        );
        assert_eq!(
            cal.last_days(datetime!(2026-11-21 16:00 UTC), 3),
            vec![
                date!(2026 - 11 - 20),
                date!(2026 - 11 - 21),
                date!(2026 - 11 - 22)
            ]
        );
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(
            BusinessCalendar::parse_offset("+09:00"),
            UtcOffset::from_hms(9, 0, 0).ok()
        );
        assert_eq!(
            BusinessCalendar::parse_offset("-05:30"),
            UtcOffset::from_hms(-5, -30, 0).ok()
        );
        assert_eq!(BusinessCalendar::parse_offset("Z"), Some(UtcOffset::UTC));
        assert_eq!(BusinessCalendar::parse_offset("9"), None);
    }

    #[test]
    fn ranking_breaks_ties_by_lower_id() {
        let s = |id, q| ProductSales {
            product_id: ProductId(id),
            quantity: q,
        };
        let ranked = rank(vec![s(3, 5), s(1, 5), s(2, 9), s(4, 0), s(5, -1)]);
        let ids: Vec<_> = ranked.iter().map(|s| s.product_id.0).collect();
        assert_eq!(ids, [2, 1, 3]);
    }
}
