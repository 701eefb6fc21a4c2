use time::OffsetDateTime;

/// The current instant. Tests use a clock they can move (payment TTL, coupon windows, days).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}
