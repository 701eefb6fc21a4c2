//! The first-come coupon gate: one Lua script decides every request atomically.
//!
//! Invariant kept by the scripts: `issued` never exceeds the coupon's `total_quantity` and no
//! user's count exceeds `per_user_limit`, because the check and the increment happen inside
//! one script (Redis runs scripts one at a time). The store's conditional counter stays the
//! source of truth; the gate only sheds the losers of a burst before they reach it.

use crate::conn::{Conn, LuaScript};
use crate::keys;
use async_trait::async_trait;
use domain::coupon::Coupon;
use domain::ports::{CouponGate, GateDecision, GateError, IssuedCounts};
use domain::{CouponId, UserId};
use fred::prelude::*;
use std::sync::LazyLock;
use std::time::Duration;
use time::OffsetDateTime;

static ACQUIRE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("gate_acquire", include_str!("lua/gate_acquire.lua")));
static RELEASE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("gate_release", include_str!("lua/gate_release.lua")));
static LOAD: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("gate_load", include_str!("lua/gate_load.lua")));

/// Per-user counts are staged in chunks of this many users, so that a coupon held by a
/// million users never becomes one giant command.
const STAGING_CHUNK: usize = 5_000;
/// A staging hash abandoned by a crashed loader disappears after this long.
const STAGING_TTL_SECS: i64 = 600;
/// Counters of a coupon that already expired still live this long, so that a late request is
/// answered from the counters rather than by an endless load/unloaded loop.
const MIN_COUNTER_TTL: Duration = Duration::from_secs(3600);

/// [`CouponGate`] on Redis. Built by [`crate::RedisClients::coupon_gate`].
#[derive(Clone)]
pub struct RedisCouponGate {
    conn: Conn,
    margin: Duration,
}

impl std::fmt::Debug for RedisCouponGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCouponGate")
            .field("prefix", &self.conn.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisCouponGate {
    pub(crate) fn new(conn: Conn, margin: Duration) -> Self {
        Self { conn, margin }
    }

    /// Unix seconds at which the coupon's counters expire. A coupon that ends so late that the
    /// margin would leave the calendar (near year 9999) keeps its counters until its own end:
    /// checked arithmetic, because a seller chooses `expiresAt`.
    fn expire_at(&self, coupon: &Coupon) -> i64 {
        let floor = OffsetDateTime::now_utc() + MIN_COUNTER_TTL;
        coupon
            .expires_at
            .checked_add(time::Duration::try_from(self.margin).unwrap_or(time::Duration::ZERO))
            .unwrap_or(coupon.expires_at)
            .max(floor)
            .unix_timestamp()
    }
}

fn unavailable(reason: String) -> GateError {
    tracing::warn!(%reason, "coupon gate unavailable");
    GateError::Unavailable(reason)
}

#[async_trait]
impl CouponGate for RedisCouponGate {
    async fn try_acquire(&self, coupon: &Coupon, user: UserId) -> Result<GateDecision, GateError> {
        let args = vec![
            Value::from(coupon.total_quantity),
            Value::from(coupon.per_user_limit),
            Value::from(user.get()),
            Value::from(self.expire_at(coupon)),
        ];
        let answer = self
            .conn
            .eval(&ACQUIRE, keys::coupon(self.conn.prefix(), coupon.id), args)
            .await
            .map_err(unavailable)?;
        match answer.as_i64() {
            Some(0) => Ok(GateDecision::Granted),
            Some(1) => Ok(GateDecision::SoldOut),
            Some(2) => Ok(GateDecision::LimitReached),
            Some(3) => Ok(GateDecision::Unloaded),
            _ => Err(unavailable(format!(
                "gate_acquire answered {answer:?} for coupon {}",
                coupon.id
            ))),
        }
    }

    async fn release(&self, coupon: CouponId, user: UserId) -> Result<(), GateError> {
        let answer = self
            .conn
            .eval(
                &RELEASE,
                keys::coupon(self.conn.prefix(), coupon),
                vec![Value::from(user.get())],
            )
            .await
            .map_err(unavailable)?;
        if answer.as_i64() == Some(0) {
            // Not an error: counters reloaded since the grant already exclude it.
            tracing::info!(%coupon, %user, "gate release found no grant to give back");
        }
        Ok(())
    }

    async fn load(&self, coupon: &Coupon, counts: &IssuedCounts) -> Result<(), GateError> {
        let prefix = self.conn.prefix();
        let mut keys = keys::coupon(prefix, coupon.id);
        let staging = keys::coupon_staging(prefix, coupon.id);
        keys.push(staging.clone());

        // Stage the per-user counts (not atomic, not visible: the script below moves the
        // staging hash in atomically, or drops it if loaded counters already exist).
        let holders: Vec<(String, i64)> = counts
            .per_user
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(user, count)| (user.to_string(), *count))
            .collect();
        for chunk in holders.chunks(STAGING_CHUNK) {
            let client = self.conn.client().map_err(unavailable)?;
            self.conn
                .bounded("gate staging", async {
                    client.hset::<(), _, _>(&staging, chunk.to_vec()).await?;
                    client
                        .expire::<(), _>(&staging, STAGING_TTL_SECS, None)
                        .await
                })
                .await
                .map_err(unavailable)?;
        }

        let args = vec![
            Value::from(counts.issued),
            Value::from(self.expire_at(coupon)),
        ];
        let installed = self
            .conn
            .eval(&LOAD, keys, args)
            .await
            .map_err(unavailable)?;
        tracing::debug!(coupon = %coupon.id, installed = ?installed, "gate load");
        Ok(())
    }
}
