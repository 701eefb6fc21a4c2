//! Key names. Every key carries a hash tag (`{...}`) so that the keys one script touches share
//! a Redis Cluster slot; the prefix comes first and holds no braces, so the tag is the first
//! `{...}` of the key, which is what Redis Cluster hashes.

use domain::CouponId;
use domain::rate_limit::RateKey;
use time::Date;

/// The gate's keys for one coupon, in the order the scripts expect them.
pub(crate) fn coupon(prefix: &str, id: CouponId) -> Vec<String> {
    vec![
        format!("{prefix}{{coupon:{id}}}:loaded"),
        format!("{prefix}{{coupon:{id}}}:issued"),
        format!("{prefix}{{coupon:{id}}}:users"),
    ]
}

/// A transient hash that per-user counts are written to before the load script moves it in.
pub(crate) fn coupon_staging(prefix: &str, id: CouponId) -> String {
    format!("{prefix}{{coupon:{id}}}:staging:{}", uuid::Uuid::new_v4())
}

/// One request budget: a single key, its own hash tag (budgets are independent).
pub(crate) fn rate_budget(prefix: &str, key: &RateKey) -> String {
    format!("{prefix}{{rate:{key}}}")
}

pub(crate) fn ranking_day(prefix: &str, day: Date) -> String {
    format!("{prefix}{{ranking}}:day:{}", iso(day))
}

pub(crate) fn ranking_built(prefix: &str, day: Date) -> String {
    format!("{prefix}{{ranking}}:day:{}:built", iso(day))
}

pub(crate) fn ranking_scratch(prefix: &str) -> String {
    format!("{prefix}{{ranking}}:tmp:{}", uuid::Uuid::new_v4())
}

/// `YYYY-MM-DD`.
fn iso(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn keys_share_a_slot_per_coupon_and_for_the_ranking() {
        let keys = coupon("shop:", CouponId(7));
        assert_eq!(
            keys,
            [
                "shop:{coupon:7}:loaded",
                "shop:{coupon:7}:issued",
                "shop:{coupon:7}:users"
            ]
        );
        let slots: Vec<u16> = keys
            .iter()
            .chain([&coupon_staging("shop:", CouponId(7))])
            .map(|k| fred::util::redis_keyslot(k.as_bytes()))
            .collect();
        assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");

        let day = date!(2026 - 03 - 05);
        assert_eq!(ranking_day("", day), "{ranking}:day:2026-03-05");
        assert_eq!(ranking_built("", day), "{ranking}:day:2026-03-05:built");
        let ranking_slots = [
            ranking_day("p:", day),
            ranking_built("p:", date!(2026 - 12 - 31)),
            ranking_scratch("p:"),
        ]
        .map(|k| fred::util::redis_keyslot(k.as_bytes()));
        assert!(ranking_slots.iter().all(|s| *s == ranking_slots[0]));

        assert_eq!(
            rate_budget("shop:", &RateKey::User(domain::UserId(42))),
            "shop:{rate:user:42}"
        );
    }
}
