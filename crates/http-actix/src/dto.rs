//! The wire format: request and response bodies of API.md, camelCase, money and quantities as
//! integers, timestamps as RFC 3339 in UTC, ids as JSON numbers. Request bodies refuse unknown
//! fields. The enums mirror the domain's so that the OpenAPI document can describe them (the
//! domain crate knows nothing of utoipa).

use application::coupons::{HeldCoupon, IssueOutcome};
use application::popular::Popular;
use domain::coupon::{Coupon, CouponDraft, CouponIssue, CouponIssueStatus, Discount, DiscountType};
use domain::order::{Order, OrderItem, OrderStatus};
use domain::outbox::{EventType, OutboxEvent, OutboxStatus};
use domain::payment::{Payment, PaymentStatus, WALLET_METHOD};
use domain::product::{Product, ProductStatus, StockLedgerEntry, StockReason};
use domain::user::{Role, User};
use domain::wallet::{Wallet, WalletTransaction, WalletTransactionType};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};
use utoipa::ToSchema;

/// Timestamps always leave in UTC (`...Z`), whatever offset the store handed back.
///
/// Total: an instant the conversion cannot represent (never stored, see `domain::text`) is
/// left as it is, and writing it then fails as a serialization error (500 problem+json), never
/// as a panic.
fn utc(at: OffsetDateTime) -> OffsetDateTime {
    at.checked_to_offset(UtcOffset::UTC).unwrap_or(at)
}

/// Request timestamps: RFC 3339 in, UTC out, and only instants in years 1..=9999 once in UTC
/// (`9999-12-31T23:59:59-23:59` is valid RFC 3339 but past what UTC can be written as). The
/// conversion is checked; an instant out of range is a 400 naming the field.
mod instant_in_range {
    use serde::Deserializer;
    use serde::de::Error as _;
    use time::OffsetDateTime;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let at = time::serde::rfc3339::deserialize(d)?;
        domain::text::to_utc_in_range(at)
            .ok_or_else(|| D::Error::custom(domain::text::INSTANT_RANGE_MESSAGE))
    }
}

/// Implements `Deserialize` for request DTOs through [`crate::extract::ObjectOnly`], so that
/// each accepts only a JSON object, never the array form serde's derive also takes. Each type
/// derives `Deserialize` with `#[serde(remote = "Self")]`, which makes the derived code an
/// inherent `deserialize` function instead of the trait implementation written here.
macro_rules! object_only {
    ($($name:ident),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::deserialize(crate::extract::ObjectOnly(d))
            }
        }
    )*};
}

object_only!(
    SignUpRequest,
    ChargeRequest,
    CreateProductRequest,
    UpdateProductRequest,
    StockAdjustmentRequest,
    CreateCouponRequest,
    OrderLineRequest,
    PlaceOrderRequest,
    PayRequest,
);

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident <=> $domain:ty { $($variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        impl From<$domain> for $name {
            fn from(v: $domain) -> Self {
                match v { $(<$domain>::$variant => Self::$variant),* }
            }
        }

        impl From<$name> for $domain {
            fn from(v: $name) -> Self {
                match v { $($name::$variant => <$domain>::$variant),* }
            }
        }
    };
}

wire_enum!(
    /// `ADMIN`, `SELLER` or `BUYER`.
    RoleDto <=> Role { Admin, Seller, Buyer }
);
wire_enum!(ProductStatusDto <=> ProductStatus { OnSale, Paused, Off });
wire_enum!(StockReasonDto <=> StockReason { Initial, Order, Cancel, Adjust });
wire_enum!(TransactionTypeDto <=> WalletTransactionType { Charge, Payment, Refund });
wire_enum!(DiscountTypeDto <=> DiscountType { Amount, Percent });
wire_enum!(CouponIssueStatusDto <=> CouponIssueStatus { Issued, Used, Expired });
wire_enum!(OrderStatusDto <=> OrderStatus { Created, Paid, Canceled, Refunded });
wire_enum!(PaymentStatusDto <=> PaymentStatus { Succeeded, Failed, Refunded });
wire_enum!(OutboxStatusDto <=> OutboxStatus { Ready, Sent, Failed });
wire_enum!(EventTypeDto <=> EventType { OrderPaid, OrderRefunded, CouponIssueRequested });

