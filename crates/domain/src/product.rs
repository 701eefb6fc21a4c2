//! Catalog products and the stock ledger.
//!
//! Invariant: a product's `stock` equals the sum of its ledger deltas and is never negative.
//! Stock only changes through the store's conditional reserve/release operations, each of which
//! writes its ledger row in the same transaction.

use crate::{OrderId, ProductId, StockLedgerId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Upper bounds that keep every sum in an order far from `i64` overflow:
/// 50 items x 1,000 units x 1,000,000,000 won < 2^63.
pub const MAX_PRICE: i64 = 1_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_PRODUCT_NAME_CHARS: usize = 200;
/// Longest note accepted on a stock adjustment.
pub const MAX_NOTE_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProductStatus {
    OnSale,
    Paused,
    Off,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnSale => "ON_SALE",
            Self::Paused => "PAUSED",
            Self::Off => "OFF",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ON_SALE" => Some(Self::OnSale),
            "PAUSED" => Some(Self::Paused),
            "OFF" => Some(Self::Off),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub seller_id: UserId,
    pub name: String,
    pub price: i64,
    pub stock: i64,
    pub status: ProductStatus,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Product {
    /// Sellers manage their own products; admins manage all.
    pub fn is_managed_by(&self, user: UserId, is_admin: bool) -> bool {
        is_admin || self.seller_id == user
    }
}

/// A field of a product that failed validation, with a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub fn validate_product_name(raw: &str) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_PRODUCT_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {MAX_PRODUCT_NAME_CHARS} characters"),
        ));
    }
    crate::text::check_printable("name", trimmed)?;
    Ok(trimmed.to_owned())
}

/// The note of a stock adjustment: trimmed, `None` when blank, at most [`MAX_NOTE_CHARS`]
/// characters, no control character.
pub fn validate_note(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(note) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(FieldError::new(
            "note",
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    crate::text::check_printable("note", note)?;
    Ok(Some(note.to_owned()))
}

pub fn validate_price(price: i64) -> Result<i64, FieldError> {
    if !(1..=MAX_PRICE).contains(&price) {
        return Err(FieldError::new(
            "price",
            format!("must be between 1 and {MAX_PRICE}"),
        ));
    }
    Ok(price)
}

/// A validated request to list a product. The store writes the `INITIAL` ledger row with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub seller_id: UserId,
    pub name: String,
    pub price: i64,
    pub stock: i64,
    pub status: ProductStatus,
    pub created_at: OffsetDateTime,
}

impl NewProduct {
    pub fn new(
        seller_id: UserId,
        name: &str,
        price: i64,
        stock: i64,
        status: Option<ProductStatus>,
        now: OffsetDateTime,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = validate_product_name(name).map_err(|e| errors.push(e)).ok();
        let price = validate_price(price).map_err(|e| errors.push(e)).ok();
        if !(0..=MAX_STOCK).contains(&stock) {
            errors.push(FieldError::new(
                "stock",
                format!("must be between 0 and {MAX_STOCK}"),
            ));
        }
        match (name, price) {
            (Some(name), Some(price)) if errors.is_empty() => Ok(Self {
                seller_id,
                name,
                price,
                stock,
                status: status.unwrap_or(ProductStatus::OnSale),
                created_at: now,
            }),
            _ => Err(errors),
        }
    }
}

/// A validated partial update; `None` leaves the field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub price: Option<i64>,
    pub status: Option<ProductStatus>,
}

impl ProductPatch {
    pub fn new(
        name: Option<&str>,
        price: Option<i64>,
        status: Option<ProductStatus>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = name.and_then(|n| validate_product_name(n).map_err(|e| errors.push(e)).ok());
        let price = price.and_then(|p| validate_price(p).map_err(|e| errors.push(e)).ok());
        if errors.is_empty() {
            Ok(Self {
                name,
                price,
                status,
            })
        } else {
            Err(errors)
        }
    }

    pub fn apply(&self, product: &mut Product, now: OffsetDateTime) {
        if let Some(name) = &self.name {
            product.name.clone_from(name);
        }
        if let Some(price) = self.price {
            product.price = price;
        }
        if let Some(status) = self.status {
            product.status = status;
        }
        product.updated_at = now;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockReason {
    Initial,
    Order,
    Cancel,
    Adjust,
}

impl StockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "INITIAL",
            Self::Order => "ORDER",
            Self::Cancel => "CANCEL",
            Self::Adjust => "ADJUST",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "INITIAL" => Some(Self::Initial),
            "ORDER" => Some(Self::Order),
            "CANCEL" => Some(Self::Cancel),
            "ADJUST" => Some(Self::Adjust),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLedgerEntry {
    pub id: StockLedgerId,
    pub product_id: ProductId,
    pub delta: i64,
    pub reason: StockReason,
    pub order_id: Option<OrderId>,
    pub note: Option<String>,
    pub created_at: OffsetDateTime,
}

/// One stock movement to apply: the store applies it only if the stock stays within
/// `0..=MAX_STOCK`, and writes the ledger row in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockChange {
    pub product_id: ProductId,
    pub delta: i64,
    pub reason: StockReason,
    pub order_id: Option<OrderId>,
    pub note: Option<String>,
    pub at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-21 09:30 UTC);

    #[test]
    fn new_product_collects_every_field_error() {
        let errors = NewProduct::new(UserId(1), " ", 0, -1, None, NOW).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "price", "stock"]);
    }

    #[test]
    fn new_product_defaults_to_on_sale() {
        let p = NewProduct::new(UserId(1), "Tea", 1, 0, None, NOW).unwrap();
        assert_eq!(p.status, ProductStatus::OnSale);
        assert!(NewProduct::new(UserId(1), "Tea", MAX_PRICE + 1, 0, None, NOW).is_err());
    }

    #[test]
    fn patch_changes_only_given_fields() {
        let mut p = Product {
            id: ProductId(1),
            seller_id: UserId(2),
            name: "Tea".into(),
            price: 10,
            stock: 3,
            status: ProductStatus::OnSale,
            created_at: NOW,
            updated_at: NOW,
        };
        let patch = ProductPatch::new(None, Some(20), Some(ProductStatus::Paused)).unwrap();
        patch.apply(&mut p, NOW + time::Duration::SECOND);
        assert_eq!((p.name.as_str(), p.price, p.stock), ("Tea", 20, 3));
        assert_eq!(p.status, ProductStatus::Paused);
        assert!(ProductPatch::new(Some(""), None, None).is_err());
        assert!(ProductPatch::new(Some("T\0ea"), None, None).is_err());
    }

    #[test]
    fn notes_are_trimmed_bounded_and_printable() {
        assert_eq!(validate_note(None), Ok(None));
        assert_eq!(validate_note(Some("  ")), Ok(None));
        assert_eq!(validate_note(Some(" recount ")), Ok(Some("recount".into())));
        assert!(validate_note(Some(&"x".repeat(MAX_NOTE_CHARS))).is_ok());
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(validate_note(Some(&long)).unwrap_err().field, "note");
        assert_eq!(validate_note(Some("a\0b")).unwrap_err().field, "note");
    }
}
