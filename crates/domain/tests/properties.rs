//! Property-based tests of the value constructors: generated hostile input (any Unicode, control
//! characters, extreme numbers, instants at the edges of what `time` represents) instead of
//! hand-picked cases. Each property states what an accepted value guarantees to the rest of the
//! shop, and that nothing panics on the way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::coupon::{CouponDraft, DiscountType, NewCoupon};
use domain::idempotency::IdempotencyKey;
use domain::order::{MAX_ITEM_QUANTITY, MAX_ORDER_ITEMS, OrderLine, price_order, validate_lines};
use domain::product::{
    MAX_NOTE_CHARS, MAX_PRICE, MAX_PRODUCT_NAME_CHARS, Product, ProductStatus, validate_note,
    validate_price, validate_product_name,
};
use domain::text::{has_control_character, to_utc_in_range};
use domain::user::UserName;
use domain::{ProductId, UserId};
use proptest::prelude::*;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Strings that mix ordinary text with what breaks naive validation: control characters,
/// whitespace of several kinds, multi-byte characters.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<char>().prop_map(String::from),
        2 => Just("\0".to_owned()),
        1 => prop::sample::select(vec!["\t", "\n", "\r", "\u{1b}", "\u{7f}", "\u{85}", "\u{9f}"])
            .prop_map(str::to_owned),
        2 => Just(" ".to_owned()),
        1 => Just("\u{3000}".to_owned()),
        3 => "[a-z가-힣]{1,8}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// Any instant `time` can hold, at any offset it can hold.
fn any_instant() -> impl Strategy<Value = OffsetDateTime> {
    let min = OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT).unix_timestamp();
    let max = OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT).unix_timestamp();
    (min..=max, -93_599i32..=93_599).prop_filter_map("representable", |(seconds, offset)| {
        let offset = UtcOffset::from_whole_seconds(offset).ok()?;
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()?
            .checked_to_offset(offset)
    })
}

fn product(id: i64, seller: i64, price: i64) -> Product {
    let now = OffsetDateTime::UNIX_EPOCH;
    Product {
        id: ProductId(id),
        seller_id: UserId(seller),
        name: format!("p{id}"),
        price,
        stock: 10,
        status: ProductStatus::OnSale,
        created_at: now,
        updated_at: now,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn user_names_are_trimmed_bounded_and_printable(raw in hostile_text()) {
        match UserName::new(&raw) {
            Ok(name) => {
                let name = name.as_str();
                prop_assert_eq!(name, raw.trim());
                prop_assert!((1..=UserName::MAX_CHARS).contains(&name.chars().count()));
                prop_assert!(!has_control_character(name));
            }
            Err(_) => {
                let trimmed = raw.trim();
                let chars = trimmed.chars().count();
                prop_assert!(
                    chars == 0 || chars > UserName::MAX_CHARS || has_control_character(trimmed)
                );
            }
        }
    }

    #[test]
    fn product_names_and_notes_are_bounded_and_printable(raw in hostile_text()) {
        if let Ok(name) = validate_product_name(&raw) {
            prop_assert!((1..=MAX_PRODUCT_NAME_CHARS).contains(&name.chars().count()));
            prop_assert!(!has_control_character(&name));
        }
        match validate_note(Some(&raw)) {
            Ok(Some(note)) => {
                prop_assert!(note.chars().count() <= MAX_NOTE_CHARS);
                prop_assert!(!has_control_character(&note));
                prop_assert_eq!(note.as_str(), raw.trim());
            }
            Ok(None) => prop_assert!(raw.trim().is_empty()),
            Err(e) => prop_assert_eq!(e.field, "note"),
        }
    }

    #[test]
    fn prices_are_accepted_exactly_in_range(price in prop_oneof![
        any::<i64>(),
        -2i64..=2,
        (MAX_PRICE - 2)..=(MAX_PRICE + 2),
    ]) {
        prop_assert_eq!(validate_price(price).is_ok(), (1..=MAX_PRICE).contains(&price));
    }

    #[test]
    fn accepted_order_lines_price_without_overflow(
        lines in prop::collection::vec(
            (prop_oneof![any::<i64>(), 1i64..=60], prop_oneof![any::<i64>(), 0i64..=1_001]),
            0..=(MAX_ORDER_ITEMS + 2),
        ),
        price in 1..=MAX_PRICE,
    ) {
        let lines: Vec<OrderLine> = lines
            .into_iter()
            .map(|(id, quantity)| OrderLine { product_id: ProductId(id), quantity })
            .collect();
        if validate_lines(&lines).is_ok() {
            prop_assert!((1..=MAX_ORDER_ITEMS).contains(&lines.len()));
            let products: Vec<Product> =
                lines.iter().map(|l| product(l.product_id.0, 1, price)).collect();
            let priced: Vec<_> = lines.iter().copied().zip(products.iter()).collect();
            let pricing = price_order(&priced, None).unwrap();
            let expected: i64 = lines.iter().map(|l| l.quantity * price).sum();
            prop_assert!(lines.iter().all(|l| (1..=MAX_ITEM_QUANTITY).contains(&l.quantity)));
            prop_assert_eq!(pricing.subtotal, expected);
            prop_assert_eq!(pricing.total_amount, expected);
        }
    }

    #[test]
    fn instants_convert_to_utc_only_inside_years_1_to_9999(at in any_instant()) {
        match to_utc_in_range(at) {
            Some(utc) => {
                prop_assert_eq!(utc, at);
                prop_assert_eq!(utc.offset(), UtcOffset::UTC);
                prop_assert!((1..=9999).contains(&utc.year()));
                // What is accepted can always be written back as RFC 3339 in UTC.
                prop_assert!(utc.format(&Rfc3339).is_ok());
            }
            None => {
                let year = at.checked_to_offset(UtcOffset::UTC).map(|u| u.year());
                prop_assert!(!matches!(year, Some(1..=9999)), "{:?}", year);
            }
        }
    }

    #[test]
    fn coupons_keep_only_writable_instants(
        starts_at in any_instant(),
        expires_at in any_instant(),
        name in hostile_text(),
    ) {
        let draft = CouponDraft {
            name,
            discount_type: DiscountType::Amount,
            amount: Some(1_000),
            percent: None,
            max_discount: None,
            min_order_amount: None,
            total_quantity: 10,
            per_user_limit: None,
            starts_at,
            expires_at,
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        if let Ok(coupon) = NewCoupon::new(UserId(1), false, draft, now) {
            for at in [coupon.starts_at, coupon.expires_at] {
                prop_assert_eq!(at.offset(), UtcOffset::UTC);
                prop_assert!(at.format(&Rfc3339).is_ok());
            }
            prop_assert!(coupon.starts_at < coupon.expires_at);
            prop_assert!(!has_control_character(&coupon.name));
        }
    }

    #[test]
    fn idempotency_keys_are_1_to_255_printable_ascii(raw in prop_oneof![
        hostile_text(),
        "[ -~]{0,300}",
    ]) {
        let expected = (1..=255).contains(&raw.len())
            && raw.bytes().all(|b| (0x20..=0x7e).contains(&b));
        prop_assert_eq!(IdempotencyKey::new(&raw).is_ok(), expected);
    }
}