// ---------------------------------------------------------------------------------- users

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct SignUpRequest {
    /// 1..100 characters once surrounding whitespace is trimmed, no control character
    /// (`UserName::new`; the pattern is exactly that rule).
    #[schema(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: String,
    /// Absent or `BUYER` without an ADMIN token.
    #[serde(default)]
    pub role: Option<RoleDto>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: i64,
    pub name: String,
    pub role: RoleDto,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id.get(),
            name: u.name,
            role: u.role.into(),
            created_at: utc(u.created_at),
        }
    }
}

/// The new user with the only copy of its bearer token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedUpDto {
    pub id: i64,
    pub name: String,
    pub role: RoleDto,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Shown once; only its hash is stored.
    pub token: String,
}

/// A replacement bearer token, shown once. The user's earlier token no longer authenticates.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedTokenDto {
    pub user_id: i64,
    /// Shown once; only its hash is stored.
    pub token: String,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&application::users::IssuedToken> for IssuedTokenDto {
    fn from(issued: &application::users::IssuedToken) -> Self {
        Self {
            user_id: issued.user.id.0,
            token: issued.token.clone(),
            created_at: utc(issued.created_at),
        }
    }
}

// ---------------------------------------------------------------------------------- wallet

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceDto {
    pub user_id: i64,
    pub balance: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Wallet> for BalanceDto {
    fn from(w: Wallet) -> Self {
        Self {
            user_id: w.user_id.get(),
            balance: w.balance,
            updated_at: utc(w.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct ChargeRequest {
    /// Won to add, an integer ≥ `MIN_CHARGE` (`1000.0` and `1e3` are the integer 1000).
    /// Anything that is not an integer (a fraction, a string) answers 400 `INVALID_AMOUNT`.
    #[schema(value_type = i64, minimum = 1, example = 10000)]
    pub amount: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionDto {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: TransactionTypeDto,
    /// Signed: negative for a PAYMENT.
    pub amount: i64,
    pub balance_after: i64,
    /// Null for a CHARGE.
    #[schema(required = true, nullable)]
    pub order_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<WalletTransaction> for TransactionDto {
    fn from(t: WalletTransaction) -> Self {
        Self {
            id: t.id.get(),
            kind: t.kind.into(),
            amount: t.amount,
            balance_after: t.balance_after,
            order_id: t.order_id.map(|o| o.get()),
            created_at: utc(t.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeDto {
    pub user_id: i64,
    pub balance: i64,
    pub transaction: TransactionDto,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionPage {
    pub items: Vec<TransactionDto>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true, nullable)]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------- products

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductDto {
    pub id: i64,
    pub seller_id: i64,
    pub name: String,
    pub price: i64,
    pub stock: i64,
    pub status: ProductStatusDto,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Product> for ProductDto {
    fn from(p: Product) -> Self {
        Self {
            id: p.id.get(),
            seller_id: p.seller_id.get(),
            name: p.name,
            price: p.price,
            stock: p.stock,
            status: p.status.into(),
            created_at: utc(p.created_at),
            updated_at: utc(p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub items: Vec<ProductDto>,
    pub page: u32,
    pub size: u32,
    pub total_items: u64,
    pub total_pages: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct CreateProductRequest {
    /// 1..200 characters once surrounding whitespace is trimmed, no control character
    /// (`validate_product_name`; the pattern is exactly that rule).
    #[schema(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,198}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: String,
    /// Won, 1..=1 000 000 000.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub price: i64,
    /// 0..=1 000 000 000.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: i64,
    /// Defaults to `ON_SALE`.
    #[serde(default)]
    pub status: Option<ProductStatusDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct UpdateProductRequest {
    /// As when creating: 1..200 characters once trimmed, no control character.
    #[serde(default)]
    #[schema(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,198}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: Option<String>,
    /// Won, 1..=1 000 000 000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub price: Option<i64>,
    #[serde(default)]
    pub status: Option<ProductStatusDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct StockAdjustmentRequest {
    /// Signed change of the stock, non-zero, -1 000 000 000..=1 000 000 000; the stock never
    /// goes below 0 (409 `OUT_OF_STOCK`) nor above 1 000 000 000 (400).
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    pub delta: i64,
    /// At most 500 characters once surrounding whitespace is trimmed (blank means none), no
    /// control character (`validate_note`; the pattern is exactly that rule).
    #[serde(default)]
    #[schema(
        pattern = r"^[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(?:[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,498}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?$"
    )]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryDto {
    pub id: i64,
    pub product_id: i64,
    pub delta: i64,
    pub reason: StockReasonDto,
    #[schema(required = true, nullable)]
    pub order_id: Option<i64>,
    #[schema(required = true, nullable)]
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<StockLedgerEntry> for LedgerEntryDto {
    fn from(e: StockLedgerEntry) -> Self {
        Self {
            id: e.id.get(),
            product_id: e.product_id.get(),
            delta: e.delta,
            reason: e.reason.into(),
            order_id: e.order_id.map(|o| o.get()),
            note: e.note,
            created_at: utc(e.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerPage {
    pub items: Vec<LedgerEntryDto>,
    #[schema(required = true, nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PopularItemDto {
    /// 1-based.
    pub rank: u32,
    pub product_id: i64,
    pub name: String,
    pub price: i64,
    /// Net paid quantity over the window (refunds subtracted).
    pub sold_quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PopularDto {
    /// First business day covered (`YYYY-MM-DD`).
    #[schema(format = Date, example = "2026-11-19")]
    pub from: String,
    /// Last business day covered, today (`YYYY-MM-DD`).
    #[schema(format = Date, example = "2026-11-21")]
    pub to: String,
    pub items: Vec<PopularItemDto>,
}

impl From<Popular> for PopularDto {
    fn from(p: Popular) -> Self {
        Self {
            from: p.from.to_string(),
            to: p.to.to_string(),
            items: p
                .items
                .into_iter()
                .map(|i| PopularItemDto {
                    rank: i.rank,
                    product_id: i.product.id.get(),
                    name: i.product.name,
                    price: i.product.price,
                    sold_quantity: i.sold_quantity,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------- coupons

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct CreateCouponRequest {
    /// 1..100 characters once surrounding whitespace is trimmed, no control character
    /// (`NewCoupon::new`; the pattern is exactly that rule).
    #[schema(
        min_length = 1,
        pattern = r"^[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: String,
    pub discount_type: DiscountTypeDto,
    /// Won off, required for `AMOUNT` coupons (and refused for `PERCENT` ones).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount: Option<i64>,
    /// Percent off, required for `PERCENT` coupons (and refused for `AMOUNT` ones).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub percent: Option<i64>,
    /// Cap of a `PERCENT` discount in won (refused for `AMOUNT` coupons).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max_discount: Option<i64>,
    /// Won; default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub min_order_amount: Option<i64>,
    /// The first-come cap.
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub total_quantity: i64,
    /// Issues per user; default 1.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000)]
    pub per_user_limit: Option<i64>,
    /// RFC 3339; years 1..=9999 once converted to UTC.
    #[serde(deserialize_with = "instant_in_range::deserialize")]
    pub starts_at: OffsetDateTime,
    /// RFC 3339; years 1..=9999 once converted to UTC.
    #[serde(deserialize_with = "instant_in_range::deserialize")]
    pub expires_at: OffsetDateTime,
}

impl From<CreateCouponRequest> for CouponDraft {
    fn from(r: CreateCouponRequest) -> Self {
        Self {
            name: r.name,
            discount_type: r.discount_type.into(),
            amount: r.amount,
            percent: r.percent,
            max_discount: r.max_discount,
            min_order_amount: r.min_order_amount,
            total_quantity: r.total_quantity,
            per_user_limit: r.per_user_limit,
            starts_at: r.starts_at,
            expires_at: r.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponDto {
    pub id: i64,
    pub seller_id: i64,
    pub name: String,
    pub discount_type: DiscountTypeDto,
    /// Set for `AMOUNT` coupons.
    #[schema(required = true, nullable)]
    pub amount: Option<i64>,
    /// Set for `PERCENT` coupons.
    #[schema(required = true, nullable)]
    pub percent: Option<i64>,
    #[schema(required = true, nullable)]
    pub max_discount: Option<i64>,
    pub min_order_amount: i64,
    pub total_quantity: i64,
    pub issued_quantity: i64,
    pub remaining_quantity: i64,
    pub per_user_limit: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Coupon> for CouponDto {
    fn from(c: Coupon) -> Self {
        let remaining_quantity = c.remaining_quantity();
        let (amount, percent, max_discount) = match c.discount {
            Discount::Amount(a) => (Some(a), None, None),
            Discount::Percent {
                percent,
                max_discount,
            } => (None, Some(percent), max_discount),
        };
        Self {
            id: c.id.get(),
            seller_id: c.seller_id.get(),
            name: c.name,
            discount_type: c.discount.kind().into(),
            amount,
            percent,
            max_discount,
            min_order_amount: c.min_order_amount,
            total_quantity: c.total_quantity,
            issued_quantity: c.issued_quantity,
            remaining_quantity,
            per_user_limit: c.per_user_limit,
            starts_at: utc(c.starts_at),
            expires_at: utc(c.expires_at),
            created_at: utc(c.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponList {
    pub items: Vec<CouponDto>,
}

/// A coupon in a user's hands (201 of the issue endpoint).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponIssueDto {
    pub id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    pub status: CouponIssueStatusDto,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true, nullable, value_type = Option<String>, format = DateTime)]
    pub used_at: Option<OffsetDateTime>,
    #[schema(required = true, nullable)]
    pub order_id: Option<i64>,
}

impl CouponIssueDto {
    fn new(issue: CouponIssue, status: CouponIssueStatus) -> Self {
        Self {
            id: issue.id.get(),
            coupon_id: issue.coupon_id.get(),
            user_id: issue.user_id.get(),
            status: status.into(),
            issued_at: utc(issue.issued_at),
            used_at: issue.used_at.map(utc),
            order_id: issue.order_id.map(|o| o.get()),
        }
    }
}

/// `PENDING`: the grant is final and the record is being written (202 of the issue endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PendingStatus {
    Pending,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingIssueDto {
    pub coupon_id: i64,
    pub user_id: i64,
    pub status: PendingStatus,
    pub request_id: String,
}

/// What the issue endpoint answers, and with which status.
pub enum IssueAnswer {
    Issued(CouponIssueDto),
    Pending(PendingIssueDto),
}

impl From<IssueOutcome> for IssueAnswer {
    fn from(o: IssueOutcome) -> Self {
        match o {
            IssueOutcome::Issued(issue) => {
                let status = issue.status;
                Self::Issued(CouponIssueDto::new(issue, status))
            }
            IssueOutcome::Pending {
                coupon_id,
                user_id,
                request_id,
            } => Self::Pending(PendingIssueDto {
                coupon_id: coupon_id.get(),
                user_id: user_id.get(),
                status: PendingStatus::Pending,
                request_id,
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldCouponDto {
    pub id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    /// `EXPIRED` for an unused coupon past its `expiresAt`.
    pub status: CouponIssueStatusDto,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true, nullable, value_type = Option<String>, format = DateTime)]
    pub used_at: Option<OffsetDateTime>,
    #[schema(required = true, nullable)]
    pub order_id: Option<i64>,
    pub coupon: CouponDto,
}

impl From<HeldCoupon> for HeldCouponDto {
    fn from(h: HeldCoupon) -> Self {
        let issue = CouponIssueDto::new(h.issue, h.status);
        Self {
            id: issue.id,
            coupon_id: issue.coupon_id,
            user_id: issue.user_id,
            status: issue.status,
            issued_at: issue.issued_at,
            used_at: issue.used_at,
            order_id: issue.order_id,
            coupon: h.coupon.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldCouponList {
    pub items: Vec<HeldCouponDto>,
}

// ---------------------------------------------------------------------------------- orders

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct OrderLineRequest {
    /// Each product at most once per order.
    #[schema(minimum = 1)]
    pub product_id: i64,
    #[schema(minimum = 1, maximum = 1_000)]
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct PlaceOrderRequest {
    /// 1..50 lines, each product at most once.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderLineRequest>,
    #[serde(default)]
    pub coupon_issue_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemDto {
    pub product_id: i64,
    /// The product's name when the order was placed.
    pub name: String,
    /// The product's price when the order was placed.
    pub unit_price: i64,
    pub quantity: i64,
    pub subtotal: i64,
}

impl From<OrderItem> for OrderItemDto {
    fn from(i: OrderItem) -> Self {
        Self {
            product_id: i.product_id.get(),
            name: i.name,
            unit_price: i.unit_price,
            quantity: i.quantity,
            subtotal: i.subtotal,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderDto {
    pub id: i64,
    pub user_id: i64,
    pub status: OrderStatusDto,
    pub items: Vec<OrderItemDto>,
    pub subtotal: i64,
    pub discount: i64,
    pub total_amount: i64,
    #[schema(required = true, nullable)]
    pub coupon_issue_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// An unpaid order is canceled at this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true, nullable, value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<OffsetDateTime>,
    /// When it was canceled or refunded.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true, nullable, value_type = Option<String>, format = DateTime)]
    pub canceled_at: Option<OffsetDateTime>,
}

impl From<Order> for OrderDto {
    fn from(o: Order) -> Self {
        Self {
            id: o.id.get(),
            user_id: o.user_id.get(),
            status: o.status.into(),
            items: o.items.into_iter().map(Into::into).collect(),
            subtotal: o.subtotal,
            discount: o.discount,
            total_amount: o.total_amount,
            coupon_issue_id: o.coupon_issue_id.map(|c| c.get()),
            created_at: utc(o.created_at),
            expires_at: utc(o.expires_at),
            paid_at: o.paid_at.map(utc),
            canceled_at: o.canceled_at.map(utc),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<OrderDto>,
    #[schema(required = true, nullable)]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------- payments

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct PayRequest {
    #[schema(minimum = 1)]
    pub order_id: i64,
}

/// `WALLET`, the only method today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentMethodDto {
    Wallet,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDto {
    pub id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub amount: i64,
    pub method: PaymentMethodDto,
    pub status: PaymentStatusDto,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Payment> for PaymentDto {
    fn from(p: Payment) -> Self {
        debug_assert_eq!(WALLET_METHOD, "WALLET");
        Self {
            id: p.id.get(),
            order_id: p.order_id.get(),
            user_id: p.user_id.get(),
            amount: p.amount,
            method: PaymentMethodDto::Wallet,
            status: p.status.into(),
            created_at: utc(p.created_at),
        }
    }
}

// ---------------------------------------------------------------------------------- admin

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEventDto {
    pub id: i64,
    pub event_id: String,
    pub event_type: EventTypeDto,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The event's payload (EVENTS.md).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub status: OutboxStatusDto,
    pub attempts: i32,
    #[schema(required = true, nullable)]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true, nullable, value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
}

impl From<OutboxEvent> for OutboxEventDto {
    fn from(e: OutboxEvent) -> Self {
        Self {
            id: e.id.get(),
            event_id: e.envelope.event_id,
            event_type: e.envelope.event_type.into(),
            aggregate_type: e.envelope.aggregate_type,
            aggregate_id: e.envelope.aggregate_id,
            payload: e.envelope.payload,
            status: e.status.into(),
            attempts: e.attempts,
            last_error: e.last_error,
            created_at: utc(e.created_at),
            sent_at: e.sent_at.map(utc),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxPage {
    pub items: Vec<OutboxEventDto>,
    #[schema(required = true, nullable)]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------- health

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveDto {
    /// Always `UP` when the process answers.
    pub status: String,
}

/// One dependency's state. Why it is down is logged, never shown: the endpoint is public, and
/// dependency errors name hosts, users and versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyDto {
    /// `UP` or `DOWN`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyDto {
    /// `UP` when every dependency is up, `DOWN` otherwise (then the answer is 503).
    pub status: String,
    /// Per configured dependency (`database`, `cache`, `broker`).
    pub checks: std::collections::BTreeMap<String, DependencyDto>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::UserId;
    use time::macros::datetime;

    #[test]
    fn timestamps_are_rfc3339_utc_and_fields_camel_case() {
        let dto = UserDto::from(User {
            id: UserId(7),
            name: "Kim".into(),
            role: Role::Seller,
            created_at: datetime!(2026-11-21 18:30 +09:00),
        });
        let json = serde_json::to_value(dto).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id":7,"name":"Kim","role":"SELLER",
                "createdAt":"2026-11-21T09:30:00Z"})
        );
    }
}
