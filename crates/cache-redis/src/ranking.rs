//! The "popular products" read model: one sorted set per business day (product id → net
//! quantity), written whole from the store's roll-up by the ranking updater and when missing.

use crate::conn::{Conn, LuaScript};
use crate::keys;
use async_trait::async_trait;
use domain::ProductId;
use domain::ports::{RankingError, RankingRead, RankingStore};
use domain::sales::{ProductSales, rank};
use fred::prelude::*;
use std::sync::LazyLock;
use time::{Date, OffsetDateTime};

static TOP: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("ranking_top", include_str!("lua/ranking_top.lua")));
static REBUILD: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("ranking_rebuild", include_str!("lua/ranking_rebuild.lua")));

/// [`RankingStore`] on Redis. Built by [`crate::RedisClients::ranking_store`].
#[derive(Clone)]
pub struct RedisRankingStore {
    conn: Conn,
    retention_days: u32,
}

impl std::fmt::Debug for RedisRankingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRankingStore")
            .field("prefix", &self.conn.prefix())
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

fn unavailable(reason: String) -> RankingError {
    tracing::warn!(%reason, "ranking store unavailable");
    RankingError::Unavailable(reason)
}

/// `product, quantity, product, quantity, ...` without zero entries.
fn flatten(sales: &[ProductSales], args: &mut Vec<Value>) {
    for s in sales.iter().filter(|s| s.quantity != 0) {
        args.push(Value::from(s.product_id.get()));
        args.push(Value::from(s.quantity));
    }
}

impl RedisRankingStore {
    pub(crate) fn new(conn: Conn, retention_days: u32) -> Self {
        Self {
            conn,
            retention_days,
        }
    }

    /// Unix seconds at which a day's keys expire: the end of the day plus the retention, and never in the past, so that a late
    /// rebuild of an old day is still readable for a while.
    fn expire_at(&self, day: Date) -> i64 {
        let end_of_day = day.midnight().assume_utc() + time::Duration::days(1);
        let retained = end_of_day + time::Duration::days(i64::from(self.retention_days));
        let floor = OffsetDateTime::now_utc() + time::Duration::hours(1);
        retained.max(floor).unix_timestamp()
    }
}

#[async_trait]
impl RankingStore for RedisRankingStore {
    async fn top(&self, days: &[Date], limit: usize) -> Result<RankingRead, RankingError> {
        if days.is_empty() || limit == 0 {
            return Ok(RankingRead::Ranked(Vec::new()));
        }
        let prefix = self.conn.prefix();
        let mut keys: Vec<String> = days
            .iter()
            .map(|d| keys::ranking_built(prefix, *d))
            .collect();
        keys.extend(days.iter().map(|d| keys::ranking_day(prefix, *d)));
        keys.push(keys::ranking_scratch(prefix));
        let args = vec![Value::from(days.len() as i64), Value::from(limit as i64)];

        let answer = self
            .conn
            .eval(&TOP, keys, args)
            .await
            .map_err(unavailable)?;
        let mut parts = answer.into_array().into_iter();
        let (Some(tag), Some(body)) = (parts.next(), parts.next()) else {
            return Err(unavailable("ranking_top: malformed answer".into()));
        };
        let body = body.into_array();

        if tag.as_i64() == Some(0) {
            let mut missing = Vec::with_capacity(body.len());
            for index in body {
                let day = index
                    .as_i64()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| days.get(i))
                    .ok_or_else(|| unavailable("ranking_top: bad day index".into()))?;
                missing.push(*day);
            }
            return Ok(RankingRead::MissingDays(missing));
        }

        let mut sales = Vec::with_capacity(body.len() / 2);
        for pair in body.chunks(2) {
            let [member, score] = pair else {
                return Err(unavailable("ranking_top: odd member/score list".into()));
            };
            let product = member.as_str().and_then(|m| m.parse::<i64>().ok());
            // Scores are sums of integer quantities, exact in a double below 2^53.
            let quantity = score.as_f64().map(|s| s.round() as i64);
            match (product, quantity) {
                (Some(product), Some(quantity)) => sales.push(ProductSales {
                    product_id: ProductId(product),
                    quantity,
                }),
                _ => tracing::warn!(?member, ?score, "ranking: skipping a malformed member"),
            }
        }
        let mut ranked = rank(sales);
        ranked.truncate(limit);
        Ok(RankingRead::Ranked(ranked))
    }

    async fn rebuild_day(&self, day: Date, totals: &[ProductSales]) -> Result<(), RankingError> {
        let prefix = self.conn.prefix();
        let keys = vec![
            keys::ranking_day(prefix, day),
            keys::ranking_built(prefix, day),
        ];
        let mut args = vec![Value::from(self.expire_at(day))];
        flatten(totals, &mut args);
        self.conn
            .eval(&REBUILD, keys, args)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
