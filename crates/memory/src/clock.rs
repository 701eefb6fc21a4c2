//! Clocks: the real one, and one that tests move by hand (payment TTL, coupon windows, days).

use domain::ports::Clock;
use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

/// The system's wall clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to. Clones share the same instant, so a test keeps one
/// handle and gives another (as `Arc<dyn Clock>`) to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(at)),
        }
    }

    /// Moves the clock to `at` (backwards too, if a test needs it).
    pub fn set(&self, at: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves the clock forward by `by` and returns the new instant.
    pub fn advance(&self, by: Duration) -> OffsetDateTime {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new(datetime!(2026-11-21 09:30 UTC));
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(shared.now(), datetime!(2026-11-21 09:30 UTC));
        assert_eq!(
            clock.advance(Duration::minutes(15)),
            datetime!(2026-11-21 09:45 UTC)
        );
        assert_eq!(shared.now(), datetime!(2026-11-21 09:45 UTC));
        clock.set(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(shared.now(), datetime!(2026-01-01 00:00 UTC));
    }

    #[test]
    fn system_clock_is_utc_and_moves() {
        let a = SystemClock.now();
        assert_eq!(a.offset(), time::UtcOffset::UTC);
        assert!(SystemClock.now() >= a);
    }
}
